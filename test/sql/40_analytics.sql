-- Windowed analytics: hop and session windows at their boundaries, the
-- iotstream.stats text and binary forms, and each detector on a short,
-- hand-checkable series.  Value checks against independent computations on
-- larger data are in test/pgtap/40_analytics.sql.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET extra_float_digits = 0;
\set SHOW_CONTEXT never

-- hop: 10-minute windows every 5 minutes.  10:07 is in [10:00, 10:10) and
-- [10:05, 10:15); 10:05 exactly is the start of one window and inside the
-- previous one; 10:10 exactly is outside [10:00, 10:10).
SELECT ts, array_agg(w ORDER BY w) AS windows
  FROM unnest(ARRAY['2026-03-05 10:07', '2026-03-05 10:05', '2026-03-05 10:10',
                    '2026-03-05 10:09:59.999999']::timestamptz[]) ts,
       iotstream.hop(ts, '10 minutes', '5 minutes') w
 GROUP BY ts ORDER BY ts;
-- slide larger than size leaves gaps: 10:03 is in no 2-minute window every 5
SELECT count(*) FROM iotstream.hop('2026-03-05 10:03', '2 minutes', '5 minutes');
SELECT iotstream.hop('2026-03-05 10:01', '2 minutes', '5 minutes');
-- origin shifts the grid; before the origin works too
SELECT iotstream.hop('2026-03-05 10:07', '1 hour', '30 minutes', '2026-03-05 00:15');
SELECT iotstream.hop('1960-01-01 00:07'::timestamp, '10 minutes', '5 minutes');
-- GROUP BY a hopping window: each row counts in two windows
SELECT w, count(*)
  FROM generate_series('2026-03-05 10:00'::timestamptz, '2026-03-05 10:19', '1 minute') ts,
       iotstream.hop(ts, '10 minutes', '5 minutes') w
 GROUP BY w ORDER BY w;
-- tumbling windows are date_bin
SELECT date_bin('1 minute', '2026-03-05 10:07:31'::timestamptz, 'epoch');

-- session_id: a gap of exactly 5 minutes stays in the session, more ends it;
-- ties and NULL times do not start sessions; partitions restart at 1
SELECT k, ts, iotstream.session_id(ts, '5 minutes') OVER (PARTITION BY k ORDER BY ts)
  FROM (VALUES (1, '2026-03-05 10:00'::timestamptz), (1, '2026-03-05 10:05'),
               (1, '2026-03-05 10:05'), (1, '2026-03-05 10:10:00.000001'),
               (1, '2026-03-05 10:11'), (1, NULL), (2, '2026-03-05 09:00'),
               (2, '2026-03-05 11:00')) v(k, ts)
 ORDER BY k, ts;

-- stats: text form, round trip, accessors
SELECT iotstream.stats_agg(x) FROM generate_series(1, 5) x;
SELECT s::text = s::text::iotstream.stats::text AS round_trip,
       iotstream.count(s), iotstream.mean(s), iotstream.variance(s), iotstream.var_pop(s),
       iotstream.min(s), iotstream.max(s), iotstream.zscore(s, 6)
  FROM (SELECT iotstream.stats_agg(x / 3.0) s FROM generate_series(1, 5) x) q;
SELECT iotstream.stats_agg(x / 3.0)::text FROM generate_series(1, 5) x;
SELECT iotstream.stats_send(iotstream.stats_agg(x)) FROM generate_series(1, 2) x;
-- binary round trip through COPY
CREATE TABLE an_stats_bin (s iotstream.stats);
INSERT INTO an_stats_bin SELECT iotstream.stats_agg(x * 0.1) FROM generate_series(1, 7) x;
COPY an_stats_bin TO '/tmp/iotstream_analytics_stats.bin' (FORMAT binary);
CREATE TABLE an_stats_bin2 (s iotstream.stats);
COPY an_stats_bin2 FROM '/tmp/iotstream_analytics_stats.bin' (FORMAT binary);
SELECT a.s::text = b.s::text AS binary_round_trip, b.s FROM an_stats_bin a, an_stats_bin2 b;
-- empty input gives NULL, NULLs are skipped, one value has no sample stddev
SELECT iotstream.stats_agg(x) IS NULL FROM generate_series(1, 0) x;
SELECT iotstream.stats_agg(x), iotstream.stddev(iotstream.stats_agg(x)),
       iotstream.stddev_pop(iotstream.stats_agg(x))
  FROM (VALUES (NULL::float8), (4), (NULL)) v(x);
-- non-finite values, as avg() and stddev_samp() report them
SELECT iotstream.stats_agg(x), avg(x), stddev_samp(x)
  FROM (VALUES (1::float8), ('Infinity'), (2)) v(x);
SELECT iotstream.stats_agg(x), avg(x) FROM (VALUES (1::float8), ('NaN'), (2)) v(x);
-- bad text
SELECT '(n:2,sum:1)'::iotstream.stats;
SELECT '(n:2,sum:1,sxx:-1,min:0,max:1)'::iotstream.stats;
SELECT '(n:0,sum:0,sxx:0,min:0,max:0)'::iotstream.stats;

-- moving window: min and max stay exact when the extreme leaves the frame
SELECT i, x, iotstream.min(s), iotstream.max(s), iotstream.mean(s)
  FROM (SELECT i, x, iotstream.stats_agg(x) OVER (ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) s
          FROM (VALUES (1, 5.0::float8), (2, 3), (3, 4), (4, 8), (5, 1), (6, NULL), (7, 2)) v(i, x)) q
 ORDER BY i;

-- rollup: two minutes into one
SELECT iotstream.rollup(s) FROM (VALUES ('(n:2,sum:3,sxx:0.5,min:1,max:2)'::iotstream.stats),
                                        ('(n:3,sum:12,sxx:2,min:3,max:5)'), (NULL)) v(s);
SELECT iotstream.stats_agg(x) FROM (VALUES (1::float8), (2), (3), (4), (5)) v(x);

-- the seed-004 rule: per sensor, per minute, temperatures above 100, flag > 5
CREATE TABLE an_readings (ts timestamptz, sensor_id text, metric_type text, value float8);
INSERT INTO an_readings
SELECT '2026-03-05 10:00'::timestamptz + i * interval '5 seconds', s, 'temperature',
       CASE WHEN s = 'b' AND i BETWEEN 12 AND 19 THEN 105 ELSE 90 + i % 7 END
  FROM generate_series(0, 35) i, unnest(ARRAY['a', 'b']) s;
SELECT sensor_id, date_bin('1 minute', ts, 'epoch') AS minute,
       iotstream.threshold_count(value, 100) AS above,
       iotstream.threshold_count(value, 100) > 5 AS alarm
  FROM an_readings WHERE metric_type = 'temperature'
 GROUP BY 1, 2 ORDER BY 1, 2;

-- detectors on a short series: a step from 0 to 3 at row 7
SELECT i, x, (iotstream.cusum(x, 0, 0.5, 4) OVER w).*,
       (iotstream.ewma_chart(x, 0.2, 3, 0, 1) OVER w).*,
       iotstream.ewma(x, 0.5) OVER w
  FROM (SELECT i, CASE WHEN i > 6 THEN 3 ELSE 0 END::float8 x FROM generate_series(1, 9) i) q
WINDOW w AS (ORDER BY i) ORDER BY i;
-- robust z-score of each value against itself and the 4 before
SELECT i, x, (iotstream.robust_zscore(x) OVER (ORDER BY i ROWS BETWEEN 4 PRECEDING AND CURRENT ROW)).*
  FROM (VALUES (1, 10.0::float8), (2, 11), (3, 9), (4, 10), (5, 12), (6, 40), (7, 10), (8, 10)) v(i, x)
 ORDER BY i;
-- spike_dip: nothing before the history of 4 is full, then the spike at 6
SELECT i, x, round(((r).p_value)::numeric, 6) AS p, (r).is_anomaly
  FROM (SELECT i, x, iotstream.spike_dip(x, 90, 4) OVER (ORDER BY i) r
          FROM (VALUES (1, 10.0::float8), (2, 11), (3, 9), (4, 10), (5, 10.5), (6, 40), (7, 10)) v(i, x)) q
 ORDER BY i;
-- outliers: one value in 20 is far out
SELECT iotstream.outliers(x, 3), iotstream.outliers(x, 100)
  FROM (SELECT CASE WHEN i = 10 THEN 50 ELSE i % 3 END::float8 x FROM generate_series(1, 20) i) q;

-- bad arguments
SELECT iotstream.hop(now(), '0 minutes', '1 minute');
SELECT iotstream.hop(now(), '1 month', '1 minute');
SELECT iotstream.spike_dip(x, 0, 10) OVER () FROM (VALUES (1.0::float8)) v(x);
SELECT iotstream.spike_dip(x, 95, 1) OVER () FROM (VALUES (1.0::float8)) v(x);
SELECT iotstream.spike_dip(x, 95, 10, 'up') OVER () FROM (VALUES (1.0::float8)) v(x);
SELECT iotstream.outliers(x, 0) FROM (VALUES (1.0::float8)) v(x);
SELECT iotstream.session_id(ts, '1 minute') OVER (ORDER BY k)
  FROM (VALUES (1, '2026-03-05 10:00'::timestamptz), (2, '2026-03-05 09:00')) v(k, ts);

DROP TABLE an_readings, an_stats_bin, an_stats_bin2;
