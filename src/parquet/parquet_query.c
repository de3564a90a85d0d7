/*-------------------------------------------------------------------------
 * parquet_query.c
 *		A query's rows as Parquet files: the receiver behind write_parquet()
 *		and exports.
 *
 * The query runs through SPI with a DestReceiver that converts each row as
 * the executor produces it into per-column batches of PLAIN bytes, and hands
 * the writer BATCH_ROWS rows at a time, one column at a time; memory stays
 * bounded by a batch plus the one row group the writer buffers.  Arrays and
 * composite types are shredded into their leaf columns (parquet_shred.c).  Each
 * column's conversion is decided once from the result's tuple descriptor;
 * the per-row loop does no catalog lookups and no allocation.  The file is written as
 * "<path>.tmp.<pid>" next to the target, fsynced, and renamed (durably)
 * over it only when complete: a failed call removes its temporary file and
 * leaves any previous file untouched (a server crash can leave the
 * temporary file behind, never a partial <path>).
 *
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
	int			leaf;			/* the writer's column (the first of a nested one) */
	int			nleaves;
	ParquetShred *shred;		/* an array or composite: its leaves' batches */
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

static pg_attribute_always_inline void write_value(MemoryContext cxt, ParquetBuf *b, ConvKind kind,
												   const ParquetColumnSpec *spec, ColumnConv *conv,
												   Datum d, bool convert, StringInfo scratch);

/* write_value, for the elements and attributes of nested columns. */
void
ParquetWriteValue(MemoryContext cxt, ParquetBuf *b, ConvKind kind, const ParquetColumnSpec *spec,
				  ColumnConv *conv, Datum d, bool convert, StringInfo scratch)
{
	write_value(cxt, b, kind, spec, conv, d, convert, scratch);
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
	ParquetSchema *schema;		/* of every file, built once */
	ParquetLeafBatch *leaves;	/* of nested columns, by leaf number */
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
	d->writer = ParquetWriterCreateSchema(d->schema, d->opts, write, write_arg);
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
		int			k;

		if (b->shred)
		{
			for (k = b->leaf; k < b->leaf + b->nleaves; k++)
			{
				ParquetLeafBatch *l = &d->leaves[k];

				ParquetWriteLeaf(d->writer, k, l->plain.data, l->plain.len, l->nvalues,
								 (const uint8 *) l->defs.data,
								 l->repeated ? (const uint8 *) l->reps.data : NULL,
								 (int64) l->defs.len);
				l->plain.len = l->defs.len = l->reps.len = 0;
				l->nvalues = 0;
			}
			continue;
		}
		ParquetWriteColumn(d->writer, b->leaf, b->plain.data, b->plain.len,
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
	ParquetNode *fields;
	int			i;

	d->ncols = tupdesc->natts;
	if (d->ncols == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("write_parquet needs a query with at least one column")));
	d->specs = palloc0(sizeof(ParquetColumnSpec) * d->ncols);
	d->convs = palloc0(sizeof(ColumnConv) * d->ncols);
	d->batch = palloc0(sizeof(ColumnBatch) * d->ncols);
	fields = palloc0(sizeof(ParquetNode) * d->ncols);
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
		if (ParquetTypeIsNested(att->atttypid, att->atttypmod))
		{
			d->batch[i].shred = ParquetShredPlan(att->atttypid, att->atttypmod,
												 d->specs[i].name, &fields[i]);
			continue;
		}
		ParquetMapType(att->atttypid, att->atttypmod, &d->specs[i], &d->convs[i]);
		fields[i].name = d->specs[i].name;
		fields[i].kind = PARQUET_NODE_LEAF;
		fields[i].spec = &d->specs[i];
		d->batch[i].kind = d->convs[i].kind;
		d->batch[i].spec = &d->specs[i];
		d->batch[i].conv = &d->convs[i];
		d->batch[i].defs = palloc(BATCH_ROWS);
	}
	/* the schema of every file, and each column's leaves in it */
	d->schema = ParquetSchemaBuild(d->cxt, fields, d->ncols);
	d->leaves = palloc0(sizeof(ParquetLeafBatch) * Max(d->schema->nleaves, 1));
	for (i = 0; i < d->ncols; i++)
	{
		ParquetSchemaNode *node = &d->schema->root.children[i];
		ParquetSchemaNode *n = node;

		/* its leaves are contiguous: the first is the leftmost */
		while (n->logical != PARQUET_NODE_LEAF)
			n = &n->children[0];
		d->batch[i].leaf = n->leaf;
		d->batch[i].nleaves = 1;
		if (d->batch[i].shred)
		{
			n = node;
			while (n->logical != PARQUET_NODE_LEAF)
				n = &n->children[n->nchildren - 1];
			d->batch[i].nleaves = n->leaf - d->batch[i].leaf + 1;
			ParquetShredBind(d->batch[i].shred, node, d->leaves);
		}
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
		if (unlikely(b->shred != NULL))
		{
			full |= ParquetShredValue(b->shred, values[i], isnull[i], convert, &d->scratch);
			continue;
		}
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
