/*-------------------------------------------------------------------------
 * rollup.c
 *		Merges each ingested batch into the rollups of its table.
 *
 * A rollup keeps iotstream.stats per key and bucket.  A batch's rows are
 * summarized here per key and bucket (a hash table on the key columns' own
 * hash and equality functions, StatsAdd per value), and the groups go in as
 * arrays to one insert into the rollup's delta table: one row per batch,
 * in the batch's transaction.  The detection worker's RollupApply then
 * folds every waiting delta into the rollup table with one upsert that
 * merges with stats_combine, and deletes them, in one statement (sql/
 * install/50_detect.sql builds both).  Upserting a few thousand groups per
 * batch cost the batch more than ingesting it; the delta costs one row, and
 * a backlog's deltas fold into the same groups together.  Nothing is
 * rescanned.
 *
 * The invariant: a row is merged exactly once, or counted as late.  A row
 * is late when its bucket closed before the batch (bucket end <= watermark
 * - lateness, the watermark being the table's newest event time before the
 * batch); late rows are counted in rollup_progress and merged only by
 * refresh_rollup(), which recomputes whole buckets from the table.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest.h"
#include "analytics/analytics.h"
#include "detect/detect_int.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

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
	int64		bucket_usecs;
	Oid			stats_type;
	FmgrInfo   *eq;				/* per key column: equality and hash */
	FmgrInfo   *hash;
	Oid		   *collations;
	bool	   *bytes_key;		/* text under a deterministic collation:
								 * equal exactly when the bytes are */
	SPIPlanPtr	delta_plan;		/* stores a batch's groups, as the owner */
	SPIPlanPtr	lock_plan;		/* the lock _rollup_apply() takes too */
	SPIPlanPtr	upsert_plan;	/* folds the deltas in, as the owner */
	SPIPlanPtr	progress_plan;
	Oid			owner;			/* of the source table, and of the rollup's tables */
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

/*
 * The rollups of relid, with their statements prepared; inside SPI.  The
 * plans stay SPI's until RollupsKeep, so that a load that fails half-way
 * (a column dropped, say) leaves nothing behind when SPI's memory goes.
 */
List *
RollupsLoad(Oid relid, MemoryContext cxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	List	   *result = NIL;
	uint64		nrows;
	SPITupleTable *tt;

	if (SPI_execute_with_args("SELECT rollup_id, name, key_columns, value_columns, bucket, lateness, delta_sql,"
							  "  upsert_sql, rollup_table, delta_table"
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
		char	   *upsert;
		Oid			ptypes[4] = {INT4OID, INT8OID, INT8OID};

		r->rollup_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		r->name = SPI_getvalue(tup, desc, 2);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &keys, NULL, &nkeys);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &vals, NULL, &nvals);
		r->bucket = *DatumGetIntervalP(SPI_getbinval(tup, desc, 5, &isnull));
		r->lateness = *DatumGetIntervalP(SPI_getbinval(tup, desc, 6, &isnull));
		{
			Oid			rollup_table = DatumGetObjectId(SPI_getbinval(tup, desc, 9, &isnull));
			Oid			delta_table = DatumGetObjectId(SPI_getbinval(tup, desc, 10, &isnull));

			/* the tables by OID, named as they are now (see owner.c) */
			sql = RelationPlaceholderSubstitute(SPI_getvalue(tup, desc, 7), PLACEHOLDER_DELTA, delta_table);
			upsert = RelationPlaceholderSubstitute(
				RelationPlaceholderSubstitute(SPI_getvalue(tup, desc, 8), PLACEHOLDER_DELTA, delta_table),
				PLACEHOLDER_ROLLUP, rollup_table);
		}
		r->owner = TableOwner(relid);
		r->nkeys = nkeys;
		r->ncols = nkeys + nvals;
		r->attnos = palloc(sizeof(AttrNumber) * r->ncols);
		r->types = palloc(sizeof(Oid) * r->ncols);
		r->typlen = palloc(sizeof(int16) * r->ncols);
		r->typbyval = palloc(sizeof(bool) * r->ncols);
		r->typalign = palloc(sizeof(char) * r->ncols);
		r->bucket_usecs = DetectIntervalUsecs(&r->bucket);
		r->stats_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("stats"),
										ObjectIdGetDatum(get_namespace_oid("iotstream", false)));
		r->eq = palloc(sizeof(FmgrInfo) * Max(1, nkeys));
		r->hash = palloc(sizeof(FmgrInfo) * Max(1, nkeys));
		r->collations = palloc(sizeof(Oid) * Max(1, nkeys));
		r->bytes_key = palloc(sizeof(bool) * Max(1, nkeys));
		for (int i = 0; i < nkeys; i++)
		{
			TypeCacheEntry *tc;

			column_of(relid, TextDatumGetCString(keys[i]), r, i);
			tc = lookup_type_cache(r->types[i], TYPECACHE_EQ_OPR_FINFO | TYPECACHE_HASH_PROC_FINFO);
			if (!OidIsValid(tc->eq_opr_finfo.fn_oid) || !OidIsValid(tc->hash_proc_finfo.fn_oid))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_FUNCTION),
						 errmsg("rollup \"%s\": key column \"%s\" has a type without hashing",
								r->name, TextDatumGetCString(keys[i])),
						 errhint("Use key columns of a type with a hash operator class, such as text or integers.")));
			fmgr_info_copy(&r->eq[i], &tc->eq_opr_finfo, cxt);
			fmgr_info_copy(&r->hash[i], &tc->hash_proc_finfo, cxt);
			r->collations[i] = get_typcollation(r->types[i]);
			r->bytes_key[i] = r->eq[i].fn_oid == F_TEXTEQ &&
				OidIsValid(r->collations[i]) && get_collation_isdeterministic(r->collations[i]);
		}
		for (int i = 0; i < nvals; i++)
			column_of(relid, TextDatumGetCString(vals[i]), r, nkeys + i);

		/* arguments: key arrays, the buckets, stats arrays: one entry per group */
		argt = palloc(sizeof(Oid) * (r->ncols + 1));
		for (int i = 0; i < nkeys; i++)
			argt[i] = get_array_type(r->types[i]);
		argt[nkeys] = TIMESTAMPTZARRAYOID;
		for (int i = 0; i < nvals; i++)
			argt[nkeys + 1 + i] = get_array_type(r->stats_type);
		MemoryContextSwitchTo(old);
		{
			AsOwner		as;

			/* planned as the role that runs them: name lookups see its rights */
			AsOwnerBegin(&as, r->owner);
			r->delta_plan = SPI_prepare(sql, r->ncols + 1, argt);
			r->upsert_plan = SPI_prepare(upsert, 0, NULL);
			AsOwnerEnd(&as);
		}
		r->lock_plan = SPI_prepare("SELECT pg_advisory_xact_lock(1769238101, $1)", 1, ptypes);
		if (r->delta_plan == NULL || r->upsert_plan == NULL || r->lock_plan == NULL)
			elog(ERROR, "could not prepare the merge of rollup \"%s\": %s", r->name,
				 SPI_result_code_string(SPI_result));
		r->progress_plan = SPI_prepare("UPDATE iotstream.rollup_progress"
									   " SET rows_merged = rows_merged + $2, late_rows = late_rows + $3,"
									   "     updated_at = now() WHERE rollup_id = $1", 3, ptypes);
		if (r->progress_plan == NULL)
			elog(ERROR, "could not prepare the progress of rollup \"%s\"", r->name);
		old = MemoryContextSwitchTo(cxt);
		result = lappend(result, r);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/* Calls fn (SPI_keepplan or SPI_freeplan) on every plan of the rollups. */
static void
each_plan(List *rollups, int (*fn) (SPIPlanPtr))
{
	ListCell   *lc;

	foreach(lc, rollups)
	{
		Rollup	   *r = lfirst(lc);

		fn(r->delta_plan);
		fn(r->lock_plan);
		fn(r->upsert_plan);
		fn(r->progress_plan);
	}
}

/* Keeps the plans of loaded rollups past the SPI call (until RollupsRelease). */
void
RollupsKeep(List *rollups)
{
	each_plan(rollups, SPI_keepplan);
}

void
RollupsRelease(List *rollups)
{
	each_plan(rollups, SPI_freeplan);
}

static float8
value_float8(Datum d, Oid type)
{
	switch (type)
	{
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case FLOAT4OID:
			return (float8) DatumGetFloat4(d);
		case INT2OID:
			return (float8) DatumGetInt16(d);
		case INT4OID:
			return (float8) DatumGetInt32(d);
		case INT8OID:
			return (float8) DatumGetInt64(d);
		case NUMERICOID:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
		default:
			elog(ERROR, "rollup value of unexpected type %u", type);
	}
	return 0;
}

/* The start of t's bucket: date_bin(bucket, t, '2000-01-01'), without months. */
static inline TimestampTz
bucket_of(const Rollup *r, TimestampTz t)
{
	int64		m = t % r->bucket_usecs;

	return m < 0 ? t - m - r->bucket_usecs : t - m;
}

/* A key's text as stored: decoded values are neither compressed nor external. */
static inline text *
key_text(Datum d)
{
	struct varlena *p = (struct varlena *) DatumGetPointer(d);

	if (unlikely(VARATT_IS_COMPRESSED(p) || VARATT_IS_EXTERNAL(p)))
		p = pg_detoast_datum_packed(p);
	return (text *) p;
}

static uint32
group_hash(const Rollup *r, const IngestedRows *rows, int row, TimestampTz bucket)
{
	uint64		bx = (uint64) bucket * UINT64CONST(0x9e3779b97f4a7c15);
	uint32		h = (uint32) (bx ^ (bx >> 32));

	for (int k = 0; k < r->nkeys; k++)
	{
		int			a = (r->attnos[k] - 1) + row * rows->natts;
		uint32		kh = 0x9e3779b9;

		if (rows->nulls[a])
			;
		else if (r->bytes_key[k])
		{
			text	   *t = key_text(rows->values[a]);

			kh = BytesHash(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		}
		else
			kh = DatumGetUInt32(FunctionCall1Coll(&r->hash[k], r->collations[k], rows->values[a]));
		h = hash_combine(h, kh);
	}
	return h;
}

static bool
same_keys(const Rollup *r, const IngestedRows *rows, int x, int y)
{
	for (int k = 0; k < r->nkeys; k++)
	{
		int			a = (r->attnos[k] - 1) + x * rows->natts;
		int			b = (r->attnos[k] - 1) + y * rows->natts;

		if (rows->nulls[a] || rows->nulls[b])
		{
			if (rows->nulls[a] != rows->nulls[b])
				return false;
			continue;
		}
		if (r->bytes_key[k])
		{
			text	   *ta = key_text(rows->values[a]);
			text	   *tb = key_text(rows->values[b]);

			if (VARSIZE_ANY_EXHDR(ta) != VARSIZE_ANY_EXHDR(tb) ||
				memcmp(VARDATA_ANY(ta), VARDATA_ANY(tb), VARSIZE_ANY_EXHDR(ta)) != 0)
				return false;
		}
		else if (!DatumGetBool(FunctionCall2Coll(&r->eq[k], r->collations[k], rows->values[a], rows->values[b])))
			return false;
	}
	return true;
}

/*
 * Stores the groups of the batch's rows whose buckets are still open as one
 * delta; inside SPI, in the batch's transaction.
 */
void
RollupMergeBatch(Rollup *r, const IngestedRows *rows, bool have_watermark,
				 TimestampTz watermark)
{
	TimestampTz cutoff = PG_INT64_MIN;
	int			nv = r->ncols - r->nkeys;
	int			ngroups = 0;
	int			merged = 0;
	int64		late = 0;
	int			cap = 16;
	int		   *slots;
	int		   *group_row;
	uint32	   *group_hashes;
	TimestampTz *group_bucket;
	TimestampTz last_bucket = PG_INT64_MAX;
	StatsState *stats;
	Datum		pargs[3];
	AsOwner		as;

	while (cap < rows->n * 2)
		cap <<= 1;
	slots = palloc(sizeof(int) * cap);
	memset(slots, -1, sizeof(int) * cap);
	group_row = palloc(sizeof(int) * rows->n);
	group_hashes = palloc(sizeof(uint32) * rows->n);
	group_bucket = palloc(sizeof(TimestampTz) * rows->n);
	stats = palloc(sizeof(StatsState) * Max(1, rows->n) * nv);

	if (have_watermark)
		cutoff = bucket_of(r, watermark - DetectIntervalUsecs(&r->lateness));
	for (int i = 0; i < rows->n; i++)
	{
		TimestampTz b;
		uint32		h;
		int			slot;
		int			g = -1;

		if (!rows->stored[i])
			continue;
		/* a batch's rows mostly share a few buckets: skip the division */
		if (rows->ts[i] >= last_bucket && rows->ts[i] - last_bucket < r->bucket_usecs)
			b = last_bucket;
		else
			b = last_bucket = bucket_of(r, rows->ts[i]);
		if (b < cutoff)
		{
			late++;
			continue;
		}
		merged++;
		h = group_hash(r, rows, i, b);
		for (slot = h & (cap - 1); slots[slot] >= 0; slot = (slot + 1) & (cap - 1))
		{
			int			c = slots[slot];

			if (group_hashes[c] == h && group_bucket[c] == b && same_keys(r, rows, group_row[c], i))
			{
				g = c;
				break;
			}
		}
		if (g < 0)
		{
			g = ngroups++;
			slots[slot] = g;
			group_row[g] = i;
			group_hashes[g] = h;
			group_bucket[g] = b;
			for (int v = 0; v < nv; v++)
				StatsInit(&stats[g * nv + v]);
		}
		for (int v = 0; v < nv; v++)
		{
			int			a = (r->attnos[r->nkeys + v] - 1) + i * rows->natts;

			if (!rows->nulls[a])
				StatsAdd(&stats[g * nv + v], value_float8(rows->values[a], r->types[r->nkeys + v]));
		}
	}

	if (ngroups > 0)
	{
		Datum	   *args = palloc(sizeof(Datum) * (r->ncols + 1));
		Datum	   *elems = palloc(sizeof(Datum) * ngroups);
		bool	   *enulls = palloc(sizeof(bool) * ngroups);
		int			dims[1] = {ngroups};
		int			lbs[1] = {1};
		int			a = 0;

		for (int k = 0; k < r->nkeys; k++)
		{
			for (int g = 0; g < ngroups; g++)
			{
				int			at = (r->attnos[k] - 1) + group_row[g] * rows->natts;

				elems[g] = rows->values[at];
				enulls[g] = rows->nulls[at];
			}
			args[a++] = PointerGetDatum(construct_md_array(elems, enulls, 1, dims, lbs, r->types[k],
														   r->typlen[k], r->typbyval[k], r->typalign[k]));
		}
		for (int g = 0; g < ngroups; g++)
			elems[g] = TimestampTzGetDatum(group_bucket[g]);
		args[a++] = PointerGetDatum(construct_array(elems, ngroups, TIMESTAMPTZOID, 8,
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		for (int v = 0; v < nv; v++)
		{
			for (int g = 0; g < ngroups; g++)
			{
				elems[g] = PointerGetDatum(&stats[g * nv + v]);
				enulls[g] = stats[g * nv + v].n == 0;	/* like stats_agg over no values */
			}
			args[a++] = PointerGetDatum(construct_md_array(elems, enulls, 1, dims, lbs, r->stats_type,
														   sizeof(StatsState), false, TYPALIGN_DOUBLE));
		}
		AsOwnerBegin(&as, r->owner);
		if (SPI_execute_plan(r->delta_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store a batch's groups for rollup \"%s\"", r->name);
		AsOwnerEnd(&as);
	}

	pargs[0] = Int32GetDatum(r->rollup_id);
	pargs[1] = Int64GetDatum(merged);
	pargs[2] = Int64GetDatum(late);
	if (SPI_execute_plan(r->progress_plan, pargs, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not store the progress of rollup \"%s\"", r->name);
}

/*
 * Folds the waiting deltas into the rollup table, under the lock and with
 * the statement _rollup_apply() uses too, as the table's owner; inside
 * SPI, in the detection worker's transaction.
 */
void
RollupApply(Rollup *r)
{
	Datum		args[1] = {Int32GetDatum(r->rollup_id)};
	AsOwner		as;

	if (SPI_execute_plan(r->lock_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock rollup \"%s\"", r->name);
	AsOwnerBegin(&as, r->owner);
	if (SPI_execute_plan(r->upsert_plan, NULL, NULL, false, 0) < 0)
		elog(ERROR, "could not fold the batches into rollup \"%s\"", r->name);
	AsOwnerEnd(&as);
}
