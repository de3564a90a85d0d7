/*-------------------------------------------------------------------------
 * rollup.c
 *		Merges each ingested batch into the rollups of its table.
 *
 * A rollup keeps iotstream.stats per key and bucket.  A batch is merged
 * with one statement per rollup: its rows go in as arrays (one per column,
 * in the column's own type), are aggregated with stats_agg per key and
 * bucket, and upserted with stats_combine (sql/install/50_detect.sql builds
 * the statement).  Nothing is rescanned.
 *
 * The invariant: a row is merged exactly once, or counted as late.  A row
 * is late when its bucket closed before the batch (bucket end <= watermark
 * - lateness, the watermark being the table's newest event time before the
 * batch); late rows are counted in rollup_progress and merged only by
 * refresh_rollup(), which recomputes whole buckets from the table.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

struct Rollup
{
	int			rollup_id;
	char	   *name;
	Interval	bucket;
	Interval	lateness;
	int			ncols;			/* keys, then values */
	int			nkeys;
	AttrNumber *attnos;
	Oid		   *types;
	int16	   *typlen;
	bool	   *typbyval;
	char	   *typalign;
	SPIPlanPtr	upsert_plan;
	SPIPlanPtr	progress_plan;
};

static void
column_of(Oid relid, const char *name, Rollup *r, int i)
{
	r->attnos[i] = get_attnum(relid, name);
	if (r->attnos[i] == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("rollup \"%s\" names column \"%s\", which %s no longer has",
						r->name, name, get_rel_name(relid)),
				 errhint("Drop the rollup with iotstream.drop_rollup() and create it again.")));
	r->types[i] = get_atttype(relid, r->attnos[i]);
	get_typlenbyvalalign(r->types[i], &r->typlen[i], &r->typbyval[i], &r->typalign[i]);
}

/* The rollups of relid, with their statements prepared; inside SPI. */
List *
RollupsLoad(Oid relid, MemoryContext cxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	List	   *result = NIL;
	uint64		nrows;
	SPITupleTable *tt;

	if (SPI_execute_with_args("SELECT rollup_id, name, key_columns, value_columns, bucket, lateness, upsert_sql"
							  " FROM iotstream.rollups WHERE source_table = $1 ORDER BY rollup_id",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.rollups");
	nrows = SPI_processed;
	tt = SPI_tuptable;
	for (uint64 row = 0; row < nrows; row++)
	{
		HeapTuple	tup = tt->vals[row];
		TupleDesc	desc = tt->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Rollup	   *r = palloc0(sizeof(Rollup));
		bool		isnull;
		Datum	   *keys;
		Datum	   *vals;
		int			nkeys;
		int			nvals;
		Oid		   *argt;
		char	   *sql;
		Oid			ptypes[4] = {INT4OID, INT8OID, INT8OID};

		r->rollup_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		r->name = SPI_getvalue(tup, desc, 2);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &keys, NULL, &nkeys);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &vals, NULL, &nvals);
		r->bucket = *DatumGetIntervalP(SPI_getbinval(tup, desc, 5, &isnull));
		r->lateness = *DatumGetIntervalP(SPI_getbinval(tup, desc, 6, &isnull));
		sql = SPI_getvalue(tup, desc, 7);
		r->nkeys = nkeys;
		r->ncols = nkeys + nvals;
		r->attnos = palloc(sizeof(AttrNumber) * r->ncols);
		r->types = palloc(sizeof(Oid) * r->ncols);
		r->typlen = palloc(sizeof(int16) * r->ncols);
		r->typbyval = palloc(sizeof(bool) * r->ncols);
		r->typalign = palloc(sizeof(char) * r->ncols);
		for (int i = 0; i < nkeys; i++)
			column_of(relid, TextDatumGetCString(keys[i]), r, i);
		for (int i = 0; i < nvals; i++)
			column_of(relid, TextDatumGetCString(vals[i]), r, nkeys + i);

		/* arguments: key arrays, the event times, value arrays */
		argt = palloc(sizeof(Oid) * (r->ncols + 1));
		for (int i = 0, a = 0; i < r->ncols; i++)
		{
			if (i == nkeys)
				argt[a++] = TIMESTAMPTZARRAYOID;
			argt[a++] = get_array_type(r->types[i]);
		}
		MemoryContextSwitchTo(old);
		r->upsert_plan = SPI_prepare(sql, r->ncols + 1, argt);
		if (r->upsert_plan == NULL)
			elog(ERROR, "could not prepare the merge of rollup \"%s\": %s", r->name,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(r->upsert_plan);
		r->progress_plan = SPI_prepare("UPDATE iotstream.rollup_progress"
									   " SET rows_merged = rows_merged + $2, late_rows = late_rows + $3,"
									   "     updated_at = now() WHERE rollup_id = $1", 3, ptypes);
		if (r->progress_plan == NULL)
			elog(ERROR, "could not prepare the progress of rollup \"%s\"", r->name);
		SPI_keepplan(r->progress_plan);
		old = MemoryContextSwitchTo(cxt);
		result = lappend(result, r);
		MemoryContextSwitchTo(old);
	}
	return result;
}

void
RollupsRelease(List *rollups)
{
	ListCell   *lc;

	foreach(lc, rollups)
	{
		Rollup	   *r = lfirst(lc);

		SPI_freeplan(r->upsert_plan);
		SPI_freeplan(r->progress_plan);
	}
}

/* Merges the stored rows of a batch whose buckets are still open; inside SPI. */
void
RollupMergeBatch(Rollup *r, const IngestedRows *rows, bool have_watermark,
				 TimestampTz watermark)
{
	TimestampTz cutoff = PG_INT64_MIN;
	int			n = 0;
	int64		late = 0;
	int			ncols = r->ncols;
	Datum	   *elems = palloc(sizeof(Datum) * rows->n);
	bool	   *enulls = palloc(sizeof(bool) * rows->n);
	int		   *take = palloc(sizeof(int) * rows->n);
	Datum	   *args = palloc(sizeof(Datum) * (ncols + 1));
	Datum		pargs[3];
	int			dims[1];
	int			lbs[1] = {1};

	if (have_watermark)
		cutoff = DetectDateBin(&r->bucket, watermark - DetectIntervalUsecs(&r->lateness));
	for (int i = 0; i < rows->n; i++)
	{
		if (!rows->stored[i])
			continue;
		if (rows->ts[i] < cutoff)
			late++;
		else
			take[n++] = i;
	}

	if (n > 0)
	{
		dims[0] = n;
		for (int c = 0, a = 0; c < ncols; c++)
		{
			int			att = r->attnos[c] - 1;

			if (c == r->nkeys)
			{
				/* StreamTime is the representation of timestamptz */
				for (int k = 0; k < n; k++)
					elems[k] = TimestampTzGetDatum(rows->ts[take[k]]);
				args[a++] = PointerGetDatum(construct_array(elems, n, TIMESTAMPTZOID, 8,
															FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			}
			for (int k = 0; k < n; k++)
			{
				elems[k] = rows->values[take[k] * rows->natts + att];
				enulls[k] = rows->nulls[take[k] * rows->natts + att];
			}
			args[a++] = PointerGetDatum(construct_md_array(elems, enulls, 1, dims, lbs, r->types[c],
														   r->typlen[c], r->typbyval[c], r->typalign[c]));
		}
		if (SPI_execute_plan(r->upsert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not merge a batch into rollup \"%s\"", r->name);
	}

	pargs[0] = Int32GetDatum(r->rollup_id);
	pargs[1] = Int64GetDatum(n);
	pargs[2] = Int64GetDatum(late);
	if (SPI_execute_plan(r->progress_plan, pargs, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not store the progress of rollup \"%s\"", r->name);
}
