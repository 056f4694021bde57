-- +goose Up

-- audex_wait_for_lock_holders returns once every other transaction that
-- holds the advisory lock key (in any mode) when it is called has ended.
-- It does not take the lock: a transaction that asks for the lock
-- meanwhile gets it at once and is not waited for. An exclusive request
-- of the lock would make every new shared request queue behind it, so
-- that one slow ingest would hold every ingest of its tenant, and
-- everything that records a self-audit event (cancelling the export that
-- waits, say), until it ended (internal/store/events.go, WaitForIngests).
-- +goose StatementBegin
CREATE FUNCTION audex_wait_for_lock_holders(key bigint) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
	holders text[];
	pause float8 := 0.001;
BEGIN
	SELECT array_agg(l.virtualtransaction) INTO holders FROM pg_locks l
	WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid = ((key >> 32) & 4294967295)::oid AND l.objid = (key & 4294967295)::oid AND l.objsubid = 1;
	WHILE holders IS NOT NULL LOOP
		PERFORM pg_sleep(pause);
		pause := least(pause * 2, 0.02);
		SELECT array_agg(l.virtualtransaction) INTO holders FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid = ((key >> 32) & 4294967295)::oid AND l.objid = (key & 4294967295)::oid AND l.objsubid = 1
			AND l.virtualtransaction = ANY (holders);
	END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION audex_wait_for_lock_holders(bigint);
