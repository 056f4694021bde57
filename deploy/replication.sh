#!/bin/sh
# Run once by the postgres image when it creates the primary's cluster
# (/docker-entrypoint-initdb.d): lets standbys stream from it with the
# same password as every other connection.
set -eu
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
