// DuckDB side of test/bench/analytics.sh: loads the CSV the benchmark wrote
// from PostgreSQL and runs the same per-sensor, per-hour detector query,
// best of N runs.  Prints "duckdb_ms <ms> <groups> <outliers>".
import { createRequire } from 'node:module';
import path from 'node:path';

const [csv, runs = '3', nodeDir] = process.argv.slice(2);
const require = createRequire(path.join(nodeDir, 'package.json'));
const { DuckDBInstance } = require('@duckdb/node-api');

const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
const conn = await instance.connect();
await conn.run(`CREATE TABLE readings AS
  SELECT * FROM read_csv('${csv}', header = false,
    columns = {'ts': 'TIMESTAMPTZ', 'sensor_id': 'VARCHAR', 'metric_type': 'VARCHAR', 'value': 'DOUBLE'})`);

// The idiomatic DuckDB query: window aggregates over the hour, then GROUP BY.
const sql = `
SELECT count(*) AS groups, sum(outliers) AS outliers FROM (
  SELECT sensor_id, hour, count(*) AS n, avg(value) AS mean, stddev_samp(value) AS sd,
         count(*) FILTER (WHERE abs(value - m) > 3 * s) AS outliers
    FROM (SELECT sensor_id, time_bucket(INTERVAL 1 hour, ts) AS hour, value,
                 avg(value) OVER w AS m, stddev_samp(value) OVER w AS s
            FROM readings
          WINDOW w AS (PARTITION BY sensor_id, time_bucket(INTERVAL 1 hour, ts))) q
   GROUP BY sensor_id, hour) r`;

let best = Infinity;
let out;
for (let i = 0; i < Number(runs); i++) {
  const t0 = process.hrtime.bigint();
  const reader = await conn.runAndReadAll(sql);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  out = reader.getRows()[0];
  best = Math.min(best, ms);
}
console.log(`duckdb_ms ${best.toFixed(1)} ${out[0]} ${out[1]}`);
