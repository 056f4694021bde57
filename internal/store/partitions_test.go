package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

func TestDropExpiredPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.IsolatedPool(t) // it drops partitions, which every tenant shares
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	jan, feb, mar := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2025, 2, 10, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	for _, m := range []time.Time{jan, feb, mar} {
		_, err := pool.Exec(ctx, `SELECT audex_ensure_event_partition($1)`, m)
		require.NoError(t, err)
	}
	insert := func(tenant string, at time.Time, n int) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING`, tenant)
		require.NoError(t, err)
		events := make([]audex.Event, n)
		for i := range events {
			typ := "user"
			events[i] = audex.Event{ID: fmt.Sprintf("%s-%d-%d", tenant, at.Month(), i), OccurredAt: at.Add(time.Duration(i) * time.Minute),
				Action: "doc.read", Actor: audex.Actor{ID: "a", Type: &typ}, Metadata: []byte("{}")}
		}
		_, err = store.InsertEvents(ctx, pool, tenant, events)
		require.NoError(t, err)
	}
	setPolicy := func(tenant string, days int) {
		_, err := pool.Exec(ctx, `UPDATE tenants SET retain_days = $2 WHERE id = $1`, tenant, days)
		require.NoError(t, err)
	}
	// January: two tenants with policies. February: one of them and a
	// tenant that keeps everything. March: a tenant whose export runs.
	insert("a", jan, 30)
	insert("b", jan, 20)
	insert("a", feb, 5)
	insert("keeper", feb, 7)
	insert("exporter", mar, 4)
	setPolicy("a", 30)
	setPolicy("b", 365)
	setPolicy("exporter", 30)
	e := audex.Export{ID: "exp_test", TenantID: "exporter", Format: "jsonl", Compression: "none", Since: mar.AddDate(0, 0, -20), Until: now,
		Filters: []byte("{}"), Destination: audex.ExportDestination{Name: "local", Type: "file", Bucket: "/tmp"}, KeyPrefix: "x/", PartMaxRecords: 10, PartMaxBytes: 1 << 20}
	require.NoError(t, store.CreateExport(ctx, pool, &e, 0))

	// The summary's daily counts hold every event before the drop.
	_, err := store.RollUpAllSummaries(ctx, pool, 1000)
	require.NoError(t, err)
	// b's events are leaves of its integrity log before the drop.
	skey, err := integrity.GenerateKey("audex-test")
	require.NoError(t, err)
	keys, err := integrity.ParseKeys(skey)
	require.NoError(t, err)
	_, _, err = store.SealLog(ctx, pool, "b", "audex-test", 1000, keys.Sign)
	require.NoError(t, err)

	dropped, err := store.DropExpiredPartitions(ctx, pool, now)
	require.NoError(t, err)
	require.Len(t, dropped, 1)
	require.Equal(t, "events_2025_01", dropped[0].Name)
	require.Equal(t, map[string]int64{"a": 30, "b": 20}, dropped[0].Deleted)

	count := func(sql string, args ...any) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	require.Zero(t, count(`SELECT count(*) FROM pg_class WHERE relname = 'events_2025_01'`))
	require.Equal(t, 1, count(`SELECT count(*) FROM pg_class WHERE relname = 'events_2025_02'`), "kept: a tenant there has no policy")
	require.Equal(t, 1, count(`SELECT count(*) FROM pg_class WHERE relname = 'events_2025_03'`), "kept: an export reads it")
	require.Equal(t, 5, count(`SELECT count(*) FROM events WHERE tenant_id = 'a' AND action = 'doc.read'`))
	require.Zero(t, count(`SELECT count(*) FROM event_ids WHERE tenant_id = 'b' AND id LIKE 'b-%'`))
	require.Equal(t, 5, count(`SELECT events FROM event_values WHERE tenant_id = 'a' AND kind = 'action' AND value = 'doc.read'`))
	require.Equal(t, 0, count(`SELECT events FROM event_values WHERE tenant_id = 'b' AND kind = 'actor_type' AND value = 'user'`))
	require.Equal(t, 30, count(`SELECT deleted FROM purges WHERE tenant_id = 'a' AND partition_name = 'events_2025_01' AND status = 'completed'`))
	require.Equal(t, 1, count(`SELECT count(*) FROM events WHERE tenant_id = 'b' AND action = 'audit.purge_completed'`))
	// The drop's deletion record lists b's leaves, which name its purge.
	require.Equal(t, 20, count(`SELECT count(*) FROM log_leaves l JOIN purges p ON p.id = l.deleted_by WHERE l.tenant_id = 'b' AND p.partition_name = 'events_2025_01'`))
	require.Equal(t, 1, count(`SELECT count(*) FROM events WHERE tenant_id = 'b' AND action = 'audit.purge_completed' AND metadata -> 'leaves' = '[[0, 20]]'`))
	since, until := jan.AddDate(0, 0, -10), now
	for _, tenant := range []string{"a", "b"} {
		f := audex.Filter{Since: &since, Until: &until}
		want, err := store.ScanSummary(ctx, pool, tenant, f)
		require.NoError(t, err)
		got, err := store.SummarizeEvents(ctx, pool, tenant, f, 0)
		require.NoError(t, err)
		require.Equal(t, want, got, "the summary of %s leaves out the dropped events", tenant)
	}

	t.Run("ADropCutShortAfterTheDetachIsFinishedByTheNextRun", func(t *testing.T) {
		_, err := pool.Exec(ctx, `UPDATE exports SET status = 'completed' WHERE id = 'exp_test'`)
		require.NoError(t, err)
		// What the first step of a drop leaves: the partition detached and
		// its tenant's retention purge running.
		_, err = pool.Exec(ctx, `INSERT INTO purges (id, tenant_id, status, reason, before, started_at, partition_name)
			VALUES ('prg_cut', 'exporter', 'running', 'retention', '2025-04-01Z', now(), 'events_2025_03')`)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `ALTER TABLE events DETACH PARTITION events_2025_03`)
		require.NoError(t, err)
		running, err := store.ExportMayRun(ctx, pool, "exporter", mar.AddDate(0, 0, -1))
		require.NoError(t, err)
		require.False(t, running, "an export waits while the drop is under way")

		dropped, err := store.DropExpiredPartitions(ctx, pool, now)
		require.NoError(t, err)
		require.Len(t, dropped, 1)
		require.Equal(t, map[string]int64{"exporter": 4}, dropped[0].Deleted)
		require.Zero(t, count(`SELECT count(*) FROM pg_class WHERE relname = 'events_2025_03'`))
		require.Zero(t, count(`SELECT count(*) FROM event_ids WHERE tenant_id = 'exporter' AND id LIKE 'exporter-%'`))
		require.Equal(t, 4, count(`SELECT deleted FROM purges WHERE tenant_id = 'exporter' AND status = 'completed'`))
	})
}
