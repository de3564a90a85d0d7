/*-------------------------------------------------------------------------
 * json_scan.c
 *		A one-pass JSON scanner and the parsers of JSON scalars, for decode.c.
 *
 * JsonScan() validates a whole message (grammar, UTF-8, escapes, nesting)
 * in one pass and, while it goes, hands the values of the keys a decode plan
 * wants to their column slots as spans of the payload: nothing is copied and
 * nothing is allocated.  The scalar parsers turn such spans into integers,
 * floats, timestamps and uuids.
 *
 * The invariant: nothing here ever raises an error.  Bad input comes back as
 * false and a short static message, because the ingest path must turn it
 * into a dead letter instead of aborting the batch.  A span that JsonScan()
 * accepted is safe to hand to PostgreSQL's own json/jsonb/numeric input
 * functions, except where a JTOK_F_NUL or JTOK_F_BIGNUM flag says otherwise.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "decode/decode_int.h"

#include <errno.h>
#include <float.h>
#include <math.h>

#include "datatype/timestamp.h"
#include "utils/datetime.h"

/* Nesting limit: far below what the stack or jsonb could mind. */
#define JSON_MAX_DEPTH		200
/* Numbers beyond these cannot be handed to numeric_in() safely. */
#define JSON_MAX_DIGITS		1000
#define JSON_MAX_EXPONENT	1000
/* Keys longer than this match nothing (paths are limited to it too). */
#define JSON_MAX_KEY		255
/* Matches of one key in one object, at most (usually 1). */
#define JSON_MAX_MATCHES	8

typedef struct Scanner
{
	const unsigned char *p;
	const unsigned char *end;
	const unsigned char *buf;
	JsonScanSlot *slots;
	uint8		flags;			/* NUL/BIGNUM seen in the current value */
	const char *error;
	const unsigned char *error_at;
} Scanner;

static bool scan_value(Scanner *s, const JsonKeyNode *node, int depth,
					   JsonToken *tok);

/* Bytes a string can hold as they are: printable ASCII but '"' and '\\'. */
static const bool string_plain[256] = {
	[0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	[0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static inline bool
fail(Scanner *s, const char *error)
{
	if (s->error == NULL)
	{
		if (s->p >= s->end && strncmp(error, "invalid JSON", 12) == 0)
			error = "invalid JSON: unexpected end of input";
		s->error = error;
		s->error_at = s->p;
	}
	return false;
}

static inline void
skip_ws(Scanner *s)
{
	while (s->p < s->end &&
		   (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

/* Length of the well-formed UTF-8 sequence at p, or 0. */
static inline int
utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80,
				hi = 0xBF;
	int			n,
				i;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;			/* no surrogates */
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	}
	else
		return 0;
	if (end - p < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

static inline int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
hex4(const unsigned char *p)
{
	int			v = 0,
				i;

	for (i = 0; i < 4; i++)
	{
		int			h = hexval(p[i]);

		if (h < 0)
			return -1;
		v = (v << 4) | h;
	}
	return v;
}

/*
 * Scan a string at s->p (the opening quote).  Sets the content span (without
 * quotes) and whether it has escapes.
 */
static bool
scan_string(Scanner *s, const unsigned char **content, int *len, bool *escapes)
{
	const unsigned char *p = s->p + 1;
	const unsigned char *end = s->end;

	*escapes = false;
	for (;;)
	{
		unsigned char c;

		while (p < end && string_plain[*p])
			p++;
		if (p >= end)
		{
			s->p = p;
			return fail(s, "invalid JSON: unterminated string");
		}
		c = *p;
		if (c == '"')
			break;
		if (c == '\\')
		{
			*escapes = true;
			if (p + 1 >= end)
			{
				s->p = p;
				return fail(s, "invalid JSON: unterminated string");
			}
			switch (p[1])
			{
				case '"':
				case '\\':
				case '/':
				case 'b':
				case 'f':
				case 'n':
				case 'r':
				case 't':
					p += 2;
					break;
				case 'u':
					{
						int			cp = (end - p >= 6) ? hex4(p + 2) : -1;

						s->p = p;
						if (cp < 0)
							return fail(s, "invalid JSON: bad \\u escape");
						p += 6;
						if (cp == 0)
							s->flags |= JTOK_F_NUL;
						else if (cp >= 0xD800 && cp <= 0xDBFF)
						{
							int			lo = (end - p >= 6 && p[0] == '\\' && p[1] == 'u')
							? hex4(p + 2) : -1;

							if (lo < 0xDC00 || lo > 0xDFFF)
								return fail(s, "invalid JSON: unpaired Unicode surrogate");
							p += 6;
						}
						else if (cp >= 0xDC00 && cp <= 0xDFFF)
							return fail(s, "invalid JSON: unpaired Unicode surrogate");
					}
					break;
				default:
					s->p = p;
					return fail(s, "invalid JSON: bad escape");
			}
			continue;
		}
		if (c < 0x20)
		{
			s->p = p;
			return fail(s, c == 0 ? "invalid JSON: NUL byte in string"
						: "invalid JSON: control character in string");
		}
		else
		{
			int			n = utf8_seq(p, end);

			if (n == 0)
			{
				s->p = p;
				return fail(s, "invalid UTF-8");
			}
			p += n;
		}
	}
	*content = s->p + 1;
	*len = p - (s->p + 1);
	s->p = p + 1;
	return true;
}

static bool
scan_number(Scanner *s, JsonToken *tok)
{
	const unsigned char *p = s->p;
	const unsigned char *end = s->end;
	int			digits = 0;
	int			exp = 0;
	bool		integral = true;

	if (p < end && *p == '-')
		p++;
	if (p >= end || *p < '0' || *p > '9')
	{
		s->p = p;
		return fail(s, "invalid JSON: bad number");
	}
	if (*p == '0')
		p++, digits++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++, digits++;
	if (p < end && *p == '.')
	{
		p++;
		integral = false;
		if (p >= end || *p < '0' || *p > '9')
		{
			s->p = p;
			return fail(s, "invalid JSON: bad number");
		}
		while (p < end && *p >= '0' && *p <= '9')
			p++, digits++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		integral = false;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
		{
			s->p = p;
			return fail(s, "invalid JSON: bad number");
		}
		while (p < end && *p >= '0' && *p <= '9')
		{
			if (exp < 100000)
				exp = exp * 10 + (*p - '0');
			p++;
		}
	}
	if (digits > JSON_MAX_DIGITS || exp > JSON_MAX_EXPONENT)
		s->flags |= JTOK_F_BIGNUM;
	tok->type = JTOK_NUMBER;
	tok->flags = integral ? JTOK_F_INTEGRAL : 0;
	s->p = p;
	return true;
}

uint32
JsonKeyHash(const char *s, int len)
{
	uint32		h = 2166136261u;
	int			i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '_')
			continue;
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h = (h ^ c) * 16777619u;
	}
	return h;
}

/* Does camelCase key k, written in snake_case, equal name? */
static bool
camel_snake_equal(const char *k, int klen, const char *name, int nlen)
{
	int			i,
				j = 0;

	for (i = 0; i < klen; i++)
	{
		char		c = k[i];

		if (c >= 'A' && c <= 'Z')
		{
			char		prev = i > 0 ? k[i - 1] : 0;

			if ((prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9'))
			{
				if (j >= nlen || name[j] != '_')
					return false;
				j++;
			}
			c += 'a' - 'A';
		}
		if (j >= nlen || name[j] != c)
			return false;
		j++;
	}
	return j == nlen;
}

/*
 * How well key k matches an entry: 4 for an explicit path, then for the
 * default rule 3 exact, 2 camelCase to snake_case, 1 case-insensitive.
 */
static int
match_prio(const JsonKeyEntry *e, const char *k, int klen)
{
	if (klen == e->len && memcmp(k, e->name, klen) == 0)
		return e->fuzzy ? 3 : 4;
	if (!e->fuzzy)
		return 0;
	if (camel_snake_equal(k, klen, e->name, e->len))
		return 2;
	if (klen == e->len && pg_strncasecmp(k, e->name, klen) == 0)
		return 1;
	return 0;
}

static void
assign(JsonScanSlot *slots, const JsonKeyEntry *e, const JsonToken *tok,
	   int prio)
{
	int			i;

	for (i = 0; i < e->ncols; i++)
	{
		JsonScanSlot *slot = &slots[e->cols[i]];

		if (prio >= slot->prio)
		{
			slot->tok = *tok;
			slot->prio = prio;
		}
	}
}

/* A path continues through a value that is not an object. */
static void
mark_badshape(JsonScanSlot *slots, const JsonKeyNode *node, const JsonToken *tok)
{
	JsonToken	bad = *tok;
	int			i;

	bad.type = JTOK_BADSHAPE;
	bad.flags = tok->type;		/* what the path ran into */
	for (i = 0; i < node->nentries; i++)
	{
		assign(slots, &node->entries[i], &bad, 5);
		if (node->entries[i].child)
			mark_badshape(slots, node->entries[i].child, tok);
	}
}

static bool
scan_object(Scanner *s, const JsonKeyNode *node, int depth)
{
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}')
	{
		s->p++;
		return true;
	}
	for (;;)
	{
		const unsigned char *key;
		int			klen;
		bool		escapes;
		const JsonKeyEntry *matches[JSON_MAX_MATCHES];
		int			prios[JSON_MAX_MATCHES];
		int			nmatches = 0;
		const JsonKeyNode *child = NULL;
		JsonToken	tok;
		int			i;

		if (s->p >= s->end || *s->p != '"')
			return fail(s, "invalid JSON: expected a key");
		if (!scan_string(s, &key, &klen, &escapes))
			return false;
		skip_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return fail(s, "invalid JSON: expected ':'");
		s->p++;

		if (node != NULL && klen <= JSON_MAX_KEY * 6)
		{
			char		kbuf[JSON_MAX_KEY * 6];
			const char *k = (const char *) key;
			uint32		h;
			int			slot;

			if (escapes)
			{
				klen = JsonUnescape(k, klen, kbuf);
				k = kbuf;
			}
			h = JsonKeyHash(k, klen);
			for (slot = h & node->hashmask; node->hashtab[slot] != 0;
				 slot = (slot + 1) & node->hashmask)
			{
				const JsonKeyEntry *e = &node->entries[node->hashtab[slot] - 1];
				int			prio;

				if (e->hash != h || nmatches >= JSON_MAX_MATCHES)
					continue;
				prio = match_prio(e, k, klen);
				if (prio == 0)
					continue;
				matches[nmatches] = e;
				prios[nmatches++] = prio;
				if (e->child)
					child = e->child;
			}
		}

		if (!scan_value(s, child, depth + 1, &tok))
			return false;
		if (child && tok.type != JTOK_OBJECT && tok.type != JTOK_NULL)
			mark_badshape(s->slots, child, &tok);
		for (i = 0; i < nmatches; i++)
			assign(s->slots, matches[i], &tok, prios[i]);

		skip_ws(s);
		if (s->p < s->end && *s->p == ',')
		{
			s->p++;
			skip_ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == '}')
		{
			s->p++;
			return true;
		}
		return fail(s, "invalid JSON: expected ',' or '}'");
	}
}

static bool
scan_array(Scanner *s, int depth)
{
	JsonToken	tok;

	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == ']')
	{
		s->p++;
		return true;
	}
	for (;;)
	{
		if (!scan_value(s, NULL, depth + 1, &tok))
			return false;
		skip_ws(s);
		if (s->p < s->end && *s->p == ',')
		{
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']')
		{
			s->p++;
			return true;
		}
		return fail(s, "invalid JSON: expected ',' or ']'");
	}
}

static bool
scan_literal(Scanner *s, const char *word, int len, uint8 type, JsonToken *tok)
{
	if (s->end - s->p < len || memcmp(s->p, word, len) != 0)
		return fail(s, "invalid JSON: unexpected character");
	s->p += len;
	tok->type = type;
	return true;
}

static bool
scan_value(Scanner *s, const JsonKeyNode *node, int depth, JsonToken *tok)
{
	uint8		outer = s->flags;
	bool		ok;

	skip_ws(s);
	if (s->p >= s->end)
		return fail(s, "invalid JSON: unexpected end of input");
	if (depth > JSON_MAX_DEPTH)
		return fail(s, "invalid JSON: nested too deeply");
	s->flags = 0;
	tok->start = (const char *) s->p;
	tok->flags = 0;
	switch (*s->p)
	{
		case '{':
			tok->type = JTOK_OBJECT;
			ok = scan_object(s, node, depth);
			break;
		case '[':
			tok->type = JTOK_ARRAY;
			ok = scan_array(s, depth);
			break;
		case '"':
			{
				const unsigned char *content;
				int			len;
				bool		escapes;

				tok->type = JTOK_STRING;
				ok = scan_string(s, &content, &len, &escapes);
				if (escapes)
					tok->flags = JTOK_F_ESCAPES;
			}
			break;
		case 't':
			ok = scan_literal(s, "true", 4, JTOK_TRUE, tok);
			break;
		case 'f':
			ok = scan_literal(s, "false", 5, JTOK_FALSE, tok);
			break;
		case 'n':
			ok = scan_literal(s, "null", 4, JTOK_NULL, tok);
			break;
		case '-':
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
		case '8':
		case '9':
			ok = scan_number(s, tok);
			break;
		default:
			ok = fail(s, *s->p == 0 ? "invalid JSON: NUL byte"
					  : "invalid JSON: unexpected character");
	}
	tok->len = (const char *) s->p - tok->start;
	tok->flags |= s->flags;
	s->flags |= outer;
	return ok;
}

/*
 * Validate buf as one JSON value and, if root is given (then the value must
 * be an object), store the values of the keys root asks for in slots.
 * The caller clears the slots.  On failure, *error is a static message and
 * *error_at the byte offset where the scanner stopped.
 */
bool
JsonScan(const char *buf, size_t len, const JsonKeyNode *root,
		 JsonScanSlot *slots, JsonToken *whole,
		 const char **error, size_t *error_at)
{
	Scanner		s;

	s.buf = s.p = (const unsigned char *) buf;
	s.end = s.p + len;
	s.slots = slots;
	s.flags = 0;
	s.error = NULL;
	s.error_at = NULL;

	if (scan_value(&s, root, 1, whole))
	{
		skip_ws(&s);
		if (s.p < s.end)
			fail(&s, "invalid JSON: garbage after the value");
		else if (root && whole->type != JTOK_OBJECT)
			fail(&s, "the payload is not a JSON object");
	}
	if (s.error)
	{
		*error = s.error;
		*error_at = s.error_at - s.buf;
		return false;
	}
	return true;
}

/* Build the hash table of a node whose entries are filled in. */
void
JsonKeyNodeFinish(JsonKeyNode *node)
{
	int			size = 4;
	int			i;

	while (size < node->nentries * 2)
		size <<= 1;
	node->hashmask = size - 1;
	node->hashtab = palloc0(sizeof(int) * size);
	for (i = 0; i < node->nentries; i++)
	{
		JsonKeyEntry *e = &node->entries[i];
		int			slot;

		e->hash = JsonKeyHash(e->name, e->len);
		for (slot = e->hash & node->hashmask; node->hashtab[slot] != 0;
			 slot = (slot + 1) & node->hashmask)
			;
		node->hashtab[slot] = i + 1;
		if (e->child)
			JsonKeyNodeFinish(e->child);
	}
}

static int
utf8_put(unsigned int cp, char *dst)
{
	if (cp < 0x80)
	{
		dst[0] = cp;
		return 1;
	}
	if (cp < 0x800)
	{
		dst[0] = 0xC0 | (cp >> 6);
		dst[1] = 0x80 | (cp & 0x3F);
		return 2;
	}
	if (cp < 0x10000)
	{
		dst[0] = 0xE0 | (cp >> 12);
		dst[1] = 0x80 | ((cp >> 6) & 0x3F);
		dst[2] = 0x80 | (cp & 0x3F);
		return 3;
	}
	dst[0] = 0xF0 | (cp >> 18);
	dst[1] = 0x80 | ((cp >> 12) & 0x3F);
	dst[2] = 0x80 | ((cp >> 6) & 0x3F);
	dst[3] = 0x80 | (cp & 0x3F);
	return 4;
}

/*
 * Unescape the content of a validated JSON string into dst, which has room
 * for len bytes (the result is never longer).  Returns the length.
 */
int
JsonUnescape(const char *s, int len, char *dst)
{
	const char *end = s + len;
	char	   *d = dst;

	while (s < end)
	{
		if (*s != '\\')
		{
			*d++ = *s++;
			continue;
		}
		switch (s[1])
		{
			case 'b':
				*d++ = '\b';
				break;
			case 'f':
				*d++ = '\f';
				break;
			case 'n':
				*d++ = '\n';
				break;
			case 'r':
				*d++ = '\r';
				break;
			case 't':
				*d++ = '\t';
				break;
			case 'u':
				{
					unsigned int cp = hex4((const unsigned char *) s + 2);

					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						unsigned int lo = hex4((const unsigned char *) s + 8);

						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						s += 6;
					}
					d += utf8_put(cp, d);
					s += 6;
					continue;
				}
			default:			/* " \ / */
				*d++ = s[1];
		}
		s += 2;
	}
	return d - dst;
}
