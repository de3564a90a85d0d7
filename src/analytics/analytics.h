/*-------------------------------------------------------------------------
 * analytics/analytics.h
 *		What other stages may use of the analytics: statistics and detectors.
 *
 * The same code serves the SQL aggregates and the rules and rollups of
 * detect/: a rule's anomalies equal what the aggregate flags.
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_ANALYTICS_H
#define ANALYTICS_ANALYTICS_H

#include "iotstream.h"

/* in stats.c */

/*
 * Mergeable summary statistics of float8 values, kept the way PostgreSQL's
 * own float8 aggregates keep them (Youngs-Cramer): n, the sum sx, and sxx,
 * the sum of squared deviations from the mean.  This struct is also the
 * on-disk layout of the SQL type iotstream.stats (40 bytes, double-aligned).
 * An empty state has n = 0, sx = sxx = 0, min = +Infinity, max = -Infinity.
 */
typedef struct StatsState
{
	int64		n;
	float8		sx;
	float8		sxx;
	float8		min;
	float8		max;
} StatsState;

extern void StatsInit(StatsState *s);
extern void StatsAdd(StatsState *s, float8 x);
extern bool StatsRemove(StatsState *s, float8 x);
extern void StatsMerge(StatsState *into, const StatsState *from);
extern float8 StatsMean(const StatsState *s);
extern float8 StatsVariance(const StatsState *s, bool sample);
extern bool StatsZscore(const StatsState *s, float8 x, float8 *z);

/* in detectors.c */

/* Exponentially weighted moving average: s1 = x1, st = a*xt + (1-a)*s(t-1). */
typedef struct EwmaState
{
	int64		n;
	float8		value;
} EwmaState;

extern void EwmaStep(EwmaState *s, float8 alpha, float8 x);

/*
 * EWMA control chart.  mu and sigma are given, or estimated from the first
 * `warmup` values (no alarm before then); t counts the charted values.
 */
typedef struct EwmaChartState
{
	float8		lambda;
	float8		L;
	bool		estimate;		/* mu/sigma come from the warm-up values */
	int32		warmup;
	StatsState	warm;
	float8		mu;
	float8		sigma;
	int64		t;
	float8		z;
	float8		lower;
	float8		upper;
	bool		alarm;
} EwmaChartState;

extern void EwmaChartInit(EwmaChartState *s, float8 lambda, float8 L,
						  bool have_mu_sigma, float8 mu, float8 sigma,
						  int32 warmup);
extern void EwmaChartStep(EwmaChartState *s, float8 x);

/* Tabular CUSUM: hi = max(0, hi + x - target - k), lo likewise downwards. */
typedef struct CusumState
{
	float8		hi;
	float8		lo;
	bool		alarm;
} CusumState;

extern void CusumStep(CusumState *s, float8 x, float8 target, float8 k,
					  float8 h);

/* Which tail of the kernel-density p-value a spike detector uses. */
typedef enum KdeMode
{
	KDE_SPIKES,
	KDE_DIPS,
	KDE_SPIKES_AND_DIPS
} KdeMode;

/*
 * The last `size` values of a series (a ring buffer) and, for change points,
 * the log of a power martingale: O(size) memory per key.  The values follow
 * the struct in the same allocation (KdeHistorySize()).
 */
typedef struct KdeHistory
{
	int32		size;
	int32		nvalues;		/* values held, <= size */
	int32		next;			/* ring position of the next value */
	KdeMode		mode;
	float8		confidence;		/* 1..100 */
	float8		log_martingale;
	/* result of the last step */
	float8		score;
	float8		p_value;
	float8		martingale;		/* NaN when not computed */
	bool		alarm;
	float8		values[FLEXIBLE_ARRAY_MEMBER];
} KdeHistory;

extern Size KdeHistorySize(int32 size);
extern void KdeHistoryInit(KdeHistory *h, int32 size, float8 confidence,
						   KdeMode mode);
extern float8 KdePValue(const KdeHistory *h, float8 x);
extern void KdeSpikeStep(KdeHistory *h, float8 x);
extern void KdeChangePointStep(KdeHistory *h, float8 x);

/* in detector_aggs.c */
extern float8 RobustZscore(float8 *values, int n, float8 x, float8 *median,
						   float8 *mad);

#endif							/* ANALYTICS_ANALYTICS_H */
