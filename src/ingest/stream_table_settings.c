/*-------------------------------------------------------------------------
 * stream_table_settings.c
 *		Writes to iotstream.stream_table_settings, and their checks.
 *
 * Roles do not write the settings table: create_stream_table(),
 * alter_stream_table() and drop_stream_table() call _settings_put() and
 * _settings_delete(), which check that the caller acts for the table's
 * owner and then write as the extension's owner.  A trigger checks every
 * row, whoever writes it (a superuser, a restore), with StreamTableCheck.
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

