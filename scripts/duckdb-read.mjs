// Reads one export or stream part with DuckDB, as a user's query would,
// and prints {"rows": n, "sample": [...]}: its row count and its first
// rows' id, occurred_at (microseconds since the epoch), action, success,
// status_code and metadata (JSON text). Run by scripts/duckdb.sh.
//
//   node duckdb-read.mjs FILE jsonl|csv|parquet
import { DuckDBInstance } from '@duckdb/node-api';

const [file, format] = process.argv.slice(2);
const path = `'${file.replaceAll("'", "''")}'`;
const sources = {
  jsonl: `read_json(${path}, format='newline_delimited', columns={id: 'VARCHAR', occurred_at: 'VARCHAR', action: 'VARCHAR', success: 'BOOLEAN', status_code: 'BIGINT', metadata: 'JSON'})`,
  csv: `read_csv(${path}, header=true, columns={id: 'VARCHAR', occurred_at: 'VARCHAR', received_at: 'VARCHAR', action: 'VARCHAR', actor_id: 'VARCHAR', actor_type: 'VARCHAR', actor_name: 'VARCHAR', target_id: 'VARCHAR', target_type: 'VARCHAR', target_name: 'VARCHAR', resource: 'VARCHAR', source_ip: 'VARCHAR', user_agent: 'VARCHAR', request_id: 'VARCHAR', method: 'VARCHAR', path: 'VARCHAR', status_code: 'BIGINT', success: 'BOOLEAN', duration_ms: 'BIGINT', metadata: 'VARCHAR'})`,
  parquet: `read_parquet(${path})`,
};
if (!(format in sources)) {
  console.error(`usage: duckdb-read.mjs FILE jsonl|csv|parquet`);
  process.exit(2);
}
const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
const count = await conn.runAndReadAll(`SELECT count(*) AS n FROM ${sources[format]}`);
const sample = await conn.runAndReadAll(`SELECT id, epoch_us(CAST(occurred_at AS TIMESTAMPTZ)) AS occurred_us, action, success,
  CAST(status_code AS BIGINT) AS status_code, CAST(metadata AS VARCHAR) AS metadata FROM ${sources[format]} LIMIT 20`);
console.log(JSON.stringify({ rows: Number(count.getRowObjectsJson()[0].n), sample: sample.getRowObjectsJson() }));
