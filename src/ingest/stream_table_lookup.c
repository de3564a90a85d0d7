/*-------------------------------------------------------------------------
 * stream_table_lookup.c
 *		Whether a relation is a stream table, for hooks that run for any
 *		role's statements (copy_route.c, insert_hint.c).
 *
 * A role may lack USAGE on iotstream's schema, so the settings are read as
 * the extension's owner, who owns iotstream's catalog.  Invariant: the
 * answer is the stream table cache's (stream_table.c); nothing else of the
 * caller's statement runs as the extension's owner.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest_int.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

/*
 * The owner of the extension, who reads and writes its catalog (owner.c);
 * looked up once per backend.
 */
Oid
IngestExtensionOwner(void)
{
	static Oid	cached = InvalidOid;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (OidIsValid(cached))
		return cached;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(get_extension_oid("iotstream", false)));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "extension iotstream not found");
	cached = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return cached;
}

/*
 * Whether relid is a stream table: a hash lookup for those that are, a
 * catalog read for those that are not (callers filter on relkind first).
 * The hooks ask it for any role's COPY or INSERT, and a role may lack
 * USAGE on iotstream's schema: the catalog is read as the extension's
 * owner.
 */
bool
StreamTableIs(Oid relid)
{
	Oid			save_user;
	int			save_sec;
	volatile bool result = false;

	if (StreamTableFind(relid, false))
		return true;
	if (!OidIsValid(get_extension_oid("iotstream", true)))
		return false;
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(IngestExtensionOwner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		result = StreamTableFind(relid, true);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
	return result;
}
