-- +goose Up

-- Kind 7 of summary_counts: the events of each source IP (host(source_ip))
-- per UTC day, for the summary's top source IPs. The rollup adds them from
-- now on; the events it has already rolled up (received before rolled_to,
-- on valid_from's day or later) get theirs here.
INSERT INTO summary_counts (tenant_id, kind, value, day, events)
SELECT e.tenant_id, 7, host(e.source_ip), (e.occurred_at AT TIME ZONE 'UTC')::date, count(*)
FROM events e JOIN summary_marks m ON m.tenant_id = e.tenant_id
WHERE e.received_at < m.rolled_to
  AND e.occurred_at >= (m.valid_from::timestamp AT TIME ZONE 'UTC')
  AND e.source_ip IS NOT NULL
GROUP BY 1, 3, 4;

-- +goose Down
DELETE FROM summary_counts WHERE kind = 7;
