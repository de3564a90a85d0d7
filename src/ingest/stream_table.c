/*-------------------------------------------------------------------------
 * stream_table.c
 *		Time-partitioned stream tables: partitions on demand, by event time.
 *
 * A stream table is a table range-partitioned on one time column and
 * registered in iotstream.stream_table_settings.  The ingest path calls
 * StreamEnsurePartitions() once per batch with every row's event time; a
 * row whose partition exists must cost a couple of comparisons.  So each backend
 * keeps, per stream table, the settings and a sorted array of the ranges its
 * partitions cover, rebuilt from the relcache's PartitionDesc whenever the
 * parent's relcache entry is invalidated (attach, detach, drop, or a change
 * of settings, which a trigger turns into an invalidation).
 *
 * Partitions are aligned on a grid of partition_interval (UTC), named
 * <table>_pYYYYMMDD (or _pYYYYMM, _pYYYYMMDD_HH, ...), and created as a plain
 * table that is then attached: ATTACH takes only SHARE UPDATE EXCLUSIVE on
 * the parent, so readers and writers of other partitions are never blocked.
 * A new partition is clipped to the gap between its neighbours, so tables
 * adopted with unaligned partitions keep working.  There is never a default
 * partition: a row whose time is outside the configured bounds (or the
 * years 1 to 9999) is rejected with a reason instead of being parked where
 * it would block later periods.  See docs/stream-tables.md.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest_int.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "common/int.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

/* Monday 2000-01-03: weekly grids start on Mondays, like ISO weeks. */
#define WEEK_ORIGIN		(2 * USECS_PER_DAY)
#define USECS_PER_WEEK	(7 * USECS_PER_DAY)

/* Partitions one call of ensure_partitions may create. */
#define ENSURE_PARTITIONS_MAX	10000

typedef struct StreamTableInfo
{
	Oid			relid;			/* hash key */
	bool		valid;			/* false after a relcache invalidation */

	/* settings */
	AttrNumber	time_attno;
	Oid			time_type;		/* TIMESTAMPTZOID, TIMESTAMPOID or DATEOID */
	int32		months;			/* interval in months, or 0 */
	int64		width;			/* interval in microseconds, or 0 */
	Interval	max_past;
	Interval	max_future;
	bool		has_max_past;
	bool		has_max_future;
	Oid			owner;
	char	   *nspname;
	char	   *relname;

	/* bounds, computed once per transaction */
	TimestampTz bounds_at;
	StreamTime	lower_bound;
	StreamTime	upper_bound;

	/* partitions, sorted by lo; ranges are [lo, hi) */
	int			nparts;
	StreamTime *lo;
	StreamTime *hi;
	Oid		   *part_oid;
	int			last_hit;
} StreamTableInfo;

static HTAB *StreamTableCache = NULL;
static MemoryContext StreamTableContext = NULL;

static void
stream_table_relcache_cb(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	StreamTableInfo *info;

	if (StreamTableCache == NULL)
		return;
	if (OidIsValid(relid))
	{
		info = hash_search(StreamTableCache, &relid, HASH_FIND, NULL);
		if (info)
			info->valid = false;
		return;
	}
	hash_seq_init(&status, StreamTableCache);
	while ((info = hash_seq_search(&status)) != NULL)
		info->valid = false;
}

static void
stream_table_cache_init(void)
{
	HASHCTL		ctl;

	if (StreamTableCache)
		return;
	StreamTableContext = AllocSetContextCreate(CacheMemoryContext,
											   "iotstream stream tables",
											   ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(StreamTableInfo);
	ctl.hcxt = StreamTableContext;
	StreamTableCache = hash_create("iotstream stream tables", 16, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(stream_table_relcache_cb, (Datum) 0);
}

StreamTime
StreamTimeFromDatum(Datum value, Oid typid)
{
	if (typid == DATEOID)
	{
		DateADT		d = DatumGetDateADT(value);

		if (DATE_IS_NOBEGIN(d))
			return DT_NOBEGIN;
		if (DATE_IS_NOEND(d))
			return DT_NOEND;
		return (StreamTime) d * USECS_PER_DAY;
	}
	return DatumGetInt64(value);
}

static StreamTime
bound_datum_time(PartitionBoundInfo b, int i, Oid typid)
{
	if (b->kind[i][0] == PARTITION_RANGE_DATUM_MINVALUE)
		return DT_NOBEGIN;
	if (b->kind[i][0] == PARTITION_RANGE_DATUM_MAXVALUE)
		return DT_NOEND;
	return StreamTimeFromDatum(b->datums[i][0], typid);
}

/* Read the settings row; returns false if relid is not a stream table. */
static bool
load_settings(StreamTableInfo *info)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	bool		found = false;

	if (!OidIsValid(get_namespace_oid("iotstream", true)))
		return false;

	args[0] = ObjectIdGetDatum(info->relid);
	SPI_connect();
	if (SPI_execute_with_args("SELECT time_column, partition_interval, max_past, max_future"
							  " FROM iotstream.stream_table_settings WHERE relid = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.stream_table_settings");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *colname = SPI_getvalue(tup, desc, 1);
		Interval   *iv = DatumGetIntervalP(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		d;

		info->bounds_at = 0;	/* settings changed: recompute bounds */
		/* the table may have changed since the settings were written */
		StreamTableCheck(info->relid, colname, iv, &info->time_attno, &info->time_type);
		info->months = iv->month;
		info->width = iv->day * USECS_PER_DAY + iv->time;

		d = SPI_getbinval(tup, desc, 3, &isnull);
		info->has_max_past = !isnull;
		if (!isnull)
			info->max_past = *DatumGetIntervalP(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		info->has_max_future = !isnull;
		if (!isnull)
			info->max_future = *DatumGetIntervalP(d);
		found = true;
	}
	SPI_finish();
	return found;
}

/* Rebuild the partition ranges from the relcache's partition descriptor. */
static void
load_partitions(StreamTableInfo *info)
{
	Relation	rel = relation_open(info->relid, AccessShareLock);
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	PartitionBoundInfo b = pd->boundinfo;
	MemoryContext old = MemoryContextSwitchTo(StreamTableContext);
	int			n = 0;

	if (info->lo)
	{
		pfree(info->lo);
		pfree(info->hi);
		pfree(info->part_oid);
	}
	info->lo = palloc(sizeof(StreamTime) * (pd->nparts + 1));
	info->hi = palloc(sizeof(StreamTime) * (pd->nparts + 1));
	info->part_oid = palloc(sizeof(Oid) * (pd->nparts + 1));

	/* indexes[i] is the partition whose upper bound is datums[i] */
	for (int i = 1; b != NULL && i < b->ndatums; i++)
	{
		int			idx = b->indexes[i];

		if (idx < 0)
			continue;
		info->lo[n] = bound_datum_time(b, i - 1, info->time_type);
		info->hi[n] = bound_datum_time(b, i, info->time_type);
		info->part_oid[n] = pd->oids[idx];
		n++;
	}
	info->nparts = n;
	info->last_hit = 0;

	if (info->nspname)
		pfree(info->nspname);
	if (info->relname)
		pfree(info->relname);
	info->nspname = pstrdup(get_namespace_name(RelationGetNamespace(rel)));
	info->relname = pstrdup(RelationGetRelationName(rel));
	info->owner = rel->rd_rel->relowner;
	MemoryContextSwitchTo(old);

	if (b != NULL && b->default_index >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stream table \"%s\" has a default partition",
						RelationGetRelationName(rel)),
				 errdetail("A default partition blocks the creation of new partitions for the rows it holds."),
				 errhint("Detach the default partition and move its rows into the stream table.")));
	relation_close(rel, AccessShareLock);
}

/* The cache entry for relid, valid; NULL if relid is not a stream table. */
static StreamTableInfo *
get_stream_table(Oid relid, bool missing_ok)
{
	StreamTableInfo *info;
	bool		found;

	stream_table_cache_init();
	info = hash_search(StreamTableCache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		memset((char *) info + sizeof(Oid), 0, sizeof(StreamTableInfo) - sizeof(Oid));
		info->valid = false;
	}
	if (!info->valid)
	{
		/* Set first: an invalidation arriving while we load clears it again. */
		info->valid = true;
		PG_TRY();
		{
			if (!load_settings(info))
			{
				if (info->lo)
				{
					pfree(info->lo);
					pfree(info->hi);
					pfree(info->part_oid);
					pfree(info->nspname);
					pfree(info->relname);
				}
				hash_search(StreamTableCache, &relid, HASH_REMOVE, NULL);
				info = NULL;
			}
			else
				load_partitions(info);
		}
		PG_CATCH();
		{
			info->valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	if (info == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation \"%s\" is not a stream table",
						get_rel_name(relid) ? get_rel_name(relid) : "?"),
				 errhint("Create it with iotstream.create_stream_table().")));
	return info;
}

AttrNumber
StreamTimeColumn(Oid relid, Oid *typid)
{
	StreamTableInfo *info = get_stream_table(relid, false);

	if (typid)
		*typid = info->time_type;
	return info->time_attno;
}

/* floor division, for times before the origin */
static inline int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The grid period [*start, *end) that holds ts. */
static void
period_of(StreamTableInfo *info, StreamTime ts, StreamTime *start, StreamTime *end)
{
	if (info->months == 0)
	{
		int64		origin = (info->width % USECS_PER_WEEK == 0) ? WEEK_ORIGIN : 0;
		int64		k = floor_div(ts - origin, info->width);

		*start = origin + k * info->width;
		*end = *start + info->width;
	}
	else
	{
		struct pg_tm tm;
		fsec_t		fsec;
		int64		m;

		if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		m = floor_div((int64) (tm.tm_year - 2000) * 12 + tm.tm_mon - 1,
					  info->months) * info->months;
		for (int side = 0; side < 2; side++)
		{
			int64		mm = m + side * info->months;
			struct pg_tm t = {0};
			Timestamp	result;

			t.tm_year = 2000 + (int) floor_div(mm, 12);
			t.tm_mon = (int) (mm - floor_div(mm, 12) * 12) + 1;
			t.tm_mday = 1;
			if (tm2timestamp(&t, 0, NULL, &result) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("timestamp out of range")));
			if (side == 0)
				*start = result;
			else
				*end = result;
		}
	}
}

static bool
interval_is_huge(const Interval *iv)
{
	return iv->month > 12 * 5000 || iv->day > 366 * 5000 ||
		iv->time > (int64) 366 * 5000 * USECS_PER_DAY;
}

static void
compute_bounds(StreamTableInfo *info)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (info->bounds_at == now && now != 0)
		return;
	/* a bound further than a few millennia is none (and cannot overflow) */
	if (info->has_max_past && interval_is_huge(&info->max_past))
		info->has_max_past = false;
	if (info->has_max_future && interval_is_huge(&info->max_future))
		info->has_max_future = false;
	info->lower_bound = info->has_max_past ?
		DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
												TimestampTzGetDatum(now),
												IntervalPGetDatum(&info->max_past))) :
		DT_NOBEGIN;
	info->upper_bound = info->has_max_future ?
		DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												TimestampTzGetDatum(now),
												IntervalPGetDatum(&info->max_future))) :
		DT_NOEND;
	info->bounds_at = now;
}

/* Index of the partition holding ts, or -1. */
static int
find_partition(StreamTableInfo *info, StreamTime ts)
{
	int			lo = 0,
				hi = info->nparts - 1;
	int			h = info->last_hit;

	if (h < info->nparts && ts >= info->lo[h] && ts < info->hi[h])
		return h;
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (ts < info->lo[mid])
			hi = mid - 1;
		else if (ts >= info->hi[mid])
			lo = mid + 1;
		else
		{
			info->last_hit = mid;
			return mid;
		}
	}
	return -1;
}

/* SQL literal of a time value in the column's type, always in UTC. */
static char *
time_literal(StreamTableInfo *info, StreamTime t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	if (info->time_type == DATEOID)
		return psprintf("'%04d-%02d-%02d'", tm.tm_year, tm.tm_mon, tm.tm_mday);
	return psprintf("'%04d-%02d-%02d %02d:%02d:%02d.%06d%s'",
					tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
					tm.tm_sec, (int) fsec,
					info->time_type == TIMESTAMPTZOID ? "+00" : "");
}

/* <table>_pYYYYMMDD and friends; the finest unit the interval needs. */
static char *
partition_name(StreamTableInfo *info, StreamTime start)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		suffix[32];
	int			baselen;

	if (timestamp2tm(start, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "partition start out of range");
	if (info->months > 0 && info->months % 12 == 0)
		snprintf(suffix, sizeof(suffix), "_p%04d", tm.tm_year);
	else if (info->months > 0)
		snprintf(suffix, sizeof(suffix), "_p%04d%02d", tm.tm_year, tm.tm_mon);
	else if (info->width % USECS_PER_DAY == 0 && tm.tm_hour == 0 && tm.tm_min == 0)
		snprintf(suffix, sizeof(suffix), "_p%04d%02d%02d",
				 tm.tm_year, tm.tm_mon, tm.tm_mday);
	else if (info->width % USECS_PER_HOUR == 0 && tm.tm_min == 0)
		snprintf(suffix, sizeof(suffix), "_p%04d%02d%02d_%02d",
				 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour);
	else
		snprintf(suffix, sizeof(suffix), "_p%04d%02d%02d_%02d%02d",
				 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min);

	/* leave room for the suffix and a collision counter */
	baselen = pg_mbcliplen(info->relname, strlen(info->relname),
						   NAMEDATALEN - 1 - strlen(suffix) - 3);
	return psprintf("%.*s%s", baselen, info->relname, suffix);
}

/*
 * Create and attach the partition for ts, clipped to the gap between its
 * neighbours.  The caller holds SHARE UPDATE EXCLUSIVE on the parent and has
 * checked that no partition holds ts.  Runs as the table's owner, so the
 * partition has the same owner as its parent whoever triggered it.
 */
static void
create_partition(StreamTableInfo *info, StreamTime ts)
{
	StreamTime	start,
				end;
	char	   *name;
	char	   *qname;
	char	   *qparent;
	char	   *create_sql;
	char	   *attach_sql;
	Oid			nsp = get_namespace_oid(info->nspname, false);
	Oid			save_userid;
	int			save_sec;
	int			i;

	period_of(info, ts, &start, &end);
	for (i = 0; i < info->nparts; i++)
	{
		if (info->hi[i] <= ts && info->hi[i] > start)
			start = info->hi[i];
		if (info->lo[i] > ts && info->lo[i] < end)
			end = info->lo[i];
	}

	name = partition_name(info, start);
	for (i = 1; OidIsValid(get_relname_relid(name, nsp)); i++)
		name = psprintf("%s_%d", partition_name(info, start), i);

	qname = quote_qualified_identifier(info->nspname, name);
	qparent = quote_qualified_identifier(info->nspname, info->relname);
	create_sql = psprintf("CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS"
						  " INCLUDING CONSTRAINTS INCLUDING GENERATED"
						  " INCLUDING STORAGE INCLUDING COMPRESSION)",
						  qname, qparent);
	attach_sql = psprintf("ALTER TABLE %s ATTACH PARTITION %s"
						  " FOR VALUES FROM (%s) TO (%s)",
						  qparent, qname, time_literal(info, start),
						  time_literal(info, end));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(info->owner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		SPI_connect();
		if (SPI_execute(create_sql, false, 0) != SPI_OK_UTILITY ||
			SPI_execute(attach_sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not create partition %s", qname);
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/*
 * Event times a stream table takes at all: years 1 to 9999, whose
 * partition bounds PostgreSQL reads back as it prints them.
 */
#define STREAM_TIME_MIN	INT64CONST(-63082281600000000)	/* 0001-01-01 UTC */
#define STREAM_TIME_END	INT64CONST(252455616000000000)	/* 10000-01-01 UTC */

static StreamRowVerdict
check_row(StreamTableInfo *info, StreamTime ts)
{
	if (ts < STREAM_TIME_MIN || ts >= STREAM_TIME_END)
		return STREAM_ROW_OUT_OF_RANGE;
	if (ts < info->lower_bound)
		return STREAM_ROW_TOO_OLD;
	if (ts >= info->upper_bound)
		return STREAM_ROW_TOO_NEW;
	return STREAM_ROW_OK;
}

/* Make sure a partition holds ts; create it if needed.  No bounds check. */
static Oid
ensure_partition_for(Oid relid, StreamTime ts)
{
	StreamTableInfo *info = get_stream_table(relid, false);
	int			i;

	if ((i = find_partition(info, ts)) >= 0)
		return info->part_oid[i];

	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("cannot create a partition for an infinite time")));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create a partition of \"%s\"",
						info->relname),
				 errhint("Creating partitions on demand requires INSERT on the stream table.")));

	/* Serialize creators; acquiring the lock also processes invalidations. */
	LockRelationOid(relid, ShareUpdateExclusiveLock);
	info = get_stream_table(relid, false);
	if ((i = find_partition(info, ts)) < 0)
	{
		create_partition(info, ts);
		CommandCounterIncrement();
		info = get_stream_table(relid, false);
		i = find_partition(info, ts);
		if (i < 0)
			elog(ERROR, "partition for new rows of \"%s\" not found after creation",
				 info->relname);
	}
	return info->part_oid[i];
}

/*
 * ensure_partition_for in a subtransaction: false, with the reason in
 * *error, if the partition could not be created.
 */
typedef struct PartitionFor
{
	Oid			relid;
	StreamTime	ts;
} PartitionFor;

static void
ensure_partition_step(void *arg)
{
	PartitionFor *p = arg;

	(void) ensure_partition_for(p->relid, p->ts);
}

static bool
ensure_partition_safely(Oid relid, StreamTime ts, const char **error)
{
	PartitionFor p = {relid, ts};
	const char *msg = CatchError(ensure_partition_step, &p);

	if (msg)
		*error = psprintf("no partition could be created for the event time: %s", msg);
	return msg == NULL;
}

/*
 * The verdict on each row's event time, creating the partitions the rows
 * that pass need.  With errors (the retry of a failed batch, row by row)
 * a partition that cannot be created fails only its rows, each with its
 * reason in errors[i]; without, it fails the batch.
 */
void
StreamEnsurePartitions(Oid relid, const StreamTime *ts, const bool *isnull,
					   int n, StreamRowVerdict *verdicts, const char **errors)
{
	StreamTableInfo *info = get_stream_table(relid, false);

	compute_bounds(info);
	for (int i = 0; i < n; i++)
	{
		if (isnull && isnull[i])
			verdicts[i] = STREAM_ROW_NULL_TIME;
		else if ((verdicts[i] = check_row(info, ts[i])) == STREAM_ROW_OK &&
				 find_partition(info, ts[i]) < 0)
		{
			if (errors == NULL)
				ensure_partition_for(relid, ts[i]);
			else if (!ensure_partition_safely(relid, ts[i], &errors[i]))
				verdicts[i] = STREAM_ROW_NO_PARTITION;
			info = get_stream_table(relid, false);
		}
	}
}

/*
 * Whether relid is a stream table: a hash lookup for those that are, and
 * with read_catalog a catalog read (as the current user) for the others.
 * The hooks call it through StreamTableIs (stream_table_lookup.c).
 */
bool
StreamTableFind(Oid relid, bool read_catalog)
{
	StreamTableInfo *info;

	stream_table_cache_init();
	info = hash_search(StreamTableCache, &relid, HASH_FIND, NULL);
	if (info && info->valid)
		return true;
	return read_catalog && get_stream_table(relid, true) != NULL;
}

/*
 * The verdict on each row of a load (COPY): a row whose partition exists
 * is taken whatever its time, as PostgreSQL's own COPY would; the bounds
 * apply only to the partitions a load creates.  With create false nothing
 * is created, and the rows that need a partition are counted (verdict
 * STREAM_ROW_NO_PARTITION): the caller must close the table before it
 * calls again with create true, since ATTACH cannot run on a table in use.
 */
int
StreamRoutePartitions(Oid relid, const StreamTime *ts, const bool *isnull, int n,
					  StreamRowVerdict *verdicts, bool create)
{
	StreamTableInfo *info = get_stream_table(relid, false);
	int			missing = 0;

	compute_bounds(info);
	for (int i = 0; i < n; i++)
	{
		if (isnull[i])
			verdicts[i] = STREAM_ROW_NULL_TIME;
		else if (find_partition(info, ts[i]) >= 0)
			verdicts[i] = STREAM_ROW_OK;
		else if ((verdicts[i] = check_row(info, ts[i])) != STREAM_ROW_OK)
			continue;
		else if (!create)
		{
			verdicts[i] = STREAM_ROW_NO_PARTITION;
			missing++;
		}
		else
		{
			ensure_partition_for(relid, ts[i]);
			info = get_stream_table(relid, false);
		}
	}
	return missing;
}

const char *
StreamRowVerdictReason(StreamRowVerdict verdict)
{
	switch (verdict)
	{
		case STREAM_ROW_OK:
			return NULL;
		case STREAM_ROW_NULL_TIME:
			return "the event time is null";
		case STREAM_ROW_TOO_OLD:
			return "the event time is older than the stream table's max_past bound";
		case STREAM_ROW_TOO_NEW:
			return "the event time is further in the future than the stream table's max_future bound";
		case STREAM_ROW_OUT_OF_RANGE:
			return "the event time is outside the years 1 to 9999";
		case STREAM_ROW_NO_PARTITION:
			return "no partition could be created for the event time";
	}
	return "unknown verdict";
}

/*
 * iotstream.ensure_partition(stream_table regclass, ts timestamptz) -> regclass
 * The partition that holds ts, created if needed; the bounds apply, as they
 * do for ingested rows.
 */
PG_FUNCTION_INFO_V1(ensure_partition);
Datum
ensure_partition(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	StreamTime	ts = PG_GETARG_TIMESTAMPTZ(1);
	StreamTableInfo *info = get_stream_table(relid, false);
	StreamRowVerdict v;

	compute_bounds(info);
	v = check_row(info, ts);
	if (v != STREAM_ROW_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("event time %s is outside the bounds of stream table \"%s\"",
						timestamptz_to_str(ts), info->relname),
				 errdetail("Rejected because %s.", StreamRowVerdictReason(v)),
				 v == STREAM_ROW_OUT_OF_RANGE ?
				 errhint("Stream tables take event times from the year 1 to the year 9999.") :
				 errhint("Widen the bounds with iotstream.alter_stream_table(max_past => ..., max_future => ...).")));
	PG_RETURN_OID(ensure_partition_for(relid, ts));
}

/*
 * iotstream.ensure_partitions(stream_table regclass, from timestamptz,
 *							   to timestamptz) -> int
 * Creates the partitions of every period that intersects [from, to]; no
 * bounds apply.  Returns how many were created.
 */
PG_FUNCTION_INFO_V1(ensure_partitions);
Datum
ensure_partitions(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	StreamTime	from = PG_GETARG_TIMESTAMPTZ(1);
	StreamTime	to = PG_GETARG_TIMESTAMPTZ(2);
	StreamTableInfo *info = get_stream_table(relid, false);
	int			before = info->nparts;
	StreamTime	t = from;
	int64		span;
	/* timestamptz_to_str returns a static buffer */
	char	   *from_text = pstrdup(timestamptz_to_str(from));
	char	   *to_text = pstrdup(timestamptz_to_str(to));

	if (TIMESTAMP_NOT_FINITE(from) || TIMESTAMP_NOT_FINITE(to))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partition ranges must be finite"),
				 errhint("Pass finite timestamps as from and to.")));
	/* no bounds apply here: only the owner decides how many partitions */
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create partitions of \"%s\" outside its bounds",
						info->relname),
				 errhint("Only the table's owner may; others get partitions within the bounds as they insert.")));
	if (from > to)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from (%s) is after to (%s)", from_text, to_text),
				 errhint("Pass the earlier time first.")));
	if (pg_sub_s64_overflow(to, from, &span) ||
		span / ENSURE_PARTITIONS_MAX >= (info->width ? info->width : USECS_PER_DAY * 28))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("range from %s to %s needs more than %d partitions",
						from_text, to_text, ENSURE_PARTITIONS_MAX),
				 errhint("Create them in several calls, or use a coarser partition_interval.")));
	while (t <= to)
	{
		int			i;

		ensure_partition_for(relid, t);
		info = get_stream_table(relid, false);
		i = find_partition(info, t);
		t = info->hi[i];
	}
	PG_RETURN_INT32(info->nparts - before);
}

/*
 * iotstream.partitions(stream_table regclass)
 *	 -> setof (partition regclass, range_start timestamptz, range_end timestamptz)
 */
PG_FUNCTION_INFO_V1(partitions);
Datum
partitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StreamTableInfo *info;

	InitMaterializedSRF(fcinfo, 0);
	info = get_stream_table(PG_GETARG_OID(0), false);
	for (int i = 0; i < info->nparts; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = ObjectIdGetDatum(info->part_oid[i]);
		values[1] = TimestampTzGetDatum(info->lo[i]);
		values[2] = TimestampTzGetDatum(info->hi[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
