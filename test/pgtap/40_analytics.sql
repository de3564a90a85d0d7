-- Windowed analytics checked against independent computations: PostgreSQL's
-- own aggregates, straightforward SQL versions of each detector's formula
-- (recursive CTEs, LATERAL recomputation, percentile_cont, a textbook erf),
-- parallel against serial plans, and series with injected anomalies.
BEGIN;
SELECT plan(94);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

-- |a - b| <= tol * max(|a|, |b|), with NULL = NULL, NaN = NaN, Inf = Inf
-- (PARALLEL SAFE, so that the queries comparing parallel results can run in
-- parallel: a function without it makes the whole query serial)
CREATE FUNCTION pg_temp.close(a float8, b float8, tol float8 DEFAULT 1e-12) RETURNS bool
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (a IS NULL AND b IS NULL)
        OR (a IS NOT NULL AND b IS NOT NULL
            AND (a = b OR abs(a - b) <= tol * greatest(abs(a), abs(b))))
$$;
-- stats against the built-in aggregates over the same values
CREATE FUNCTION pg_temp.stats_match(s iotstream.stats, n bigint, mean float8, sd float8,
                                    var float8, sdp float8, varp float8, mn float8, mx float8,
                                    tol float8 DEFAULT 1e-12) RETURNS bool
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(iotstream.count(s), 0) = n
       AND pg_temp.close(iotstream.mean(s), mean, tol)
       AND pg_temp.close(iotstream.stddev(s), sd, tol)
       AND pg_temp.close(iotstream.variance(s), var, tol)
       AND pg_temp.close(iotstream.stddev_pop(s), sdp, tol)
       AND pg_temp.close(iotstream.var_pop(s), varp, tol)
       AND pg_temp.close(iotstream.min(s), mn, 0)
       AND pg_temp.close(iotstream.max(s), mx, 0)
$$;
-- Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: independent of libm's erf
CREATE FUNCTION pg_temp.erf(x float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN abs(x) > 6 THEN sign(x)
                ELSE sign(x) * (1 - (((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t
                                 - 0.284496736) * t + 0.254829592) * t) * exp(-x * x)) END
      FROM (SELECT 1 / (1 + 0.3275911 * abs(x)) AS t) q
$$;
CREATE FUNCTION pg_temp.gauss() RETURNS float8 LANGUAGE sql VOLATILE AS $$
    SELECT sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())
$$;
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; out text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
        out := out || r || E'\n';
    END LOOP;
    RETURN out;
END $$;

-- tumbling_summary's windows from q (columns k, ws) against serial_windows,
-- window by window: all 1,670 present on both sides, n, min, max and the
-- outlier count equal, mean and stddev within 1e-12
CREATE FUNCTION pg_temp.windows_match(q text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE r bool;
BEGIN
    EXECUTE format($f$
        SELECT bool_and(p.n = s.n AND pg_temp.close(p.mean, s.mean) AND pg_temp.close(p.stddev, s.stddev)
                        AND p.min = s.min AND p.max = s.max AND p.outliers = s.outliers)
               AND count(*) = 10 * 167 AND count(s.k) = count(*) AND count(p.k) = count(*)
               AND sum(p.outliers) > 0
          FROM (SELECT x.k, w.* FROM (%s) x, unnest(x.ws) w) p
          FULL JOIN serial_windows s USING (k, window_start)$f$, q) INTO r;
    RETURN coalesce(r, false);
END $$;

SELECT setseed(0.4242);
-- 100,000 readings of 10 sensors, one a second, some NULL
CREATE TABLE an_data AS
SELECT i % 10 AS k, i,
       '2026-03-01'::timestamptz + i * interval '1 second' AS ts,
       CASE WHEN i % 97 = 0 THEN NULL ELSE 20 + 5 * pg_temp.gauss() END AS v
  FROM generate_series(1, 100000) i;
ALTER TABLE an_data SET (parallel_workers = 2);
ANALYZE an_data;

-- ---------------------------------------------------------------- stats
SET LOCAL max_parallel_workers_per_gather = 0;
SELECT ok(bool_and(pg_temp.stats_match(s, n, a, sd, var, sdp, varp, mn, mx)),
          'stats_agg equals count/avg/stddev_samp/var_samp/stddev_pop/var_pop/min/max per sensor')
  FROM (SELECT k, iotstream.stats_agg(v) s, count(v) n, avg(v) a, stddev_samp(v) sd, var_samp(v) var,
               stddev_pop(v) sdp, var_pop(v) varp, min(v) mn, max(v) mx
          FROM an_data GROUP BY k) q;

CREATE TEMP TABLE hard (name text, v float8);
INSERT INTO hard SELECT 'big', 1e9 + pg_temp.gauss() * 1e-3 FROM generate_series(1, 1000);
INSERT INTO hard VALUES ('single', 42.5), ('nan', 1), ('nan', 'NaN'), ('nan', 3),
    ('inf', 1), ('inf', 'Infinity'), ('ninf', '-Infinity'), ('ninf', 2),
    ('both', 'Infinity'), ('both', '-Infinity'), ('lone_inf', 'Infinity');
INSERT INTO hard SELECT 'equal', 0.1 FROM generate_series(1, 1000);
SELECT ok(pg_temp.stats_match(s, n, a, sd, var, sdp, varp, mn, mx), 'stats_agg on hard data: ' || name)
  FROM (SELECT name, iotstream.stats_agg(v) s, count(v) n, avg(v) a, stddev_samp(v) sd, var_samp(v) var,
               stddev_pop(v) sdp, var_pop(v) varp, min(v) mn, max(v) mx
          FROM hard GROUP BY name) q ORDER BY name;
SELECT is((SELECT iotstream.stddev(iotstream.stats_agg(7.25)) FROM generate_series(1, 1000)), 0::float8,
          'equal values that are exact in binary have a standard deviation of exactly 0');

-- minute stats stored as text, rolled up into hours
CREATE TEMP TABLE minute_stats AS
SELECT k, date_bin('1 minute', ts, 'epoch') AS minute, iotstream.stats_agg(v)::text AS s
  FROM an_data GROUP BY 1, 2;
SELECT ok(bool_and(pg_temp.stats_match(r, n, a, sd, var, sdp, varp, mn, mx))
          AND count(*) = (SELECT count(DISTINCT (k, date_bin('1 hour', ts, 'epoch'))) FROM an_data),
          'rollup of minute stats equals the hourly aggregates over the rows')
  FROM (SELECT k, date_bin('1 hour', minute, 'epoch') h, iotstream.rollup(s::iotstream.stats) r
          FROM minute_stats GROUP BY 1, 2) m
  JOIN (SELECT k, date_bin('1 hour', ts, 'epoch') h, count(v) n, avg(v) a, stddev_samp(v) sd,
               var_samp(v) var, stddev_pop(v) sdp, var_pop(v) varp, min(v) mn, max(v) mx
          FROM an_data GROUP BY 1, 2) d USING (k, h);

-- parallel plans
CREATE TEMP TABLE serial_res AS
SELECT k, iotstream.stats_agg(v)::text s, iotstream.outliers(v, 2) o FROM an_data GROUP BY k;
CREATE TEMP TABLE serial_windows AS
SELECT k, w.* FROM (SELECT k, iotstream.tumbling_summary(ts, v, '10 minutes', 2) ws FROM an_data GROUP BY k) x, unnest(ws) w;
CREATE TEMP TABLE serial_events AS
SELECT k, e.* FROM (SELECT k, iotstream.spike_dip_events(ts, v, 95, 50, 'spikes') es FROM an_data GROUP BY k) x, unnest(es) e;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SELECT matches(pg_temp.plan_of('SELECT k, iotstream.stats_agg(v), iotstream.outliers(v, 2) FROM an_data GROUP BY k'),
               'Partial (Hash|Group)?Aggregate.*Workers Launched: [1-9]|Workers Launched: [1-9].*Partial (Hash|Group)?Aggregate',
               'stats_agg and outliers run as partial aggregates in parallel workers');
SELECT ok(bool_and(pg_temp.stats_match(p.s, iotstream.count(q.s::iotstream.stats), iotstream.mean(q.s::iotstream.stats),
                   iotstream.stddev(q.s::iotstream.stats), iotstream.variance(q.s::iotstream.stats),
                   iotstream.stddev_pop(q.s::iotstream.stats), iotstream.var_pop(q.s::iotstream.stats),
                   iotstream.min(q.s::iotstream.stats), iotstream.max(q.s::iotstream.stats)))
          AND count(*) = 10, 'parallel stats_agg equals the serial one')
  FROM (SELECT k, iotstream.stats_agg(v) s FROM an_data GROUP BY k) p JOIN serial_res q USING (k);
SELECT ok(bool_and(p.o = q.o) AND count(*) = 10 AND sum(p.o) > 0, 'parallel outliers equals the serial one')
  FROM (SELECT k, iotstream.outliers(v, 2) o FROM an_data GROUP BY k) p JOIN serial_res q USING (k);
SELECT matches(pg_temp.plan_of('SELECT k, iotstream.outlier_summary(v, 2) FROM an_data GROUP BY k'),
               'Partial (Hash|Group)?Aggregate.*Workers Launched: [1-9]|Workers Launched: [1-9].*Partial (Hash|Group)?Aggregate',
               'outlier_summary runs as a partial aggregate in parallel workers');
SELECT ok(bool_and((p.s).n = iotstream.count(q.s::iotstream.stats)
                   AND pg_temp.close((p.s).mean, iotstream.mean(q.s::iotstream.stats))
                   AND pg_temp.close((p.s).stddev, iotstream.stddev(q.s::iotstream.stats))
                   AND (p.s).min = iotstream.min(q.s::iotstream.stats)
                   AND (p.s).max = iotstream.max(q.s::iotstream.stats)
                   AND (p.s).outliers = q.o)
          AND count(*) = 10 AND sum((p.s).outliers) > 0, 'parallel outlier_summary equals the serial stats_agg and outliers')
  FROM (SELECT k, iotstream.outlier_summary(v, 2) s FROM an_data GROUP BY k) p JOIN serial_res q USING (k);
SELECT matches(pg_temp.plan_of($$SELECT k, iotstream.tumbling_summary(ts, v, '10 minutes', 2) FROM an_data GROUP BY k$$),
               'Partial (Hash|Group)?Aggregate.*Workers Launched: [1-9]|Workers Launched: [1-9].*Partial (Hash|Group)?Aggregate',
               'tumbling_summary runs as a partial aggregate in parallel workers');
-- each worker holds part of every key's windows: the combine joins them
SELECT ok(pg_temp.windows_match($$SELECT k, iotstream.tumbling_summary(ts, v, '10 minutes', 2) ws FROM an_data GROUP BY k$$),
          'parallel tumbling_summary equals the serial one, window by window');
SELECT matches(pg_temp.plan_of($$SELECT k, iotstream.spike_dip_events(ts, v, 95, 50, 'spikes') FROM an_data GROUP BY k$$),
               'Partial (Hash|Group)?Aggregate.*Workers Launched: [1-9]|Workers Launched: [1-9].*Partial (Hash|Group)?Aggregate',
               'spike_dip_events runs as a partial aggregate in parallel workers');
-- each worker holds runs of every key's rows: the final function orders them
SELECT ok(count(*) = (SELECT count(*) FROM serial_events) AND count(*) > 1000
          AND count(p.k) = count(*) AND count(s.k) = count(*)
          AND bool_and(p.value = s.value AND p.score = s.score AND p.p_value = s.p_value),
          'parallel spike_dip_events equals the serial one, row by row')
  FROM (SELECT k, e.* FROM (SELECT k, iotstream.spike_dip_events(ts, v, 95, 50, 'spikes') es FROM an_data GROUP BY k) x, unnest(es) e) p
  FULL JOIN serial_events s USING (k, ts);
SELECT ok(bool_and(pg_temp.stats_match(p.s, iotstream.count(r.s), iotstream.mean(r.s), iotstream.stddev(r.s),
                   iotstream.variance(r.s), iotstream.stddev_pop(r.s), iotstream.var_pop(r.s),
                   iotstream.min(r.s), iotstream.max(r.s))), 'parallel rollup equals the direct aggregate')
  FROM (SELECT k, iotstream.rollup(s::iotstream.stats) s FROM minute_stats GROUP BY k) p
  JOIN (SELECT k, iotstream.stats_agg(v) s FROM an_data GROUP BY k) r USING (k);
SET LOCAL max_parallel_workers_per_gather = 0;
-- partial aggregation per partition, in one process: the combine function
-- runs for certain, joining states whose windows interleave (rows dealt to
-- partitions by hash) and states that split a window (a range at 12:05)
CREATE TABLE an_hash (k int, ts timestamptz, v float8, i int) PARTITION BY HASH (i);
CREATE TABLE an_hash_0 PARTITION OF an_hash FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE an_hash_1 PARTITION OF an_hash FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE an_hash_2 PARTITION OF an_hash FOR VALUES WITH (MODULUS 3, REMAINDER 2);
CREATE TABLE an_range (k int, ts timestamptz, v float8) PARTITION BY RANGE (ts);
CREATE TABLE an_range_0 PARTITION OF an_range FOR VALUES FROM (MINVALUE) TO ('2026-03-01 12:05+00');
CREATE TABLE an_range_1 PARTITION OF an_range FOR VALUES FROM ('2026-03-01 12:05+00') TO (MAXVALUE);
INSERT INTO an_hash SELECT k, ts, v, i FROM an_data ORDER BY i;
INSERT INTO an_range SELECT k, ts, v FROM an_data ORDER BY i;
ANALYZE an_hash, an_range;
SET LOCAL enable_partitionwise_aggregate = on;
SELECT matches(pg_temp.plan_of($$SELECT k, iotstream.tumbling_summary(ts, v, '10 minutes', 2) FROM an_hash GROUP BY k$$),
               'Finalize.*Partial HashAggregate.*Partial HashAggregate.*Partial HashAggregate',
               'tumbling_summary runs as partial aggregates per partition, combined by a final one');
SELECT ok(pg_temp.windows_match($$SELECT k, iotstream.tumbling_summary(ts, v, '10 minutes', 2) ws FROM an_hash GROUP BY k$$),
          'tumbling_summary combined from hash partitions (interleaved windows) equals the serial one');
SELECT ok(pg_temp.windows_match($$SELECT k, iotstream.tumbling_summary(ts, v, '10 minutes', 2) ws FROM an_range GROUP BY k$$),
          'tumbling_summary combined from range partitions (a window split at 12:05) equals the serial one');
-- a key's rows dealt to three partitions: the combined state is out of
-- time order for certain, and the final function must order it
SELECT ok(count(*) = (SELECT count(*) FROM serial_events) AND count(p.k) = count(*) AND count(s.k) = count(*)
          AND bool_and(p.value = s.value AND p.score = s.score AND p.p_value = s.p_value),
          'spike_dip_events combined from hash partitions (interleaved rows) equals the serial one')
  FROM (SELECT k, e.* FROM (SELECT k, iotstream.spike_dip_events(ts, v, 95, 50, 'spikes') es FROM an_hash GROUP BY k) x, unnest(es) e) p
  FULL JOIN serial_events s USING (k, ts);
SELECT ok(count(*) = (SELECT count(*) FROM serial_events) AND count(p.k) = count(*) AND count(s.k) = count(*)
          AND bool_and(p.value = s.value AND p.score = s.score AND p.p_value = s.p_value),
          'spike_dip_events combined from range partitions (a series split at 12:05) equals the serial one')
  FROM (SELECT k, e.* FROM (SELECT k, iotstream.spike_dip_events(ts, v, 95, 50, 'spikes') es FROM an_range GROUP BY k) x, unnest(es) e) p
  FULL JOIN serial_events s USING (k, ts);
SET LOCAL enable_partitionwise_aggregate = off;

-- moving windows: the inverse transition against the built-in aggregates,
-- which have no inverse and so recompute every frame
CREATE TEMP TABLE mov AS
SELECT k, i, v, iotstream.stats_agg(v) OVER w AS s, iotstream.threshold_count(v, 25) OVER w AS tc,
       count(v) OVER w n, avg(v) OVER w a, stddev_samp(v) OVER w sd, var_samp(v) OVER w var,
       stddev_pop(v) OVER w sdp, var_pop(v) OVER w varp, min(v) OVER w mn, max(v) OVER w mx,
       count(*) FILTER (WHERE v > 25) OVER w c
  FROM an_data WHERE i <= 30000
WINDOW w AS (PARTITION BY k ORDER BY i ROWS BETWEEN 20 PRECEDING AND CURRENT ROW);
SELECT ok(bool_and(pg_temp.stats_match(s, n, a, sd, var, sdp, varp, mn, mx, 1e-9)) AND count(*) = 30000,
          'moving stats_agg (inverse transition) equals recomputing each frame')
  FROM mov;
SELECT ok(bool_and(tc = c) AND sum(tc) > 0, 'moving threshold_count equals recomputing each frame')
  FROM mov;
SELECT ok(bool_and(pg_temp.close(iotstream.mean(s), a, 1e-12)), 'moving means agree within 1e-12')
  FROM mov;

-- ---------------------------------------------------------------- detectors
SELECT ok(bool_and(a = b) AND sum(a) > 0, 'threshold_count equals count(*) FILTER (WHERE v > t)')
  FROM (SELECT iotstream.threshold_count(v, 27) a, count(*) FILTER (WHERE v > 27) b
          FROM an_data GROUP BY k, date_bin('1 minute', ts, 'epoch')) q;

SELECT ok(bool_and(a = b) AND sum(a) > 0,
          'outliers(v, 2) equals the window-function query for values beyond mean +/- 2 stddev')
  FROM (SELECT k, date_bin('1 hour', ts, 'epoch') h, iotstream.outliers(v, 2) a FROM an_data GROUP BY 1, 2) x
  JOIN (SELECT k, h, count(*) FILTER (WHERE abs(v - m) > 2 * sd) b
          FROM (SELECT k, date_bin('1 hour', ts, 'epoch') h, v,
                       avg(v) OVER p m, stddev_samp(v) OVER p sd
                  FROM an_data WINDOW p AS (PARTITION BY k, date_bin('1 hour', ts, 'epoch'))) w
         GROUP BY 1, 2) y USING (k, h);

-- outlier_summary: one state for what stats_agg and outliers give together
SELECT ok(bool_and((s).n = n AND pg_temp.close((s).mean, a) AND pg_temp.close((s).stddev, sd)
                   AND (s).min = mn AND (s).max = mx AND (s).outliers = o
                   AND (s).mean = iotstream.mean(st) AND (s).stddev IS NOT DISTINCT FROM iotstream.stddev(st))
          AND sum((s).outliers) > 0 AND count(*) > 100,
          'outlier_summary(v, 2) equals count/avg/stddev_samp/min/max, outliers(v, 2), and stats_agg to the bit')
  FROM (SELECT k, date_bin('1 hour', ts, 'epoch') h, iotstream.outlier_summary(v, 2) s, iotstream.stats_agg(v) st,
               count(v) n, avg(v) a, stddev_samp(v) sd, min(v) mn, max(v) mx, iotstream.outliers(v, 2) o
          FROM an_data GROUP BY 1, 2) q;
SELECT ok(bool_and((s).n = iotstream.count(st) AND pg_temp.close((s).mean, iotstream.mean(st), 0)
                   AND pg_temp.close((s).stddev, iotstream.stddev(st), 0)
                   AND pg_temp.close((s).min, iotstream.min(st), 0) AND pg_temp.close((s).max, iotstream.max(st), 0)
                   AND (s).outliers = o)
          AND count(*) = 8,
          'outlier_summary on hard data (1e9 + noise, single, NaN, +-Infinity, equal) equals stats_agg and outliers')
  FROM (SELECT name, iotstream.outlier_summary(v, 3) s, iotstream.stats_agg(v) st, iotstream.outliers(v, 3) o
          FROM hard GROUP BY name) q;
SELECT ok((SELECT (s).n = 5 AND (s).mean = 4 AND pg_temp.close((s).stddev, sqrt(20.5))
                   AND (s).min = 1 AND (s).max = 12 AND (s).outliers = 1
              FROM (SELECT iotstream.outlier_summary(x, 1.5) s
                      FROM (VALUES (1.0), (NULL), (2), (3), (2), (12)) v(x)) q),
          'outlier_summary skips NULLs; by hand: mean 4, stddev sqrt(82/4), only 12 beyond 1.5 stddev');
SELECT is((SELECT (s).min::text || ' ' || (s).max::text
              FROM (SELECT iotstream.outlier_summary(x, 3) s
                      FROM (VALUES (0::float8), ('-0'::float8)) v(x)) q),
          (SELECT iotstream.min(st)::text || ' ' || iotstream.max(st)::text
              FROM (SELECT iotstream.stats_agg(x) st
                      FROM (VALUES (0::float8), ('-0'::float8)) v(x)) q),
          'outlier_summary keeps the zero stats_agg keeps for min and max (the first of 0 and -0)');
SELECT is((SELECT iotstream.outlier_summary(x, 3) FROM (VALUES (NULL::float8)) v(x)), NULL,
          'outlier_summary over no values is NULL');
SELECT throws_ok($$SELECT iotstream.outlier_summary(x, 0) FROM (VALUES (1.0)) v(x)$$, '22023',
                 'k must be a positive number of standard deviations', 'outlier_summary rejects k = 0');

-- tumbling_summary: per key, every window's outlier_summary in one aggregate
SELECT ok(bool_and(t.n = b.n AND pg_temp.close(t.mean, b.a) AND pg_temp.close(t.stddev, b.sd)
                   AND t.min = b.mn AND t.max = b.mx AND t.outliers = b.o)
          AND count(*) = 10 * 167 AND count(t.k) = count(*) AND count(b.k) = count(*) AND sum(t.outliers) > 0,
          'tumbling_summary equals count/avg/stddev_samp/min/max and the window-function outlier count per date_bin window')
  FROM (SELECT k, w.* FROM (SELECT k, iotstream.tumbling_summary(ts, v, '10 minutes', 2) ws
                              FROM an_data GROUP BY k) x, unnest(ws) w) t
  FULL JOIN (SELECT k, window_start, count(v) n, avg(v) a, stddev_samp(v) sd, min(v) mn, max(v) mx,
                    count(*) FILTER (WHERE abs(v - m) > 2 * s) o
               FROM (SELECT k, date_bin('10 minutes', ts, 'epoch') window_start, v,
                            avg(v) OVER p m, stddev_samp(v) OVER p s
                       FROM an_data WHERE v IS NOT NULL
                     WINDOW p AS (PARTITION BY k, date_bin('10 minutes', ts, 'epoch'))) q
              GROUP BY 1, 2) b USING (k, window_start);
SELECT ok(bool_and(t.n = (o.s).n AND t.mean = (o.s).mean AND t.stddev IS NOT DISTINCT FROM (o.s).stddev
                   AND t.min = (o.s).min AND t.max = (o.s).max AND t.outliers = (o.s).outliers)
          AND count(*) = 10 * 74 AND count(t.k) = count(*) AND count(o.k) = count(*),
          'tumbling_summary with an origin off the grid equals outlier_summary per date_bin window, to the bit')
  FROM (SELECT k, w.* FROM (SELECT k, iotstream.tumbling_summary(ts, v, '23 minutes', 2.5, '2026-03-01 00:03:30+00') ws
                              FROM an_data GROUP BY k) x, unnest(ws) w) t
  FULL JOIN (SELECT k, date_bin('23 minutes', ts, '2026-03-01 00:03:30+00') window_start,
                    iotstream.outlier_summary(v, 2.5) s
               FROM an_data GROUP BY 1, 2) o USING (k, window_start);
-- rows out of time order: the runs are sorted and joined by the final function
SELECT ok(pg_temp.windows_match($$SELECT k, iotstream.tumbling_summary(ts, v, '10 minutes', 2 ORDER BY random()) ws
                                   FROM an_data GROUP BY k$$),
          'tumbling_summary over shuffled rows equals it over rows in time order');
SELECT ok(bool_and((SELECT bool_and(w.n = iotstream.count(st) AND pg_temp.close(w.mean, iotstream.mean(st), 0)
                                    AND pg_temp.close(w.stddev, iotstream.stddev(st), 0)
                                    AND pg_temp.close(w.min, iotstream.min(st), 0)
                                    AND pg_temp.close(w.max, iotstream.max(st), 0) AND w.outliers = o)
                      FROM unnest(ws) w))
          AND count(*) = 8 AND sum(cardinality(ws)) = 8,
          'tumbling_summary on hard data (1e9 + noise, single, NaN, +-Infinity, equal) equals stats_agg and outliers')
  FROM (SELECT name, iotstream.tumbling_summary('2026-03-01 12:00+00', v, '1 hour', 3) ws,
               iotstream.stats_agg(v) st, iotstream.outliers(v, 3) o
          FROM hard GROUP BY name) q;
-- by hand: boundaries belong to the window they start; before the origin
-- the window is the one below it; NULL times and values are skipped
SELECT is((SELECT array_agg(w.window_start || ' ' || w.n || ' ' || w.mean || ' ' || coalesce(w.stddev::text, '-')
                            || ' ' || w.min || ' ' || w.max || ' ' || w.outliers ORDER BY ord)
             FROM unnest((SELECT iotstream.tumbling_summary(ts, x, '30 minutes', 1, '2026-01-01 00:10+00')
                            FROM (VALUES ('2026-01-01 00:40+00'::timestamptz, 5.0::float8),
                                         ('2026-01-01 00:10+00', 1), ('2026-01-01 00:39:59.999999+00', 3),
                                         (NULL, 100), ('2026-01-01 00:20+00', NULL),
                                         ('2026-01-01 00:09:59.999999+00', 7),
                                         ('2025-12-31 23:40+00', 9)) v(ts, x))) WITH ORDINALITY w(window_start, n, mean, stddev, min, max, outliers, ord)),
          ARRAY['2025-12-31 23:40:00+00 2 8 1.4142135623730951 7 9 0',
                '2026-01-01 00:10:00+00 2 2 1.4142135623730951 1 3 0',
                '2026-01-01 00:40:00+00 1 5 - 5 5 0'],
          'tumbling_summary by hand: windows in order, boundaries, before the origin, NULLs skipped');
SELECT is((SELECT iotstream.tumbling_summary(ts, x, '1 hour', 3)
             FROM (VALUES (now(), NULL::float8), (NULL, 1)) v(ts, x)), NULL,
          'tumbling_summary over no values is NULL');
-- one series for the ordered detectors: sensor 3, first 3000 rows
CREATE TEMP TABLE s3 AS
SELECT row_number() OVER (ORDER BY i) AS t, v FROM an_data WHERE k = 3 AND v IS NOT NULL ORDER BY i LIMIT 3000;
CREATE INDEX ON s3 (t);
ANALYZE s3;

SELECT ok(bool_and(pg_temp.close((r).score, 0.6745 * (v - med) / mad, 1e-9)
                   AND pg_temp.close((r).median, med, 1e-12) AND pg_temp.close((r).mad, mad, 1e-12)
                   AND (r).is_anomaly = (abs(0.6745 * (v - med) / mad) > 3.5)),
          'robust_zscore equals 0.6745 (x - median) / MAD from percentile_cont over the frame')
  FROM (SELECT t, v, iotstream.robust_zscore(v) OVER (ORDER BY t ROWS BETWEEN 30 PRECEDING AND CURRENT ROW) r
          FROM s3) q
  CROSS JOIN LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) med
                        FROM s3 f WHERE f.t BETWEEN q.t - 30 AND q.t) m
  CROSS JOIN LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(f.v - m.med)) mad
                        FROM s3 f WHERE f.t BETWEEN q.t - 30 AND q.t) d
 WHERE q.t > 1;

WITH RECURSIVE e(t, v, s) AS (
    SELECT t, v, v FROM s3 WHERE t = 1
    UNION ALL
    SELECT s3.t, s3.v, 0.3 * s3.v + 0.7 * e.s FROM e JOIN s3 ON s3.t = e.t + 1
)
SELECT ok(bool_and(pg_temp.close(x, e.s, 1e-12)), 'ewma equals the recursive definition')
  FROM e JOIN (SELECT t, iotstream.ewma(v, 0.3) OVER (ORDER BY t) x FROM s3) q USING (t);

WITH RECURSIVE e(t, v, z) AS (
    SELECT 0::bigint, NULL::float8, 20::float8
    UNION ALL
    SELECT s3.t, s3.v, 0.2 * s3.v + 0.8 * e.z FROM e JOIN s3 ON s3.t = e.t + 1
)
SELECT ok(bool_and(pg_temp.close((c).ewma, e.z, 1e-12)
                   AND pg_temp.close((c).upper, 20 + 3 * 5 * sqrt(0.2 / 1.8 * (1 - 0.8 ^ (2 * e.t))), 1e-12)
                   AND pg_temp.close((c).lower, 20 - 3 * 5 * sqrt(0.2 / 1.8 * (1 - 0.8 ^ (2 * e.t))), 1e-12)
                   AND (c).is_anomaly = (abs(e.z - 20) > 3 * 5 * sqrt(0.2 / 1.8 * (1 - 0.8 ^ (2 * e.t))))),
          'ewma_chart equals z_t and mu +/- L sigma sqrt(lambda/(2-lambda) (1-(1-lambda)^(2t)))')
  FROM e JOIN (SELECT t, iotstream.ewma_chart(v, 0.2, 3, 20, 5) OVER (ORDER BY t) c FROM s3) q USING (t);

SELECT ok(pg_temp.close((c).upper, a + 3 * sd * sqrt(0.2 / 1.8 * (1 - 0.64)), 1e-12)
          AND (SELECT count(*) FROM (SELECT iotstream.ewma_chart(v) OVER (ORDER BY t) c FROM s3) x
                WHERE (c).upper IS NULL) = 20,
          'ewma_chart estimates mu and sigma from the first 20 values and charts from the 21st')
  FROM (SELECT t, iotstream.ewma_chart(v) OVER (ORDER BY t) c FROM s3) q,
       (SELECT avg(v) a, stddev_samp(v) sd FROM s3 WHERE t <= 20) w
 WHERE t = 21;

WITH RECURSIVE c(t, hi, lo) AS (
    SELECT 0::bigint, 0::float8, 0::float8
    UNION ALL
    SELECT s3.t, greatest(0, c.hi + s3.v - 20 - 2.5), greatest(0, c.lo + 20 - s3.v - 2.5)
      FROM c JOIN s3 ON s3.t = c.t + 1
)
SELECT ok(bool_and(pg_temp.close((r).upper, c.hi, 1e-12) AND pg_temp.close((r).lower, c.lo, 1e-12)
                   AND (r).is_anomaly = (c.hi > 25 OR c.lo > 25)),
          'cusum equals the recursive tabular CUSUM')
  FROM c JOIN (SELECT t, iotstream.cusum(v, 20, 2.5, 25) OVER (ORDER BY t) r FROM s3) q USING (t);

-- kernel-density p-value over the previous 50 values, written out in SQL
CREATE TEMP TABLE kde AS
WITH h AS (SELECT a.t, a.v, b.v AS hv FROM s3 a JOIN s3 b ON b.t BETWEEN a.t - 50 AND a.t - 1),
     bw AS (SELECT t, greatest(sqrt(2) * stddev_pop(hv), 1e-6) AS bw, count(*) AS n FROM h GROUP BY t)
SELECT h.t, 0.5 - sum(pg_temp.erf((h.v - h.hv) / bw.bw)) / (2 * bw.n) AS p1, bw.n
  FROM h JOIN bw USING (t) GROUP BY h.t, bw.n;
SELECT ok(bool_and(abs((r).p_value - least(1, 2 * least(p1, 1 - p1))) < 1e-6
                   AND abs((r).score - (1 - (r).p_value)) < 1e-15)
          AND count(*) = 2999,
          'spike_dip p-value equals 0.5 - (1/2n) sum erf((x - x_i)/h), two-sided')
  FROM (SELECT t, iotstream.spike_dip(v, 99, 50) OVER (ORDER BY t) r FROM s3) q JOIN kde USING (t);
SELECT ok(bool_and(abs((r).p_value - p1) < 1e-6), 'spike_dip ''spikes'' uses the upper tail')
  FROM (SELECT t, iotstream.spike_dip(v, 99, 50, 'spikes') OVER (ORDER BY t) r FROM s3) q JOIN kde USING (t);
SELECT ok(bool_and(abs((r).p_value - (1 - p1)) < 1e-6), 'spike_dip ''dips'' uses the lower tail')
  FROM (SELECT t, iotstream.spike_dip(v, 99, 50, 'DIPS') OVER (ORDER BY t) r FROM s3) q JOIN kde USING (t);
SELECT ok(bool_and((r).is_anomaly = (n = 50 AND least(1, 2 * least(p1, 1 - p1)) <= 0.05))
          AND count(*) FILTER (WHERE (r).is_anomaly) > 0,
          'spike_dip flags p <= 1 - confidence/100 once the history is full')
  FROM (SELECT t, iotstream.spike_dip(v, 95, 50) OVER (ORDER BY t) r FROM s3) q JOIN kde USING (t)
 WHERE abs(least(1, 2 * least(p1, 1 - p1)) - 0.05) > 1e-5;

-- the power martingale, restarted below 1, over the two-sided p-values
-- clamped at 1/(n+1), against the recursive definition
CREATE TEMP TABLE cp AS
SELECT t, (iotstream.spike_dip(v, 95, 50) OVER (ORDER BY t)).p_value AS p,
       iotstream.change_point(v, 95, 50) OVER (ORDER BY t) AS c
  FROM s3;
CREATE INDEX ON cp (t);
WITH RECURSIVE m(t, l) AS (
    SELECT 50::bigint, 0::float8
    UNION ALL
    SELECT cp.t, greatest(0, m.l + ln(0.1) - 0.9 * ln(greatest(cp.p, 1.0 / 51)))
      FROM m JOIN cp ON cp.t = m.t + 1
)
SELECT ok(bool_and(pg_temp.close((c).martingale, exp(l), 1e-9) AND (c).is_anomaly = (l > -ln(0.05)))
          AND count(*) = 2950 AND (SELECT count(*) FROM cp WHERE t <= 50 AND (c).martingale IS NULL) = 50,
          'change_point martingale is max(1, M * 0.1 p^-0.9), alarming above 1/(1 - confidence/100)')
  FROM m JOIN cp USING (t) WHERE t > 50;

-- ---------------------------------------------------------------- injected anomalies
SELECT setseed(0.19);  -- with 0.17 or 0.21, ewma_chart (L = 4) or robust_zscore (5) raise 1-2 false alarms in 8000 clean readings
-- 8 sensors, 1000 readings each, N(20, 1); sensors 0-3 get +-12 spikes at
-- 300, 500 and 700, sensors 4-5 a level shift of +6 from 600, 6-7 stay clean
CREATE TEMP TABLE sim AS
SELECT k, t, '2026-03-01'::timestamptz + t * interval '1 second' AS ts,
       20 + pg_temp.gauss()
       + CASE WHEN k < 4 AND t IN (300, 500, 700) THEN (CASE WHEN k % 2 = 0 THEN 12 ELSE -12 END) ELSE 0 END
       + CASE WHEN k IN (4, 5) AND t >= 600 THEN 6 ELSE 0 END AS v
  FROM generate_series(0, 7) k, generate_series(1, 1000) t;
CREATE TEMP TABLE verdicts AS
SELECT k, t, v,
       (iotstream.spike_dip(v, 99.9, 100) OVER w).is_anomaly AS spike,
       (iotstream.change_point(v, 99, 100) OVER w).is_anomaly AS change,
       (iotstream.cusum(v, 20, 0.5, 10) OVER w).is_anomaly AS cusum,
       (iotstream.ewma_chart(v, 0.2, 4, 20, 1) OVER w).is_anomaly AS ewma,
       (iotstream.robust_zscore(v, 5) OVER (PARTITION BY k ORDER BY t ROWS BETWEEN 50 PRECEDING AND CURRENT ROW)).is_anomaly AS robust
  FROM sim WINDOW w AS (PARTITION BY k ORDER BY t);
SELECT is((SELECT count(*) FROM verdicts WHERE k < 4 AND t IN (300, 500, 700) AND spike), 12::bigint,
          'spike_dip finds all 12 injected spikes and dips');
SELECT is((SELECT count(*) FROM verdicts WHERE k < 4 AND t IN (300, 500, 700) AND robust), 12::bigint,
          'robust_zscore finds all 12 injected spikes and dips');
SELECT is((SELECT count(DISTINCT k) FROM verdicts WHERE k IN (4, 5) AND t BETWEEN 600 AND 640 AND change), 2::bigint,
          'change_point finds both level shifts within 40 readings');
SELECT is((SELECT count(DISTINCT k) FROM verdicts WHERE k IN (4, 5) AND t BETWEEN 600 AND 620 AND cusum), 2::bigint,
          'cusum finds both level shifts within 20 readings');
SELECT is((SELECT count(DISTINCT k) FROM verdicts WHERE k IN (4, 5) AND t BETWEEN 600 AND 620 AND ewma), 2::bigint,
          'ewma_chart finds both level shifts within 20 readings');
SELECT is((SELECT count(*) FROM verdicts WHERE k >= 6 AND (spike OR change OR cusum OR ewma OR robust)), 0::bigint,
          'the clean sensors raise no alarm');
SELECT is((SELECT count(*) FROM verdicts WHERE k IN (4, 5) AND t < 600 AND (spike OR change OR cusum OR ewma OR robust)), 0::bigint,
          'the level-shift sensors raise no alarm before the shift');
SELECT is((SELECT count(*) FROM verdicts WHERE k < 4 AND change), 0::bigint,
          'change_point does not take isolated spikes for level changes');
-- spike_dip_events and change_point_events: the rows the window forms flag,
-- with the same figures to the bit
SELECT ok(count(*) = (SELECT count(*) FROM verdicts WHERE spike) AND count(*) >= 12
          AND count(e.k) = count(*) AND count(w.k) = count(*)
          AND bool_and(e.value = w.v AND e.score = w.score AND e.p_value = w.p_value AND e.martingale IS NULL),
          'spike_dip_events gives exactly the rows spike_dip flags, with its score and p-value')
  FROM (SELECT k, (x).* FROM (SELECT k, unnest(iotstream.spike_dip_events(ts, v, 99.9, 100)) x FROM sim GROUP BY k) s) e
  FULL JOIN (SELECT k, ts, v, (a).score, (a).p_value
               FROM (SELECT k, ts, v, iotstream.spike_dip(v, 99.9, 100) OVER (PARTITION BY k ORDER BY ts) a FROM sim) q
              WHERE (a).is_anomaly) w USING (k, ts);
SELECT ok(count(*) = (SELECT count(*) FROM verdicts WHERE change) AND count(*) >= 2
          AND count(e.k) = count(*) AND count(w.k) = count(*)
          AND bool_and(e.value = w.v AND e.score = w.score AND e.p_value = w.p_value AND e.martingale = w.martingale),
          'change_point_events gives exactly the rows change_point flags, with its martingale')
  FROM (SELECT k, (x).* FROM (SELECT k, unnest(iotstream.change_point_events(ts, v, 99, 100)) x FROM sim GROUP BY k) s) e
  FULL JOIN (SELECT k, ts, v, (a).score, (a).p_value, (a).martingale
               FROM (SELECT k, ts, v, iotstream.change_point(v, 99, 100) OVER (PARTITION BY k ORDER BY ts) a FROM sim) q
              WHERE (a).is_anomaly) w USING (k, ts);
-- (a row with a NULL value repeats the window form's previous verdict: not a flag)
SELECT ok(count(*) > 1000 AND count(e.k) = count(*) AND count(w.k) = count(*)
          AND bool_and(e.value = w.v AND e.score = w.score AND e.p_value = w.p_value),
          'spike_dip_events skips NULL values as spike_dip does (''dips'', 10,000 rows a key)')
  FROM (SELECT k, (x).* FROM (SELECT k, unnest(iotstream.spike_dip_events(ts, v, 95, 50, 'dips')) x FROM an_data GROUP BY k) s) e
  FULL JOIN (SELECT k, ts, v, (a).score, (a).p_value
               FROM (SELECT k, ts, v, iotstream.spike_dip(v, 95, 50, 'dips') OVER (PARTITION BY k ORDER BY ts) a FROM an_data) q
              WHERE (a).is_anomaly AND v IS NOT NULL) w USING (k, ts);
SELECT ok(count(*) = (SELECT count(*) FROM serial_events) AND count(p.k) = count(*) AND count(s.k) = count(*)
          AND bool_and(p.value = s.value AND p.score = s.score AND p.p_value = s.p_value),
          'spike_dip_events over shuffled rows equals it over rows in time order')
  FROM (SELECT k, e.* FROM (SELECT k, iotstream.spike_dip_events(ts, v, 95, 50, 'spikes' ORDER BY random()) es
                              FROM an_data GROUP BY k) x, unnest(es) e) p
  FULL JOIN serial_events s USING (k, ts);
-- by hand: history 3 of 1s (t = 3 has no value), then 100 at t = 6: with no
-- spread the bandwidth is 1e-6 and p = 0.5 - 3/6 = 0; the row without a time is skipped
SELECT ok(cardinality(a) = 1 AND (a[1]).ts = to_timestamp(6) AND (a[1]).value = 100
          AND (a[1]).p_value = 0 AND (a[1]).score = 1 AND (a[1]).martingale IS NULL,
          'spike_dip_events by hand: the one spike; NULL values and times skipped')
  FROM (SELECT iotstream.spike_dip_events(ts, v, 99, 3) a
          FROM (VALUES (to_timestamp(1), 1.0::float8), (to_timestamp(2), 1), (to_timestamp(3), NULL),
                       (to_timestamp(4), 1), (to_timestamp(5), 1), (NULL, 500), (to_timestamp(6), 100)) d(ts, v)) q;
SELECT is(iotstream.spike_dip_events(ts, v, 99, 10), '{}'::iotstream.detector_event[],
          'spike_dip_events of a flat series is an empty array')
  FROM (SELECT to_timestamp(g) ts, 1.0::float8 v FROM generate_series(1, 50) g) d;
SELECT is(iotstream.change_point_events(ts, v, 99, 10), NULL, 'change_point_events without a value is NULL')
  FROM (VALUES (now(), NULL::float8), (NULL, 1.0)) d(ts, v);

-- a threshold burst: sensor 2 above 100 for 8 readings in one minute
UPDATE sim SET v = 105 WHERE k = 2 AND t BETWEEN 130 AND 137;
SELECT results_eq(
    $$SELECT k, date_bin('1 minute', ts, 'epoch') FROM sim GROUP BY 1, 2
       HAVING iotstream.threshold_count(v, 100) > 5 ORDER BY 1, 2$$,
    $$VALUES (2, '2026-03-01 00:02:00+00'::timestamptz)$$,
    'the seed-004 rule flags exactly the minute with the burst');

-- ---------------------------------------------------------------- windows
-- hop against the windows enumerated with date_bin, for times on and off
-- the grid (multiples of 30 s hit boundaries often)
SELECT ok(bool_and(a IS NOT DISTINCT FROM b) AND count(*) = 3 * 2000,
          'hop returns exactly the windows [w, w + size) containing ts, for three shapes')
  FROM (SELECT sz, sl, o, ts,
               (SELECT array_agg(w ORDER BY w) FROM iotstream.hop(ts, sz, sl, o) w) a,
               (SELECT array_agg(w ORDER BY w)
                  FROM generate_series(date_bin(sl, ts - sz, o), ts, sl) w
                 WHERE w <= ts AND w + sz > ts) b
          FROM (VALUES ('10 minutes'::interval, '5 minutes'::interval, '1970-01-01'::timestamptz),
                       ('1 hour', '25 minutes', '2026-03-01 00:07'),
                       ('2 minutes', '5 minutes', '2000-01-01')) shapes(sz, sl, o),
               (SELECT '2026-03-01'::timestamptz + (CASE WHEN g % 2 = 0 THEN g * 30 ELSE g * 37.3 END) * interval '1 second' ts
                  FROM generate_series(1, 2000) g) t) q;
-- session_id against lag(): a new session when the gap exceeds 10 minutes
SELECT ok(bool_and(s = r) AND max(s) > 1,
          'session_id equals 1 + the running count of gaps longer than the session gap')
  FROM (SELECT iotstream.session_id(ts, '10 minutes') OVER (PARTITION BY k ORDER BY ts) s,
               1 + sum(CASE WHEN ts - p > interval '10 minutes' THEN 1 ELSE 0 END)
                     OVER (PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING) r
          FROM (SELECT k, ts, lag(ts) OVER (PARTITION BY k ORDER BY ts) p
                  FROM (SELECT g % 5 k, '2026-03-01'::timestamptz
                               + (g * 60 + CASE WHEN g % 17 = 0 THEN 900 * (g % 3) ELSE 0 END) * interval '1 second'
                               + (g / 100) * interval '10 minutes' ts
                          FROM generate_series(1, 3000) g) d) x) y;

-- ---------------------------------------------------------------- errors
SELECT throws_ok($$SELECT iotstream.spike_dip(1, 0, 10) OVER ()$$, '22023',
                 'confidence must be between 1 and 100', 'spike_dip rejects confidence 0');
SELECT throws_ok($$SELECT iotstream.change_point(1, 100.5, 10) OVER ()$$, '22023',
                 'confidence must be between 1 and 100', 'change_point rejects confidence above 100');
SELECT throws_ok($$SELECT iotstream.spike_dip(1, 95, 1) OVER ()$$, '22023',
                 'history_size must be between 2 and 100000', 'spike_dip rejects a history of 1');
SELECT throws_ok($$SELECT iotstream.spike_dip_events(now(), 1, 0, 10)$$, '22023',
                 'confidence must be between 1 and 100', 'spike_dip_events rejects confidence 0');
SELECT throws_ok($$SELECT iotstream.change_point_events(now(), 1, 95, 1)$$, '22023',
                 'history_size must be between 2 and 100000', 'change_point_events rejects a history of 1');
SELECT throws_ok($$SELECT iotstream.spike_dip_events(now(), 1, 95, 10, 'up')$$, '22023',
                 'unknown spike_dip mode "up"', 'spike_dip_events rejects an unknown mode');
SELECT throws_ok($$SELECT iotstream.spike_dip_events(now(), 1, NULL, 10)$$, '22004',
                 'confidence must not be NULL', 'spike_dip_events rejects a NULL confidence');
SELECT throws_ok($$SELECT iotstream.outliers(x, 0) FROM (VALUES (1.0)) v(x)$$, '22023',
                 'k must be a positive number of standard deviations', 'outliers rejects k = 0');
SELECT throws_ok($$SELECT iotstream.outliers(x, -1) FROM (VALUES (1.0)) v(x)$$, '22023',
                 'k must be a positive number of standard deviations', 'outliers rejects k < 0');
SELECT throws_ok($$SELECT iotstream.hop(now(), '0 seconds', '1 minute')$$, '22023',
                 'window size must be positive', 'hop rejects a zero size');
SELECT throws_ok($$SELECT iotstream.hop(now(), '1 minute', '-1 minute')$$, '22023',
                 'window slide must be positive', 'hop rejects a negative slide');
SELECT throws_ok($$SELECT iotstream.hop(now(), '1 month', '1 day')$$, '0A000',
                 'window size must not contain months or years', 'hop rejects months');
SELECT throws_ok($$SELECT iotstream.cusum(1, 0, 0.5, 0) OVER ()$$, '22023',
                 'h must be positive', 'cusum rejects h = 0');
SELECT throws_ok($$SELECT iotstream.ewma(1, 0) OVER ()$$, '22023',
                 'alpha must be in (0, 1]', 'ewma rejects alpha = 0');
SELECT throws_ok($$SELECT iotstream.ewma_chart(1, 0.2, 3, 0, NULL) OVER ()$$, '22023',
                 'mu and sigma must be given together', 'ewma_chart needs mu and sigma together');
SELECT throws_ok($$SELECT iotstream.robust_zscore(1, -1) OVER ()$$, '22023',
                 'threshold must be positive', 'robust_zscore rejects a negative threshold');
SELECT throws_ok($$SELECT '(n:1,sum:1,sxx:0,min:2,max:1)'::iotstream.stats$$, '22P02',
                 'invalid iotstream.stats value', 'stats input rejects min > max');
SELECT throws_ok($$SELECT iotstream.session_id(ts, '1 minute') OVER (ORDER BY k)
                     FROM (VALUES (1, now()), (2, now() - interval '1 hour')) v(k, ts)$$, '22000',
                 'session_id() needs rows in ascending time order', 'session_id rejects unordered rows');

SELECT throws_ok($$SELECT iotstream.tumbling_summary(now(), x, '1 hour', 0) FROM (VALUES (1.0)) v(x)$$, '22023',
                 'k must be a positive number of standard deviations', 'tumbling_summary rejects k = 0');
SELECT throws_ok($$SELECT iotstream.tumbling_summary(now(), x, '-1 hour', 3) FROM (VALUES (1.0)) v(x)$$, '22023',
                 'window width must be positive', 'tumbling_summary rejects a negative width');
SELECT throws_ok($$SELECT iotstream.tumbling_summary(now(), x, '1 month', 3) FROM (VALUES (1.0)) v(x)$$, '0A000',
                 'window width must not contain months or years', 'tumbling_summary rejects months');
SELECT throws_ok($$SELECT iotstream.tumbling_summary(now(), x, NULL, 3) FROM (VALUES (1.0)) v(x)$$, '22004',
                 'width, k and origin of tumbling_summary must not be NULL', 'tumbling_summary rejects a NULL width');
SELECT throws_ok($$SELECT iotstream.tumbling_summary('infinity', x, '1 hour', 3) FROM (VALUES (1.0)) v(x)$$, '22008',
                 'timestamps for tumbling_summary() must be finite', 'tumbling_summary rejects an infinite time');

SELECT * FROM finish();
ROLLBACK;
