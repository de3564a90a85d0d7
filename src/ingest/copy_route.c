/*-------------------------------------------------------------------------
 * copy_route.c
 *		COPY FROM into a stream table creates the partitions its rows need.
 *
 * PostgreSQL's COPY routes rows through the partition descriptor it saw
 * when it started, and no partition can be attached to a table a statement
 * holds open, so a plain COPY fails on the first row of a missing period.
 * This ProcessUtility hook runs such a COPY itself.  PostgreSQL's reader
 * (BeginCopyFrom, NextCopyFrom) parses the input, every format and option
 * included, COPY_BATCH_ROWS rows at a time; each batch's event times are
 * checked against the stream table's partition cache (two comparisons a
 * row); the rows are stored with the executor's tuple routing and per
 * partition multi-inserts, as COPY stores them.  When a batch needs a
 * partition, the table is closed, the partitions are created (within the
 * table's bounds, as its owner: stream_table.c) and the table is opened
 * again.  The reader works on its own copy of the table's descriptor, so
 * it never holds the table open; the RowExclusiveLock taken first and kept
 * to the end of the transaction keeps the columns as they are.
 *
 * Invariant: every row of the input is stored, or is a dead letter (with
 * the option out_of_bounds 'dead_letters'), or the COPY fails; a row is
 * routed only after its partition exists.  Statements the hook does not
 * take (WHERE, row-level security, transition tables, FREEZE) run as
 * PostgreSQL runs them, with insert_hint.c's hint on a missing partition.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest_int.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "commands/defrem.h"
#include "commands/progress.h"
#include "commands/trigger.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/backend_progress.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#define COPY_BATCH_ROWS		10000
#define COPY_BATCH_BYTES	(16 * 1024 * 1024)

/* the COPY option of the hook, removed before PostgreSQL sees the rest */
#define OPTION_OUT_OF_BOUNDS	"out_of_bounds"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

typedef struct CopyRoute
{
	MemoryContext cxt;			/* the COPY's */
	Oid			relid;
	char	   *relname;
	char	   *qualname;		/* quoted, schema-qualified */
	Relation	reader_rel;		/* the reader's copy of the descriptor */
	CopyFromState cstate;
	EState	   *read_estate;	/* evaluates the columns' defaults */
	int			natts;
	AttrNumber	time_attno;
	Oid			time_type;
	bool		to_dead_letters;
	bool		statement_triggers_fired;
	RoutedInsert *ins;			/* NULL while the table is closed */
	uint64		stored;
	uint64		dead;

	/* the current batch, in batch_cxt */
	MemoryContext batch_cxt;
	Datum	   *values;			/* COPY_BATCH_ROWS * natts */
	bool	   *nulls;
	StreamTime *ts;
	bool	   *ts_null;
	StreamRowVerdict *verdicts;
	uint64	   *lineno;
	StringInfoData lines;		/* with dead letters: each row's input line */
	int		   *line_start;
} CopyRoute;

/* ------------------------------------------------------------ storing rows */

static void
route_insert_begin(CopyRoute *cr)
{
	/* the statement's BEFORE triggers fire once, with the first batch */
	cr->ins = RoutedInsertBegin(cr->relid, !cr->statement_triggers_fired, cr->cxt);
	cr->statement_triggers_fired = true;
}

/* Flushes and closes the table; last: the statement's AFTER triggers too. */
static void
route_insert_end(CopyRoute *cr, bool last)
{
	RoutedInsertEnd(cr->ins, last);
	cr->ins = NULL;
}

/* ------------------------------------------------------------ rejected rows */

/* Time of a row in messages: the column's value, shown in UTC. */
static const char *
row_time_text(CopyRoute *cr, int i)
{
	return cr->ts_null[i] ? "NULL" : pstrdup(timestamptz_to_str(cr->ts[i]));
}

static void
reject_row(CopyRoute *cr, int i)
{
	StreamRowVerdict v = cr->verdicts[i];
	char	   *t = pstrdup(row_time_text(cr, i));

	ereport(ERROR,
			(errcode(v == STREAM_ROW_NULL_TIME ? ERRCODE_NOT_NULL_VIOLATION :
					 ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("row of line %llu has event time %s, outside the bounds of stream table \"%s\"",
					(unsigned long long) cr->lineno[i], t, cr->relname),
			 errdetail("Rejected because %s; COPY creates partitions within the bounds only.",
					   StreamRowVerdictReason(v)),
			 v == STREAM_ROW_NULL_TIME || v == STREAM_ROW_OUT_OF_RANGE ?
			 errhint("Add WITH (out_of_bounds 'dead_letters') to the COPY to store the other rows and keep this one in iotstream.dead_letters.") :
			 errhint("As the table's owner, create its partition first: SELECT iotstream.ensure_partitions(%s, '%s', '%s'); "
					 "or add WITH (out_of_bounds 'dead_letters') to the COPY to store the other rows and keep this one in iotstream.dead_letters.",
					 quote_literal_cstr(cr->qualname), t, t)));
}

/*
 * The rejected rows of a batch into iotstream.dead_letters, in one
 * statement, as the extension's owner: source 'copy', the table as topic,
 * the line number as offset and the input line as payload.
 */
static void
store_dead_letters(CopyRoute *cr, int n)
{
	Datum	   *offsets = palloc(sizeof(Datum) * n);
	Datum	   *payloads = palloc(sizeof(Datum) * n);
	Datum	   *reasons = palloc(sizeof(Datum) * n);
	int			k = 0;
	Oid			argtypes[4] = {TEXTOID, INT8ARRAYOID, BYTEAARRAYOID, TEXTARRAYOID};
	Datum		args[4];
	Oid			save_user;
	int			save_sec;

	for (int i = 0; i < n; i++)
	{
		int			len;
		bytea	   *p;

		if (cr->verdicts[i] == STREAM_ROW_OK)
			continue;
		len = (i + 1 < n ? cr->line_start[i + 1] : cr->lines.len) - cr->line_start[i];
		p = palloc(VARHDRSZ + len);
		SET_VARSIZE(p, VARHDRSZ + len);
		memcpy(VARDATA(p), cr->lines.data + cr->line_start[i], len);
		offsets[k] = Int64GetDatum((int64) cr->lineno[i]);
		payloads[k] = PointerGetDatum(p);
		reasons[k] = CStringGetTextDatum(psprintf("event time %s: %s", row_time_text(cr, i),
												  StreamRowVerdictReason(cr->verdicts[i])));
		k++;
	}
	if (k == 0)
		return;
	args[0] = CStringGetTextDatum(cr->qualname);
	args[1] = PointerGetDatum(construct_array(offsets, k, INT8OID, sizeof(int64),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = PointerGetDatum(construct_array(payloads, k, BYTEAOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(reasons, k, TEXTOID, -1, false, TYPALIGN_INT));

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(IngestExtensionOwner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		SPI_connect();
		if (SPI_execute_with_args("INSERT INTO iotstream.dead_letters (source, topic, \"offset\", payload, reason)"
								  " SELECT 'copy', $1, o, p, r FROM unnest($2, $3, $4) AS u(o, p, r)",
								  4, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store the dead letters of a COPY");
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
	cr->dead += k;
}

/* ------------------------------------------------------------ the COPY */

/* Reads up to a batch of rows; returns how many. */
static int
read_batch(CopyRoute *cr)
{
	CopyFromState cstate = cr->cstate;
	ExprContext *econtext = GetPerTupleExprContext(cr->read_estate);
	ErrorContextCallback errcallback;
	uint64		bytes0 = cstate->bytes_processed;
	int			ta = cr->time_attno - 1;
	int			n = 0;

	errcallback.callback = CopyFromErrorCallback;
	errcallback.arg = (void *) cstate;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	if (cr->to_dead_letters)
		resetStringInfo(&cr->lines);
	while (n < COPY_BATCH_ROWS && cstate->bytes_processed - bytes0 < COPY_BATCH_BYTES)
	{
		Datum	   *values = cr->values + n * cr->natts;
		bool	   *nulls = cr->nulls + n * cr->natts;

		CHECK_FOR_INTERRUPTS();
		if (!NextCopyFrom(cstate, econtext, values, nulls))
			break;
		cr->ts_null[n] = nulls[ta];
		if (!nulls[ta])
			cr->ts[n] = StreamTimeFromDatum(values[ta], cr->time_type);
		cr->lineno[n] = cstate->cur_lineno;
		if (cr->to_dead_letters)
		{
			cr->line_start[n] = cr->lines.len;
			if (!cstate->opts.binary)
				appendBinaryStringInfo(&cr->lines, cstate->line_buf.data, cstate->line_buf.len);
		}
		n++;
	}
	error_context_stack = errcallback.previous;
	return n;
}

static void
route_batch(CopyRoute *cr, int n)
{
	if (StreamRoutePartitions(cr->relid, cr->ts, cr->ts_null, n, cr->verdicts, false) > 0)
	{
		/* ATTACH cannot run on a table in use: close it, create, reopen */
		if (cr->ins)
			route_insert_end(cr, false);
		StreamRoutePartitions(cr->relid, cr->ts, cr->ts_null, n, cr->verdicts, true);
	}
	for (int i = 0; i < n; i++)
		if (cr->verdicts[i] != STREAM_ROW_OK && !cr->to_dead_letters)
			reject_row(cr, i);
	if (cr->to_dead_letters)
		store_dead_letters(cr, n);
	if (cr->ins == NULL)
		route_insert_begin(cr);
	for (int i = 0; i < n; i++)
		if (cr->verdicts[i] == STREAM_ROW_OK &&
			RoutedInsertRow(cr->ins, cr->values + i * cr->natts, cr->nulls + i * cr->natts))
			cr->stored++;
	pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, cr->stored);
}

/*
 * The reader's copy of the table's descriptor: the columns, their
 * defaults and the pg_class row, which is all BeginCopyFrom and
 * NextCopyFrom read of a relation.
 */
static Relation
reader_relation(Relation rel)
{
	Relation	r = palloc0(sizeof(RelationData));

	r->rd_id = RelationGetRelid(rel);
	r->rd_rel = palloc(CLASS_TUPLE_SIZE);
	memcpy(r->rd_rel, rel->rd_rel, CLASS_TUPLE_SIZE);
	r->rd_att = CreateTupleDescCopyConstr(RelationGetDescr(rel));
	return r;
}

/* DoCopy's checks: server files and programs, INSERT on the columns. */
static void
check_copy_privileges(const CopyStmt *stmt, Relation rel)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	List	   *attnums;
	ListCell   *lc;

	if (stmt->filename != NULL && !stmt->is_program &&
		!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser or have privileges of the pg_read_server_files role to COPY from a file"),
				 errhint("Anyone can COPY to stdout or from stdin. psql's \\copy command also works for anyone.")));
	if (stmt->is_program &&
		!has_privs_of_role(GetUserId(), ROLE_PG_EXECUTE_SERVER_PROGRAM))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program"),
				 errhint("Anyone can COPY to stdout or from stdin. psql's \\copy command also works for anyone.")));

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	attnums = CopyGetAttnums(RelationGetDescr(rel), rel, stmt->attlist);
	foreach(lc, attnums)
		rte->insertedCols = bms_add_member(rte->insertedCols,
										   lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	ExecCheckRTPerms(list_make1(rte), true);
	if (XactReadOnly)
		PreventCommandIfReadOnly("COPY FROM");
}

static uint64
copy_route_run(ParseState *pstate, const CopyStmt *stmt, Relation rel,
			   bool to_dead_letters, List *options)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "iotstream COPY",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	CopyRoute  *cr = palloc0(sizeof(CopyRoute));
	uint64		stored;
	int			n;

	cr->cxt = cxt;
	cr->relid = RelationGetRelid(rel);
	cr->relname = pstrdup(RelationGetRelationName(rel));
	cr->qualname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											  cr->relname);
	cr->natts = RelationGetDescr(rel)->natts;
	cr->time_attno = StreamTimeColumn(cr->relid, &cr->time_type);
	cr->to_dead_letters = to_dead_letters;
	cr->reader_rel = reader_relation(rel);
	table_close(rel, NoLock);	/* the lock stays to the end of the transaction */

	cr->values = palloc(sizeof(Datum) * cr->natts * COPY_BATCH_ROWS);
	cr->nulls = palloc(sizeof(bool) * cr->natts * COPY_BATCH_ROWS);
	cr->ts = palloc(sizeof(StreamTime) * COPY_BATCH_ROWS);
	cr->ts_null = palloc(sizeof(bool) * COPY_BATCH_ROWS);
	cr->verdicts = palloc(sizeof(StreamRowVerdict) * COPY_BATCH_ROWS);
	cr->lineno = palloc(sizeof(uint64) * COPY_BATCH_ROWS);
	if (to_dead_letters)
	{
		initStringInfo(&cr->lines);
		cr->line_start = palloc(sizeof(int) * COPY_BATCH_ROWS);
	}
	cr->read_estate = CreateExecutorState();
	cr->batch_cxt = AllocSetContextCreate(cxt, "iotstream COPY batch", ALLOCSET_DEFAULT_SIZES);

	cr->cstate = BeginCopyFrom(pstate, cr->reader_rel, NULL, stmt->filename,
							   stmt->is_program, NULL, stmt->attlist, options);
	if (cr->cstate->opts.freeze)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot perform COPY FREEZE on a partitioned table"),
				 errhint("Remove FREEZE: stream tables are partitioned.")));
	do
	{
		MemoryContextSwitchTo(cr->batch_cxt);
		n = read_batch(cr);
		if (n > 0)
			route_batch(cr, n);
		MemoryContextSwitchTo(cxt);
		MemoryContextReset(cr->batch_cxt);
		ResetPerTupleExprContext(cr->read_estate);
	} while (n > 0);

	if (cr->ins == NULL)
		route_insert_begin(cr); /* the statement's triggers fire even for no rows */
	route_insert_end(cr, true);
	EndCopyFrom(cr->cstate);
	FreeExecutorState(cr->read_estate);
	if (cr->dead > 0)
		ereport(NOTICE,
				(errmsg("%llu rows outside the bounds of stream table \"%s\" went to iotstream.dead_letters",
						(unsigned long long) cr->dead, cr->relname)));
	stored = cr->stored;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return stored;
}

/* ------------------------------------------------------------ the hook */

/* The stream table a COPY FROM loads, or InvalidOid. */
static Oid
copy_target(const CopyStmt *stmt)
{
	Oid			relid;

	if (!stmt->is_from || stmt->relation == NULL)
		return InvalidOid;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE ||
		!StreamTableIs(relid))
		return InvalidOid;
	return relid;
}

/* Takes our option out of the list; true for out_of_bounds 'dead_letters'. */
static bool
out_of_bounds_option(List *options, List **rest)
{
	ListCell   *lc;
	bool		to_dead_letters = false;

	*rest = NIL;
	foreach(lc, options)
	{
		DefElem    *d = lfirst_node(DefElem, lc);
		char	   *v;

		if (strcmp(d->defname, OPTION_OUT_OF_BOUNDS) != 0)
		{
			*rest = lappend(*rest, d);
			continue;
		}
		v = defGetString(d);
		if (strcmp(v, "dead_letters") == 0)
			to_dead_letters = true;
		else if (strcmp(v, "error") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("COPY option out_of_bounds must be \"error\" or \"dead_letters\", not \"%s\"", v),
					 errhint("With 'dead_letters', rows outside the stream table's bounds go to iotstream.dead_letters and the other rows are stored.")));
	}
	return to_dead_letters;
}

typedef struct UtilityArgs
{
	PlannedStmt *pstmt;
	const char *queryString;
	bool		readOnlyTree;
	ProcessUtilityContext context;
	ParamListInfo params;
	QueryEnvironment *queryEnv;
	DestReceiver *dest;
	QueryCompletion *qc;
} UtilityArgs;

static void
utility_step(void *arg)
{
	UtilityArgs *a = arg;

	if (prev_ProcessUtility)
		prev_ProcessUtility(a->pstmt, a->queryString, a->readOnlyTree, a->context,
							a->params, a->queryEnv, a->dest, a->qc);
	else
		standard_ProcessUtility(a->pstmt, a->queryString, a->readOnlyTree, a->context,
								a->params, a->queryEnv, a->dest, a->qc);
}

static void
copy_route_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	UtilityArgs a = {pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc};
	CopyStmt   *stmt;
	Oid			relid;
	Relation	rel;
	List	   *options;
	bool		to_dead_letters;
	ParseState *pstate;
	uint64		stored;

	if (!IsA(pstmt->utilityStmt, CopyStmt) ||
		!OidIsValid(relid = copy_target((CopyStmt *) pstmt->utilityStmt)))
	{
		utility_step(&a);
		return;
	}
	stmt = (CopyStmt *) pstmt->utilityStmt;
	rel = table_open(relid, RowExclusiveLock);
	to_dead_letters = out_of_bounds_option(stmt->options, &options);
	if (stmt->whereClause != NULL || !StreamTableIs(relid) ||
		check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED ||
		(rel->trigdesc && rel->trigdesc->trig_insert_new_table))
	{
		/* PostgreSQL's COPY, with the hint if a partition is missing */
		table_close(rel, NoLock);
		InsertHintRun(relid, utility_step, &a);
		return;
	}
	check_copy_privileges(stmt, rel);
	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = queryString;
	stored = copy_route_run(pstate, stmt, rel, to_dead_letters, options);
	free_parsestate(pstate);
	if (qc)
		SetQueryCompletion(qc, CMDTAG_COPY, stored);
}

void
CopyRouteInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = copy_route_ProcessUtility;
	InsertHintInit();
}
