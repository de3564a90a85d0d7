/*-------------------------------------------------------------------------
 * parquet_file_info.c
 *		What a Parquet writer says of the file it wrote: its rows, bytes and
 *		row groups, its fields and leaf columns, and each column's
 *		statistics merged over the file (what a table format's log records
 *		per file).
 *
 * Nothing here changes the writer: these read what parquet_writer.c kept
 * for the footer.
 *-------------------------------------------------------------------------
 */
#include "parquet_writer_int.h"

int64
ParquetWriterRows(ParquetWriter *w)
{
	return w->total_rows;
}

/*
 * Bytes of the file's finished row groups (all of it once finished): what
 * column 0 streamed of the row group under way does not count yet, so that
 * callers cutting files by size still cut them on a row group.
 */
int64
ParquetWriterBytes(ParquetWriter *w)
{
	return w->offset - w->rg_streamed;
}

int
ParquetWriterRowGroups(ParquetWriter *w)
{
	return w->nrowgroups;
}

/* The top-level fields of the file, as the writer was created with them. */
const ParquetNode *
ParquetWriterFields(ParquetWriter *w, int *nfields)
{
	*nfields = w->schema->nfields;
	return w->schema->fields;
}

/* The leaf columns of the file, depth-first. */
const ParquetColumnSpec *
ParquetWriterColumns(ParquetWriter *w, int *ncols)
{
	ParquetColumnSpec *specs = palloc(sizeof(ParquetColumnSpec) * Max(w->ncols, 1));
	int			i;

	for (i = 0; i < w->ncols; i++)
		specs[i] = w->cols[i].spec;
	*ncols = w->ncols;
	return specs;
}

/*
 * A column's statistics over the whole finished file, merged from its
 * chunks (what a table format's log records per file).  min/max are absent
 * when no chunk had a value, or when one chunk had values but no min/max
 * (a byte array too long to track): then no bound is known for the file.
 */
void
ParquetWriterColumnStats(ParquetWriter *w, int col, ParquetFileColumnStats *out)
{
	PqColumn   *c = &w->cols[col];
	ParquetStats merged;
	bool		known = true;
	int			i;

	Assert(w->finished);
	ParquetStatsInit(&merged, &c->spec, CurrentMemoryContext);
	memset(out, 0, sizeof(ParquetFileColumnStats));
	for (i = 0; i < c->nchunks; i++)
	{
		ParquetChunkMeta *m = &c->chunks[i];

		out->null_count += m->null_count;
		if (m->has_minmax)
		{
			ParquetStatsAdd(&merged, m->min, m->minlen);
			ParquetStatsAdd(&merged, m->max, m->maxlen);
		}
		else if (m->null_count < m->num_values)
			known = false;
	}
	out->has_minmax = known &&
		ParquetStatsBytes(&merged, CurrentMemoryContext, &out->min, &out->minlen,
						  &out->max, &out->maxlen);
}
