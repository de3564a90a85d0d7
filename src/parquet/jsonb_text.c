/*-------------------------------------------------------------------------
 * jsonb_text.c
 *		The text of a jsonb value, as jsonb's own output function writes it,
 *		for the Parquet export of jsonb columns.
 *
 * jsonb_out (JsonbToCString) is most of the cost of exporting a row with a
 * JSON payload: it copies every string before escaping it byte by byte, and
 * prints every number through numeric_out, which allocates a few times per
 * number.  This writes the same text, byte for byte ("{"k": v, "k2": [1,
 * 2]}": ", " between members and elements, ": " after keys, escapes as
 * escape_json writes them), but copies unescaped runs of a string at once
 * and prints numbers straight from their digits.  It reads the stored
 * containers directly (header, entries, data: the on-disk format that
 * jsonb.h defines and pg_upgrade keeps stable) instead of through
 * JsonbIteratorNext, which filled a JsonbValue for every token and
 * allocated an iterator for every container: together a fifth of the
 * backend's instructions when exporting JSON payloads.
 *
 * The one invariant: the output equals JsonbToCString's.  Numbers are read
 * from the stored numeric's header and base-10000 digits; anything else
 * (NaN and infinities cannot appear in jsonb, but a format this code does
 * not know could) goes through numeric_out.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include "fmgr.h"
#include "miscadmin.h"
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
	int			need;
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
	need = 3 + (Max(weight, 0) + 1) * NBASE_DIGITS + dscale + NBASE_DIGITS;
	if (out->len + need >= out->maxlen)
		enlargeStringInfo(out, need);
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

#define BYTES_OF(c)		(UINT64CONST(0x0101010101010101) * (c))

/*
 * The length of the longest prefix of s[0..len) that needs no escape: no
 * byte below 0x20, no '"', no '\\'.  Eight bytes at a time: a word has such
 * a byte when a zero-byte test on (x - 0x20..), (x ^ '"'..) or (x ^ '\\'..)
 * fires (exact when none does); the word that fires is finished bytewise.
 */
static inline int
plain_prefix(const char *s, int len)
{
	const uint64 high = BYTES_OF(0x80);
	int			i = 0;

	for (; i + 8 <= len; i += 8)
	{
		uint64		x,
					q,
					b;

		memcpy(&x, s + i, 8);
		q = x ^ BYTES_OF('"');
		b = x ^ BYTES_OF('\\');
		if ((((x - BYTES_OF(0x20)) & ~x) | ((q - BYTES_OF(1)) & ~q) |
			 ((b - BYTES_OF(1)) & ~b)) & high)
			break;
	}
	while (i < len && (unsigned char) s[i] >= 0x20 && s[i] != '"' && s[i] != '\\')
		i++;
	return i;
}

/* Appends a JSON string literal, escaped as escape_json does it. */
static void
append_string(StringInfo out, const char *s, int len)
{
	const char *end = s + len;

	/* room for the common case: no escapes, plus the quotes */
	if (out->len + len + 2 >= out->maxlen)
		enlargeStringInfo(out, len + 2);
	out->data[out->len++] = '"';
	s += plain_prefix(s, len);
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

		s += plain_prefix(s, end - s);
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

/* Where entry je ends, in its container's data, given where it starts. */
static inline uint32
entry_end(JEntry je, uint32 start)
{
	return JBE_HAS_OFF(je) ? JBE_OFFLENFLD(je) : start + JBE_OFFLENFLD(je);
}

static void append_container(StringInfo out, const JsonbContainer *c);

/*
 * Appends the value of entry je, whose data is at base + start and ends at
 * base + end (numbers and containers start at the next int boundary).
 */
static void
append_entry(StringInfo out, JEntry je, const char *base, uint32 start, uint32 end)
{
	switch (je & JENTRY_TYPEMASK)
	{
		case JENTRY_ISSTRING:
			append_string(out, base + start, (int) (end - start));
			break;
		case JENTRY_ISNUMERIC:
			append_numeric(out, (Numeric) (base + INTALIGN(start)));
			break;
		case JENTRY_ISBOOL_TRUE:
			append_bytes(out, "true", 4);
			break;
		case JENTRY_ISBOOL_FALSE:
			append_bytes(out, "false", 5);
			break;
		case JENTRY_ISNULL:
			append_bytes(out, "null", 4);
			break;
		case JENTRY_ISCONTAINER:
			append_container(out, (const JsonbContainer *) (base + INTALIGN(start)));
			break;
		default:
			elog(ERROR, "unknown jsonb entry type %u", je & JENTRY_TYPEMASK);
	}
}

/*
 * Appends an object ("{"k": v, ...}") or array ("[v, ...]"), in storage
 * order, which is the order jsonb_out prints.  An object's entries are its
 * keys, then its values; each entry holds its length, or every
 * JB_OFFSET_STRIDE-th its end offset, so both are walked in step.
 */
static void
append_container(StringInfo out, const JsonbContainer *c)
{
	uint32		count = c->header & JB_CMASK;
	const JEntry *e = c->children;
	uint32		i;

	check_stack_depth();
	if (c->header & JB_FOBJECT)
	{
		const char *base = (const char *) (e + 2 * count);
		uint32		k = 0;		/* where key i starts */
		uint32		v = count > 0 ? getJsonbOffset(c, count) : 0;	/* value i */

		append_bytes(out, "{", 1);
		for (i = 0; i < count; i++)
		{
			uint32		kend = entry_end(e[i], k);
			uint32		vend = entry_end(e[count + i], v);

			if (i > 0)
				append_bytes(out, ", ", 2);
			append_string(out, base + k, (int) (kend - k));
			append_bytes(out, ": ", 2);
			append_entry(out, e[count + i], base, v, vend);
			k = kend;
			v = vend;
		}
		append_bytes(out, "}", 1);
	}
	else
	{
		const char *base = (const char *) (e + count);
		uint32		at = 0;

		append_bytes(out, "[", 1);
		for (i = 0; i < count; i++)
		{
			uint32		end = entry_end(e[i], at);

			if (i > 0)
				append_bytes(out, ", ", 2);
			append_entry(out, e[i], base, at, end);
			at = end;
		}
		append_bytes(out, "]", 1);
	}
}

/* Appends the text of a jsonb document to out, as jsonb_out writes it. */
void
JsonbAppendText(StringInfo out, JsonbContainer *root)
{
	/* a bare scalar is stored as a one-element array, printed without brackets */
	if ((root->header & JB_FSCALAR) && (root->header & JB_CMASK) == 1)
	{
		JEntry		je = root->children[0];

		append_entry(out, je, (const char *) (root->children + 1), 0, entry_end(je, 0));
		return;
	}
	append_container(out, root);
}
