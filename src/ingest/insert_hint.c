/*-------------------------------------------------------------------------
 * insert_hint.c
 *		A hint on PostgreSQL's "no partition of relation" error for a
 *		stream table: the exact call that creates the missing partition.
 *
 * A plain INSERT cannot create partitions: the executor routes rows through
 * the partition descriptor it saw when the statement started, and a table
 * a statement has open cannot have a partition attached.  So the INSERT
 * fails as PostgreSQL makes it fail, with the same SQLSTATE (23514) and
 * message, and this file adds the hint a newcomer needs.  The executor
 * hook decides before the statement runs whether its target is a stream
 * table (no catalog access happens while an error is in flight) and only
 * rewrites that one error of that one table; every other error passes
 * untouched.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest_int.h"

#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/* PostgreSQL's message (execPartition.c), untranslated */
#define NO_PARTITION_MESSAGE	"no partition of relation \"%s\" found for row"

static ExecutorRun_hook_type prev_ExecutorRun = NULL;

/* The value between "= (" and the final ")" of the key's errdetail. */
static char *
failing_key_value(const char *detail)
{
	const char *start;
	const char *end;

	if (detail == NULL || (start = strstr(detail, ") = (")) == NULL)
		return NULL;
	start += 5;
	end = strrchr(start, ')');
	if (end == NULL || end == start)
		return NULL;
	return pnstrdup(start, end - start);
}

/*
 * Called in a PG_CATCH block with cxt a memory context outside the error
 * context: if the error in flight is the missing partition of the stream
 * table nspname.relname, throws it again with a hint; otherwise returns,
 * and the caller re-throws it as it is.
 */
static void
insert_hint_rethrow(const char *nspname, const char *relname, MemoryContext cxt)
{
	MemoryContext ecxt = MemoryContextSwitchTo(cxt);
	ErrorData  *ed = CopyErrorData();
	char	   *table;
	char	   *value;

	if (ed->sqlerrcode != ERRCODE_CHECK_VIOLATION || ed->hint != NULL ||
		ed->message_id == NULL || strcmp(ed->message_id, NO_PARTITION_MESSAGE) != 0 ||
		ed->table_name == NULL || strcmp(ed->table_name, relname) != 0 ||
		ed->schema_name == NULL || strcmp(ed->schema_name, nspname) != 0)
	{
		FreeErrorData(ed);
		MemoryContextSwitchTo(ecxt);
		return;
	}
	FlushErrorState();
	table = quote_literal_cstr(quote_qualified_identifier(nspname, relname));
	value = failing_key_value(ed->detail);
	if (value)
	{
		value = quote_literal_cstr(value);
		ed->hint = psprintf("Create the partition first: SELECT iotstream.ensure_partitions(%s, %s, %s); "
							"as the table's owner, or iotstream.ensure_partition(%s, %s) within the table's bounds.  "
							"COPY into a stream table creates the partitions it needs.",
							table, value, value, table, value);
	}
	else
		ed->hint = psprintf("Create the partitions of the period first: SELECT iotstream.ensure_partitions(%s, from, to); "
							"as the table's owner.  COPY into a stream table creates the partitions it needs.",
							table);
	ReThrowError(ed);
}

/* The target of an INSERT, if it is a stream table; else InvalidOid. */
static Oid
insert_target(QueryDesc *qd)
{
	PlannedStmt *ps = qd->plannedstmt;
	RangeTblEntry *rte;

	if (qd->operation != CMD_INSERT || ps == NULL || ps->resultRelations == NIL)
		return InvalidOid;
	rte = rt_fetch(linitial_int(ps->resultRelations), ps->rtable);
	if (rte->rtekind != RTE_RELATION || rte->relkind != RELKIND_PARTITIONED_TABLE ||
		!StreamTableIs(rte->relid))
		return InvalidOid;
	return rte->relid;
}

/*
 * Runs step(arg); if it fails on a missing partition of the stream table
 * relid, the error carries the hint.
 */
void
InsertHintRun(Oid relid, void (*step) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *relname = get_rel_name(relid);
	char	   *nspname = get_namespace_name(get_rel_namespace(relid));

	PG_TRY();
	{
		step(arg);
	}
	PG_CATCH();
	{
		if (relname && nspname)
			insert_hint_rethrow(nspname, relname, cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

typedef struct ExecutorRunArgs
{
	QueryDesc  *qd;
	ScanDirection direction;
	uint64		count;
	bool		execute_once;
} ExecutorRunArgs;

static void
executor_run_step(void *arg)
{
	ExecutorRunArgs *a = arg;

	if (prev_ExecutorRun)
		prev_ExecutorRun(a->qd, a->direction, a->count, a->execute_once);
	else
		standard_ExecutorRun(a->qd, a->direction, a->count, a->execute_once);
}

static void
insert_hint_ExecutorRun(QueryDesc *qd, ScanDirection direction, uint64 count,
						bool execute_once)
{
	ExecutorRunArgs a = {qd, direction, count, execute_once};
	Oid			relid = insert_target(qd);

	if (OidIsValid(relid))
		InsertHintRun(relid, executor_run_step, &a);
	else
		executor_run_step(&a);
}

void
InsertHintInit(void)
{
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = insert_hint_ExecutorRun;
}
