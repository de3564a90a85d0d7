/*-------------------------------------------------------------------------
 * parquet_options.c
 *		The writer options of write_parquet() and exports, from JSON.
 *
 * Each option is checked here, with an error naming it and the values it
 * takes; what passes is a ParquetWriterOptions the writer trusts.
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

/* The writer's defaults, before any option. */
void
ParquetWriterDefaults(ParquetWriterOptions *opts)
{
	memset(opts, 0, sizeof(ParquetWriterOptions));
	opts->codec = PARQUET_CODEC_ZSTD;
	opts->row_group_bytes = INT64CONST(128) * 1024 * 1024;
	opts->page_bytes = 1024 * 1024;
	opts->dictionary_bytes = 1024 * 1024;
	opts->dictionary = true;
	opts->threads = 2;
}


#define MAX_METADATA 64


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

void
ParquetParseWriteOptions(Jsonb *jb, ParquetWriteOptions *o)
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
	ParquetWriteOptions o;

	ParquetParseWriteOptions(jb, &o);
	*w = o.w;
}
