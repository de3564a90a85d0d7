/*-------------------------------------------------------------------------
 * detectors.c
 *		The math of the anomaly detectors, on small state structs.
 *
 * Nothing here knows about SQL: the aggregates in detector_aggs.c and the
 * continuous detection rules both drive these step functions, so a rule and
 * a query over the same rows give the same answers.  Every step function
 * takes one value and updates its state in place; argument checking is the
 * caller's job (the SQL layer turns bad arguments into errors with hints).
 *
 * The kernel-density detectors follow the i.i.d. spike/dip and change-point
 * detectors that Azure Stream Analytics documents:
 *   p(x) = 0.5 - (1 / 2n) * sum_i erf((x - x_i) / h)
 * over the last n values, with bandwidth
 *   h = max(sqrt(2) * sqrt(sum_{i<j} (x_i - x_j)^2) / n, 1e-6)
 * (sum_{i<j} (x_i - x_j)^2 = n * sum_i (x_i - mean)^2, so h is sqrt(2) times
 * the population standard deviation of the history).
 *
 * Change points bet on the two-sided p-values with a power martingale,
 * bet(p) = eps * p^(eps - 1), eps = 0.1, restarted whenever it falls below 1
 * (log M_t = max(0, log M_(t-1) + log bet(p_t))), and alarm when M_t exceeds
 * 1 / (1 - confidence/100): by Ville's inequality a martingale started at 1
 * reaches 1/alpha with probability at most alpha on exchangeable data.  The
 * p-values are clamped at 1/(n + 1), the resolution of a p-value against n
 * values, so a single spike (p near 0) bets at most eps * (n + 1)^(1 - eps)
 * and is not taken for a change of level.  A martingale over the last n
 * bets, with the threshold a run of n p-values at 1 - confidence/100 would
 * reach, never fires on a windowed p-value: the history absorbs a new level
 * within a few values (a 4-sigma shift reached log M = 6.6, such a
 * threshold is n * log bet(p*), 184 for n = 100 at 99%).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include <math.h>

#include "utils/float.h"

#define MARTINGALE_EPSILON	0.1
#define KDE_MIN_BANDWIDTH	1e-6

/*
 * erf() is most of the cost of a kernel-density p-value (history_size calls
 * per row).  A table of erf and its derivative 2/sqrt(pi) exp(-z^2) on a
 * grid of 1/512 over [0, 6), filled from libm once per backend, with cubic
 * Hermite interpolation between grid points, is accurate to about 1e-13
 * (h^4/384 times the bound of the fourth derivative) and several times
 * faster.  Beyond 6, erf is 1 to double precision.
 */
#define ERF_GRID		512
#define ERF_LIMIT		6
#define ERF_POINTS		(ERF_LIMIT * ERF_GRID + 1)

static float8 erf_value[ERF_POINTS];
static float8 erf_slope[ERF_POINTS];	/* derivative times the grid step */
static bool erf_ready = false;

static void
erf_table_fill(void)
{
	int			i;

	for (i = 0; i < ERF_POINTS; i++)
	{
		float8		z = (float8) i / ERF_GRID;

		erf_value[i] = erf(z);
		erf_slope[i] = M_2_SQRTPI * exp(-z * z) / ERF_GRID;
	}
	erf_ready = true;
}

static inline float8
fast_erf(float8 z)
{
	float8		a = fabs(z);
	float8		u,
				t,
				t2,
				t3,
				r;
	int			i;

	if (!(a < ERF_LIMIT))
		return isnan(z) ? z : copysign(1.0, z);
	u = a * ERF_GRID;
	i = (int) u;
	t = u - i;
	t2 = t * t;
	t3 = t2 * t;
	r = (2 * t3 - 3 * t2 + 1) * erf_value[i] + (t3 - 2 * t2 + t) * erf_slope[i] +
		(3 * t2 - 2 * t3) * erf_value[i + 1] + (t3 - t2) * erf_slope[i + 1];
	return copysign(r, z);
}

void
EwmaStep(EwmaState *s, float8 alpha, float8 x)
{
	if (s->n == 0)
		s->value = x;
	else
		s->value = alpha * x + (1.0 - alpha) * s->value;
	s->n++;
}

void
EwmaChartInit(EwmaChartState *s, float8 lambda, float8 L,
			  bool have_mu_sigma, float8 mu, float8 sigma, int32 warmup)
{
	memset(s, 0, sizeof(EwmaChartState));
	s->lambda = lambda;
	s->L = L;
	s->estimate = !have_mu_sigma;
	s->warmup = warmup;
	StatsInit(&s->warm);
	s->mu = mu;
	s->sigma = sigma;
	s->z = mu;
	s->t = 0;
}

/*
 * z_t = lambda * x_t + (1 - lambda) * z_(t-1), z_0 = mu; alarm when z_t is
 * outside mu +/- L * sigma * sqrt(lambda / (2 - lambda) *
 * (1 - (1 - lambda)^(2t))).  While mu and sigma are being estimated (the
 * first `warmup` values) t stays 0 and nothing is charted.
 */
void
EwmaChartStep(EwmaChartState *s, float8 x)
{
	float8		lambda = s->lambda;
	float8		width;

	if (s->estimate && s->warm.n < s->warmup)
	{
		StatsAdd(&s->warm, x);
		if (s->warm.n == s->warmup)
		{
			s->mu = StatsMean(&s->warm);
			s->sigma = sqrt(StatsVariance(&s->warm, true));
			s->z = s->mu;
		}
		s->alarm = false;
		return;
	}
	s->t++;
	s->z = lambda * x + (1.0 - lambda) * s->z;
	width = s->L * s->sigma *
		sqrt(lambda / (2.0 - lambda) *
			 (1.0 - pow(1.0 - lambda, 2.0 * (float8) s->t)));
	s->lower = s->mu - width;
	s->upper = s->mu + width;
	s->alarm = s->z < s->lower || s->z > s->upper;
}

void
CusumStep(CusumState *s, float8 x, float8 target, float8 k, float8 h)
{
	s->hi = Max(0.0, s->hi + (x - target) - k);
	s->lo = Max(0.0, s->lo + (target - x) - k);
	s->alarm = s->hi > h || s->lo > h;
}

Size
KdeHistorySize(int32 size)
{
	return offsetof(KdeHistory, values) + (Size) size * sizeof(float8);
}

void
KdeHistoryInit(KdeHistory *h, int32 size, float8 confidence, KdeMode mode)
{
	memset(h, 0, offsetof(KdeHistory, values));
	h->size = size;
	h->confidence = confidence;
	h->mode = mode;
	h->p_value = 0.5;
	h->martingale = get_float8_nan();
}

/* The one-sided p-value of x against the history: small when x is high. */
float8
KdePValue(const KdeHistory *h, float8 x)
{
	int			n = h->nvalues;
	const float8 *v = h->values;
	float8		mean = 0.0;
	float8		m2 = 0.0;
	float8		bw;
	float8		sum = 0.0;
	int			i;

	if (n == 0)
		return 0.5;
	for (i = 0; i < n; i++)
		mean += v[i];
	mean /= n;
	for (i = 0; i < n; i++)
		m2 += (v[i] - mean) * (v[i] - mean);
	bw = M_SQRT2 * sqrt(m2 / n);
	if (!(bw >= KDE_MIN_BANDWIDTH))
		bw = KDE_MIN_BANDWIDTH;
	if (unlikely(!erf_ready))
		erf_table_fill();
	bw = 1.0 / bw;
	for (i = 0; i < n; i++)
		sum += fast_erf((x - v[i]) * bw);
	return 0.5 - sum / (2.0 * n);
}

static void
kde_push(KdeHistory *h, float8 x)
{
	h->values[h->next] = x;
	h->next = (h->next + 1) % h->size;
	if (h->nvalues < h->size)
		h->nvalues++;
}

/* The p-value a detector in this mode uses, from the one-sided one. */
static float8
kde_tail(KdeMode mode, float8 p)
{
	switch (mode)
	{
		case KDE_SPIKES:
			return p;
		case KDE_DIPS:
			return 1.0 - p;
		case KDE_SPIKES_AND_DIPS:
			break;
	}
	return Min(1.0, 2.0 * Min(p, 1.0 - p));
}

/* Flags x when the history is full and p <= 1 - confidence/100. */
void
KdeSpikeStep(KdeHistory *h, float8 x)
{
	bool		full = h->nvalues == h->size;
	float8		p = kde_tail(h->mode, KdePValue(h, x));

	h->p_value = p;
	h->score = 1.0 - p;
	h->alarm = full && p <= 1.0 - h->confidence / 100.0;
	kde_push(h, x);
}

static float8
log_bet(float8 p)
{
	return log(MARTINGALE_EPSILON) + (MARTINGALE_EPSILON - 1.0) * log(p);
}

/*
 * Bets on the two-sided p-value of x once the value history is full, and
 * alarms when the martingale exceeds 1 / (1 - confidence/100).
 */
void
KdeChangePointStep(KdeHistory *h, float8 x)
{
	float8		p = kde_tail(KDE_SPIKES_AND_DIPS, KdePValue(h, x));
	float8		alpha = 1.0 - h->confidence / 100.0;

	h->p_value = p;
	h->score = 1.0 - p;
	h->alarm = false;
	if (h->nvalues == h->size)
	{
		float8		pmin = 1.0 / (h->size + 1.0);

		h->log_martingale = Max(0.0, h->log_martingale + log_bet(Max(p, pmin)));
		h->martingale = exp(h->log_martingale);
		h->alarm = alpha > 0.0 && h->log_martingale > -log(alpha);
	}
	kde_push(h, x);
}

static int
float8_cmp_qsort(const void *a, const void *b)
{
	float8		x = *(const float8 *) a;
	float8		y = *(const float8 *) b;

	return float8_cmp_internal(x, y);
}

static float8
sorted_median(const float8 *v, int n)
{
	if (n % 2 == 1)
		return v[n / 2];
	return (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/*
 * The modified z-score of x among n values: 0.6745 * (x - median) / MAD,
 * MAD = median(|x_i - median|).  When MAD is 0 (more than half the values
 * equal) it falls back to (x - median) / (1.253314 * mean absolute
 * deviation), and to 0 when that is 0 too.  Sorts values in place.
 */
float8
RobustZscore(float8 *values, int n, float8 x, float8 *median, float8 *mad)
{
	float8		med;
	float8		meanad = 0.0;
	int			i;

	Assert(n > 0);
	qsort(values, n, sizeof(float8), float8_cmp_qsort);
	med = sorted_median(values, n);
	for (i = 0; i < n; i++)
	{
		values[i] = fabs(values[i] - med);
		meanad += values[i];
	}
	meanad /= n;
	qsort(values, n, sizeof(float8), float8_cmp_qsort);
	*median = med;
	*mad = sorted_median(values, n);
	if (*mad > 0.0)
		return 0.6745 * (x - med) / *mad;
	if (meanad > 0.0)
		return (x - med) / (1.253314 * meanad);
	return 0.0;
}
