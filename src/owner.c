/*-------------------------------------------------------------------------
 * owner.c
 *		Runs the code that belongs to a table as the table's owner.
 *
 * Workers and exports run as the bootstrap superuser, but what a table
 * brings with it (defaults, triggers, constraints, generated columns,
 * expression indexes, domains, casts, the views and functions a rule's SQL
 * reaches) must never run with more than its owner's rights.  AsOwnerBegin
 * switches to the owner inside a security-restricted operation with a GUC
 * nest level of its own, as PostgreSQL does for REFRESH MATERIALIZED VIEW
 * and autovacuum's index expressions.  Deferred triggers fire at each
 * switch, as the user who queued them: at commit they would fire as
 * whoever is current then (the superuser).  An error in between needs no cleanup:
 * transaction and subtransaction abort restore the user and the GUCs.
 *
 * Only iotstream's own catalog writes (offsets, dead letters, dedup keys,
 * progress, anomalies, the export ledger) run as the extension's owner.
 * See README.md, "Privileges".
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

/* The owner of relid; an error if it is gone or not a table. */
Oid
TableOwner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class c;
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errhint("The table was dropped; drop what refers to it.")));
	c = (Form_pg_class) GETSTRUCT(tup);
	if (c->relkind != RELKIND_RELATION && c->relkind != RELKIND_PARTITIONED_TABLE)
	{
		char	   *name = pstrdup(NameStr(c->relname));

		ReleaseSysCache(tup);
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", name),
				 errhint("iotstream reads and writes tables only, never views or other relations.")));
	}
	owner = c->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * SET CONSTRAINTS ALL IMMEDIATE: the deferred triggers queued so far fire
 * now, as the current user, instead of at commit as whoever is current
 * then.
 */
static void
fire_deferred_triggers(void)
{
	ConstraintsSetStmt stmt;

	memset(&stmt, 0, sizeof(stmt));
	stmt.type = T_ConstraintsSetStmt;
	stmt.constraints = NIL;
	stmt.deferred = false;
	AfterTriggerSetState(&stmt);
}

void
AsOwnerBegin(AsOwner *s, Oid owner)
{
	fire_deferred_triggers();	/* the caller's own, as the caller */
	GetUserIdAndSecContext(&s->saved_user, &s->saved_sec);
	SetUserIdAndSecContext(owner, s->saved_sec | SECURITY_RESTRICTED_OPERATION);
	s->guc_level = NewGUCNestLevel();
	s->active = true;
}

void
AsOwnerEnd(AsOwner *s)
{
	if (!s->active)
		return;
	fire_deferred_triggers();	/* the table's, as its owner */
	AtEOXact_GUC(false, s->guc_level);
	SetUserIdAndSecContext(s->saved_user, s->saved_sec);
	s->active = false;
}

/*
 * The caller may act as relid's owner: it has the owner's privileges (a
 * superuser has everyone's).  Running something as the owner is then no
 * gain of rights.
 */
Oid
OwnerForCaller(Oid relid)
{
	Oid			owner;

	LockRelationOid(relid, AccessShareLock);
	owner = TableOwner(relid);
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run statements as the owner of \"%s\"",
						get_rel_name(relid)),
				 errhint("Only the table's owner, its members and superusers may.")));
	return owner;
}

/*
 * iotstream._as_owner(relid regclass, sql text, a timestamptz, b timestamptz)
 *	 -> jsonb
 * Runs sql ($1 = a, $2 = b) as the owner of relid: a query's first row
 * (its one jsonb column; NULL if none), or {"rows": n} for other
 * statements.  How the SQL functions of exports and rollups reach a table
 * without lending it the caller's rights.
 */
PG_FUNCTION_INFO_V1(iotstream_as_owner);
Datum
iotstream_as_owner(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *sql;
	Oid			argtypes[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[2];
	char		nulls[2];
	AsOwner		as;
	int			rc;
	Jsonb	   *result = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a table and a statement are required"),
				 errhint("Pass the table whose owner runs the statement, and the statement.")));
	relid = PG_GETARG_OID(0);
	sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	for (int i = 0; i < 2; i++)
	{
		nulls[i] = PG_ARGISNULL(2 + i) ? 'n' : ' ';
		args[i] = PG_ARGISNULL(2 + i) ? (Datum) 0 : PG_GETARG_DATUM(2 + i);
	}

	AsOwnerBegin(&as, OwnerForCaller(relid));
	SPI_connect();
	rc = SPI_execute_with_args(sql, 2, argtypes, args, nulls, false, 0);
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not run a statement as the owner of \"%s\": %s",
						get_rel_name(relid), SPI_result_code_string(rc))));
	if (SPI_tuptable != NULL)
	{
		if (SPI_tuptable->tupdesc->natts != 1 ||
			SPI_gettypeid(SPI_tuptable->tupdesc, 1) != JSONBOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("a query run as the owner must return one jsonb column"),
					 errhint("Wrap it as SELECT to_jsonb(q) FROM (...) q.")));
		if (SPI_processed > 0)
		{
			bool		isnull;
			Datum		j = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
			{
				MemoryContext old = MemoryContextSwitchTo(cxt);

				result = DatumGetJsonbPCopy(j);
				MemoryContextSwitchTo(old);
			}
		}
	}
	else
	{
		char	   *s = psprintf("{\"rows\": " UINT64_FORMAT "}", SPI_processed);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	AsOwnerEnd(&as);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(result);
}

/*
 * sql with every placeholder replaced by relid's current qualified name.
 * Stored statements name their tables by placeholder, not by the name
 * they had when the definition was made: a rename, or a view put in a
 * table's place, never redirects them.
 */
char *
RelationPlaceholderSubstitute(const char *sql, const char *placeholder, Oid relid)
{
	StringInfoData out;
	const char *name;
	size_t		plen = strlen(placeholder);
	const char *p;

	if (strstr(sql, placeholder) == NULL)
		return pstrdup(sql);
	(void) TableOwner(relid);	/* it is still a table */
	name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
	initStringInfo(&out);
	while ((p = strstr(sql, placeholder)) != NULL)
	{
		appendBinaryStringInfo(&out, sql, p - sql);
		appendStringInfoString(&out, name);
		sql = p + plen;
	}
	appendStringInfoString(&out, sql);
	return out.data;
}

/*
 * Errors unless a C function got the n arguments this library expects:
 * between installing a new library and ALTER EXTENSION UPDATE, the SQL
 * declaration may still be the older one, with fewer.
 */
void
RequireArguments(FunctionCallInfo fcinfo, int n, const char *function)
{
	if (PG_NARGS() < n)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s was declared by an older version of iotstream", function),
				 errhint("Run ALTER EXTENSION iotstream UPDATE.")));
}
