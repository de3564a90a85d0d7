/*-------------------------------------------------------------------------
 * sim_message.c
 *		iotstream-sim: writes one seed-002 event or seed-004 telemetry
 *		message, good or bad, as JSON bytes.
 *
 * Good message i is a pure function of (seed, i, shaping options): it seeds
 * its own random stream from them, so a test can recompute it and the same
 * message comes out when it is re-sent as a duplicate.  Formatting is done
 * by hand rather than with printf: the simulator must outrun the ingest path
 * it measures.
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

const char *const bad_names[BAD_NKINDS] = {
	"not_json", "truncated", "wrong_type", "missing_field", "bad_time",
	"invalid_utf8", "nul_byte", "oversize"
};

/* ---------------------------------------------------------------- random */

/* splitmix64: a 64-bit mixer; state advances by a fixed odd constant. */
uint64_t
rng_next(uint64_t *state)
{
	uint64_t	z = (*state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* uniform in [0, n): multiply and keep the high word, no division */
uint64_t
rng_below(uint64_t *state, uint64_t n)
{
	return (uint64_t) (((unsigned __int128) rng_next(state) * n) >> 64);
}

double
rng_unit(uint64_t *state)
{
	return (rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* ----------------------------------------------------------- formatting */

static char *
put_str(char *p, const char *s)
{
	size_t		n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

static char *
put_u64(char *p, uint64_t v)
{
	char		tmp[24];
	int			n = 0;

	do
	{
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static const char digit_pairs[] =
"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
"8081828384858687888990919293949596979899";

/* v zero-padded to exactly width digits, two at a time */
static char *
put_padded(char *p, uint64_t v, int width)
{
	int			i = width;

	while (i >= 2)
	{
		memcpy(p + i - 2, digit_pairs + 2 * (v % 100), 2);
		v /= 100;
		i -= 2;
	}
	if (i)
		p[0] = '0' + v % 10;
	return p + width;
}

/* the same for values below 10^9: 32-bit divisions are cheaper */
static char *
put_padded32(char *p, uint32_t v, int width)
{
	int			i = width;

	while (i >= 2)
	{
		memcpy(p + i - 2, digit_pairs + 2 * (v % 100), 2);
		v /= 100;
		i -= 2;
	}
	if (i)
		p[0] = '0' + v % 10;
	return p + width;
}

static char *
put_i64(char *p, int64_t v)
{
	if (v < 0)
	{
		*p++ = '-';
		return put_u64(p, (uint64_t) (-(v + 1)) + 1);
	}
	return put_u64(p, (uint64_t) v);
}

/* days since 1970-01-01 -> proleptic Gregorian y/m/d */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t		era,
				doe,
				yoe,
				doy,
				mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t		era,
				yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
char *
put_iso(char *p, int64_t ms)
{
	int64_t		days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
	int64_t		rem = ms - days * 86400000;
	int64_t		y;
	int			m,
				d;

	civil_from_days(days, &y, &m, &d);
	p = put_padded(p, (uint64_t) y, 4);
	*p++ = '-';
	p = put_padded(p, m, 2);
	*p++ = '-';
	p = put_padded(p, d, 2);
	*p++ = 'T';
	p = put_padded(p, rem / 3600000, 2);
	*p++ = ':';
	p = put_padded(p, rem / 60000 % 60, 2);
	*p++ = ':';
	p = put_padded(p, rem / 1000 % 60, 2);
	*p++ = '.';
	p = put_padded(p, rem % 1000, 3);
	*p++ = 'Z';
	return p;
}

/* An event time as the chosen format writes it; *ms_out is what it means. */
static char *
put_time(char *p, const Options *o, int64_t ms, int64_t *ms_out)
{
	switch (o->time_format)
	{
		case TIME_EPOCH_S:
			*ms_out = (ms / 1000) * 1000;
			return put_i64(p, ms / 1000);
		case TIME_EPOCH_MS:
			*ms_out = ms;
			return put_i64(p, ms);
		default:
			*ms_out = ms;
			*p++ = '"';
			p = put_iso(p, ms);
			*p++ = '"';
			return p;
	}
}

/* a float with 15 fractional digits, like the seed's 57.739726013343247 */
static char *
put_float15(char *p, uint64_t *rng, int lo, int span, int64_t add)
{
	int64_t		ip = lo + (int64_t) rng_below(rng, span) + add;

	p = put_u64(p, ip > 0 ? ip : 0);	/* a level shift stops at 0 */
	*p++ = '.';
	/* 15 random digits as 7 + 8, so that the arithmetic stays 32-bit */
	p = put_padded32(p, (uint32_t) rng_below(rng, 10000000), 7);
	return put_padded32(p, (uint32_t) rng_below(rng, 100000000), 8);
}

static char *
put_cents(char *p, int64_t cents)
{
	if (cents < 0)
	{
		*p++ = '-';
		cents = -cents;
	}
	p = put_u64(p, cents / 100);
	*p++ = '.';
	return put_padded(p, cents % 100, 2);
}

/* the level shift (in cents) that applies to a good message, 0 if none */
static int64_t
shift_for(const Options *o, int dev, int64_t time_ms)
{
	int64_t		delta = 0;

	for (int k = 0; k < o->nshifts; k++)
		if (o->shifts[k].dev == dev && time_ms >= o->shifts[k].time_ms)
			delta += o->shifts[k].value_x100;
	return delta;
}

static const Shift *
spike_for(const Options *o, int64_t i)
{
	for (int k = 0; k < o->nspikes; k++)
		if (o->spikes[k].target == i)
			return &o->spikes[k];
	return NULL;
}

void
device_name(const Options *o, int dev, char *buf, size_t size)
{
	/* by hand: this runs for every message */
	const char *prefix = o->telemetry ? "sensor-" : "contoso-device-id-";
	int			width = o->telemetry ? 4 : 6;
	int			digits = 1;
	char	   *p;

	for (int v = dev; v >= 10; v /= 10)
		digits++;
	if (digits > width)
		width = digits;
	if (strlen(prefix) + width + 1 > size)
	{
		buf[0] = '\0';
		return;
	}
	p = put_str(buf, prefix);
	p = put_padded(p, (uint64_t) dev, width);
	*p = '\0';
}

/* ------------------------------------------------------------- messages */

/* telemetry value in cents: normal ranges keep temperature below 100 */
static int64_t
metric_cents(const char *metric, uint64_t *rng)
{
	if (strcmp(metric, "temperature") == 0)
		return 4000 + rng_below(rng, 5000);	/* 40.00 .. 89.99 */
	if (strcmp(metric, "pressure") == 0)
		return 99000 + rng_below(rng, 4000);	/* 990.00 .. 1029.99 */
	if (strcmp(metric, "vibration") == 0)
		return rng_below(rng, 500);	/* 0.00 .. 4.99 */
	if (strcmp(metric, "humidity") == 0)
		return 2000 + rng_below(rng, 6000);
	if (strcmp(metric, "distance") == 0)
		return 200 + rng_below(rng, 39800);	/* sonar: 2 .. 400 cm */
	if (strcmp(metric, "motion") == 0)
		return rng_below(rng, 10) == 0 ? 100 : 0;	/* PIR: 1 or 0 */
	return rng_below(rng, 10000);
}

/*
 * Write good message i (kind == GOOD) or a bad variant of it into buf and
 * return its length.  burst >= 0 makes burst message number `burst` of b.
 * bad_n counts messages of that bad kind, to alternate between variants.
 */
size_t
build_message(const Options *o, int64_t i, MsgKind kind, int64_t bad_n,
			  const Burst *b, int burst, char *buf, MsgFacts *f)
{
	uint64_t	rng = o->seed * 0xD1B54A32D192ED03ULL ^ (uint64_t) i;
	char	   *p = buf;
	char		dev[64];
	int64_t		tick = i / o->devices;
	int64_t		time_ms;
	int64_t		cents = 0;
	const char *time_key = o->telemetry ? "timestamp" : "createdAt";

	memset(f, 0, sizeof(*f));
	f->dev = (int) (i % o->devices);
	f->seq = tick;
	time_ms = o->start_ms + tick * o->step_ms + (f->dev * o->step_ms) / o->devices;
	if (b)
	{
		f->dev = b->dev;
		time_ms = b->minute_ms + (int64_t) burst * 60000 / b->count + 100;
		rng ^= 0xB0B5ULL << 48 ^ (uint64_t) burst;
	}
	rng_next(&rng);
	device_name(o, f->dev, dev, sizeof(dev));

	if (kind == BAD_NOT_JSON)
	{
		p = put_str(p, "not json \"_bad\":\"not_json\" ");
		p = put_i64(p, bad_n);
		return p - buf;
	}

	*p++ = '{';
	if (kind != GOOD)
	{
		p = put_str(p, "\"_bad\":\"");
		p = put_str(p, bad_names[kind]);
		p = put_str(p, "\",");
	}
	if (!o->telemetry)
	{
		uint64_t	hi = rng_next(&rng),
					lo = rng_next(&rng);
		static const char hex[] = "0123456789abcdef";
		int			k;

		/* a version-4 UUID */
		hi = (hi & ~0xF000ULL) | 0x4000ULL;
		lo = (lo & ~(3ULL << 62)) | (2ULL << 62);
		p = put_str(p, "\"eventId\":\"");
		for (k = 0; k < 32; k++)
		{
			uint64_t	w = k < 16 ? hi : lo;

			if (k == 8 || k == 12 || k == 16 || k == 20)
				*p++ = '-';
			*p++ = hex[(w >> (60 - 4 * (k % 16))) & 15];
		}
		p = put_str(p, "\",\"complexData\":{");
		for (k = 0; k < 23; k++)
		{
			p = put_str(p, k ? ",\"moreData" : "\"moreData");
			p = put_u64(p, k);
			p = put_str(p, "\":");
			p = put_float15(p, &rng, 40, 50, 0);
		}
		p = put_str(p, "},\"value\":");
		if (kind == BAD_WRONG_TYPE)
			p = put_str(p, "\"not-a-number\"");
		else
		{
			char	   *v = p;
			const Shift *spike = b ? NULL : spike_for(o, i);

			p = put_float15(p, &rng, 0, 100,
							b ? 0 : shift_for(o, f->dev, time_ms) / 100);
			if (spike)
				p = put_cents(v, spike->value_x100);
			*p = '\0';
			/* exactly what float8in + float8mul + round() compute in SQL */
			f->value_x100 = (int64_t) rint(strtod(v, NULL) * 100);
		}
		p = put_str(p, ",\"deviceId\":\"");
		p = put_str(p, dev);
		p = put_str(p, "\",\"deviceSequenceNumber\":");
		p = put_i64(p, f->seq);
		p = put_str(p, ",\"type\":\"");
		if (kind == BAD_INVALID_UTF8)
			p = put_str(p, "\xff\xfe");
		p = put_str(p, f->dev % 2 ? "TEMP" : "CO2");
	}
	else
	{
		const char *metric;

		if (b)
			metric = "temperature";
		else
			metric = o->metrics[(tick + f->dev) % o->nmetrics];
		cents = b ? 10100 + burst * 37 : metric_cents(metric, &rng);
		if (!b && strcmp(metric, "temperature") == 0)
		{
			const Shift *spike = spike_for(o, i);

			cents = spike ? spike->value_x100 :
				cents + shift_for(o, f->dev, time_ms);
		}
		f->seq = 0;
		f->value_x100 = cents;
		f->metric = metric;
		p = put_str(p, "\"sensor_id\":\"");
		p = put_str(p, dev);
		p = put_str(p, "\",");
		if (kind != BAD_MISSING_FIELD)
		{
			*p++ = '"';
			p = put_str(p, time_key);
			p = put_str(p, "\":");
			if (kind == BAD_TIME)
				p = put_time(p, o, bad_n % 2 ? 32503680000000LL : 0, &time_ms);
			else
				p = put_time(p, o, time_ms, &time_ms);
			*p++ = ',';
		}
		p = put_str(p, "\"metric_type\":\"");
		if (kind == BAD_INVALID_UTF8)
			p = put_str(p, "\xff\xfe");
		p = put_str(p, metric);
	}
	if (kind == BAD_NUL_BYTE)
	{
		/* a raw NUL is invalid JSON; \u0000 is valid JSON that jsonb refuses */
		if (bad_n % 2)
			p = put_str(p, "\\u0000");
		else
			*p++ = '\0';
	}
	*p++ = '"';
	if (o->telemetry)
	{
		p = put_str(p, ",\"value\":");
		p = kind == BAD_WRONG_TYPE ? put_str(p, "\"high\"") : put_cents(p, cents);
	}
	else if (kind != BAD_MISSING_FIELD)
	{
		p = put_str(p, ",\"");
		p = put_str(p, time_key);
		p = put_str(p, "\":");
		if (kind == BAD_TIME)
			p = put_time(p, o, bad_n % 2 ? 32503680000000LL : 0, &time_ms);
		else
			p = put_time(p, o, time_ms, &time_ms);
	}
	if (kind == BAD_OVERSIZE)
	{
		p = put_str(p, ",\"padding\":\"");
		memset(p, 'x', o->oversize_bytes);
		p += o->oversize_bytes;
		*p++ = '"';
	}
	*p++ = '}';
	f->time_ms = time_ms;
	if (kind == BAD_TRUNCATED)
		return (p - buf) / 2;
	return p - buf;
}

