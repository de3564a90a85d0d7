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
#include "analytics/analytics.h"

#include <math.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ERF_SUM_AVX2
#endif

#include "utils/float.h"

#define MARTINGALE_EPSILON	0.1
#define KDE_MIN_BANDWIDTH	1e-6

/*
 * erf() is most of the cost of a kernel-density p-value (history_size calls
 * per row).  On [0, 6) it is a degree-7 polynomial on each of 192 intervals
 * of width 1/32: the Taylor expansion of erf about the interval's centre c,
 * whose coefficients follow from libm's erf(c) and the Hermite polynomials,
 *   d^m/dz^m erf(z) = 2/sqrt(pi) (-1)^(m-1) H_(m-1)(z) exp(-z^2),
 * computed once per backend.  The truncation error is below 1e-17; the
 * result is within 2.4e-16 of erf (checked against long double erfl on a
 * 2^-16 grid over [-7, 7]), where the cubic table this replaced was within
 * 1.7e-13.  A row of coefficients is one 64-byte cache line, the polynomial
 * is evaluated in Estrin's form (short dependency chains), and a last row
 * (1, 0, ..., 0) gives erf = 1 from 6 on (erf(6) = 1 - 2e-17), so no value
 * takes a branch.  Values go through SIMD registers: four at a time with
 * AVX2 and FMA when the CPU has them (checked once per backend), else two
 * at a time (SSE2, NEON).  Gather instructions are avoided on purpose: on
 * CPUs with the Gather Data Sampling mitigation they are slower than the
 * row loads and the transpose used here.
 */
#define ERF_PER_UNIT	32
#define ERF_LIMIT		6
#define ERF_INTERVALS	(ERF_LIMIT * ERF_PER_UNIT)
#define ERF_DEGREE		7

static float8 erf_coef[ERF_INTERVALS + 1][ERF_DEGREE + 1] pg_attribute_aligned(64);
static bool erf_ready = false;

static float8 erf_sum_pairs(const float8 *v, int n, float8 x, float8 scale);
static float8 (*erf_sum) (const float8 *v, int n, float8 x, float8 scale) = erf_sum_pairs;

#ifdef ERF_SUM_AVX2
static float8 erf_sum_avx2(const float8 *v, int n, float8 x, float8 scale);
#endif

static void
erf_table_fill(void)
{
	int			j,
				m;

	for (j = 0; j < ERF_INTERVALS; j++)
	{
		float8		c = (j + 0.5) / ERF_PER_UNIT;
		float8		g = M_2_SQRTPI * exp(-c * c);
		float8		h_prev = 0.0;	/* H_(m-2)(c) */
		float8		h = 1.0;		/* H_(m-1)(c) */
		float8		factorial = 1.0;

		erf_coef[j][0] = erf(c);
		for (m = 1; m <= ERF_DEGREE; m++)
		{
			float8		h_next = 2.0 * c * h - 2.0 * (m - 1) * h_prev;

			factorial *= m;
			erf_coef[j][m] = ((m - 1) % 2 ? -g : g) * h / factorial;
			h_prev = h;
			h = h_next;
		}
	}
	erf_coef[ERF_INTERVALS][0] = 1.0;
	for (m = 1; m <= ERF_DEGREE; m++)
		erf_coef[ERF_INTERVALS][m] = 0.0;
#ifdef ERF_SUM_AVX2
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		erf_sum = erf_sum_avx2;
#endif
	erf_ready = true;
}

/* The interval of |z| (the last one from ERF_LIMIT on) and |z|'s offset from its centre. */
static inline int
erf_interval(float8 z, float8 *t)
{
	float8		a = fabs(z);
	int			j;

	a = a < ERF_LIMIT ? a : ERF_LIMIT;
	j = (int) (a * ERF_PER_UNIT);
	*t = a - (j + 0.5) * (1.0 / ERF_PER_UNIT);
	return j;
}

static inline float8
erf_poly(const float8 *c, float8 t)
{
	float8		t2 = t * t;
	float8		t4 = t2 * t2;

	return (c[0] + c[1] * t) + t2 * (c[2] + c[3] * t) +
		t4 * ((c[4] + c[5] * t) + t2 * (c[6] + c[7] * t));
}

/* erf(z) for z that is not NaN. */
static inline float8
fast_erf(float8 z)
{
	float8		t;
	int			j = erf_interval(z, &t);

	return copysign(erf_poly(erf_coef[j], t), z);
}

/*
 * sum_i erf((x - v_i) * scale), for x and v_i that give no NaN (the caller
 * checks that x and the sum of the v_i are finite).
 */
static float8
erf_sum_pairs(const float8 *v, int n, float8 x, float8 scale)
{
	float8		sum = 0.0;
	int			i = 0;

#if defined(__GNUC__)
	typedef float8 pair __attribute__((vector_size(16)));
	typedef int64 pair_bits __attribute__((vector_size(16)));
	const pair_bits sign_bit = {INT64_MIN, INT64_MIN};
	pair		acc = {0.0, 0.0};

	for (; i + 2 <= n; i += 2)
	{
		float8		z0 = (x - v[i]) * scale;
		float8		z1 = (x - v[i + 1]) * scale;
		float8		t0,
					t1;
		const float8 *c0 = erf_coef[erf_interval(z0, &t0)];
		const float8 *c1 = erf_coef[erf_interval(z1, &t1)];
		pair		t = {t0, t1};
		pair		t2 = t * t;
		pair		t4 = t2 * t2;
		pair		r;
		pair_bits	sign = (pair_bits) ((pair) {z0, z1}) & sign_bit;

		r = ((pair) {c0[0], c1[0]} + (pair) {c0[1], c1[1]} * t) +
			t2 * ((pair) {c0[2], c1[2]} + (pair) {c0[3], c1[3]} * t) +
			t4 * (((pair) {c0[4], c1[4]} + (pair) {c0[5], c1[5]} * t) +
				  t2 * ((pair) {c0[6], c1[6]} + (pair) {c0[7], c1[7]} * t));
		acc += (pair) ((pair_bits) r | sign);
	}
	sum = acc[0] + acc[1];
#endif
	for (; i < n; i++)
		sum += fast_erf((x - v[i]) * scale);
	return sum;
}

#ifdef ERF_SUM_AVX2
/*
 * erf_sum_pairs four values at a time.  The four rows of coefficients are
 * transposed into one register per coefficient with half the shuffles of a
 * register-to-register 4x4 transpose: each register is first filled from
 * memory with the 16-byte halves of two rows (a load and an insert, which
 * do not use the shuffle unit), so one unpack per coefficient finishes the
 * job.  The interval numbers go through memory too, rather than four
 * extracts: shuffles, not arithmetic, are what limits this loop.
 */
__attribute__((target("avx2,fma")))
static inline __m256d
erf_rows_pair(const float8 *ra, const float8 *rb)
{
	return _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_load_pd(ra)),
								_mm_load_pd(rb), 1);
}

__attribute__((target("avx2,fma")))
static float8
erf_sum_avx2(const float8 *v, int n, float8 x, float8 scale)
{
	const __m256d sign_bit = _mm256_set1_pd(-0.0);
	const __m256d limit = _mm256_set1_pd(ERF_LIMIT);
	const __m256d per_unit = _mm256_set1_pd(ERF_PER_UNIT);
	const __m256d half = _mm256_set1_pd(0.5);
	const __m256d step = _mm256_set1_pd(1.0 / ERF_PER_UNIT);
	__m256d		vx = _mm256_set1_pd(x);
	__m256d		vscale = _mm256_set1_pd(scale);
	__m256d		acc = _mm256_setzero_pd();
	int32		idx[4] pg_attribute_aligned(16);
	float8		lanes[4];
	float8		sum;
	int			i;

	for (i = 0; i + 4 <= n; i += 4)
	{
		__m256d		z = _mm256_mul_pd(_mm256_sub_pd(vx, _mm256_loadu_pd(v + i)), vscale);
		__m256d		a = _mm256_min_pd(_mm256_andnot_pd(sign_bit, z), limit);
		__m128i		j = _mm256_cvttpd_epi32(_mm256_mul_pd(a, per_unit));
		__m256d		t = _mm256_sub_pd(a, _mm256_mul_pd(_mm256_add_pd(_mm256_cvtepi32_pd(j), half), step));
		const float8 *r0,
				   *r1,
				   *r2,
				   *r3;
		__m256d		p,
					q,
					c0,
					c1,
					c2,
					c3,
					c4,
					c5,
					c6,
					c7,
					t2,
					t4,
					r;

		_mm_store_si128((__m128i *) idx, j);
		r0 = erf_coef[idx[0]];
		r1 = erf_coef[idx[1]];
		r2 = erf_coef[idx[2]];
		r3 = erf_coef[idx[3]];

		/* (r0[m], r0[m+1], r2[m], r2[m+1]) and the same of r1, r3: unpack */
		p = erf_rows_pair(r0, r2);
		q = erf_rows_pair(r1, r3);
		c0 = _mm256_unpacklo_pd(p, q);
		c1 = _mm256_unpackhi_pd(p, q);
		p = erf_rows_pair(r0 + 2, r2 + 2);
		q = erf_rows_pair(r1 + 2, r3 + 2);
		c2 = _mm256_unpacklo_pd(p, q);
		c3 = _mm256_unpackhi_pd(p, q);
		p = erf_rows_pair(r0 + 4, r2 + 4);
		q = erf_rows_pair(r1 + 4, r3 + 4);
		c4 = _mm256_unpacklo_pd(p, q);
		c5 = _mm256_unpackhi_pd(p, q);
		p = erf_rows_pair(r0 + 6, r2 + 6);
		q = erf_rows_pair(r1 + 6, r3 + 6);
		c6 = _mm256_unpacklo_pd(p, q);
		c7 = _mm256_unpackhi_pd(p, q);

		t2 = _mm256_mul_pd(t, t);
		t4 = _mm256_mul_pd(t2, t2);
		r = _mm256_fmadd_pd(_mm256_fmadd_pd(_mm256_fmadd_pd(c7, t, c6), t2,
											_mm256_fmadd_pd(c5, t, c4)),
							t4,
							_mm256_fmadd_pd(_mm256_fmadd_pd(c3, t, c2), t2,
											_mm256_fmadd_pd(c1, t, c0)));
		acc = _mm256_add_pd(acc, _mm256_or_pd(r, _mm256_and_pd(z, sign_bit)));
	}
	_mm256_storeu_pd(lanes, acc);
	sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
	for (; i < n; i++)
		sum += fast_erf((x - v[i]) * scale);
	return sum;
}
#endif

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

/*
 * The sum of the n values and the sum of their squared deviations from
 * their mean (two passes, as accurate as the data allows), on four
 * accumulators: four short chains of additions instead of one long one.
 */
static void
kde_moments(const float8 *v, int n, float8 *sum, float8 *m2)
{
	float8		total,
				mean;
	int			i = 0;

#if defined(__GNUC__)
	typedef float8 pair __attribute__((vector_size(16)));
	pair		s0 = {0.0, 0.0},
				s1 = {0.0, 0.0},
				a,
				b,
				vmean;

	for (; i + 4 <= n; i += 4)
	{
		memcpy(&a, v + i, sizeof(pair));
		memcpy(&b, v + i + 2, sizeof(pair));
		s0 += a;
		s1 += b;
	}
	total = (s0[0] + s1[0]) + (s0[1] + s1[1]);
	for (; i < n; i++)
		total += v[i];
	mean = total / n;
	vmean = (pair) {mean, mean};
	s0 = s1 = (pair) {0.0, 0.0};
	for (i = 0; i + 4 <= n; i += 4)
	{
		memcpy(&a, v + i, sizeof(pair));
		memcpy(&b, v + i + 2, sizeof(pair));
		a -= vmean;
		b -= vmean;
		s0 += a * a;
		s1 += b * b;
	}
	*m2 = (s0[0] + s1[0]) + (s0[1] + s1[1]);
#else
	total = 0.0;
	for (; i < n; i++)
		total += v[i];
	mean = total / n;
	*m2 = 0.0;
	i = 0;
#endif
	for (; i < n; i++)
		*m2 += (v[i] - mean) * (v[i] - mean);
	*sum = total;
}

/* The one-sided p-value of x against the history: small when x is high. */
float8
KdePValue(const KdeHistory *h, float8 x)
{
	int			n = h->nvalues;
	const float8 *v = h->values;
	float8		sum,
				m2,
				bw;
	int			i;

	if (n == 0)
		return 0.5;
	kde_moments(v, n, &sum, &m2);
	bw = M_SQRT2 * sqrt(m2 / n);
	if (!(bw >= KDE_MIN_BANDWIDTH))
		bw = KDE_MIN_BANDWIDTH;
	if (unlikely(!erf_ready))
		erf_table_fill();
	bw = 1.0 / bw;
	if (likely(isfinite(sum) && isfinite(x)))
		sum = erf_sum(v, n, x, bw);
	else
	{
		/* an infinite or NaN value: libm's erf gives erf(+-Inf) and NaN */
		sum = 0.0;
		for (i = 0; i < n; i++)
			sum += erf((x - v[i]) * bw);
	}
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
