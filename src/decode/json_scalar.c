/*-------------------------------------------------------------------------
 * json_scalar.c
 *		Parsers of JSON scalars for decode.c: integers, floats, numeric
 *		bounds, ISO 8601 and epoch timestamps, uuids.
 *
 * PostgreSQL's input functions raise errors on bad input; these return
 * false and a short static message instead, so that a bad message becomes
 * a dead letter and never aborts the batch.  They work on spans (pointer +
 * length), never need a terminating NUL, and never allocate.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "decode/decode_int.h"

#include <errno.h>
#include <float.h>
#include <math.h>

#include "datatype/timestamp.h"
#include "utils/datetime.h"
#include "utils/float.h"

#define JSON_MAX_DIGITS		1000
#define JSON_MAX_EXPONENT	1000

/* Microseconds from 1970-01-01 to 2000-01-01. */
#define UNIX_TO_PG_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

static inline bool
isdig(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Is s a JSON number literal?  Sets JTOK_F_INTEGRAL and JTOK_F_BIGNUM in
 * *flags as the scanner would.
 */
bool
JsonIsNumber(const char *s, int len, uint8 *flags)
{
	const char *p = s,
			   *end = s + len;
	int			digits = 0,
				exp = 0;

	*flags = JTOK_F_INTEGRAL;
	if (p < end && *p == '-')
		p++;
	if (p >= end || !isdig(*p))
		return false;
	if (*p == '0')
		p++, digits++;
	else
		while (p < end && isdig(*p))
			p++, digits++;
	if (p < end && *p == '.')
	{
		*flags = 0;
		if (++p >= end || !isdig(*p))
			return false;
		while (p < end && isdig(*p))
			p++, digits++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		*flags = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !isdig(*p))
			return false;
		while (p < end && isdig(*p))
		{
			if (exp < 100000)
				exp = exp * 10 + (*p - '0');
			p++;
		}
	}
	if (digits > JSON_MAX_DIGITS || exp > JSON_MAX_EXPONENT)
		*flags |= JTOK_F_BIGNUM;
	return p == end;
}

/* An integer: optional '-', digits, and optionally '.' followed by zeros. */
bool
JsonParseInt64(const char *s, int len, int64 *out, const char **error)
{
	const char *p = s,
			   *end = s + len;
	bool		neg = false;
	uint64		v = 0;
	bool		overflow = false;

	if (p < end && *p == '-')
		neg = true, p++;
	if (p >= end || !isdig(*p))
		goto bad;
	while (p < end && isdig(*p))
	{
		int			d = *p++ - '0';

		if (v > (PG_UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (p < end && *p == '.')
	{
		if (++p >= end)
			goto bad;
		while (p < end && *p == '0')
			p++;
		if (p < end && isdig(*p))
		{
			*error = "not an integer";
			return false;
		}
	}
	if (p != end)
		goto bad;
	if (overflow || v > (neg ? (uint64) PG_INT64_MAX + 1 : (uint64) PG_INT64_MAX))
	{
		*error = "out of range";
		return false;
	}
	*out = neg ? (int64) (0 - v) : (int64) v;
	return true;
bad:
	*error = "not an integer";
	return false;
}

/*
 * A JSON number literal, or the strings NaN, Infinity and -Infinity, as a
 * double, or with single as a float rounded once (strtof, like float4in).
 */
static bool
parse_float(const char *s, int len, bool single, double *out, const char **error)
{
	char		sbuf[64];
	char	   *buf = sbuf;
	char	   *endp;
	uint8		flags;
	double		v;

	if (len == 3 && memcmp(s, "NaN", 3) == 0)
	{
		*out = get_float8_nan();
		return true;
	}
	if (len == 8 && memcmp(s, "Infinity", 8) == 0)
	{
		*out = get_float8_infinity();
		return true;
	}
	if (len == 9 && memcmp(s, "-Infinity", 9) == 0)
	{
		*out = -get_float8_infinity();
		return true;
	}
	if (!JsonIsNumber(s, len, &flags))
	{
		*error = "not a number";
		return false;
	}
	if (len >= (int) sizeof(sbuf))
		buf = palloc(len + 1);
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = single ? (double) strtof(buf, &endp) : strtod(buf, &endp);
	/* like float8in and float4in: overflow and underflow to zero fail */
	if (errno == ERANGE && (v == 0.0 || isinf(v)))
	{
		*error = single ? "out of range for real" : "out of range for double precision";
		return false;
	}
	*out = v;
	return true;
}

bool
JsonParseFloat8(const char *s, int len, double *out, const char **error)
{
	return parse_float(s, len, false, out, error);
}

bool
JsonParseFloat4(const char *s, int len, float *out, const char **error)
{
	double		v;

	if (!parse_float(s, len, true, &v, error))
		return false;
	*out = (float) v;
	return true;
}

/*
 * Does the validated number literal s fit numeric(typmod) after rounding to
 * the scale, as numeric_in() would check?  Write the value as 0.d1d2... x
 * 10^E; rounding at the scale keeps E + scale digits and may carry one
 * place up; it fits if the result is zero or E <= precision - scale.
 */
bool
JsonNumericFits(const char *s, int len, int32 typmod)
{
	const char *p = s,
			   *end = s + len;
	int			precision,
				scale;
	int			intdigits = 0,
				lead = 0,
				exp = 0,
				E,
				keep,
				i;
	bool		seen = false,
				expneg = false;
	char		digits[JSON_MAX_DIGITS + 2];
	int			nd = 0;

	if (typmod < (int32) VARHDRSZ)
		return true;
	precision = ((typmod - VARHDRSZ) >> 16) & 0xffff;
	scale = (((typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;

	if (p < end && *p == '-')
		p++;
	for (; p < end && isdig(*p); p++)
	{
		intdigits++;
		if (!seen && *p == '0')
			lead++;
		else if (nd <= JSON_MAX_DIGITS)
			seen = true, digits[nd++] = *p;
	}
	if (p < end && *p == '.')
		for (p++; p < end && isdig(*p); p++)
		{
			if (!seen && *p == '0')
				lead++;
			else if (nd <= JSON_MAX_DIGITS)
				seen = true, digits[nd++] = *p;
		}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			expneg = (*p++ == '-');
		for (; p < end && isdig(*p); p++)
			if (exp < 100000)
				exp = exp * 10 + (*p - '0');
	}
	if (nd == 0)
		return true;			/* zero */
	E = intdigits - lead + (expneg ? -exp : exp);
	keep = E + scale;
	if (keep < 0)
		return true;			/* rounds to zero */
	if (keep < nd && digits[keep] >= '5')
	{
		bool		carry = true;

		for (i = 0; i < keep; i++)
			if (digits[i] != '9')
				carry = false;
		if (carry)
			E++;
	}
	else if (keep == 0)
		return true;			/* rounds to zero */
	return E <= precision - scale;
}

static bool
digits_n(const char *p, int n, int *out)
{
	int			v = 0,
				i;

	for (i = 0; i < n; i++)
	{
		if (!isdig(p[i]))
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/*
 * ISO 8601: YYYY-MM-DD, optionally followed by T (or t or a space) and
 * hh:mm[:ss[.fraction]], and then Z or an offset +hh, +hhmm or +hh:mm.
 * Without an offset the time is UTC.  Fractions round to microseconds.
 */
bool
JsonParseTimestamp(const char *s, int len, int64 *out, const char **error)
{
	const char *p = s,
			   *end = s + len;
	int			y,
				mo,
				d,
				h = 0,
				mi = 0,
				sec = 0,
				offset = 0;
	int64		usec = 0,
				result;

	if (len < 10 || !digits_n(p, 4, &y) || p[4] != '-' ||
		!digits_n(p + 5, 2, &mo) || p[7] != '-' || !digits_n(p + 8, 2, &d))
		goto bad;
	p += 10;
	if (y < 1 || mo < 1 || mo > 12 || d < 1)
		goto bad;
	if (d > month_days[mo - 1] &&
		!(mo == 2 && d == 29 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
		goto bad;
	if (p < end)
	{
		if (*p != 'T' && *p != 't' && *p != ' ')
			goto bad;
		p++;
		if (end - p < 5 || !digits_n(p, 2, &h) || p[2] != ':' ||
			!digits_n(p + 3, 2, &mi))
			goto bad;
		p += 5;
		if (p < end && *p == ':')
		{
			if (end - p < 3 || !digits_n(p + 1, 2, &sec))
				goto bad;
			p += 3;
			if (p < end && (*p == '.' || *p == ','))
			{
				int			n = 0;

				p++;
				if (p >= end || !isdig(*p))
					goto bad;
				for (; p < end && isdig(*p); p++, n++)
				{
					if (n < 6)
						usec = usec * 10 + (*p - '0');
					else if (n == 6 && *p >= '5')
						usec++;
				}
				for (; n < 6; n++)
					usec *= 10;
			}
		}
		if (h > 23 || mi > 59 || sec > 59)
			goto bad;
		if (p < end)
		{
			int			oh,
						om = 0;

			if ((*p == 'Z' || *p == 'z') && p + 1 == end)
				p++;
			else if (*p == '+' || *p == '-')
			{
				int			sign = *p++ == '-' ? -1 : 1;

				if (end - p < 2 || !digits_n(p, 2, &oh))
					goto bad;
				p += 2;
				if (p < end && *p == ':')
					p++;
				if (p < end)
				{
					if (end - p != 2 || !digits_n(p, 2, &om))
						goto bad;
					p += 2;
				}
				if (oh > 15 || om > 59)
					goto bad;
				offset = sign * (oh * 3600 + om * 60);
			}
			else
				goto bad;
		}
	}
	if (p != end)
		goto bad;
	if (y > 9999)
		goto bad;
	result = (int64) (date2j(y, mo, d) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY +
		((int64) (h * 3600 + mi * 60 + sec - offset)) * USECS_PER_SEC + usec;
	if (!IS_VALID_TIMESTAMP(result))
	{
		*error = "timestamp out of range";
		return false;
	}
	*out = result;
	return true;
bad:
	*error = "not an ISO 8601 timestamp";
	return false;
}

/*
 * A JSON number as time since 1970-01-01 UTC, its unit decided by its
 * magnitude: below 1e11 seconds (up to year 5138), below 1e14 milliseconds,
 * below 1e17 microseconds, else nanoseconds.  Fractions are kept to the
 * microsecond.
 */
bool
JsonEpochToTimestamp(const char *s, int len, int64 *out, const char **error)
{
	const char *p = s,
			   *end = s + len;
	bool		neg = false;
	uint64		ip = 0;
	int64		unit,
				result,
				frac = 0,
				fscale = 1;
	int			n = 0;

	if (p < end && *p == '-')
		neg = true, p++;
	if (p >= end || !isdig(*p))
		goto bad;
	for (; p < end && isdig(*p); p++)
	{
		if (++n > 19)
			goto range;
		ip = ip * 10 + (*p - '0');
	}
	if (ip > (uint64) PG_INT64_MAX)
		goto range;
	if (p < end && *p == '.')
	{
		p++;
		if (p >= end || !isdig(*p))
			goto bad;
		for (; p < end && isdig(*p); p++)
			if (fscale < 1000000000)
			{
				frac = frac * 10 + (*p - '0');
				fscale *= 10;
			}
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		/* rare: go through a double */
		double		v;

		if (!JsonParseFloat8(s, len, &v, error) || isnan(v) ||
			fabs(v) >= 9.2e18)
			goto range;
		neg = v < 0;
		v = fabs(v);
		ip = (uint64) v;
		fscale = 1000000;
		frac = (int64) ((v - (double) ip) * 1e6 + 0.5);
		if (frac >= fscale)
			ip++, frac -= fscale;
	}
	else if (p != end)
		goto bad;

	if (ip < UINT64CONST(100000000000))
		unit = USECS_PER_SEC;
	else if (ip < UINT64CONST(100000000000000))
		unit = 1000;
	else if (ip < UINT64CONST(100000000000000000))
		unit = 1;
	else
		unit = 0;				/* nanoseconds */
	if (unit)
		result = (int64) ip * unit + (frac * unit * 10 / fscale + 5) / 10;
	else
		result = ((int64) ip + 500) / 1000;
	if (neg)
		result = -result;
	result -= UNIX_TO_PG_USECS;
	if (!IS_VALID_TIMESTAMP(result))
		goto range;
	*out = result;
	return true;
bad:
	*error = "not an epoch number";
	return false;
range:
	*error = "timestamp out of range";
	return false;
}

/* One more than the value of a hex digit, or 0. */
static const signed char hex_value1[256] = {
	['0'] = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
	['A'] = 11, 12, 13, 14, 15, 16,
	['a'] = 11, 12, 13, 14, 15, 16,
};

/* 8-4-4-4-12 hex digits, or 32 hex digits without hyphens. */
bool
JsonParseUuid(const char *s, int len, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *) s;
	int			i,
				j = 0;
	int			bad = 0;

	if (len == 36)
	{
		if (p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-')
			return false;
	}
	else if (len != 32)
		return false;
	for (i = 0; i < len; i += 2)
	{
		int			hi,
					lo;

		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23))
			i++;
		hi = hex_value1[p[i]] - 1;
		lo = hex_value1[p[i + 1]] - 1;
		bad |= hi | lo;
		out[j++] = (unsigned char) ((hi << 4) | lo);
	}
	return bad >= 0 && j == 16;
}
