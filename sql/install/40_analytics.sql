-- Windowed analytics: hopping and session windows, mergeable statistics
-- (iotstream.stats, stats_agg, rollup) and anomaly detectors.  Tumbling
-- windows are date_bin(); see docs/analytics.md.

-- ---------------------------------------------------------------- windows

CREATE FUNCTION iotstream.hop(ts timestamptz, size interval, slide interval,
                              origin timestamptz DEFAULT '1970-01-01 00:00:00+00')
RETURNS SETOF timestamptz
AS 'MODULE_PATHNAME', 'hop' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION iotstream.hop(timestamptz, interval, interval, timestamptz) IS
    'Start of every hopping window [origin + k*slide, origin + k*slide + size) that contains ts, ascending. Use in GROUP BY or a LATERAL join.';

CREATE FUNCTION iotstream.hop(ts timestamp, size interval, slide interval,
                              origin timestamp DEFAULT '1970-01-01 00:00:00')
RETURNS SETOF timestamp
AS 'MODULE_PATHNAME', 'hop' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION iotstream.hop(timestamp, interval, interval, timestamp) IS
    'Start of every hopping window [origin + k*slide, origin + k*slide + size) that contains ts, ascending. Use in GROUP BY or a LATERAL join.';

CREATE FUNCTION iotstream.session_id(ts timestamptz, gap interval) RETURNS bigint
AS 'MODULE_PATHNAME', 'session_id' LANGUAGE C WINDOW IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.session_id(timestamptz, interval) IS
    'Window function: numbers session windows from 1 over OVER (PARTITION BY key ORDER BY ts); a row more than gap after the previous one starts a new session.';

CREATE FUNCTION iotstream.session_id(ts timestamp, gap interval) RETURNS bigint
AS 'MODULE_PATHNAME', 'session_id' LANGUAGE C WINDOW IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.session_id(timestamp, interval) IS
    'Window function: numbers session windows from 1 over OVER (PARTITION BY key ORDER BY ts); a row more than gap after the previous one starts a new session.';

-- ---------------------------------------------------------------- stats

CREATE TYPE iotstream.stats;

CREATE FUNCTION iotstream.stats_in(cstring) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_in' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_in(cstring) IS
    'Input function of iotstream.stats: (n:N,sum:S,sxx:Q,min:A,max:B).';
CREATE FUNCTION iotstream.stats_out(iotstream.stats) RETURNS cstring
AS 'MODULE_PATHNAME', 'stats_out' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_out(iotstream.stats) IS
    'Output function of iotstream.stats; floats are printed exactly (shortest round-trip form).';
CREATE FUNCTION iotstream.stats_recv(internal) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_recv' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_recv(internal) IS
    'Binary input of iotstream.stats: int8 n, then float8 sum, sxx, min, max.';
CREATE FUNCTION iotstream.stats_send(iotstream.stats) RETURNS bytea
AS 'MODULE_PATHNAME', 'stats_send' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_send(iotstream.stats) IS
    'Binary output of iotstream.stats: int8 n, then float8 sum, sxx, min, max.';

CREATE TYPE iotstream.stats (
    INPUT = iotstream.stats_in,
    OUTPUT = iotstream.stats_out,
    RECEIVE = iotstream.stats_recv,
    SEND = iotstream.stats_send,
    INTERNALLENGTH = 40,
    ALIGNMENT = double,
    STORAGE = plain
);
COMMENT ON TYPE iotstream.stats IS
    'Mergeable summary of float8 values: count, sum, sum of squared deviations (Youngs-Cramer), min and max. 40 bytes.';

CREATE FUNCTION iotstream.stats_agg_transfn(iotstream.stats, float8) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_agg_transfn' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_agg_transfn(iotstream.stats, float8) IS
    'Internal: transition function of stats_agg (Youngs-Cramer update).';
CREATE FUNCTION iotstream.stats_agg_invfn(iotstream.stats, float8) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_agg_invfn' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_agg_invfn(iotstream.stats, float8) IS
    'Internal: inverse transition of stats_agg; NULL (recompute the frame) when an extreme or a non-finite value leaves.';
CREATE FUNCTION iotstream.stats_combine(iotstream.stats, iotstream.stats) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_combine' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_combine(iotstream.stats, iotstream.stats) IS
    'Merges two stats values (the combine function of stats_agg and the transition of rollup).';
CREATE FUNCTION iotstream.stats_agg_finalfn(iotstream.stats) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_agg_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_agg_finalfn(iotstream.stats) IS
    'Internal: NULL for an aggregate over no values, like avg().';

CREATE AGGREGATE iotstream.stats_agg(float8) (
    SFUNC = iotstream.stats_agg_transfn,
    STYPE = iotstream.stats,
    INITCOND = '(n:0,sum:0,sxx:0,min:Infinity,max:-Infinity)',
    FINALFUNC = iotstream.stats_agg_finalfn,
    COMBINEFUNC = iotstream.stats_combine,
    MSFUNC = iotstream.stats_agg_transfn,
    MINVFUNC = iotstream.stats_agg_invfn,
    MSTYPE = iotstream.stats,
    MINITCOND = '(n:0,sum:0,sxx:0,min:Infinity,max:-Infinity)',
    MFINALFUNC = iotstream.stats_agg_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.stats_agg(float8) IS
    'Summary statistics of the non-NULL values as iotstream.stats. Parallel (combine function) and O(1) per row in moving windows (inverse transition).';

CREATE AGGREGATE iotstream.rollup(iotstream.stats) (
    SFUNC = iotstream.stats_combine,
    STYPE = iotstream.stats,
    INITCOND = '(n:0,sum:0,sxx:0,min:Infinity,max:-Infinity)',
    FINALFUNC = iotstream.stats_agg_finalfn,
    COMBINEFUNC = iotstream.stats_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.rollup(iotstream.stats) IS
    'Merges stored stats values, e.g. minute stats into hours; equals stats_agg over the underlying values.';

CREATE FUNCTION iotstream.count(iotstream.stats) RETURNS bigint
AS 'MODULE_PATHNAME', 'stats_count' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.count(iotstream.stats) IS 'Number of values summarised.';
CREATE FUNCTION iotstream.mean(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_mean' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.mean(iotstream.stats) IS 'Mean (sum / n), as avg(); NULL when empty.';
CREATE FUNCTION iotstream.stddev(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_stddev_samp' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stddev(iotstream.stats) IS 'Sample standard deviation sqrt(sxx / (n - 1)), as stddev_samp(); NULL below 2 values.';
CREATE FUNCTION iotstream.stddev_samp(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_stddev_samp' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stddev_samp(iotstream.stats) IS 'Sample standard deviation sqrt(sxx / (n - 1)); NULL below 2 values.';
CREATE FUNCTION iotstream.stddev_pop(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_stddev_pop' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stddev_pop(iotstream.stats) IS 'Population standard deviation sqrt(sxx / n); NULL when empty.';
CREATE FUNCTION iotstream.variance(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_var_samp' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.variance(iotstream.stats) IS 'Sample variance sxx / (n - 1), as var_samp(); NULL below 2 values.';
CREATE FUNCTION iotstream.var_samp(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_var_samp' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.var_samp(iotstream.stats) IS 'Sample variance sxx / (n - 1); NULL below 2 values.';
CREATE FUNCTION iotstream.var_pop(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_var_pop' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.var_pop(iotstream.stats) IS 'Population variance sxx / n; NULL when empty.';
CREATE FUNCTION iotstream.min(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_min' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.min(iotstream.stats) IS 'Smallest value (exact, also in moving windows); NULL when empty.';
CREATE FUNCTION iotstream.max(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_max' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.max(iotstream.stats) IS 'Largest value (exact, also in moving windows; NaN sorts highest); NULL when empty.';
CREATE FUNCTION iotstream.zscore(iotstream.stats, x float8) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_zscore' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.zscore(iotstream.stats, float8) IS
    '(x - mean) / sample stddev; NULL when the stddev is undefined (n < 2) or zero.';

-- ---------------------------------------------------------------- detectors

CREATE TYPE iotstream.anomaly AS (score float8, p_value float8, martingale float8, is_anomaly bool);
COMMENT ON TYPE iotstream.anomaly IS
    'Verdict of spike_dip and change_point on a row: score = 1 - p_value, the p-value used, the power martingale (change_point only) and the flag.';
CREATE TYPE iotstream.robust_zscore_result AS (score float8, median float8, mad float8, is_anomaly bool);
COMMENT ON TYPE iotstream.robust_zscore_result IS
    'Modified z-score of the newest value in the frame, the frame''s median and MAD, and whether |score| exceeds the threshold.';
CREATE TYPE iotstream.ewma_chart_result AS (ewma float8, lower float8, upper float8, is_anomaly bool);
COMMENT ON TYPE iotstream.ewma_chart_result IS
    'EWMA statistic and its control limits after the current row; NULL while mu and sigma are estimated.';
CREATE TYPE iotstream.cusum_result AS (upper float8, lower float8, is_anomaly bool);
COMMENT ON TYPE iotstream.cusum_result IS
    'Upper and lower tabular CUSUM sums after the current row, and whether either exceeds h.';

-- threshold_count
CREATE FUNCTION iotstream.threshold_count_transfn(bigint, float8, float8) RETURNS bigint
AS 'MODULE_PATHNAME', 'threshold_count_transfn' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.threshold_count_transfn(bigint, float8, float8) IS 'Internal: transition of threshold_count.';
CREATE FUNCTION iotstream.threshold_count_invfn(bigint, float8, float8) RETURNS bigint
AS 'MODULE_PATHNAME', 'threshold_count_invfn' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.threshold_count_invfn(bigint, float8, float8) IS 'Internal: inverse transition of threshold_count.';
CREATE AGGREGATE iotstream.threshold_count(value float8, threshold float8) (
    SFUNC = iotstream.threshold_count_transfn, STYPE = bigint, INITCOND = '0',
    COMBINEFUNC = pg_catalog.int8pl,
    MSFUNC = iotstream.threshold_count_transfn, MINVFUNC = iotstream.threshold_count_invfn,
    MSTYPE = bigint, MINITCOND = '0',
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.threshold_count(float8, float8) IS
    'Number of values strictly above threshold (NULLs skipped); same as count(*) FILTER (WHERE value > threshold).';

-- outliers
CREATE FUNCTION iotstream.outliers_transfn(internal, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'outliers_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_transfn(internal, float8, float8) IS 'Internal: transition of outliers.';
CREATE FUNCTION iotstream.outliers_combine(internal, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'outliers_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_combine(internal, internal) IS 'Internal: combine function of outliers.';
CREATE FUNCTION iotstream.outliers_serialize(internal) RETURNS bytea
AS 'MODULE_PATHNAME', 'outliers_serialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_serialize(internal) IS 'Internal: serialization of the outliers state for parallel aggregation.';
CREATE FUNCTION iotstream.outliers_deserialize(bytea, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'outliers_deserialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_deserialize(bytea, internal) IS 'Internal: deserialization of the outliers state for parallel aggregation.';
CREATE FUNCTION iotstream.outliers_finalfn(internal) RETURNS bigint
AS 'MODULE_PATHNAME', 'outliers_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_finalfn(internal) IS 'Internal: counts the values beyond mean +/- k stddev.';
CREATE AGGREGATE iotstream.outliers(value float8, k float8) (
    SFUNC = iotstream.outliers_transfn, STYPE = internal,
    FINALFUNC = iotstream.outliers_finalfn,
    COMBINEFUNC = iotstream.outliers_combine,
    SERIALFUNC = iotstream.outliers_serialize,
    DESERIALFUNC = iotstream.outliers_deserialize,
    -- the state keeps every value: about 256 bytes for a typical window
    -- (the planner would otherwise assume 8 kB and never hash)
    SSPACE = 256,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.outliers(float8, float8) IS
    'Number of values with |x - mean| > k * stddev_samp, mean and stddev being those of the same group (0 below 2 values).';

-- outlier_summary: the state and transition of outliers, a row for a result
CREATE TYPE iotstream.outlier_summary AS (n bigint, mean float8, stddev float8, min float8, max float8, outliers bigint);
COMMENT ON TYPE iotstream.outlier_summary IS
    'Result of outlier_summary(): count, mean, sample standard deviation, min, max, and the number of values beyond mean +/- k stddev.';
CREATE FUNCTION iotstream.outlier_summary_finalfn(internal) RETURNS iotstream.outlier_summary
AS 'MODULE_PATHNAME', 'outlier_summary_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outlier_summary_finalfn(internal) IS 'Internal: summarizes the outliers state as a row.';
CREATE AGGREGATE iotstream.outlier_summary(value float8, k float8) (
    SFUNC = iotstream.outliers_transfn, STYPE = internal,
    FINALFUNC = iotstream.outlier_summary_finalfn,
    COMBINEFUNC = iotstream.outliers_combine,
    SERIALFUNC = iotstream.outliers_serialize,
    DESERIALFUNC = iotstream.outliers_deserialize,
    SSPACE = 256,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.outlier_summary(float8, float8) IS
    'One pass, one state per group: (n, mean, stddev, min, max, outliers) as count, avg, stddev_samp, min, max and outliers(value, k) give them.';

-- tumbling_summary: per key, every tumbling window's outlier_summary
CREATE TYPE iotstream.window_summary AS (window_start timestamptz, n bigint, mean float8, stddev float8, min float8, max float8, outliers bigint);
COMMENT ON TYPE iotstream.window_summary IS
    'Element of tumbling_summary(): the window''s start, then count, mean, sample standard deviation, min, max and the number of values beyond mean +/- k stddev.';
CREATE FUNCTION iotstream.tumbling_summary_transfn(internal, timestamptz, float8, interval, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'tumbling_summary_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_transfn(internal, timestamptz, float8, interval, float8) IS 'Internal: transition of tumbling_summary.';
CREATE FUNCTION iotstream.tumbling_summary_transfn(internal, timestamptz, float8, interval, float8, timestamptz) RETURNS internal
AS 'MODULE_PATHNAME', 'tumbling_summary_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_transfn(internal, timestamptz, float8, interval, float8, timestamptz) IS 'Internal: transition of tumbling_summary.';
CREATE FUNCTION iotstream.tumbling_summary_combine(internal, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'tumbling_summary_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_combine(internal, internal) IS 'Internal: combine function of tumbling_summary.';
CREATE FUNCTION iotstream.tumbling_summary_serialize(internal) RETURNS bytea
AS 'MODULE_PATHNAME', 'tumbling_summary_serialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_serialize(internal) IS 'Internal: serialization of the tumbling_summary state for parallel aggregation.';
CREATE FUNCTION iotstream.tumbling_summary_deserialize(bytea, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'tumbling_summary_deserialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_deserialize(bytea, internal) IS 'Internal: deserialization of the tumbling_summary state for parallel aggregation.';
CREATE FUNCTION iotstream.tumbling_summary_finalfn(internal) RETURNS iotstream.window_summary[]
AS 'MODULE_PATHNAME', 'tumbling_summary_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_finalfn(internal) IS 'Internal: one window_summary per window, by window start.';
CREATE AGGREGATE iotstream.tumbling_summary(ts timestamptz, value float8, width interval, k float8) (
    SFUNC = iotstream.tumbling_summary_transfn, STYPE = internal,
    FINALFUNC = iotstream.tumbling_summary_finalfn,
    COMBINEFUNC = iotstream.tumbling_summary_combine,
    SERIALFUNC = iotstream.tumbling_summary_serialize,
    DESERIALFUNC = iotstream.tumbling_summary_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.tumbling_summary(timestamptz, float8, interval, float8) IS
    'Per group (a key), every tumbling window date_bin(width, ts, epoch) that holds a value, as an array of (window_start, n, mean, stddev, min, max, outliers), outliers being the values beyond mean +/- k stddev. Rows with a NULL ts or value are skipped.';
CREATE AGGREGATE iotstream.tumbling_summary(ts timestamptz, value float8, width interval, k float8, origin timestamptz) (
    SFUNC = iotstream.tumbling_summary_transfn, STYPE = internal,
    FINALFUNC = iotstream.tumbling_summary_finalfn,
    COMBINEFUNC = iotstream.tumbling_summary_combine,
    SERIALFUNC = iotstream.tumbling_summary_serialize,
    DESERIALFUNC = iotstream.tumbling_summary_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.tumbling_summary(timestamptz, float8, interval, float8, timestamptz) IS
    'Per group (a key), every tumbling window date_bin(width, ts, origin) that holds a value, as an array of (window_start, n, mean, stddev, min, max, outliers), outliers being the values beyond mean +/- k stddev. Rows with a NULL ts or value are skipped.';

-- robust_zscore
CREATE FUNCTION iotstream.robust_zscore_transfn(internal, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'robust_zscore_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_transfn(internal, float8) IS 'Internal: transition of robust_zscore.';
CREATE FUNCTION iotstream.robust_zscore_transfn(internal, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'robust_zscore_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_transfn(internal, float8, float8) IS 'Internal: transition of robust_zscore.';
CREATE FUNCTION iotstream.robust_zscore_invfn(internal, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'robust_zscore_invfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_invfn(internal, float8) IS 'Internal: inverse transition of robust_zscore (drops the oldest value).';
CREATE FUNCTION iotstream.robust_zscore_invfn(internal, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'robust_zscore_invfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_invfn(internal, float8, float8) IS 'Internal: inverse transition of robust_zscore (drops the oldest value).';
CREATE FUNCTION iotstream.robust_zscore_finalfn(internal) RETURNS iotstream.robust_zscore_result
AS 'MODULE_PATHNAME', 'robust_zscore_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_finalfn(internal) IS 'Internal: modified z-score of the newest value.';
CREATE AGGREGATE iotstream.robust_zscore(value float8) (
    SFUNC = iotstream.robust_zscore_transfn, STYPE = internal,
    FINALFUNC = iotstream.robust_zscore_finalfn,
    MSFUNC = iotstream.robust_zscore_transfn, MINVFUNC = iotstream.robust_zscore_invfn,
    MSTYPE = internal, MFINALFUNC = iotstream.robust_zscore_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.robust_zscore(float8) IS
    'Modified z-score 0.6745 * (x - median) / MAD of the newest value x against the frame, flagged when |score| > 3.5. Use OVER (PARTITION BY key ORDER BY ts ROWS BETWEEN n PRECEDING AND CURRENT ROW).';
CREATE AGGREGATE iotstream.robust_zscore(value float8, threshold float8) (
    SFUNC = iotstream.robust_zscore_transfn, STYPE = internal,
    FINALFUNC = iotstream.robust_zscore_finalfn,
    MSFUNC = iotstream.robust_zscore_transfn, MINVFUNC = iotstream.robust_zscore_invfn,
    MSTYPE = internal, MFINALFUNC = iotstream.robust_zscore_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.robust_zscore(float8, float8) IS
    'Modified z-score 0.6745 * (x - median) / MAD of the newest value x against the frame, flagged when |score| > threshold.';

-- ewma
CREATE FUNCTION iotstream.ewma_transfn(internal, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_transfn(internal, float8, float8) IS 'Internal: transition of ewma.';
CREATE FUNCTION iotstream.ewma_finalfn(internal) RETURNS float8
AS 'MODULE_PATHNAME', 'ewma_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_finalfn(internal) IS 'Internal: the smoothed value.';
CREATE AGGREGATE iotstream.ewma(value float8, alpha float8) (
    SFUNC = iotstream.ewma_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma(float8, float8) IS
    'Exponentially weighted moving average s1 = x1, st = alpha * xt + (1 - alpha) * s(t-1), in input order. Use OVER (PARTITION BY key ORDER BY ts).';

-- ewma_chart
CREATE FUNCTION iotstream.ewma_chart_transfn(internal, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_chart_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_transfn(internal, float8) IS 'Internal: transition of ewma_chart.';
CREATE FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_chart_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8) IS 'Internal: transition of ewma_chart.';
CREATE FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_chart_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8, float8, float8) IS 'Internal: transition of ewma_chart.';
CREATE FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_chart_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8, float8, float8, int) IS 'Internal: transition of ewma_chart.';
CREATE FUNCTION iotstream.ewma_chart_finalfn(internal) RETURNS iotstream.ewma_chart_result
AS 'MODULE_PATHNAME', 'ewma_chart_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_finalfn(internal) IS 'Internal: EWMA statistic, limits and flag.';
CREATE AGGREGATE iotstream.ewma_chart(value float8) (
    SFUNC = iotstream.ewma_chart_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_chart_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma_chart(float8) IS
    'EWMA control chart with lambda = 0.2, L = 3, mu and sigma estimated from the first 20 values. Use OVER (PARTITION BY key ORDER BY ts).';
CREATE AGGREGATE iotstream.ewma_chart(value float8, lambda float8, l float8) (
    SFUNC = iotstream.ewma_chart_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_chart_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma_chart(float8, float8, float8) IS
    'EWMA control chart, mu and sigma estimated from the first 20 values: flags z_t outside mu +/- L*sigma*sqrt(lambda/(2-lambda)*(1-(1-lambda)^(2t))).';
CREATE AGGREGATE iotstream.ewma_chart(value float8, lambda float8, l float8, mu float8, sigma float8) (
    SFUNC = iotstream.ewma_chart_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_chart_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma_chart(float8, float8, float8, float8, float8) IS
    'EWMA control chart for a known in-control mean mu and standard deviation sigma (both NULL: estimated from the first 20 values).';
CREATE AGGREGATE iotstream.ewma_chart(value float8, lambda float8, l float8, mu float8, sigma float8, warmup int) (
    SFUNC = iotstream.ewma_chart_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_chart_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma_chart(float8, float8, float8, float8, float8, int) IS
    'EWMA control chart; with mu and sigma NULL they are estimated from the first warmup values, which are not charted.';

-- cusum
CREATE FUNCTION iotstream.cusum_transfn(internal, float8, float8, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'cusum_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.cusum_transfn(internal, float8, float8, float8, float8) IS 'Internal: transition of cusum.';
CREATE FUNCTION iotstream.cusum_finalfn(internal) RETURNS iotstream.cusum_result
AS 'MODULE_PATHNAME', 'cusum_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.cusum_finalfn(internal) IS 'Internal: CUSUM sums and flag.';
CREATE AGGREGATE iotstream.cusum(value float8, target float8, k float8, h float8) (
    SFUNC = iotstream.cusum_transfn, STYPE = internal,
    FINALFUNC = iotstream.cusum_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.cusum(float8, float8, float8, float8) IS
    'Tabular CUSUM: upper = max(0, upper + x - target - k), lower = max(0, lower + target - x - k), alarm when either > h. Use OVER (PARTITION BY key ORDER BY ts).';

-- spike_dip, change_point
CREATE FUNCTION iotstream.spike_dip_transfn(internal, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'spike_dip_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.spike_dip_transfn(internal, float8, float8, int) IS 'Internal: transition of spike_dip.';
CREATE FUNCTION iotstream.spike_dip_transfn(internal, float8, float8, int, text) RETURNS internal
AS 'MODULE_PATHNAME', 'spike_dip_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.spike_dip_transfn(internal, float8, float8, int, text) IS 'Internal: transition of spike_dip.';
CREATE FUNCTION iotstream.change_point_transfn(internal, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'change_point_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.change_point_transfn(internal, float8, float8, int) IS 'Internal: transition of change_point.';
CREATE FUNCTION iotstream.kde_finalfn(internal) RETURNS iotstream.anomaly
AS 'MODULE_PATHNAME', 'kde_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.kde_finalfn(internal) IS 'Internal: verdict of spike_dip or change_point on the last row.';
CREATE AGGREGATE iotstream.spike_dip(value float8, confidence float8, history_size int) (
    SFUNC = iotstream.spike_dip_transfn, STYPE = internal,
    FINALFUNC = iotstream.kde_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.spike_dip(float8, float8, int) IS
    'Spikes and dips: two-sided kernel-density p-value of x against the last history_size values, flagged when p <= 1 - confidence/100 once the history is full. Use OVER (PARTITION BY key ORDER BY ts).';
CREATE AGGREGATE iotstream.spike_dip(value float8, confidence float8, history_size int, mode text) (
    SFUNC = iotstream.spike_dip_transfn, STYPE = internal,
    FINALFUNC = iotstream.kde_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.spike_dip(float8, float8, int, text) IS
    'Kernel-density spike detector; mode ''spikes'' (upper tail), ''dips'' (lower tail) or ''spikesanddips'' (two-sided).';
CREATE AGGREGATE iotstream.change_point(value float8, confidence float8, history_size int) (
    SFUNC = iotstream.change_point_transfn, STYPE = internal,
    FINALFUNC = iotstream.kde_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.change_point(float8, float8, int) IS
    'Level changes: power martingale (eps = 0.1) over the last history_size kernel-density p-values, flagged above the value history_size p-values at 1 - confidence/100 reach. Use OVER (PARTITION BY key ORDER BY ts).';

-- spike_dip_events, change_point_events: per key, the rows the detector flags
CREATE TYPE iotstream.detector_event AS (ts timestamptz, value float8, score float8, p_value float8, martingale float8);
COMMENT ON TYPE iotstream.detector_event IS
    'Element of spike_dip_events() and change_point_events(): a flagged row''s time and value, and the detector''s score, p-value and martingale (NULL for spike_dip) on it.';
CREATE FUNCTION iotstream.spike_dip_events_transfn(internal, timestamptz, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_spike_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.spike_dip_events_transfn(internal, timestamptz, float8, float8, int) IS 'Internal: transition of spike_dip_events.';
CREATE FUNCTION iotstream.spike_dip_events_transfn(internal, timestamptz, float8, float8, int, text) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_spike_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.spike_dip_events_transfn(internal, timestamptz, float8, float8, int, text) IS 'Internal: transition of spike_dip_events.';
CREATE FUNCTION iotstream.change_point_events_transfn(internal, timestamptz, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_change_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.change_point_events_transfn(internal, timestamptz, float8, float8, int) IS 'Internal: transition of change_point_events.';
CREATE FUNCTION iotstream.detector_events_combine(internal, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.detector_events_combine(internal, internal) IS 'Internal: combine function of spike_dip_events and change_point_events.';
CREATE FUNCTION iotstream.detector_events_serialize(internal) RETURNS bytea
AS 'MODULE_PATHNAME', 'detector_events_serialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.detector_events_serialize(internal) IS 'Internal: serialization of the spike_dip_events and change_point_events state for parallel aggregation.';
CREATE FUNCTION iotstream.detector_events_deserialize(bytea, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_deserialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.detector_events_deserialize(bytea, internal) IS 'Internal: deserialization of the spike_dip_events and change_point_events state for parallel aggregation.';
CREATE FUNCTION iotstream.detector_events_finalfn(internal) RETURNS iotstream.detector_event[]
AS 'MODULE_PATHNAME', 'detector_events_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.detector_events_finalfn(internal) IS 'Internal: the flagged rows of the group, in time order.';
CREATE AGGREGATE iotstream.spike_dip_events(ts timestamptz, value float8, confidence float8, history_size int) (
    SFUNC = iotstream.spike_dip_events_transfn, STYPE = internal,
    FINALFUNC = iotstream.detector_events_finalfn,
    COMBINEFUNC = iotstream.detector_events_combine,
    SERIALFUNC = iotstream.detector_events_serialize,
    DESERIALFUNC = iotstream.detector_events_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.spike_dip_events(timestamptz, float8, float8, int) IS
    'Per group (a key), the rows spike_dip(value, confidence, history_size) OVER (ORDER BY ts) flags, in time order, as an array of (ts, value, score, p_value, martingale); no sort of the whole input. Rows with a NULL ts or value are skipped.';
CREATE AGGREGATE iotstream.spike_dip_events(ts timestamptz, value float8, confidence float8, history_size int, mode text) (
    SFUNC = iotstream.spike_dip_events_transfn, STYPE = internal,
    FINALFUNC = iotstream.detector_events_finalfn,
    COMBINEFUNC = iotstream.detector_events_combine,
    SERIALFUNC = iotstream.detector_events_serialize,
    DESERIALFUNC = iotstream.detector_events_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.spike_dip_events(timestamptz, float8, float8, int, text) IS
    'Per group (a key), the rows spike_dip(value, confidence, history_size, mode) OVER (ORDER BY ts) flags, in time order, as an array of (ts, value, score, p_value, martingale).';
CREATE AGGREGATE iotstream.change_point_events(ts timestamptz, value float8, confidence float8, history_size int) (
    SFUNC = iotstream.change_point_events_transfn, STYPE = internal,
    FINALFUNC = iotstream.detector_events_finalfn,
    COMBINEFUNC = iotstream.detector_events_combine,
    SERIALFUNC = iotstream.detector_events_serialize,
    DESERIALFUNC = iotstream.detector_events_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.change_point_events(timestamptz, float8, float8, int) IS
    'Per group (a key), the rows change_point(value, confidence, history_size) OVER (ORDER BY ts) flags, in time order, as an array of (ts, value, score, p_value, martingale).';
