/*-------------------------------------------------------------------------
 * parquet_writer.c
 *		A Parquet file encoder: flat schemas, data page v1, dictionary or
 *		PLAIN encoding, statistics, and snappy/gzip/zstd compression.
 *
 * It knows nothing of tuples or of where the bytes go: the caller declares
 * a schema of ParquetColumnSpec (or of nested ParquetNode), hands over
 * batches of rows one leaf column at a time (PLAIN bytes plus definition
 * levels, and repetition levels for nested leaves) and ends each batch, and the
 * file's bytes leave through a write callback in order (a local file sink
 * is provided; the export stage streams to Azure).
 *
 * The one invariant: at most one row group is buffered.  Values are kept
 * per column (dictionary indices or PLAIN bytes, plus definition levels for
 * nullable columns) until the plain size of the row group reaches
 * row_group_bytes; then every column chunk is cut into pages, compressed
 * (parquet_compress.c, on several threads) and written, the buffers are
 * emptied (keeping their capacity), and only the chunk metadata needed for
 * the footer is kept.  A PLAIN column does not wait for the end of the row
 * group: each time it holds a page's worth, at a row boundary, that page is
 * cut and compressed in the background while rows keep coming, and only the
 * compressed page stays in memory until the chunk is written.  Column 0's
 * chunk comes first in the row group, so its early pages do not even wait:
 * they are written as soon as they are compressed, and their buffers serve
 * the next pages.
 *
 * Dictionaries are built off the backend's thread, and given up when they
 * grow too big or do not pay (parquet_dict.c).  Statistics
 * (parquet_stats.c) are taken only when a value enters the dictionary, or
 * for every value once in PLAIN.
 *-------------------------------------------------------------------------
 */
#include "parquet_writer_int.h"

#include "utils/memutils.h"

/* Encodings and page types, as parquet.thrift numbers them. */
#define ENC_PLAIN			0
#define ENC_RLE				3
#define ENC_RLE_DICTIONARY	8
#define PAGE_DATA			0
#define PAGE_DICTIONARY		2

/* early pages queued for the compressor before the backend lends a hand */
#define EARLY_BACKLOG 2

static ParquetWriter *create(ParquetSchema *schema, const ParquetNode *fields, int nfields,
							 const ParquetWriterOptions *opts, ParquetWriteFn write, void *arg);

/* A writer of flat columns: each a top-level leaf. */
ParquetWriter *
ParquetWriterCreate(const ParquetColumnSpec *cols, int ncols,
					const ParquetWriterOptions *opts,
					ParquetWriteFn write, void *arg)
{
	ParquetNode *fields = palloc0(sizeof(ParquetNode) * Max(ncols, 1));
	ParquetWriter *w;
	int			i;

	for (i = 0; i < ncols; i++)
	{
		fields[i].name = cols[i].name;
		fields[i].kind = PARQUET_NODE_LEAF;
		fields[i].spec = &cols[i];
	}
	w = ParquetWriterCreateNested(fields, ncols, opts, write, arg);
	pfree(fields);
	return w;
}

/* A writer of rows of nested fields: see ParquetNode. */
ParquetWriter *
ParquetWriterCreateNested(const ParquetNode *fields, int nfields,
						  const ParquetWriterOptions *opts,
						  ParquetWriteFn write, void *arg)
{
	return create(NULL, fields, nfields, opts, write, arg);
}

/* A writer of a schema built once for many files; it must outlive them. */
ParquetWriter *
ParquetWriterCreateSchema(ParquetSchema *schema, const ParquetWriterOptions *opts,
						  ParquetWriteFn write, void *arg)
{
	return create(schema, NULL, 0, opts, write, arg);
}

static ParquetWriter *
create(ParquetSchema *schema, const ParquetNode *fields, int nfields,
	   const ParquetWriterOptions *opts, ParquetWriteFn write, void *arg)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "iotstream parquet writer",
											  ALLOCSET_DEFAULT_SIZES);
	ParquetWriter *w = MemoryContextAllocZero(cxt, sizeof(ParquetWriter));
	int			ncols;
	int			i;

	if (schema == NULL)
		schema = ParquetSchemaBuild(cxt, fields, nfields);
	ncols = schema->nleaves;

	w->cxt = cxt;
	w->schema = schema;
	w->opts = *opts;
	w->opts.kv_keys = MemoryContextAllocZero(cxt, sizeof(char *) * (opts->nkv + 1));
	w->opts.kv_values = MemoryContextAllocZero(cxt, sizeof(char *) * (opts->nkv + 1));
	for (i = 0; i < opts->nkv; i++)
	{
		w->opts.kv_keys[i] = MemoryContextStrdup(cxt, opts->kv_keys[i]);
		w->opts.kv_values[i] = MemoryContextStrdup(cxt, opts->kv_values[i]);
	}
	if (w->opts.page_bytes <= 0)
		w->opts.page_bytes = 1024 * 1024;
	w->write = write;
	w->write_arg = arg;
	w->ncols = ncols;
	w->cols = MemoryContextAllocZero(cxt, sizeof(PqColumn) * Max(ncols, 1));
	for (i = 0; i < ncols; i++)
	{
		PqColumn   *c = &w->cols[i];
		ParquetSchemaNode *leaf = schema->leaves[i];

		c->spec = leaf->spec;
		c->spec.name = MemoryContextStrdup(cxt, leaf->name);
		c->max_def = leaf->def;
		c->max_rep = leaf->rep;
		c->nested = c->max_def > 1 || c->max_rep > 0;
		/* a flat leaf has a definition level exactly when it is nullable */
		if (!c->nested)
			c->spec.nullable = c->max_def == 1;
		switch (c->spec.type)
		{
			case PARQUET_BOOLEAN:
				c->width = 1;
				break;
			case PARQUET_INT32:
			case PARQUET_FLOAT:
				c->width = 4;
				break;
			case PARQUET_INT64:
			case PARQUET_DOUBLE:
				c->width = 8;
				break;
			case PARQUET_FIXED_LEN_BYTE_ARRAY:
				if (c->spec.type_length <= 0)
					elog(ERROR, "parquet column \"%s\" has no fixed length", c->spec.name);
				c->width = c->spec.type_length;
				break;
			case PARQUET_BYTE_ARRAY:
				c->width = 0;
				break;
		}
		c->dict_mode = opts->dictionary && c->spec.type != PARQUET_BOOLEAN;
		c->index_size = 1;
		ParquetStatsInit(&c->stats, &c->spec, cxt);
	}
	ThriftInit(&w->hdr, cxt);
	w->window = ParquetPageWindowCreate(cxt, w->opts.codec, w->opts.level, w->opts.threads);
	if (w->opts.threads > 1)
		w->compressor = ParquetCompressorCreate(cxt, w->opts.codec, w->opts.level);
	/* "PAR1" opens the file */
	write(arg, "PAR1", 4);
	w->offset = 4;
	return w;
}

/* ---- buffering values ---- */

/* Appends n values in PLAIN form (len bytes) as PLAIN values. */
void
PqAddPlainValues(ParquetWriter *w, PqColumn *c, const char *buf, size_t len, int64 n)
{
	ParquetBufAppend(w->cxt, &c->values, buf, len);
	ParquetStatsAddPlain(&c->stats, buf, len, n);
	c->nvalues += n;
	if (c->values.len >= (size_t) w->opts.page_bytes && w->compressor && !w->early_off)
		w->cut_wanted = true;
}

/* The values of a batch of n slots of c, nvalues of them defined. */
static void
add_values(ParquetWriter *w, PqColumn *c, const char *plain, size_t len,
		   int64 nvalues, int64 n)
{
	c->nnull += n - nvalues;
	w->rg_bytes += len;
	if (nvalues == 0)
		return;
	if (c->dict_mode)
	{
		ParquetBufAppend(w->cxt, &c->batch[w->cur_batch], plain, len);
		c->batch_n[w->cur_batch] += nvalues;
	}
	else
		PqAddPlainValues(w, c, plain, len, nvalues);
}

/*
 * Takes a batch of rows of one column: nrows definition levels (defs; NULL
 * when every row has a value) and the nvalues non-null values, in PLAIN
 * form (len bytes; BYTE_ARRAY values with their 4-byte length prefix,
 * booleans one byte each).  Callers give every column the same rows, then
 * call ParquetEndRows.  Whole batches are cheap where values one by one
 * were not: a dictionary column queues the bytes for its thread with one
 * copy, a PLAIN column takes them with one copy and a typed statistics loop.
 */
void
ParquetWriteColumn(ParquetWriter *w, int col, const char *plain, size_t len,
				   int64 nvalues, const uint8 *defs, int64 nrows)
{
	PqColumn   *c;

	if (col < 0 || col >= w->ncols)
		elog(ERROR, "parquet column %d out of range", col);
	c = &w->cols[col];
	if (c->nested)
		elog(ERROR, "nested parquet column \"%s\" needs its levels", c->spec.name);
	if (defs != NULL && nvalues < nrows)
	{
		if (!c->spec.nullable)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in required parquet column \"%s\"", c->spec.name)));
		if (c->nrows + nrows > c->defs_cap)
		{
			int64		cap = Max(c->defs_cap * 2, Max(c->nrows + nrows, 1024));

			c->defs = c->defs ? repalloc_huge(c->defs, cap)
				: MemoryContextAllocHuge(w->cxt, cap);
			c->defs_cap = cap;
		}
		if (!c->defs_kept)
		{
			/* the first null: the rows before it were all present */
			memset(c->defs, 1, c->nrows);
			c->defs_kept = true;
		}
		memcpy(c->defs + c->nrows, defs, nrows);
	}
	else if (c->defs_kept)
	{
		if (c->nrows + nrows > c->defs_cap)
		{
			int64		cap = Max(c->defs_cap * 2, c->nrows + nrows);

			c->defs = repalloc_huge(c->defs, cap);
			c->defs_cap = cap;
		}
		memset(c->defs + c->nrows, 1, nrows);
	}
	c->nrows += nrows;
	add_values(w, c, plain, len, nvalues, nrows);
}

/* Grows a level array to hold n levels. */
static void
levels_room(ParquetWriter *w, uint8 **levels, int64 *cap, int64 n)
{
	if (n > *cap)
	{
		int64		newcap = Max(*cap * 2, Max(n, 1024));

		*levels = *levels ? repalloc_huge(*levels, newcap)
			: MemoryContextAllocHuge(w->cxt, newcap);
		*cap = newcap;
	}
}

/*
 * Takes the slots of a batch of rows of a nested leaf column: nlevels
 * definition levels (defs) and repetition levels (reps; NULL when the leaf
 * repeats nowhere), and the nvalues values of the slots defined to the
 * leaf's own level, in PLAIN form.  The batch ends on a row.  A flat
 * column takes ParquetWriteColumn's arguments here too (reps NULL).
 */
void
ParquetWriteLeaf(ParquetWriter *w, int col, const char *plain, size_t len,
				 int64 nvalues, const uint8 *defs, const uint8 *reps, int64 nlevels)
{
	PqColumn   *c;

	if (col < 0 || col >= w->ncols)
		elog(ERROR, "parquet column %d out of range", col);
	c = &w->cols[col];
	if (!c->nested)
	{
		ParquetWriteColumn(w, col, plain, len, nvalues, defs, nlevels);
		return;
	}
	if (nlevels > 0 && (defs == NULL || (c->max_rep > 0 && reps == NULL)))
		elog(ERROR, "nested parquet column \"%s\" needs its levels", c->spec.name);
	levels_room(w, &c->defs, &c->defs_cap, c->nrows + nlevels);
	memcpy(c->defs + c->nrows, defs, nlevels);
	c->defs_kept = true;
	if (c->max_rep > 0)
	{
		levels_room(w, &c->reps, &c->reps_cap, c->nrows + nlevels);
		memcpy(c->reps + c->nrows, reps, nlevels);
	}
	c->nrows += nlevels;
	add_values(w, c, plain, len, nvalues, nlevels);
}

static void flush_row_group(ParquetWriter *w);
static void cut_early_pages(ParquetWriter *w);

/* Ends the batch of nrows rows every column was given. */
void
ParquetEndRows(ParquetWriter *w, int64 nrows)
{
	w->rg_rows += nrows;
	w->total_rows += nrows;
	w->batch_rows += nrows;
	if (w->batch_rows >= DICT_BATCH_ROWS)
		PqDictSubmit(w);
	if (w->rg_bytes >= w->opts.row_group_bytes)
		flush_row_group(w);
	else if (w->cut_wanted)
		cut_early_pages(w);
}

/* ---- encoding pages ---- */

static void
emit(ParquetWriter *w, const void *p, size_t len)
{
	w->write(w->write_arg, p, len);
	w->offset += len;
}

/* Writes one page, compressed or not, of the chunk being written. */
static void
emit_page(void *arg, const ParquetPage *j, const char *body, size_t bodylen)
{
	ParquetWriter *w = (ParquetWriter *) arg;
	ParquetChunkMeta *m = w->chunk;

	if (j->dictionary)
		m->dict_offset = w->offset;
	else if (m->data_offset < 0)
		m->data_offset = w->offset;
	ThriftReset(&w->hdr);
	ThriftFieldI32(&w->hdr, 1, j->dictionary ? PAGE_DICTIONARY : PAGE_DATA);
	ThriftFieldI32(&w->hdr, 2, (int32) j->raw.len);
	ThriftFieldI32(&w->hdr, 3, (int32) bodylen);
	if (j->dictionary)
	{
		ThriftStructBegin(&w->hdr, 7);
		ThriftFieldI32(&w->hdr, 1, j->num_values);
		ThriftFieldI32(&w->hdr, 2, ENC_PLAIN);
		ThriftStructEnd(&w->hdr);
	}
	else
	{
		ThriftStructBegin(&w->hdr, 5);
		ThriftFieldI32(&w->hdr, 1, j->num_values);
		ThriftFieldI32(&w->hdr, 2, j->encoding);
		ThriftFieldI32(&w->hdr, 3, ENC_RLE);
		ThriftFieldI32(&w->hdr, 4, ENC_RLE);
		ThriftStructEnd(&w->hdr);
	}
	ThriftStructEnd(&w->hdr);
	emit(w, w->hdr.data, w->hdr.len);
	emit(w, body, bodylen);
	m->uncompressed += w->hdr.len + j->raw.len;
	m->compressed += w->hdr.len + bodylen;
}

/* The next page of the chunk to fill. */
static ParquetBuf *
next_page(ParquetWriter *w, bool dictionary, int32 num_values, int32 encoding)
{
	ParquetPage *j = ParquetPageWindowNext(w->window, emit_page, w);

	j->dictionary = dictionary;
	j->num_values = num_values;
	j->encoding = encoding;
	return &j->raw;
}

/*
 * Appends to page the definition levels and values of buffered rows
 * [r, r1), whose first non-null value is number v; *pos is the byte offset
 * of that value in PLAIN byte-array buffers.  Returns the non-null count.
 */
static int64
build_page(ParquetWriter *w, PqColumn *c, ParquetBuf *page, int64 r, int64 r1,
		   bool use_dict, int bw, int64 v, size_t *pos)
{
	int64		n = r1 - r;
	int64		nv = n;

	if (c->max_rep > 0)
	{
		uint32		len32;

		w->levels.len = 0;
		ParquetRleEncode(w->cxt, &w->levels, c->reps + r, 1, n, ParquetBitWidth(c->max_rep));
		len32 = (uint32) w->levels.len;
		ParquetBufAppend(w->cxt, page, &len32, 4);
		ParquetBufAppend(w->cxt, page, w->levels.data, w->levels.len);
	}
	if (c->max_def > 0)
	{
		int64		k;
		uint32		len32;

		w->levels.len = 0;
		if (c->defs_kept)
		{
			uint8		top = (uint8) c->max_def;

			nv = 0;
			for (k = r; k < r1; k++)
				nv += c->defs[k] == top;
			ParquetRleEncode(w->cxt, &w->levels, c->defs + r, 1, n, ParquetBitWidth(c->max_def));
		}
		else if (n > 0)
		{
			/* no null among these rows: one RLE run of level 1 */
			uint64		hdr = (uint64) n << 1;

			ParquetBufReserve(w->cxt, &w->levels, 11);
			while (hdr >= 0x80)
			{
				w->levels.data[w->levels.len++] = (char) ((hdr & 0x7F) | 0x80);
				hdr >>= 7;
			}
			w->levels.data[w->levels.len++] = (char) hdr;
			w->levels.data[w->levels.len++] = 1;
		}
		len32 = (uint32) w->levels.len;
		ParquetBufAppend(w->cxt, page, &len32, 4);
		ParquetBufAppend(w->cxt, page, w->levels.data, w->levels.len);
	}
	if (use_dict)
	{
		char		b = (char) bw;

		ParquetBufAppend(w->cxt, page, &b, 1);
		ParquetRleEncode(w->cxt, page, c->indices + v * c->index_size,
						 c->index_size, nv, bw);
	}
	else if (c->spec.type == PARQUET_BOOLEAN)
	{
		int64		k;

		ParquetBufReserve(w->cxt, page, (nv + 7) / 8);
		memset(page->data + page->len, 0, (nv + 7) / 8);
		for (k = 0; k < nv; k++)
			if (c->values.data[v + k])
				page->data[page->len + k / 8] |= (char) (1 << (k % 8));
		page->len += (nv + 7) / 8;
	}
	else if (c->width > 0)
		ParquetBufAppend(w->cxt, page, c->values.data + (size_t) v * c->width,
				   (size_t) nv * c->width);
	else
	{
		size_t		end = *pos;
		int64		k;

		for (k = 0; k < nv; k++)
		{
			uint32		len;

			memcpy(&len, c->values.data + end, 4);
			end += 4 + (size_t) len;
		}
		ParquetBufAppend(w->cxt, page, c->values.data + *pos, end - *pos);
		*pos = end;
	}
	return nv;
}

/* The metadata of a new chunk of c, starting at the current offset. */
static ParquetChunkMeta *
start_chunk(ParquetWriter *w, PqColumn *c)
{
	ParquetChunkMeta *m;

	if (c->nchunks >= c->chunks_cap)
	{
		int			cap = Max(c->chunks_cap * 2, 8);

		c->chunks = c->chunks ? repalloc(c->chunks, sizeof(ParquetChunkMeta) * cap)
			: MemoryContextAlloc(w->cxt, sizeof(ParquetChunkMeta) * cap);
		c->chunks_cap = cap;
	}
	m = &c->chunks[c->nchunks++];
	memset(m, 0, sizeof(ParquetChunkMeta));
	m->offset = w->offset;
	m->dict_offset = -1;
	m->data_offset = -1;
	return m;
}

/*
 * Writes a compressed early page of column 0 (c) at once, its chunk being
 * the first of the row group, and keeps the page's buffers for the next.
 */
static void
stream_page(ParquetWriter *w, PqColumn *c, ParquetPage *j)
{
	int64		before = w->offset;

	if (!w->streaming)
	{
		(void) start_chunk(w, c);
		w->streaming = true;
	}
	w->chunk = &c->chunks[c->nchunks - 1];
	if (j->outlen == 0)
		elog(ERROR, "parquet page compression failed");
	emit_page(w, j, j->out.data, j->outlen);
	w->rg_streamed += w->offset - before;
	c->nstreamed++;
	j->raw.len = 0;
	j->next = w->free_pages;
	w->free_pages = j;
}

/*
 * Frees (or keeps for the next pages) the raw bytes of early pages already
 * compressed, in order; column 0's are written (stream_page).
 */
static void
reap_early_pages(ParquetWriter *w, PqColumn *c)
{
	while (c->nreaped < c->nearly && ParquetCompressorDone(w->compressor, c->early[c->nreaped]))
	{
		ParquetPage *j = c->early[c->nreaped++];

		if (c == &w->cols[0])
		{
			stream_page(w, c, j);
			continue;
		}
		if (w->nspare < SPARE_PAGES)
		{
			w->spare[w->nspare] = j->raw;
			w->spare[w->nspare++].len = 0;
		}
		else
			pfree(j->raw.data);
		j->raw.data = NULL;		/* raw.len stays: the header needs it */
		j->raw.cap = 0;
		if (j->outlen > 0 && j->outlen < j->out.cap)
		{
			j->out.data = repalloc(j->out.data, j->outlen);
			j->out.cap = j->outlen;
		}
	}
}

/*
 * Cuts the buffered rows of every PLAIN column holding a page's worth into
 * a page and hands it to the background compressor, so that compression
 * overlaps the production of the next rows.
 */
static void
cut_early_pages(ParquetWriter *w)
{
	int			i;

	w->cut_wanted = false;
	for (i = 0; i < w->ncols; i++)
	{
		PqColumn   *c = &w->cols[i];
		ParquetPage *j;
		size_t		pos = 0;

		if (c->dict_mode || c->values.len < (size_t) w->opts.page_bytes)
			continue;
		reap_early_pages(w, c);
		if (c->nearly >= c->early_cap)
		{
			int			cap = Max(c->early_cap * 2, 16);

			c->early = c->early ? repalloc(c->early, sizeof(ParquetPage *) * cap)
				: MemoryContextAlloc(w->cxt, sizeof(ParquetPage *) * cap);
			c->early_cap = cap;
		}
		if (i == 0 && w->free_pages)
		{
			j = w->free_pages;
			w->free_pages = j->next;
		}
		else
		{
			j = MemoryContextAllocZero(w->cxt, sizeof(ParquetPage));
			if (w->nspare > 0)
				j->raw = w->spare[--w->nspare];
		}
		/* the whole page at once: growing it by doubling copied it again and again */
		ParquetBufReserve(w->cxt, &j->raw, c->values.len + (c->defs_kept ? c->nrows / 4 : 0) + 32);
		build_page(w, c, &j->raw, 0, c->nrows, false, 0, 0, &pos);
		j->num_values = (int32) c->nrows;
		j->encoding = ENC_PLAIN;
		if (!ParquetCompressorSubmit(w->compressor, j))
		{
			/* no thread: keep buffering, compress at the end as usual */
			pfree(j->raw.data);
			pfree(j->out.data);
			pfree(j);
			w->early_off = true;
			return;
		}
		c->early[c->nearly++] = j;
		/* the thread is behind: the backend compresses some pages too */
		ParquetCompressorHelp(w->compressor, EARLY_BACKLOG);
		c->cut_rows += c->nrows;
		c->nrows = 0;
		c->defs_kept = false;
		c->nvalues = 0;
		c->values.len = 0;
	}
}

static void
write_early_pages(ParquetWriter *w, PqColumn *c)
{
	int			i;

	if (c->nearly > c->nstreamed)
		ParquetCompressorHelp(w->compressor, 0);

	for (i = c->nstreamed; i < c->nearly; i++)
	{
		ParquetPage *j = c->early[i];

		ParquetCompressorWait(w->compressor, j);
		emit_page(w, j, j->out.data, j->outlen);
		if (j->raw.data)
			pfree(j->raw.data);
		pfree(j->out.data);
		pfree(j);
	}
	c->nearly = 0;
	c->nreaped = 0;
	c->nstreamed = 0;
}

static void
write_chunk(ParquetWriter *w, PqColumn *c)
{
	ParquetChunkMeta *m;
	bool		use_dict = c->dict_mode && c->ndict > 0;
	int			bw = use_dict ? ParquetBitWidth(c->ndict - 1) : 0;
	int64		est,
				npages,
				rows_per_page,
				r = 0,
				v = 0;
	size_t		pos = 0;

	/* column 0 may have begun its chunk already (stream_page) */
	if (c == &w->cols[0] && w->streaming)
		m = &c->chunks[c->nchunks - 1];
	else
		m = start_chunk(w, c);
	w->chunk = m;
	m->num_values = c->cut_rows + c->nrows;
	m->null_count = c->nnull;
	m->dictionary = use_dict;

	if (use_dict)
	{
		ParquetBuf *page = next_page(w, true, (int32) c->ndict, ENC_PLAIN);

		ParquetBufAppend(w->cxt, page, c->dict.data, c->dict.len);
		est = c->nvalues * bw / 8;
	}
	else if (c->spec.type == PARQUET_BOOLEAN)
		est = c->nvalues / 8;
	else
		est = c->values.len;

	/* the pages cut early come first (there is no dictionary then) */
	write_early_pages(w, c);

	npages = Max(1, (est + w->opts.page_bytes - 1) / w->opts.page_bytes);
	rows_per_page = Max(1, (c->nrows + npages - 1) / npages);
	if (c->nrows > 0 || m->data_offset < 0)
	do
	{
		int64		r1 = Min(r + rows_per_page, c->nrows);
		int64		n;
		int64		nv;
		ParquetBuf *page;

		/* a page begins on a row: at repetition level 0 */
		if (c->max_rep > 0)
			while (r1 < c->nrows && c->reps[r1] != 0)
				r1++;
		n = r1 - r;

		page = next_page(w, false, (int32) n,
						 use_dict ? ENC_RLE_DICTIONARY : ENC_PLAIN);
		nv = build_page(w, c, page, r, r1, use_dict, bw, v, &pos);
		r = r1;
		v += nv;
	} while (r < c->nrows);
	ParquetPageWindowFlush(w->window, emit_page, w);

	m->has_minmax = ParquetStatsBytes(&c->stats, w->cxt, &m->min, &m->minlen,
									  &m->max, &m->maxlen);

	/* empty the buffers, keeping their memory for the next row group */
	c->nrows = c->nnull = c->nvalues = 0;
	c->defs_kept = false;
	c->cut_rows = 0;
	c->values.len = 0;
	PqDictReset(c);
	ParquetStatsReset(&c->stats);
	c->dict_mode = w->opts.dictionary && !c->dict_failed &&
		c->spec.type != PARQUET_BOOLEAN;
}

static void
flush_row_group(ParquetWriter *w)
{
	int			i;

	if (w->rg_rows == 0)
		return;
	PqDictDrain(w);
	for (i = 0; i < w->ncols; i++)
		write_chunk(w, &w->cols[i]);
	if (w->nrowgroups >= w->rg_cap)
	{
		int			cap = Max(w->rg_cap * 2, 8);

		w->rg_nrows = w->rg_nrows ? repalloc(w->rg_nrows, sizeof(int64) * cap)
			: MemoryContextAlloc(w->cxt, sizeof(int64) * cap);
		w->rg_cap = cap;
	}
	w->rg_nrows[w->nrowgroups++] = w->rg_rows;
	w->rg_rows = 0;
	w->rg_bytes = 0;
	w->streaming = false;
	w->rg_streamed = 0;
}

/* Writes the last row group and the footer; the writer is then done. */
void
ParquetWriterFinish(ParquetWriter *w)
{
	if (w->finished)
		return;
	flush_row_group(w);
	{
		ParquetFooter f;
		uint32		len32;
		int			i;

		f.schema = w->schema;
		f.cols = palloc(sizeof(ParquetColumnSpec) * Max(w->ncols, 1));
		f.chunks = palloc(sizeof(ParquetChunkMeta *) * Max(w->ncols, 1));
		for (i = 0; i < w->ncols; i++)
		{
			f.cols[i] = w->cols[i].spec;
			f.chunks[i] = w->cols[i].chunks;
		}
		f.ncols = w->ncols;
		f.nrowgroups = w->nrowgroups;
		f.rg_nrows = w->rg_nrows;
		f.total_rows = w->total_rows;
		f.codec = w->opts.codec;
		f.nkv = w->opts.nkv;
		f.kv_keys = w->opts.kv_keys;
		f.kv_values = w->opts.kv_values;
		ThriftReset(&w->hdr);
		ParquetEncodeFooter(&w->hdr, &f);
		emit(w, w->hdr.data, w->hdr.len);
		len32 = (uint32) w->hdr.len;
		emit(w, &len32, 4);
		emit(w, "PAR1", 4);
		pfree(f.cols);
		pfree(f.chunks);
	}
	w->finished = true;
}

void
ParquetWriterDestroy(ParquetWriter *w)
{
	MemoryContextDelete(w->cxt);
}
