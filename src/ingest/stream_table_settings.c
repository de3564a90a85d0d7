/*-------------------------------------------------------------------------
 * stream_table_settings.c
 *		Writes to iotstream.stream_table_settings, and their checks.
 *
 * Roles do not write the settings table: create_stream_table(),
 * alter_stream_table() and drop_stream_table() call _settings_put() and
 * _settings_delete(), which check that the caller acts for the table's
 * owner and then write as the extension's owner.  A trigger checks every
 * row, whoever writes it (a superuser, a restore), with StreamTableCheck,
 * which backends run again when they load a row (stream_table.c); another
 * turns each change into a relcache invalidation of the table.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest_int.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/rel.h"
#include "utils/partcache.h"
#include "utils/inval.h"
#include "partitioning/partdesc.h"
#include "partitioning/partbounds.h"
#include "access/relation.h"

/*
 * Errors, with a hint, unless relid can be a stream table: a partitioned
 * table, by RANGE on time_column alone, of type timestamptz, timestamp or
 * date, with no default partition, and a partition interval that is a
 * positive whole number of minutes (days for a date column) or of months,
 * up to a century.  Checked where settings are written (a trigger, in
 * stream_table_settings.c) and again whenever a backend loads them:
 * the table may have changed since.  Sets *attno and *typid.
 */
void
StreamTableCheck(Oid relid, const char *time_column, const Interval *iv,
				 AttrNumber *attno, Oid *typid)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);
	PartitionKey key;
	AttrNumber	a;
	Oid			t;
	char	   *relname;

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errhint("Register an existing table with iotstream.create_stream_table().")));
	relname = pstrdup(RelationGetRelationName(rel));
	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a partitioned table", relname),
				 errhint("Create stream tables with iotstream.create_stream_table(), which partitions them by time.")));
	a = time_column ? get_attnum(relid, time_column) : InvalidAttrNumber;
	if (a <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("time column \"%s\" does not exist in \"%s\"",
						time_column ? time_column : "(null)", relname),
				 errhint("The time column is the one the table is partitioned on.")));
	key = RelationGetPartitionKey(rel);
	if (key == NULL || key->strategy != PARTITION_STRATEGY_RANGE || key->partnatts != 1 ||
		key->partattrs[0] != a)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("\"%s\" is not partitioned by range on \"%s\" alone", relname, time_column),
				 errhint("A stream table is partitioned BY RANGE (%s).", quote_identifier(time_column))));
	t = get_atttype(relid, a);
	if (t != TIMESTAMPTZOID && t != TIMESTAMPOID && t != DATEOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("time column \"%s\" of \"%s\" is not of a time type", time_column, relname),
				 errhint("The time column must be timestamptz (recommended), timestamp or date.")));
	{
		PartitionDesc pd = RelationGetPartitionDesc(rel, true);

		if (pd->boundinfo != NULL && pd->boundinfo->default_index >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("stream table \"%s\" has a default partition", relname),
					 errdetail("A default partition blocks the creation of new partitions for the rows it holds."),
					 errhint("Detach the default partition and move its rows into the stream table.")));
	}
	if (iv != NULL)
	{
		int64		fixed = iv->time + (int64) iv->day * USECS_PER_DAY;

		if (iv->month < 0 || iv->day < 0 || iv->time < 0 || (iv->month == 0 && fixed <= 0) ||
			(iv->month > 0 && fixed != 0) || iv->month > 1200 ||
			fixed > (int64) 36525 * USECS_PER_DAY ||
			(iv->month == 0 && (fixed < USECS_PER_MINUTE || fixed % USECS_PER_MINUTE != 0)) ||
			(t == DATEOID && iv->month == 0 && fixed % USECS_PER_DAY != 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid partition_interval for \"%s\"", relname),
					 errdetail("A partition interval is a positive number of months, or a positive whole number of minutes (of days for a date column), up to a century."),
					 errhint("Use for example '1 hour', '1 day', '7 days' or '1 month'.")));
	}
	relation_close(rel, AccessShareLock);
	*attno = a;
	*typid = t;
}

/* The caller acts for relid's owner; then the extension's owner writes. */
static void
become_settings_writer(Oid relid, Oid *saved_user, int *saved_sec)
{
	Oid			owner = TableOwner(relid);
	Oid			settings = get_relname_relid("stream_table_settings",
											 get_namespace_oid("iotstream", false));

	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s", get_rel_name(relid)),
				 errhint("Only the table's owner, its members and superusers manage its stream table settings.")));
	GetUserIdAndSecContext(saved_user, saved_sec);
	SetUserIdAndSecContext(TableOwner(settings), *saved_sec | SECURITY_LOCAL_USERID_CHANGE);
}

/*
 * iotstream._settings_put(relid, time_column, partition_interval, premake,
 *		retention, retention_mode, max_past, max_future): inserts or replaces
 * the row of relid.
 */
PG_FUNCTION_INFO_V1(settings_put);
Datum
settings_put(PG_FUNCTION_ARGS)
{
	Oid			argtypes[8] = {OIDOID, NAMEOID, INTERVALOID, INT4OID, INTERVALOID, TEXTOID,
	INTERVALOID, INTERVALOID};
	Datum		args[8];
	char		nulls[8];
	Oid			saved_user;
	int			saved_sec;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a stream table's settings need its table"),
				 errhint("Use iotstream.create_stream_table().")));
	for (int i = 0; i < 8; i++)
	{
		args[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	become_settings_writer(PG_GETARG_OID(0), &saved_user, &saved_sec);
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO iotstream.stream_table_settings AS s"
							  " (relid, time_column, partition_interval, premake, retention, retention_mode,"
							  "  max_past, max_future)"
							  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
							  " ON CONFLICT (relid) DO UPDATE SET time_column = excluded.time_column,"
							  "  partition_interval = excluded.partition_interval, premake = excluded.premake,"
							  "  retention = excluded.retention, retention_mode = excluded.retention_mode,"
							  "  max_past = excluded.max_past, max_future = excluded.max_future",
							  8, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store stream table settings");
	SPI_finish();
	SetUserIdAndSecContext(saved_user, saved_sec);
	PG_RETURN_VOID();
}

/* iotstream._settings_delete(relid) -> whether relid had settings. */
PG_FUNCTION_INFO_V1(settings_delete);
Datum
settings_delete(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	Oid			saved_user;
	int			saved_sec;
	bool		found;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	args[0] = PG_GETARG_DATUM(0);
	become_settings_writer(PG_GETARG_OID(0), &saved_user, &saved_sec);
	SPI_connect();
	if (SPI_execute_with_args("DELETE FROM iotstream.stream_table_settings WHERE relid = $1",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete stream table settings");
	found = SPI_processed > 0;
	SPI_finish();
	SetUserIdAndSecContext(saved_user, saved_sec);
	PG_RETURN_BOOL(found);
}

/*
 * Trigger on iotstream.stream_table_settings, BEFORE INSERT OR UPDATE:
 * every row, whoever writes it, names a table that can be a stream table.
 */
PG_FUNCTION_INFO_V1(stream_table_settings_check);
Datum
stream_table_settings_check(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		relid,
				col,
				iv;
	AttrNumber	attno;
	Oid			typid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("stream_table_settings_check() must be called as a trigger"),
				 errhint("It is the trigger of iotstream.stream_table_settings.")));
	tup = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = trigdata->tg_relation->rd_att;
	relid = heap_getattr(tup, 1, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a stream table's settings need its table"),
				 errhint("Use iotstream.create_stream_table().")));
	col = heap_getattr(tup, 2, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a stream table's settings need its time column"),
				 errhint("Use iotstream.create_stream_table().")));
	iv = heap_getattr(tup, 3, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a stream table's settings need a partition interval"),
				 errhint("Use for example '1 day'.")));
	StreamTableCheck(DatumGetObjectId(relid), NameStr(*DatumGetName(col)),
					   DatumGetIntervalP(iv), &attno, &typid);
	return PointerGetDatum(tup);
}

/*
 * Trigger on iotstream.stream_table_settings: a change of settings
 * invalidates the table's relcache entry, which every backend's cache
 * listens to.
 */
PG_FUNCTION_INFO_V1(stream_table_settings_changed);
Datum
stream_table_settings_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuples[2];

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("stream_table_settings_changed() must be called as a trigger"),
				 errhint("It is the trigger of iotstream.stream_table_settings.")));
	tuples[0] = trigdata->tg_trigtuple;
	tuples[1] = trigdata->tg_newtuple;
	for (int i = 0; i < 2; i++)
	{
		bool		isnull;
		Oid			relid;

		if (tuples[i] == NULL)
			continue;
		relid = DatumGetObjectId(heap_getattr(tuples[i], 1,
											  trigdata->tg_relation->rd_att,
											  &isnull));
		if (!isnull && SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
			CacheInvalidateRelcacheByRelid(relid);
	}
	return PointerGetDatum(NULL);
}
