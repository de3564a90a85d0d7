/*-------------------------------------------------------------------------
 * write_parquet.c
 *		iotstream.write_parquet(query, path, options): the result of any
 *		query, written as a local Parquet file.
 *
 * The query runs through SPI with a DestReceiver that converts each row as
 * the executor produces it into per-column batches of PLAIN bytes, and hands
 * the writer BATCH_ROWS rows at a time, one column at a time; memory stays
 * bounded by a batch plus the one row group the writer buffers.  Each
 * column's conversion is decided once from the result's tuple descriptor;
 * the per-row loop does no catalog lookups and no allocation.  The file is written as
 * "<path>.tmp.<pid>" next to the target, fsynced, and renamed (durably)
 * over it only when complete: a failed call removes its temporary file and
 * leaves any previous file untouched (a server crash can leave the
 * temporary file behind, never a partial <path>).
 *
 * Type mapping (Postgres -> Parquet):
 *	bool -> BOOLEAN; int2 -> INT32 INT(16); int4 -> INT32 INT(32);
 *	int8 -> INT64 INT(64); float4 -> FLOAT; float8 -> DOUBLE;
 *	numeric(p,s) with 0 <= s <= p -> DECIMAL(p,s) as INT32 (p <= 9), INT64
 *	(p <= 18) or FIXED_LEN_BYTE_ARRAY (p <= 38); NaN is an error.
 *	numeric without a typmod, or wider than 38 digits -> STRING holding its
 *	exact text form (lossless);
 *	text, varchar, bpchar, name -> STRING; json, jsonb -> STRING (JSON);
 *	uuid -> FIXED_LEN_BYTE_ARRAY(16) UUID; bytea -> BYTE_ARRAY;
 *	timestamptz -> INT64 TIMESTAMP(MICROS, UTC); timestamp -> INT64
 *	TIMESTAMP(MICROS, local); date -> INT32 DATE (infinite dates and
 *	timestamps become the largest/smallest representable value, which
 *	DuckDB reads as infinity);
 *	anything else (domains map as their base type) -> STRING holding the
 *	type's text output.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include <math.h>
#include <unistd.h>

#include <zstd.h>

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#define MAX_METADATA 64

/* How one result column becomes Parquet values. */
typedef enum ConvKind
{
	CONV_BOOL,
	CONV_INT2,
	CONV_INT4,
	CONV_INT8,
	CONV_FLOAT4,
	CONV_FLOAT8,
	CONV_DECIMAL,
	CONV_VARLENA,				/* text, varchar, bpchar, json, bytea: raw bytes */
	CONV_NAME,
	CONV_JSONB,
	CONV_UUID,
	CONV_TIMESTAMP,
	CONV_DATE,
	CONV_OUTPUT					/* the type's text output */
} ConvKind;

typedef struct ColumnConv
{
	ConvKind	kind;
	bool		text;			/* a STRING: convert to UTF-8 if needed */
	FmgrInfo	out;			/* CONV_OUTPUT, CONV_DECIMAL */
} ColumnConv;

typedef struct WriteOptions
{
	ParquetWriterOptions w;
	const char **keys;
	const char **values;
} WriteOptions;

static void
bad_option(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid options for write_parquet"),
			 errdetail("%s", detail),
			 errhint("Valid options are compression (none, snappy, gzip, zstd), compression_level, compression_threads, row_group_size, page_size, dictionary, dictionary_size and metadata (an object of strings).")));
}

/* A size in bytes: a JSON number or a string with a unit such as "128MB". */
static int64
size_option(const char *key, JsonbValue *v)
{
	int			result;
	const char *hint = NULL;
	char	   *s;

	if (v->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString)
		s = pnstrdup(v->val.string.val, v->val.string.len);
	else
		s = NULL;
	if (s == NULL || !parse_int(s, &result, GUC_UNIT_BYTE, &hint) || result <= 0)
		bad_option(psprintf("Option \"%s\" must be a positive size in bytes, such as 1048576 or \"128MB\", of at most 2GB.", key));
	return result;
}

static char *
string_option(const char *key, JsonbValue *v)
{
	if (v->type != jbvString)
		bad_option(psprintf("Option \"%s\" must be a string.", key));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static void
parse_options(Jsonb *jb, WriteOptions *o)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken r;
	bool		have_level = false;
	int			level = 0;

	ParquetWriterDefaults(&o->w);
	o->keys = palloc0(sizeof(char *) * MAX_METADATA);
	o->values = palloc0(sizeof(char *) * MAX_METADATA);
	o->keys[0] = "iotstream.version";
	o->values[0] = IOTSTREAM_VERSION;
	o->w.nkv = 1;
	o->w.kv_keys = o->keys;
	o->w.kv_values = o->values;

	if (!JB_ROOT_IS_OBJECT(jb))
		bad_option("The options must be a JSON object.");
	it = JsonbIteratorInit(&jb->root);
	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (r != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		r = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "compression") == 0)
		{
			char	   *c = string_option(key, &v);

			if (strcmp(c, "none") == 0 || strcmp(c, "uncompressed") == 0)
				o->w.codec = PARQUET_CODEC_NONE;
			else if (strcmp(c, "snappy") == 0)
				o->w.codec = PARQUET_CODEC_SNAPPY;
			else if (strcmp(c, "gzip") == 0)
				o->w.codec = PARQUET_CODEC_GZIP;
			else if (strcmp(c, "zstd") == 0)
				o->w.codec = PARQUET_CODEC_ZSTD;
			else
				bad_option(psprintf("Compression \"%s\" is not supported.", c));
		}
		else if (strcmp(key, "compression_level") == 0)
		{
			if (v.type != jbvNumeric)
				bad_option("Option \"compression_level\" must be an integer.");
			level = DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(v.val.numeric)));
			have_level = true;
		}
		else if (strcmp(key, "row_group_size") == 0)
			o->w.row_group_bytes = size_option(key, &v);
		else if (strcmp(key, "page_size") == 0)
			o->w.page_bytes = size_option(key, &v);
		else if (strcmp(key, "dictionary_size") == 0)
			o->w.dictionary_bytes = size_option(key, &v);
		else if (strcmp(key, "compression_threads") == 0)
		{
			if (v.type != jbvNumeric)
				bad_option("Option \"compression_threads\" must be an integer between 1 and 8.");
			o->w.threads = DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(v.val.numeric)));
			if (o->w.threads < 1 || o->w.threads > 8)
				bad_option("Option \"compression_threads\" must be an integer between 1 and 8.");
		}
		else if (strcmp(key, "dictionary") == 0)
		{
			if (v.type != jbvBool)
				bad_option("Option \"dictionary\" must be true or false.");
			o->w.dictionary = v.val.boolean;
		}
		else if (strcmp(key, "metadata") == 0)
		{
			JsonbIterator *mit;
			JsonbValue	mv;

			if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
				bad_option("Option \"metadata\" must be an object of strings.");
			mit = JsonbIteratorInit(v.val.binary.data);
			while ((r = JsonbIteratorNext(&mit, &mv, true)) != WJB_DONE)
			{
				if (r != WJB_KEY)
					continue;
				if (o->w.nkv >= MAX_METADATA)
					bad_option("Option \"metadata\" has too many keys.");
				o->keys[o->w.nkv] = pnstrdup(mv.val.string.val, mv.val.string.len);
				r = JsonbIteratorNext(&mit, &mv, true);
				if (mv.type != jbvString)
					bad_option(psprintf("Metadata value \"%s\" must be a string.", o->keys[o->w.nkv]));
				o->values[o->w.nkv] = pnstrdup(mv.val.string.val, mv.val.string.len);
				o->w.nkv++;
			}
		}
		else
			bad_option(psprintf("Option \"%s\" is not recognized.", key));
	}

	if (have_level)
	{
		if (o->w.codec == PARQUET_CODEC_ZSTD &&
			(level < -7 || level > ZSTD_maxCLevel() || level == 0))
			bad_option("A zstd compression_level is between -7 and 22, and not 0.");
		else if (o->w.codec == PARQUET_CODEC_GZIP && (level < 1 || level > 9))
			bad_option("A gzip compression_level is between 1 and 9.");
		else if (o->w.codec != PARQUET_CODEC_ZSTD && o->w.codec != PARQUET_CODEC_GZIP)
			bad_option("Option \"compression_level\" applies only to zstd and gzip.");
		o->w.level = level;
	}
}

/* Writer options from write_parquet's options object (exports share them). */
void
ParquetParseOptions(Jsonb *jb, ParquetWriterOptions *w)
{
	WriteOptions o;

	parse_options(jb, &o);
	*w = o.w;
}

/* Bytes of a FIXED_LEN_BYTE_ARRAY that holds any DECIMAL of p digits. */
static int
decimal_bytes(int p)
{
	return (int) ceil((p * log2(10.0) + 1) / 8);
}

/* Decides the Parquet column and the conversion for one result column. */
static void
map_column(Form_pg_attribute att, ParquetColumnSpec *spec, ColumnConv *conv)
{
	int32		typmod = att->atttypmod;
	Oid			typid = getBaseTypeAndTypmod(att->atttypid, &typmod);

	spec->nullable = true;
	spec->logical = PARQUET_LOGICAL_NONE;
	conv->text = false;
	switch (typid)
	{
		case BOOLOID:
			spec->type = PARQUET_BOOLEAN;
			conv->kind = CONV_BOOL;
			return;
		case INT2OID:
			spec->type = PARQUET_INT32;
			spec->logical = PARQUET_LOGICAL_INT16;
			conv->kind = CONV_INT2;
			return;
		case INT4OID:
			spec->type = PARQUET_INT32;
			spec->logical = PARQUET_LOGICAL_INT32;
			conv->kind = CONV_INT4;
			return;
		case INT8OID:
			spec->type = PARQUET_INT64;
			spec->logical = PARQUET_LOGICAL_INT64;
			conv->kind = CONV_INT8;
			return;
		case FLOAT4OID:
			spec->type = PARQUET_FLOAT;
			conv->kind = CONV_FLOAT4;
			return;
		case FLOAT8OID:
			spec->type = PARQUET_DOUBLE;
			conv->kind = CONV_FLOAT8;
			return;
		case NUMERICOID:
			if (typmod >= (int32) VARHDRSZ)
			{
				int			p = ((typmod - VARHDRSZ) >> 16) & 0xffff;
				int			s = (((typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;

				if (p >= 1 && p <= 38 && s >= 0 && s <= p)
				{
					spec->logical = PARQUET_LOGICAL_DECIMAL;
					spec->precision = p;
					spec->scale = s;
					if (p <= 9)
						spec->type = PARQUET_INT32;
					else if (p <= 18)
						spec->type = PARQUET_INT64;
					else
					{
						spec->type = PARQUET_FIXED_LEN_BYTE_ARRAY;
						spec->type_length = decimal_bytes(p);
					}
					conv->kind = CONV_DECIMAL;
					fmgr_info(F_NUMERIC_OUT, &conv->out);
					return;
				}
			}
			break;				/* lossless as text */
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			spec->type = PARQUET_BYTE_ARRAY;
			spec->logical = PARQUET_LOGICAL_STRING;
			conv->kind = CONV_VARLENA;
			conv->text = true;
			return;
		case NAMEOID:
			spec->type = PARQUET_BYTE_ARRAY;
			spec->logical = PARQUET_LOGICAL_STRING;
			conv->kind = CONV_NAME;
			conv->text = true;
			return;
		case JSONOID:
			spec->type = PARQUET_BYTE_ARRAY;
			spec->logical = PARQUET_LOGICAL_JSON;
			conv->kind = CONV_VARLENA;
			conv->text = true;
			return;
		case JSONBOID:
			spec->type = PARQUET_BYTE_ARRAY;
			spec->logical = PARQUET_LOGICAL_JSON;
			conv->kind = CONV_JSONB;
			conv->text = true;
			return;
		case BYTEAOID:
			spec->type = PARQUET_BYTE_ARRAY;
			conv->kind = CONV_VARLENA;
			return;
		case UUIDOID:
			spec->type = PARQUET_FIXED_LEN_BYTE_ARRAY;
			spec->type_length = UUID_LEN;
			spec->logical = PARQUET_LOGICAL_UUID;
			conv->kind = CONV_UUID;
			return;
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
			spec->type = PARQUET_INT64;
			spec->logical = typid == TIMESTAMPTZOID ? PARQUET_LOGICAL_TIMESTAMP_UTC
				: PARQUET_LOGICAL_TIMESTAMP_LOCAL;
			conv->kind = CONV_TIMESTAMP;
			return;
		case DATEOID:
			spec->type = PARQUET_INT32;
			spec->logical = PARQUET_LOGICAL_DATE;
			conv->kind = CONV_DATE;
			return;
		default:
			break;
	}
	/* everything else: the text output of the column's own type */
	{
		Oid			outfn;
		bool		isvarlena;

		getTypeOutputInfo(att->atttypid, &outfn, &isvarlena);
		fmgr_info(outfn, &conv->out);
		spec->type = PARQUET_BYTE_ARRAY;
		spec->logical = PARQUET_LOGICAL_STRING;
		conv->kind = CONV_OUTPUT;
		conv->text = true;
	}
}

/* One column's values of the rows in the current batch, in PLAIN form. */
typedef struct ColumnBatch
{
	ConvKind	kind;			/* = conv->kind, next to the buffer */
	const ParquetColumnSpec *spec;
	ColumnConv *conv;
	ParquetBuf	plain;
	uint8	   *defs;			/* a definition level per row, kept from the
								 * batch's first null on */
	int			nnull;			/* rows without a value */
} ColumnBatch;

/* Room for extra more bytes in a batch buffer (it lives in cxt). */
static pg_attribute_always_inline char *
batch_room(MemoryContext cxt, ParquetBuf *b, size_t extra)
{
	if (b->len + extra > b->cap)
		ParquetBufReserve(cxt, b, extra);
	return b->data + b->len;
}

static pg_attribute_always_inline void
batch_int32(MemoryContext cxt, ParquetBuf *b, int32 v)
{
	memcpy(batch_room(cxt, b, 4), &v, 4);
	b->len += 4;
}

static pg_attribute_always_inline void
batch_int64(MemoryContext cxt, ParquetBuf *b, int64 v)
{
	memcpy(batch_room(cxt, b, 8), &v, 8);
	b->len += 8;
}

/*
 * A BYTE_ARRAY value: its length, then its bytes.  Short values (ids,
 * names, codes) are copied with two fixed-size moves that overlap, not a
 * call to memcpy.
 */
static pg_attribute_always_inline void
batch_bytes(MemoryContext cxt, ParquetBuf *b, const char *p, size_t len)
{
	char	   *o;
	uint32		len32 = (uint32) len;

	if (len > (size_t) PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value of %zu bytes is too long for a parquet column", len)));
	o = batch_room(cxt, b, len + 4);
	memcpy(o, &len32, 4);
	o += 4;
	if (len >= 8 && len <= 16)
	{
		memcpy(o, p, 8);
		memcpy(o + len - 8, p + len - 8, 8);
	}
	else if (len > 16 && len <= 32)
	{
		memcpy(o, p, 16);
		memcpy(o + len - 16, p + len - 16, 16);
	}
	else
		memcpy(o, p, len);
	b->len += len + 4;
}

/* A numeric(p,s) value as an unscaled integer: its text form, digit by digit. */
static void
write_decimal(MemoryContext cxt, ParquetBuf *b, const ParquetColumnSpec *spec,
			  ColumnConv *conv, Datum d)
{
	char	   *s = OutputFunctionCall(&conv->out, d);
	char	   *p = s;
	bool		neg = false;
	int			frac = -1;
	int			digits = 0;
	int128		v = 0;

	if (*p == '-')
	{
		neg = true;
		p++;
	}
	if (!isdigit((unsigned char) *p))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("cannot write numeric value \"%s\" to parquet column \"%s\"", s, spec->name),
				 errdetail("A Parquet DECIMAL holds neither NaN nor infinity."),
				 errhint("Filter the value out, or cast the column to float8 or text in the query.")));
	for (; *p; p++)
	{
		if (*p == '.')
		{
			frac = 0;
			continue;
		}
		v = v * 10 + (*p - '0');
		if (v != 0)
			digits++;
		if (frac >= 0)
			frac++;
	}
	if (frac < 0)
		frac = 0;
	for (; frac < spec->scale; frac++)
	{
		v *= 10;
		if (v != 0)
			digits++;
	}
	if (frac > spec->scale || digits > spec->precision)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("numeric value \"%s\" does not fit parquet column \"%s\" of type decimal(%d,%d)",
						s, spec->name, spec->precision, spec->scale)));
	if (neg)
		v = -v;
	if (spec->type == PARQUET_INT32)
		batch_int32(cxt, b, (int32) v);
	else if (spec->type == PARQUET_INT64)
		batch_int64(cxt, b, (int64) v);
	else
	{
		/* big-endian two's complement, the low type_length bytes */
		unsigned char be[16];
		int			i;
		uint128		u = (uint128) v;

		for (i = 15; i >= 0; i--)
		{
			be[i] = (unsigned char) (u & 0xFF);
			u >>= 8;
		}
		memcpy(batch_room(cxt, b, spec->type_length), be + 16 - spec->type_length,
			   spec->type_length);
		b->len += spec->type_length;
	}
	pfree(s);
}

static pg_attribute_always_inline void
write_string(MemoryContext cxt, ParquetBuf *b, bool convert, const char *p, size_t len)
{
	if (convert)
	{
		char	   *u = pg_server_to_any(p, (int) len, PG_UTF8);

		if (u != p)
		{
			batch_bytes(cxt, b, u, strlen(u));
			pfree(u);
			return;
		}
	}
	batch_bytes(cxt, b, p, len);
}

/*
 * A jsonb value's text, written straight into the batch after room for its
 * length (the text is most of a wide row: no copy through a scratch
 * buffer).  The batch buffer serves as a StringInfo meanwhile; a batch is
 * far below the 1GB a StringInfo may hold.
 */
static void
write_jsonb(MemoryContext cxt, ParquetBuf *b, Jsonb *jb)
{
	size_t		start = b->len;
	StringInfoData si;
	uint32		len32;

	/* the text is seldom much longer than the binary form */
	batch_room(cxt, b, 4 + 2 * (size_t) VARSIZE(jb) + 64);
	si.data = b->data;
	si.len = (int) (start + 4);
	si.maxlen = (int) Min(b->cap, (size_t) MaxAllocSize);
	si.cursor = 0;
	/* enlargeStringInfo's repalloc keeps the buffer in its own context */
	JsonbAppendText(&si, &jb->root);
	b->data = si.data;
	if ((size_t) si.maxlen > b->cap)
		b->cap = si.maxlen;
	len32 = (uint32) (si.len - start - 4);
	memcpy(b->data + start, &len32, 4);
	b->len = si.len;
}

/* Appends the PLAIN form of one non-null value to its column's batch. */
static pg_attribute_always_inline void
write_value(MemoryContext cxt, ParquetBuf *b, ConvKind kind, const ParquetColumnSpec *spec,
			ColumnConv *conv, Datum d, bool convert, StringInfo scratch)
{
	switch (kind)
	{
		case CONV_BOOL:
			*batch_room(cxt, b, 1) = DatumGetBool(d) ? 1 : 0;
			b->len++;
			break;
		case CONV_INT2:
			batch_int32(cxt, b, DatumGetInt16(d));
			break;
		case CONV_INT4:
			batch_int32(cxt, b, DatumGetInt32(d));
			break;
		case CONV_INT8:
			batch_int64(cxt, b, DatumGetInt64(d));
			break;
		case CONV_FLOAT8:
			{
				float8		f = DatumGetFloat8(d);

				memcpy(batch_room(cxt, b, 8), &f, 8);
				b->len += 8;
				break;
			}
		case CONV_FLOAT4:
			{
				float4		f = DatumGetFloat4(d);

				memcpy(batch_room(cxt, b, 4), &f, 4);
				b->len += 4;
				break;
			}
		case CONV_DECIMAL:
			write_decimal(cxt, b, spec, conv, d);
			break;
		case CONV_VARLENA:
			{
				struct varlena *v = (struct varlena *) DatumGetPointer(d);

				/* short (1-byte header) values are read in place, without a call */
				if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
					v = pg_detoast_datum_packed(v);

				write_string(cxt, b, convert && conv->text, VARDATA_ANY(v),
							 VARSIZE_ANY_EXHDR(v));
				break;
			}
		case CONV_NAME:
			{
				const char *n = NameStr(*DatumGetName(d));

				write_string(cxt, b, convert, n, strlen(n));
				break;
			}
		case CONV_JSONB:
			{
				Jsonb	   *jb = DatumGetJsonbP(d);

				if (convert)
				{
					resetStringInfo(scratch);
					JsonbAppendText(scratch, &jb->root);
					write_string(cxt, b, convert, scratch->data, scratch->len);
				}
				else
					write_jsonb(cxt, b, jb);
				break;
			}
		case CONV_UUID:
			memcpy(batch_room(cxt, b, UUID_LEN), DatumGetUUIDP(d)->data, UUID_LEN);
			b->len += UUID_LEN;
			break;
		case CONV_TIMESTAMP:
			{
				int64		t = DatumGetInt64(d);
				int64		u;

				if (TIMESTAMP_IS_NOBEGIN(t))
					u = -PG_INT64_MAX;
				else if (TIMESTAMP_IS_NOEND(t))
					u = PG_INT64_MAX;
				else if (pg_add_s64_overflow(t, (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY, &u))
					ereport(ERROR,
							(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
							 errmsg("timestamp out of range for parquet column \"%s\"", spec->name),
							 errdetail("Parquet timestamps count microseconds since 1970 in 64 bits.")));
				batch_int64(cxt, b, u);
				break;
			}
		case CONV_DATE:
			{
				DateADT		t = DatumGetDateADT(d);

				if (DATE_IS_NOBEGIN(t))
					batch_int32(cxt, b, -PG_INT32_MAX);
				else if (DATE_IS_NOEND(t))
					batch_int32(cxt, b, PG_INT32_MAX);
				else
					batch_int32(cxt, b, t + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE));
				break;
			}
		case CONV_OUTPUT:
			{
				char	   *s = OutputFunctionCall(&conv->out, d);

				write_string(cxt, b, convert, s, strlen(s));
				pfree(s);
				break;
			}
	}
}

static void
check_privileges(void)
{
	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_WRITE_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to write parquet files on the server"),
				 errdetail("iotstream.write_parquet writes files as the server's operating system user."),
				 errhint("Only superusers and members of pg_write_server_files may call it; GRANT pg_write_server_files TO the role.")));
}

/*
 * The executor hands each result row to this receiver, which converts it
 * into the column batches at once (no tuple is copied or materialized);
 * every BATCH_ROWS rows, or BATCH_BYTES of values, the batch goes to the
 * writer column by column, and per-row memory (detoasted values, text
 * output) is released.
 */
#define BATCH_ROWS 1024
#define BATCH_BYTES (4 * 1024 * 1024)

typedef struct ParquetDest
{
	DestReceiver pub;
	const ParquetWriterOptions *opts;
	ParquetQuerySinks *sinks;
	ParquetWriter *writer;		/* of the file being written; NULL between files */
	int			nfiles;
	int64		rows;			/* of finished files */
	int64		bytes;
	int			ncols;
	ParquetColumnSpec *specs;
	ColumnConv *convs;
	ColumnBatch *batch;
	int			nbatch;			/* rows in the batch */
	bool		convert;		/* server encoding is not UTF-8 */
	StringInfoData scratch;
	MemoryContext cxt;			/* outlives the executor: the writer lives here */
	MemoryContext row_cxt;
} ParquetDest;

static void
dest_open_file(ParquetDest *d)
{
	MemoryContext old = MemoryContextSwitchTo(d->cxt);
	ParquetWriteFn write;
	void	   *write_arg;

	d->sinks->open(d->sinks->arg, d->nfiles, &write, &write_arg);
	d->writer = ParquetWriterCreate(d->specs, d->ncols, d->opts, write, write_arg);
	MemoryContextSwitchTo(old);
}

/* Finishes the current file: footer, then the sink makes it complete. */
static void
dest_close_file(ParquetDest *d)
{
	ParquetWriterFinish(d->writer);
	d->sinks->close(d->sinks->arg, d->nfiles, d->writer);
	d->rows += ParquetWriterRows(d->writer);
	d->bytes += ParquetWriterBytes(d->writer);
	d->nfiles++;
	ParquetWriterDestroy(d->writer);
	d->writer = NULL;
}

/* Hands the batch to the writer; a file that has grown big enough ends. */
static void
dest_flush_batch(ParquetDest *d)
{
	int			i;

	if (d->nbatch == 0)
		return;
	if (d->writer == NULL)
		dest_open_file(d);
	for (i = 0; i < d->ncols; i++)
	{
		ColumnBatch *b = &d->batch[i];

		ParquetWriteColumn(d->writer, i, b->plain.data, b->plain.len,
						   d->nbatch - b->nnull, b->nnull > 0 ? b->defs : NULL,
						   d->nbatch);
		b->plain.len = 0;
		b->nnull = 0;
	}
	ParquetEndRows(d->writer, d->nbatch);
	d->nbatch = 0;
	MemoryContextReset(d->row_cxt);
	/* bytes reach the sink a row group at a time: files end on a row group */
	if (d->sinks->file_bytes > 0 && ParquetWriterBytes(d->writer) >= d->sinks->file_bytes)
		dest_close_file(d);
}

static void
dest_startup(DestReceiver *self, int operation, TupleDesc tupdesc)
{
	ParquetDest *d = (ParquetDest *) self;
	MemoryContext old = MemoryContextSwitchTo(d->cxt);
	int			i;

	d->ncols = tupdesc->natts;
	if (d->ncols == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("write_parquet needs a query with at least one column")));
	d->specs = palloc0(sizeof(ParquetColumnSpec) * d->ncols);
	d->convs = palloc0(sizeof(ColumnConv) * d->ncols);
	d->batch = palloc0(sizeof(ColumnBatch) * d->ncols);
	for (i = 0; i < d->ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		int			j;

		d->specs[i].name = pstrdup(NameStr(att->attname));
		/* Parquet readers need distinct column names */
		for (j = 0; j < i; j++)
			if (strcmp(d->specs[j].name, d->specs[i].name) == 0)
			{
				d->specs[i].name = psprintf("%s_%d", NameStr(att->attname), i + 1);
				j = -1;
			}
		map_column(att, &d->specs[i], &d->convs[i]);
		d->batch[i].kind = d->convs[i].kind;
		d->batch[i].spec = &d->specs[i];
		d->batch[i].conv = &d->convs[i];
		d->batch[i].defs = palloc(BATCH_ROWS);
	}
	initStringInfo(&d->scratch);
	d->row_cxt = AllocSetContextCreate(d->cxt, "write_parquet rows",
									   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(old);
	/* the first file exists even if the query returns no rows */
	dest_open_file(d);
}

static bool
dest_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ParquetDest *d = (ParquetDest *) self;
	MemoryContext old;
	MemoryContext cxt = d->cxt;
	int			row = d->nbatch;
	int			ncols = d->ncols;
	bool		convert = d->convert;
	bool		full = false;
	const Datum *values;
	const bool *isnull;
	ColumnBatch *b;
	int			i;

	old = MemoryContextSwitchTo(d->row_cxt);
	slot_getallattrs(slot);
	values = slot->tts_values;
	isnull = slot->tts_isnull;
	for (i = 0, b = d->batch; i < ncols; i++, b++)
	{
		if (isnull[i])
		{
			/* the rows before the batch's first null all had a value */
			if (b->nnull++ == 0)
				memset(b->defs, 1, row);
			b->defs[row] = 0;
			continue;
		}
		if (unlikely(b->nnull > 0))
			b->defs[row] = 1;
		write_value(cxt, &b->plain, b->kind, b->spec, b->conv, values[i],
					convert, &d->scratch);
		/* only byte arrays can fill a batch before its rows do */
		full |= b->plain.len >= BATCH_BYTES;
	}
	MemoryContextSwitchTo(old);
	if (++d->nbatch >= BATCH_ROWS || full)
		dest_flush_batch(d);
	return true;
}

static void
dest_shutdown(DestReceiver *self)
{
}

static void
dest_destroy(DestReceiver *self)
{
}

/*
 * Runs the query and writes every row to the files sinks opens, starting a
 * new file whenever the current one has reached sinks->file_bytes.  Returns
 * the number of files (at least one) and the rows and bytes written.
 */
int
ParquetWriteQuery(const char *query, const ParquetWriterOptions *opts,
				  ParquetQuerySinks *sinks, int64 *rows, int64 *bytes)
{
	SPIPlanPtr	plan;
	SPIExecuteOptions exec;
	ParquetDest dest;
	int			rc;

	plan = SPI_prepare_cursor(query, 0, NULL, CURSOR_OPT_NO_SCROLL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed: %s", SPI_result_code_string(SPI_result));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("write_parquet needs a query that returns rows"),
				 errhint("Pass a SELECT, VALUES or TABLE query.")));

	memset(&dest, 0, sizeof(dest));
	dest.pub.receiveSlot = dest_receive;
	dest.pub.rStartup = dest_startup;
	dest.pub.rShutdown = dest_shutdown;
	dest.pub.rDestroy = dest_destroy;
	dest.pub.mydest = DestNone;
	dest.opts = opts;
	dest.sinks = sinks;
	dest.cxt = CurrentMemoryContext;
	dest.convert = GetDatabaseEncoding() != PG_UTF8 &&
		GetDatabaseEncoding() != PG_SQL_ASCII;

	memset(&exec, 0, sizeof(exec));
	exec.read_only = true;
	exec.must_return_tuples = true;
	exec.dest = (DestReceiver *) &dest;
	rc = SPI_execute_plan_extended(plan, &exec);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan_extended failed: %s", SPI_result_code_string(rc));
	if (dest.specs == NULL)
		elog(ERROR, "write_parquet: the query produced no result description");
	dest_flush_batch(&dest);
	if (dest.writer != NULL)
		dest_close_file(&dest);
	*rows = dest.rows;
	*bytes = dest.bytes;
	return dest.nfiles;
}

/* write_parquet writes one local file through a ParquetFileSink. */
typedef struct LocalFile
{
	const char *path;
	ParquetFileSink *sink;
	int			row_groups;
} LocalFile;

static void
local_open(void *arg, int fileno, ParquetWriteFn *write, void **write_arg)
{
	LocalFile  *f = (LocalFile *) arg;

	f->sink = ParquetFileSinkOpen(f->path);
	*write = ParquetFileSinkWrite;
	*write_arg = f->sink;
}

static void
local_close(void *arg, int fileno, ParquetWriter *w)
{
	LocalFile  *f = (LocalFile *) arg;

	ParquetFileSinkClose(f->sink);
	f->sink = NULL;
	f->row_groups = ParquetWriterRowGroups(w);
}

PG_FUNCTION_INFO_V1(write_parquet);

/*
 * write_parquet(query text, path text, options jsonb,
 *				 OUT rows bigint, OUT bytes bigint, OUT row_groups int)
 */
Datum
write_parquet(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *options = PG_GETARG_JSONB_P(2);
	WriteOptions opts;
	char	   *tmppath;
	LocalFile	file;
	ParquetQuerySinks sinks;
	int64		rows;
	int64		bytes;
	TupleDesc	rettype;
	Datum		result[3];
	bool		isnull[3] = {false, false, false};

	check_privileges();
	if (get_call_result_type(fcinfo, NULL, &rettype) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (!is_absolute_path(path) || path[strlen(path) - 1] == '/')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parquet file path \"%s\" is not an absolute file name", path),
				 errhint("Pass the full path of the file to create, such as /var/lib/exports/data.parquet.")));
	parse_options(options, &opts);

	/* same directory, so that the final rename is atomic */
	tmppath = psprintf("%s.tmp.%d", path, MyProcPid);
	(void) unlink(tmppath);
	memset(&file, 0, sizeof(file));
	file.path = tmppath;
	memset(&sinks, 0, sizeof(sinks));
	sinks.open = local_open;
	sinks.close = local_close;
	sinks.arg = &file;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PG_TRY();
	{
		(void) ParquetWriteQuery(query, &opts.w, &sinks, &rows, &bytes);
		(void) durable_rename(tmppath, path, ERROR);
	}
	PG_CATCH();
	{
		/* no partial file stays behind; the fd is closed at abort */
		(void) unlink(tmppath);
		PG_RE_THROW();
	}
	PG_END_TRY();

	result[0] = Int64GetDatum(rows);
	result[1] = Int64GetDatum(bytes);
	result[2] = Int32GetDatum(file.row_groups);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(rettype, result, isnull)));
}
