/*-------------------------------------------------------------------------
 * decode_value.c
 *		One JSON value (a span found by json_scan.c) to a Datum of a column
 *		type, and Kafka headers to jsonb.
 *
 * Accepted input per type (the SQL function comments repeat it):
 *  - text, varchar: a string; numbers, booleans, objects and arrays as their
 *    JSON text.  varchar(n) rejects longer strings.
 *  - smallint, integer, bigint: an integer number, or a string holding one;
 *    a fraction of zeros (5.0) is accepted.
 *  - real, double precision: a number, or a string holding one, NaN,
 *    Infinity or -Infinity.
 *  - numeric: a number or a string holding one, or NaN; the column's
 *    precision and scale apply, as numeric_in() would round.
 *  - boolean: true/false, 0/1, or the strings true/false/t/f in any case.
 *  - timestamptz, timestamp, date: an ISO 8601 string (see
 *    JsonParseTimestamp, UTC without an offset), or a number (or numeric
 *    string) of seconds, milliseconds, microseconds or nanoseconds since
 *    1970 told apart by magnitude (see JsonEpochToTimestamp).  timestamp
 *    takes the UTC wall-clock time, date the UTC day.
 *  - uuid: 32 hex digits, with or without the four hyphens.
 *  - jsonb, json: any value.
 *  - bytea: a string in bytea's hex output form ("\\x0a1b"), as to_jsonb
 *    writes it; from $payload and $key, the raw bytes.
 *
 * Invariant: never raises an error for any input; PostgreSQL's input
 * functions (numeric_in, jsonb_in) only see text validated before.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source.h"
#include "decode/decode_int.h"

#include <math.h>

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

/* Where jsonb_in works; reset after each value. */
static MemoryContext JsonbScratch = NULL;

/*
 * The text of a scalar token: numbers and raw bytes as they are, strings
 * without quotes and unescaped into buf when they have escapes.  False if
 * the token is no scalar or too long to be a number, uuid or timestamp.
 */
static bool
scalar_text(const JsonToken *tok, char *buf, int bufsize, const char **s,
			int *len)
{
	switch (tok->type)
	{
		case JTOK_NUMBER:
		case JTOK_RAW:
			*s = tok->start;
			*len = tok->len;
			return true;
		case JTOK_STRING:
			if (!(tok->flags & JTOK_F_ESCAPES))
			{
				*s = tok->start + 1;
				*len = tok->len - 2;
				return true;
			}
			if (tok->len - 2 > bufsize)
				return false;
			*len = JsonUnescape(tok->start + 1, tok->len - 2, buf);
			*s = buf;
			return true;
		default:
			return false;
	}
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
decode_text(DecodeKind kind, int32 typmod, const JsonToken *tok, Datum *value,
			const char **why)
{
	text	   *t;
	int			n;

	if (tok->type == JTOK_STRING)
	{
		if (tok->flags & JTOK_F_NUL)
		{
			*why = "the string holds \\u0000, which text cannot store";
			return false;
		}
		t = palloc(VARHDRSZ + tok->len - 2);
		if (tok->flags & JTOK_F_ESCAPES)
			n = JsonUnescape(tok->start + 1, tok->len - 2, VARDATA(t));
		else
		{
			n = tok->len - 2;
			memcpy(VARDATA(t), tok->start + 1, n);
		}
	}
	else
	{
		/* numbers, booleans, objects and arrays as their JSON text */
		n = tok->len;
		t = palloc(VARHDRSZ + n);
		memcpy(VARDATA(t), tok->start, n);
	}
	SET_VARSIZE(t, VARHDRSZ + n);
	if (kind == DK_VARCHAR && typmod >= (int32) VARHDRSZ &&
		n > typmod - (int32) VARHDRSZ &&
		pg_mbstrlen_with_len(VARDATA(t), n) > typmod - (int32) VARHDRSZ)
	{
		*why = "the string is longer than the column's varchar length";
		return false;
	}
	*value = PointerGetDatum(t);
	return true;
}

static bool
decode_timestamp(DecodeKind kind, const JsonToken *tok, Datum *value,
				 const char **why)
{
	char		buf[128];
	const char *s;
	int			len;
	uint8		flags;
	int64		ts;

	if (tok->type != JTOK_NUMBER && tok->type != JTOK_STRING)
		return false;
	if (!scalar_text(tok, buf, sizeof(buf), &s, &len))
	{
		*why = "not an ISO 8601 timestamp";
		return false;
	}
	if (JsonIsNumber(s, len, &flags))
	{
		if (!JsonEpochToTimestamp(s, len, &ts, why))
			return false;
	}
	else if (tok->type == JTOK_NUMBER || !JsonParseTimestamp(s, len, &ts, why))
		return false;
	if (kind == DK_DATE)
	{
		int64		days = ts / USECS_PER_DAY;

		if (ts < 0 && ts % USECS_PER_DAY != 0)
			days--;
		*value = DateADTGetDatum((DateADT) days);
	}
	else
		*value = Int64GetDatum(ts);
	return true;
}

/* A JSON string "\\x0a1b..." (bytea's hex output, as to_jsonb writes it). */
static bool
decode_hex_bytea(const JsonToken *tok, Datum *value, const char **why)
{
	char	   *buf = palloc(tok->len);
	const char *s;
	int			len,
				i;
	bytea	   *b;

	scalar_text(tok, buf, tok->len, &s, &len);
	if (len < 2 || s[0] != '\\' || s[1] != 'x' || len % 2 != 0)
	{
		*why = "not a hex string starting with \\x";
		return false;
	}
	b = palloc(VARHDRSZ + (len - 2) / 2);
	SET_VARSIZE(b, VARHDRSZ + (len - 2) / 2);
	for (i = 2; i < len; i += 2)
	{
		int			hi = hex_digit(s[i]),
					lo = hex_digit(s[i + 1]);

		if (hi < 0 || lo < 0)
		{
			*why = "not a hex string starting with \\x";
			return false;
		}
		((unsigned char *) VARDATA(b))[(i - 2) / 2] = (hi << 4) | lo;
	}
	pfree(buf);
	*value = PointerGetDatum(b);
	return true;
}

/* Largest JSON text we turn into jsonb, far below jsonb's own limits. */
#define JSONB_MAX_TEXT	(64 * 1024 * 1024)

static inline const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

/* A validated JSON string at p (the quote) as a jbvString; returns the end. */
static const char *
build_string(const char *p, JsonbValue *v)
{
	const char *s = p + 1,
			   *q = s;
	bool		escapes = false;

	while (*q != '"')
	{
		if (*q == '\\')
		{
			escapes = true;
			q++;
		}
		q++;
	}
	v->type = jbvString;
	if (!escapes)
	{
		v->val.string.val = (char *) s;
		v->val.string.len = q - s;
	}
	else
	{
		v->val.string.val = palloc(q - s);
		v->val.string.len = JsonUnescape(s, q - s, v->val.string.val);
	}
	return q + 1;
}

/*
 * A validated JSON number as numeric: up to 18 digits without exponent
 * exactly as mantissa / 10^scale (what numeric_in would produce, without
 * parsing it again), others through numeric_in.
 */
static Numeric
build_numeric(const char *p, int len)
{
	const char *end = p + len;
	const char *q = p;
	bool		neg = false;
	int64		mant = 0;
	int			digits = 0,
				scale = 0;
	char		buf[64];
	char	   *cstr;

	if (*q == '-')
		neg = true, q++;
	for (; q < end && *q >= '0' && *q <= '9'; q++, digits++)
		mant = mant * 10 + (*q - '0');
	if (q < end && *q == '.')
		for (q++; q < end && *q >= '0' && *q <= '9'; q++, digits++, scale++)
			mant = mant * 10 + (*q - '0');
	if (q == end && digits <= 18)
		return int64_div_fast_to_numeric(neg ? -mant : mant, scale);

	cstr = len < (int) sizeof(buf) ? buf : palloc(len + 1);
	memcpy(cstr, p, len);
	cstr[len] = '\0';
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(cstr),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

/*
 * Push the validated JSON value at p into a jsonb parse state, as jsonb_in
 * would, without lexing it again; returns where the value ends.
 */
static const char *
build_value(JsonbParseState **state, const char *p, JsonbIteratorToken seq,
			JsonbValue **result)
{
	JsonbValue	v;

	switch (*p)
	{
		case '{':
		case '[':
			{
				bool		object = *p == '{';

				*result = pushJsonbValue(state, object ? WJB_BEGIN_OBJECT : WJB_BEGIN_ARRAY, NULL);
				p = skip_ws(p + 1);
				while (*p != (object ? '}' : ']'))
				{
					if (object)
					{
						p = build_string(p, &v);
						pushJsonbValue(state, WJB_KEY, &v);
						p = skip_ws(skip_ws(p) + 1);	/* the colon */
					}
					p = skip_ws(build_value(state, p, object ? WJB_VALUE : WJB_ELEM, result));
					if (*p == ',')
						p = skip_ws(p + 1);
				}
				*result = pushJsonbValue(state, object ? WJB_END_OBJECT : WJB_END_ARRAY, NULL);
				return p + 1;
			}
		case '"':
			p = build_string(p, &v);
			break;
		case 't':
		case 'f':
			v.type = jbvBool;
			v.val.boolean = *p == 't';
			p += *p == 't' ? 4 : 5;
			break;
		case 'n':
			v.type = jbvNull;
			p += 4;
			break;
		default:
			{
				const char *q = p;

				while (*q == '-' || *q == '+' || *q == '.' || *q == 'e' ||
					   *q == 'E' || (*q >= '0' && *q <= '9'))
					q++;
				v.type = jbvNumeric;
				v.val.numeric = build_numeric(p, q - p);
				p = q;
			}
	}
	*result = pushJsonbValue(state, seq, &v);
	return p;
}

/*
 * Any JSON value to jsonb.  Objects and arrays are built straight from the
 * validated text; the many allocations that takes happen in a scratch
 * context, and only the result is copied out, so a batch of messages stays
 * small and in cache.
 */
static bool
decode_jsonb(const JsonToken *tok, Datum *value, const char **why)
{
	MemoryContext old;
	Jsonb	   *jb,
			   *result;

	if (tok->flags & JTOK_F_NUL)
		*why = "the value holds \\u0000, which jsonb cannot store";
	else if (tok->flags & JTOK_F_BIGNUM)
		*why = "the value holds a number out of range for jsonb";
	else if (tok->len > JSONB_MAX_TEXT)
		*why = "the value is too large for jsonb";
	if (*why)
		return false;

	if (JsonbScratch == NULL)
		JsonbScratch = AllocSetContextCreate(TopMemoryContext,
											 "iotstream jsonb scratch",
											 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(JsonbScratch);
	if (tok->type == JTOK_OBJECT || tok->type == JTOK_ARRAY)
	{
		JsonbParseState *state = NULL;
		JsonbValue *res = NULL;

		build_value(&state, tok->start, WJB_VALUE, &res);
		jb = JsonbValueToJsonb(res);
	}
	else
	{
		/* a scalar: jsonb_in wraps it in its raw-scalar array */
		char	   *cstr = palloc(tok->len + 1);

		memcpy(cstr, tok->start, tok->len);
		cstr[tok->len] = '\0';
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(cstr)));
	}
	MemoryContextSwitchTo(old);
	result = palloc(VARSIZE(jb));
	memcpy(result, jb, VARSIZE(jb));
	MemoryContextReset(JsonbScratch);
	*value = JsonbPGetDatum(result);
	return true;
}

/*
 * Convert one present, non-null value.  False with *why a static message,
 * or NULL for "expected <kind>, got <token type>".
 */
bool
DecodeValue(DecodeKind kind, int32 typmod, const JsonToken *tok, Datum *value,
			const char **why)
{
	char		buf[128];
	const char *s;
	int			len;

	*why = NULL;
	switch (kind)
	{
		case DK_TEXT:
		case DK_VARCHAR:
			return decode_text(kind, typmod, tok, value, why);
		case DK_INT2:
		case DK_INT4:
		case DK_INT8:
			{
				int64		v;

				if (!scalar_text(tok, buf, sizeof(buf), &s, &len))
					return false;
				if (!JsonParseInt64(s, len, &v, why))
				{
					if (strcmp(*why, "out of range") == 0)
						*why = "out of range for bigint";
					return false;
				}
				if (kind == DK_INT2 && (v < PG_INT16_MIN || v > PG_INT16_MAX))
					*why = "out of range for smallint";
				else if (kind == DK_INT4 && (v < PG_INT32_MIN || v > PG_INT32_MAX))
					*why = "out of range for integer";
				if (*why)
					return false;
				*value = kind == DK_INT2 ? Int16GetDatum((int16) v) :
					kind == DK_INT4 ? Int32GetDatum((int32) v) : Int64GetDatum(v);
				return true;
			}
		case DK_FLOAT4:
			{
				float		f;

				if (!scalar_text(tok, buf, sizeof(buf), &s, &len))
					return false;
				if (!JsonParseFloat4(s, len, &f, why))
					return false;
				*value = Float4GetDatum(f);
				return true;
			}
		case DK_FLOAT8:
			{
				double		d;

				if (!scalar_text(tok, buf, sizeof(buf), &s, &len))
					return false;
				if (!JsonParseFloat8(s, len, &d, why))
					return false;
				*value = Float8GetDatum(d);
				return true;
			}
		case DK_NUMERIC:
			{
				uint8		flags;
				char	   *cstr;

				if (!scalar_text(tok, buf, sizeof(buf) - 1, &s, &len))
					return false;
				if (!(len == 3 && memcmp(s, "NaN", 3) == 0))
				{
					if (!JsonIsNumber(s, len, &flags))
						*why = "not a number";
					else if (flags & JTOK_F_BIGNUM)
						*why = "out of range for numeric";
					else if (!JsonNumericFits(s, len, typmod))
						*why = "too large for the column's numeric precision";
					if (*why)
						return false;
				}
				cstr = len < (int) sizeof(buf) ? buf : palloc(len + 1);
				memmove(cstr, s, len);
				cstr[len] = '\0';
				*value = DirectFunctionCall3(numeric_in, CStringGetDatum(cstr),
											 ObjectIdGetDatum(InvalidOid),
											 Int32GetDatum(typmod));
				return true;
			}
		case DK_BOOL:
			if (tok->type == JTOK_TRUE || tok->type == JTOK_FALSE)
			{
				*value = BoolGetDatum(tok->type == JTOK_TRUE);
				return true;
			}
			if (tok->type == JTOK_NUMBER && tok->len == 1 &&
				(tok->start[0] == '0' || tok->start[0] == '1'))
			{
				*value = BoolGetDatum(tok->start[0] == '1');
				return true;
			}
			if (tok->type == JTOK_STRING && scalar_text(tok, buf, sizeof(buf), &s, &len))
			{
				if ((len == 4 && pg_strncasecmp(s, "true", 4) == 0) ||
					(len == 1 && (s[0] == 't' || s[0] == 'T')))
				{
					*value = BoolGetDatum(true);
					return true;
				}
				if ((len == 5 && pg_strncasecmp(s, "false", 5) == 0) ||
					(len == 1 && (s[0] == 'f' || s[0] == 'F')))
				{
					*value = BoolGetDatum(false);
					return true;
				}
				*why = "not a boolean";
			}
			return false;
		case DK_TIMESTAMPTZ:
		case DK_TIMESTAMP:
		case DK_DATE:
			return decode_timestamp(kind, tok, value, why);
		case DK_UUID:
			{
				pg_uuid_t  *u;

				if (tok->type != JTOK_STRING && tok->type != JTOK_RAW)
					return false;
				u = palloc(sizeof(pg_uuid_t));
				if (!scalar_text(tok, buf, sizeof(buf), &s, &len) ||
					!JsonParseUuid(s, len, u->data))
				{
					*why = "not a uuid";
					return false;
				}
				*value = UUIDPGetDatum(u);
				return true;
			}
		case DK_JSONB:
			if (tok->type == JTOK_RAW)
				return false;
			return decode_jsonb(tok, value, why);
		case DK_JSON:
			if (tok->type == JTOK_RAW)
				return false;
			*value = PointerGetDatum(cstring_to_text_with_len(tok->start, tok->len));
			return true;
		case DK_BYTEA:
			{
				bytea	   *b;

				if (tok->type == JTOK_STRING)
					return decode_hex_bytea(tok, value, why);
				if (tok->type != JTOK_RAW)
					return false;
				b = palloc(VARHDRSZ + tok->len);
				SET_VARSIZE(b, VARHDRSZ + tok->len);
				memcpy(VARDATA(b), tok->start, tok->len);
				*value = PointerGetDatum(b);
				return true;
			}
		case DK_UNSUPPORTED:
			break;
	}
	return false;
}

/*
 * $headers as a jsonb object of strings; a value that is not UTF-8 is
 * written as "\x" and its bytes in hex, a null value as null.
 */
Datum
DecodeHeaders(const SourceMessage *msg)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;
	int			i;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < msg->nheaders; i++)
	{
		const SourceHeader *h = &msg->headers[i];
		JsonbValue	k,
					v;

		k.type = jbvString;
		k.val.string.val = (char *) (h->name ? h->name : "");
		k.val.string.len = strlen(k.val.string.val);
		if (!pg_verify_mbstr(PG_UTF8, k.val.string.val, k.val.string.len, true))
			continue;			/* not representable: left out */
		pushJsonbValue(&state, WJB_KEY, &k);
		if (h->value == NULL)
			v.type = jbvNull;
		else
		{
			v.type = jbvString;
			if (pg_verify_mbstr(PG_UTF8, h->value, h->len, true))
			{
				v.val.string.val = (char *) h->value;
				v.val.string.len = h->len;
			}
			else
			{
				char	   *hex = palloc(h->len * 2 + 3);
				size_t		j;

				hex[0] = '\\';
				hex[1] = 'x';
				for (j = 0; j < h->len; j++)
					snprintf(hex + 2 + j * 2, 3, "%02x", (unsigned char) h->value[j]);
				v.val.string.val = hex;
				v.val.string.len = h->len * 2 + 2;
			}
		}
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(result));
}
