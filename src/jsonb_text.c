/*-------------------------------------------------------------------------
 * jsonb_text.c
 *		The text of a jsonb value, as jsonb's own output function writes it,
 *		for the Parquet export of jsonb columns.
 *
 * jsonb_out (JsonbToCString) is most of the cost of exporting a row with a
 * JSON payload: it copies every string before escaping it byte by byte, and
 * prints every number through numeric_out, which allocates a few times per
 * number.  This walks the same tokens and writes the same text, byte for
 * byte ("{"k": v, "k2": [1, 2]}": ", " between members and elements, ": "
 * after keys, escapes as escape_json writes them), but copies unescaped runs
 * of a string at once and prints numbers straight from their digits.
 *
 * The one invariant: the output equals JsonbToCString's.  Numbers are read
 * from the stored numeric's header and base-10000 digits (the on-disk
 * format, which pg_upgrade keeps stable); anything else (NaN and infinities
 * cannot appear in jsonb, but a format this code does not know could) goes
 * through numeric_out.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* The header bits of a stored numeric (see the top of numeric.c). */
#define NUM_SIGN_MASK		0xC000
#define NUM_NEG				0x4000
#define NUM_SHORT			0x8000
#define NUM_SPECIAL			0xC000
#define NUM_SHORT_SIGN		0x2000
#define NUM_SHORT_DSCALE	0x1F80
#define NUM_SHORT_DSCALE_SHIFT 7
#define NUM_SHORT_WSIGN		0x0040
#define NUM_SHORT_WEIGHT	0x003F
#define NUM_DSCALE_MASK		0x3FFF
#define NBASE_DIGITS		4

/* "0000" to "9999": a base-10000 digit group is one 4-byte copy */
static char group_text[10000][NBASE_DIGITS];
static bool group_text_ready = false;

static void
init_group_text(void)
{
	int			i;

	for (i = 0; i < 10000; i++)
	{
		group_text[i][0] = '0' + i / 1000;
		group_text[i][1] = '0' + (i / 100) % 10;
		group_text[i][2] = '0' + (i / 10) % 10;
		group_text[i][3] = '0' + i % 10;
	}
	group_text_ready = true;
}

/* Appends len bytes, the StringInfo way but inline: separators and quotes. */
static inline void
append_bytes(StringInfo out, const char *p, int len)
{
	if (out->len + len >= out->maxlen)
		enlargeStringInfo(out, len);
	memcpy(out->data + out->len, p, len);
	out->len += len;
	out->data[out->len] = '\0';
}

static inline int
get_digit(const char *digits, int i)
{
	int16		d;

	memcpy(&d, digits + i * sizeof(int16), sizeof(int16));
	return d;
}

/* Appends the text of a numeric as numeric_out writes it. */
static void
append_numeric(StringInfo out, Numeric num)
{
	const char *p = VARDATA_ANY(num);
	size_t		len = VARSIZE_ANY_EXHDR(num);
	uint16		header;
	bool		neg;
	int			dscale;
	int			weight;
	const char *digits;			/* int16 each, maybe unaligned */
	int			ndigits;
	int			pos;
	char	   *cp;

	if (len < sizeof(uint16))
		goto fallback;
	memcpy(&header, p, sizeof(uint16));
	if ((header & NUM_SIGN_MASK) == NUM_SHORT)
	{
		neg = (header & NUM_SHORT_SIGN) != 0;
		dscale = (header & NUM_SHORT_DSCALE) >> NUM_SHORT_DSCALE_SHIFT;
		weight = (header & NUM_SHORT_WSIGN) ? (int) (header | ~NUM_SHORT_WEIGHT)
			: (int) (header & NUM_SHORT_WEIGHT);
		p += sizeof(uint16);
		len -= sizeof(uint16);
	}
	else if ((header & NUM_SIGN_MASK) != NUM_SPECIAL && len >= 2 * sizeof(uint16))
	{
		int16		w;

		neg = (header & NUM_SIGN_MASK) == NUM_NEG;
		dscale = header & NUM_DSCALE_MASK;
		memcpy(&w, p + sizeof(uint16), sizeof(int16));
		weight = w;
		p += 2 * sizeof(uint16);
		len -= 2 * sizeof(uint16);
	}
	else
		goto fallback;
	if (len % sizeof(int16) != 0)
		goto fallback;
	digits = p;
	ndigits = len / sizeof(int16);

	/*
	 * Digit group i stands for NBASE^(weight - i).  At most: a sign, the
	 * integer groups, a point and dscale digits (plus a group of slack).
	 */
	enlargeStringInfo(out, 3 + (Max(weight, 0) + 1) * NBASE_DIGITS + dscale + NBASE_DIGITS);
	cp = out->data + out->len;
	if (neg)
		*cp++ = '-';
	if (weight < 0)
		*cp++ = '0';
	if (!group_text_ready)
		init_group_text();
	for (pos = weight; pos >= 0; pos--)
	{
		int			i = weight - pos;
		int			dig = i < ndigits ? get_digit(digits, i) : 0;

		if (dig < 0 || dig >= 10000)
			goto fallback;
		if (pos < weight)
		{
			memcpy(cp, group_text[dig], NBASE_DIGITS);
			cp += NBASE_DIGITS;
		}
		else
		{
			/* the first group is written without leading zeros */
			int			skip = dig >= 1000 ? 0 : dig >= 100 ? 1 : dig >= 10 ? 2 : 3;

			memcpy(cp, group_text[dig] + skip, NBASE_DIGITS - skip);
			cp += NBASE_DIGITS - skip;
		}
	}
	if (dscale > 0)
	{
		char	   *end;

		*cp++ = '.';
		end = cp + dscale;
		for (pos = -1; cp < end; pos--)
		{
			int			i = weight - pos;
			int			dig = (i >= 0 && i < ndigits) ? get_digit(digits, i) : 0;

			if (dig < 0 || dig >= 10000)
				goto fallback;
			memcpy(cp, group_text[dig], NBASE_DIGITS);
			cp += NBASE_DIGITS;
		}
		cp = end;
	}
	out->len = cp - out->data;
	out->data[out->len] = '\0';
	return;

fallback:
	appendStringInfoString(out, DatumGetCString(DirectFunctionCall1(numeric_out,
																	NumericGetDatum(num))));
}

/* Appends a JSON string literal, escaped as escape_json does it. */
static void
append_string(StringInfo out, const char *s, int len)
{
	const char *end = s + len;

	/* room for the common case: no escapes, plus the quotes */
	enlargeStringInfo(out, len + 2);
	out->data[out->len++] = '"';
	while (s < end && (unsigned char) *s >= 0x20 && *s != '"' && *s != '\\')
		s++;
	if (s == end)
	{
		/* nothing to escape: one copy */
		memcpy(out->data + out->len, end - len, len);
		out->data[out->len + len] = '"';
		out->len += len + 1;
		out->data[out->len] = '\0';
		return;
	}
	s = end - len;
	while (s < end)
	{
		const char *run = s;
		unsigned char ch;

		while (s < end && (unsigned char) *s >= 0x20 && *s != '"' && *s != '\\')
			s++;
		if (s > run)
			appendBinaryStringInfo(out, run, s - run);
		if (s == end)
			break;
		ch = (unsigned char) *s++;
		switch (ch)
		{
			case '\b':
				appendBinaryStringInfo(out, "\\b", 2);
				break;
			case '\f':
				appendBinaryStringInfo(out, "\\f", 2);
				break;
			case '\n':
				appendBinaryStringInfo(out, "\\n", 2);
				break;
			case '\r':
				appendBinaryStringInfo(out, "\\r", 2);
				break;
			case '\t':
				appendBinaryStringInfo(out, "\\t", 2);
				break;
			case '"':
				appendBinaryStringInfo(out, "\\\"", 2);
				break;
			case '\\':
				appendBinaryStringInfo(out, "\\\\", 2);
				break;
			default:
				appendStringInfo(out, "\\u%04x", (int) ch);
				break;
		}
	}
	appendStringInfoChar(out, '"');
}

static void
append_scalar(StringInfo out, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendBinaryStringInfo(out, "null", 4);
			break;
		case jbvString:
			append_string(out, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			append_numeric(out, v->val.numeric);
			break;
		case jbvBool:
			if (v->val.boolean)
				appendBinaryStringInfo(out, "true", 4);
			else
				appendBinaryStringInfo(out, "false", 5);
			break;
		default:
			elog(ERROR, "unknown jsonb scalar type %d", (int) v->type);
	}
}

/* Appends the text of a jsonb container to out, as jsonb_out writes it. */
void
JsonbAppendText(StringInfo out, JsonbContainer *root)
{
	JsonbIterator *it = JsonbIteratorInit(root);
	JsonbIteratorToken tok;
	JsonbValue	v;
	bool		first = true;
	bool		raw_scalar = false;
	int			depth = 0;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_ARRAY:
				if (!first)
					append_bytes(out, ", ", 2);
				if (depth == 0 && v.val.array.rawScalar)
					raw_scalar = true;
				else
					append_bytes(out, "[", 1);
				first = true;
				depth++;
				break;
			case WJB_BEGIN_OBJECT:
				if (!first)
					append_bytes(out, ", ", 2);
				append_bytes(out, "{", 1);
				first = true;
				depth++;
				break;
			case WJB_KEY:
				if (!first)
					append_bytes(out, ", ", 2);
				append_string(out, v.val.string.val, v.val.string.len);
				append_bytes(out, ": ", 2);
				/* the value follows without a separator */
				first = true;
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				if (!first)
					append_bytes(out, ", ", 2);
				append_scalar(out, &v);
				first = false;
				break;
			case WJB_END_ARRAY:
				depth--;
				if (!(depth == 0 && raw_scalar))
					append_bytes(out, "]", 1);
				first = false;
				break;
			case WJB_END_OBJECT:
				depth--;
				append_bytes(out, "}", 1);
				first = false;
				break;
			default:
				elog(ERROR, "unexpected jsonb token %d", (int) tok);
		}
	}
}
