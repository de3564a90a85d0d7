/*-------------------------------------------------------------------------
 * decode/decode_int.h
 *		The decoder's own declarations: the JSON scanner and value parsers.
 *
 * Nothing outside src/decode/ includes it.
 *-------------------------------------------------------------------------
 */
#ifndef DECODE_DECODE_INT_H
#define DECODE_DECODE_INT_H

#include "decode/decode.h"

/* in json_scan.c */

/* JSON value kinds as the scanner reports them. */
typedef enum JsonTokenType
{
	JTOK_NONE = 0,				/* absent */
	JTOK_NULL,
	JTOK_FALSE,
	JTOK_TRUE,
	JTOK_NUMBER,
	JTOK_STRING,				/* span includes the quotes */
	JTOK_OBJECT,
	JTOK_ARRAY,
	JTOK_RAW,					/* not JSON: raw bytes taken as a string */
	JTOK_BADSHAPE				/* a path went through a non-object value */
} JsonTokenType;

#define JTOK_F_ESCAPES	0x01	/* a string with backslash escapes */
#define JTOK_F_NUL		0x02	/* holds a \u0000 escape somewhere */
#define JTOK_F_BIGNUM	0x04	/* holds a number beyond numeric's safe range */
#define JTOK_F_INTEGRAL	0x08	/* a number without fraction or exponent */

/* A value found in a message: a span of the (validated) payload. */
typedef struct JsonToken
{
	const char *start;
	int			len;
	uint8		type;
	uint8		flags;
} JsonToken;

/* What the scanner stores for a column: the best match so far. */
typedef struct JsonScanSlot
{
	JsonToken	tok;
	int			prio;
} JsonScanSlot;

/* Keys to look for in one JSON object, built once per plan. */
typedef struct JsonKeyNode JsonKeyNode;
typedef struct JsonKeyEntry
{
	const char *name;
	int			len;
	uint32		hash;			/* JsonKeyHash(name) */
	bool		fuzzy;			/* default rule: camelCase/case-insensitive */
	int			ncols;
	int		   *cols;			/* slots that take this key's value */
	JsonKeyNode *child;			/* keys wanted inside it, or NULL */
} JsonKeyEntry;

struct JsonKeyNode
{
	int			nentries;
	JsonKeyEntry *entries;
	int			hashmask;
	int		   *hashtab;		/* entry index + 1, 0 = empty */
};

extern uint32 JsonKeyHash(const char *s, int len);
extern void JsonKeyNodeFinish(JsonKeyNode *node);
extern bool JsonScan(const char *buf, size_t len, const JsonKeyNode *root,
					 JsonScanSlot *slots, JsonToken *whole,
					 const char **error, size_t *error_at);
extern int	JsonUnescape(const char *s, int len, char *dst);

/* in json_scalar.c */
extern bool JsonIsNumber(const char *s, int len, uint8 *flags);
extern bool JsonParseInt64(const char *s, int len, int64 *out,
						   const char **error);
extern bool JsonParseFloat8(const char *s, int len, double *out,
							const char **error);
extern bool JsonParseFloat4(const char *s, int len, float *out,
							const char **error);
extern bool JsonNumericFits(const char *s, int len, int32 typmod);
extern bool JsonParseTimestamp(const char *s, int len, int64 *out,
							   const char **error);
extern bool JsonEpochToTimestamp(const char *s, int len, int64 *out,
								 const char **error);
extern bool JsonParseUuid(const char *s, int len, unsigned char *out);

/* in decode_value.c */

/* The column types the decoder fills. */
typedef enum DecodeKind
{
	DK_TEXT,
	DK_VARCHAR,
	DK_INT2,
	DK_INT4,
	DK_INT8,
	DK_FLOAT4,
	DK_FLOAT8,
	DK_NUMERIC,
	DK_BOOL,
	DK_TIMESTAMPTZ,
	DK_TIMESTAMP,
	DK_DATE,
	DK_UUID,
	DK_JSONB,
	DK_JSON,
	DK_BYTEA,					/* only from $payload and $key */
	DK_UNSUPPORTED
} DecodeKind;

extern bool DecodeValue(DecodeKind kind, int32 typmod, const JsonToken *tok,
						Datum *value, const char **why);
extern Datum DecodeHeaders(const SourceMessage *msg);

/* in decode.c: a compiled plan (decode.h), shared with decode_fields.c */

typedef enum DecodeSource
{
	DS_NONE,					/* left out: NULL or the column default */
	DS_JSON,					/* a key path in the payload */
	DS_PAYLOAD,
	DS_TOPIC,
	DS_PARTITION,
	DS_OFFSET,
	DS_KEY,
	DS_TIMESTAMP,
	DS_HEADERS,
	/* MQTT (issue 19) */
	DS_TOPIC_LEVEL,				/* $topic[n]: level n of the topic, from 0 */
	DS_QOS,
	DS_RETAIN
} DecodeSource;

typedef struct DecodeColumn
{
	char	   *name;
	char	   *path;			/* the mapping's text, for reasons */
	DecodeSource source;
	DecodeKind	kind;
	Oid			typid;
	int32		typmod;
	bool		notnull;
	bool		hasdefault;		/* DEFAULT or identity */
	int			level;			/* DS_TOPIC_LEVEL: which */
} DecodeColumn;

struct DecodePlan
{
	Oid			relid;
	int			natts;
	DecodeColumn *cols;
	JsonKeyNode *root;			/* keys wanted, or NULL */
	bool		scan;			/* the payload must be valid JSON */
	JsonScanSlot *slots;		/* per column, cleared per message */
	bool	   *use_default;	/* per column, see DecodeUseDefault */
	uint64		fields_id;		/* the SourceFields field_of is for, 0: none */
	int		   *field_of;		/* per column: its field, or a FIELD_* */
};

#define FIELD_NONE		(-1)	/* no field of the column's name */
#define FIELD_NESTED	(-2)	/* a path into a field, which is a string */

extern bool DecodeColumns(DecodePlan *plan, const SourceMessage *msg,
						  const JsonToken *whole, Datum *values, bool *nulls,
						  const char **reason);

/* in decode_fields.c: a record already split into named fields (CSV) */
extern bool DecodeFields(DecodePlan *plan, const SourceMessage *msg,
						 Datum *values, bool *nulls, const char **reason);

#endif							/* DECODE_DECODE_INT_H */
