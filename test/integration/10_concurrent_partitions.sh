#!/usr/bin/env bash
# Eight sessions race to create the same 48 hourly partitions, in different
# orders, while inserting.  Every session must succeed, each hour must end up
# with exactly one partition, and every row must be stored once.
set -euo pipefail
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql -c "DROP TABLE IF EXISTS race; SELECT iotstream.create_stream_table('race',
    'ts timestamptz NOT NULL, session int, v int', 'ts', partition_interval => '1 hour',
    premake => 0, retention => NULL, max_future => '3 days')" >/dev/null

pids=()
for s in $(seq 1 8); do
  # session s walks the 48 hours starting at a different offset
  psql -c "DO \$\$ BEGIN
      FOR i IN 0..47 LOOP
        PERFORM iotstream.ensure_partition('race', date_trunc('hour', now()) + (((i + $s * 5) % 48) * interval '1 hour') + interval '30 minutes');
        INSERT INTO race VALUES (date_trunc('hour', now()) + (((i + $s * 5) % 48) * interval '1 hour') + interval '30 minutes', $s, i);
        COMMIT;
      END LOOP; END \$\$" &
  pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ "$fail" = 0 ] || { echo "a session failed"; exit 1; }

read -r parts covered rows sum <<<"$(psql -At -F' ' -c "
  SELECT (SELECT count(*) FROM iotstream.partitions('race')),
         (SELECT count(DISTINCT p.partition) FROM race r JOIN iotstream.partitions('race') p
             ON r.ts >= p.range_start AND r.ts < p.range_end),
         (SELECT count(*) FROM race), (SELECT sum(v) FROM race)")"
echo "partitions=$parts rows=$rows"
[ "$parts" = 48 ] || { echo "expected 48 partitions, got $parts"; exit 1; }
[ "$covered" = 48 ] || { echo "expected rows in 48 partitions, got $covered"; exit 1; }
[ "$rows" = 384 ] || { echo "expected 384 rows, got $rows"; exit 1; }
[ "$sum" = $((8 * 47 * 48 / 2)) ] || { echo "bad checksum $sum"; exit 1; }

# The same after a restart of the backend pool: new sessions see the partitions.
[ "$(psql -At -c "SELECT iotstream.ensure_partition('race', date_trunc('hour', now()) + interval '90 minutes')::text")" \
  = "$(psql -At -c "SELECT partition::text FROM iotstream.partitions('race') ORDER BY range_start OFFSET 1 LIMIT 1")" ]
psql -c "SELECT iotstream.drop_stream_table('race', drop_table => true)" >/dev/null
echo "ok"
