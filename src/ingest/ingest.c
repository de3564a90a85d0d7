/*-------------------------------------------------------------------------
 * ingest.c
 *		Stores one batch of Kafka messages in a stream table.
 *
 * Everything here happens inside the caller's transaction, the same one
 * that stores the offsets: the rows, the dead letters and the dedup keys of
 * a batch become visible together or not at all.
 *
 * The fast path decodes every message, makes sure the partitions exist
 * (before the table is opened for insert: ATTACH cannot run on a table in
 * use), and stores the rows as COPY does (routed_insert.c).  A row the fast
 * path cannot store (a CHECK constraint, a unique index, a trigger's error)
 * aborts the batch; the caller then retries it row by row, each row in a
 * subtransaction, and the rows that still fail become dead letters.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source.h"
#include "decode/decode.h"
#include "ingest/ingest_int.h"

#include "access/heapam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/execPartition.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#define DEDUP_MEMORY_DEFAULT	(INT64CONST(64) * 1024 * 1024)
#define DEDUP_MEMORY_MIN	(INT64CONST(64) * 1024)

struct IngestTarget
{
	Oid			relid;
	int			source_id;
	char	   *source_name;
	DecodePlan *plan;
	int			natts;
	AttrNumber	time_attno;
	Oid			time_type;
	int64		max_message_bytes;

	/* dedup: key columns, and the keys seen within the horizon (dedup.c) */
	int			ndedup;
	AttrNumber *dedup_attnos;
	DedupState *dedup;

	/* columns with a DEFAULT (or identity), used when a message lacks them */
	int			ndefaults;
	AttrNumber *default_attnos;
	Expr	  **default_exprs;

	SPIPlanPtr	dead_plan;
	TupleDesc	desc;			/* the columns the plans above were made for
								 * (same_columns) */
	MemoryContext cxt;
};

/*
 * The column a dedup key names: the column itself; the column the mapping
 * fills from that JSON key or source ({"ts": "timestamp"}: "timestamp"
 * names ts); or, by the default rule, device_id for deviceId.
 */
static AttrNumber
resolve_column(TupleDesc desc, Jsonb *mapping, const char *name)
{
	StringInfoData snake;
	AttrNumber	mapped = InvalidAttrNumber;

	initStringInfo(&snake);
	for (const char *p = name; *p; p++)
	{
		if (*p >= 'A' && *p <= 'Z')
		{
			if (p != name)
				appendStringInfoChar(&snake, '_');
			appendStringInfoChar(&snake, *p - 'A' + 'a');
		}
		else
			appendStringInfoChar(&snake, *p);
	}
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	if (mapping && JB_ROOT_IS_OBJECT(mapping))
	{
		JsonbIterator *it = JsonbIteratorInit(&mapping->root);
		JsonbValue	k,
					v;
		JsonbIteratorToken tok;
		char	   *column = NULL;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			if (tok != WJB_KEY)
				continue;
			tok = JsonbIteratorNext(&it, &v, true);
			if (v.type == jbvString && v.val.string.len == strlen(name) &&
				memcmp(v.val.string.val, name, v.val.string.len) == 0)
			{
				if (column != NULL)
					ereport(ERROR,
							(errcode(ERRCODE_AMBIGUOUS_COLUMN),
							 errmsg("dedup key \"%s\" is read by more than one column of the mapping", name),
							 errhint("Name the column to deduplicate on instead.")));
				column = pnstrdup(k.val.string.val, k.val.string.len);
			}
		}
		for (int i = 0; column && i < desc->natts; i++)
			if (!TupleDescAttr(desc, i)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(desc, i)->attname), column) == 0)
				mapped = TupleDescAttr(desc, i)->attnum;
	}
	if (mapped != InvalidAttrNumber)
		return mapped;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), snake.data) == 0)
			return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("dedup key \"%s\" matches no column of the target", name),
			 errhint("Name a column of the target table, or the JSON key that the mapping or the default rule reads into it.")));
	return InvalidAttrNumber;
}

/*
 * Whether b has the columns a had, as the decode plan, the defaults and the
 * dedup keys see them: number, type, typmod, collation, dropped or not,
 * with a default or generated.  Constraints are not compared: the insert
 * checks them as they are.
 */
static bool
same_columns(TupleDesc a, TupleDesc b)
{
	if (a->natts != b->natts)
		return false;
	for (int i = 0; i < a->natts; i++)
	{
		Form_pg_attribute x = TupleDescAttr(a, i);
		Form_pg_attribute y = TupleDescAttr(b, i);

		if (x->atttypid != y->atttypid || x->atttypmod != y->atttypmod ||
			x->attcollation != y->attcollation || x->attisdropped != y->attisdropped ||
			x->atthasdef != y->atthasdef || x->attgenerated != y->attgenerated ||
			x->attidentity != y->attidentity)
			return false;
	}
	return true;
}

/*
 * The dedup_memory option: bytes (a number, or a size such as "64MB") the
 * keys held in memory may take.  Past it, keys the memory does not hold
 * are looked up in iotstream.source_dedup, once per batch: dedup stays
 * exact whatever the rate and horizon.
 */
static int64
dedup_memory_option(JsonbValue *v)
{
	int64		bytes = DEDUP_MEMORY_DEFAULT;

	if (v == NULL)
		return bytes;
	if (v->type == jbvNumeric)
		bytes = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString)
		bytes = DatumGetInt64(DirectFunctionCall1(pg_size_bytes,
												  PointerGetDatum(cstring_to_text_with_len(v->val.string.val,
																						   v->val.string.len))));
	else
		bytes = -1;
	if (bytes < DEDUP_MEMORY_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option dedup_memory must be at least 64kB"),
				 errhint("dedup_memory bounds the memory a worker's dedup keys take, e.g. \"64MB\".")));
	return bytes;
}

IngestTarget *
IngestTargetCreate(Oid relid, Jsonb *mapping, Jsonb *options,
				   const char *source_name, int source_id, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	IngestTarget *t = palloc0(sizeof(IngestTarget));
	Relation	rel;
	TupleDesc	desc;
	JsonbValue *v;
	JsonbValue	key;
	AsOwner		as;
	Interval	horizon;
	int64		dedup_memory = 0;

	/* planning the defaults may run the table's functions: as its owner */
	AsOwnerBegin(&as, TableOwner(relid));
	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	t->relid = relid;
	t->source_id = source_id;
	t->source_name = pstrdup(source_name);
	t->cxt = cxt;
	t->natts = desc->natts;
	t->desc = CreateTupleDescCopyConstr(desc);	/* keeps atthasdef and the like */
	t->plan = DecodePlanCreate(relid, mapping, cxt);
	t->time_attno = StreamTimeColumn(relid, &t->time_type);
	t->max_message_bytes = 1024 * 1024;

	key.type = jbvString;
#define OPTION(name) (options == NULL ? NULL : \
	(key.val.string.val = (name), key.val.string.len = strlen(name), \
	 findJsonbValueFromContainer(&options->root, JB_FOBJECT, &key)))

	if ((v = OPTION("max_message_bytes")) && v->type == jbvNumeric)
		t->max_message_bytes = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	if ((v = OPTION("dedup_key")) != NULL)
	{
		if (v->type == jbvString)
		{
			t->ndedup = 1;
			t->dedup_attnos = palloc(sizeof(AttrNumber));
			t->dedup_attnos[0] = resolve_column(desc, mapping, pnstrdup(v->val.string.val, v->val.string.len));
		}
		else
		{
			JsonbIterator *it;
			JsonbValue	elem;
			JsonbIteratorToken tok;
			Datum		arr = DirectFunctionCall2(jsonb_object_field,
												  JsonbPGetDatum(options),
												  CStringGetTextDatum("dedup_key"));

			t->dedup_attnos = palloc(sizeof(AttrNumber) * desc->natts);
			it = JsonbIteratorInit(&DatumGetJsonbP(arr)->root);
			while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
				if (tok == WJB_ELEM && elem.type == jbvString && t->ndedup < desc->natts)
					t->dedup_attnos[t->ndedup++] =
						resolve_column(desc, mapping, pnstrdup(elem.val.string.val, elem.val.string.len));
		}
		horizon = *DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum("1 hour"),
														 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		if ((v = OPTION("dedup_horizon")) && v->type == jbvString)
			horizon = *DatumGetIntervalP(DirectFunctionCall3(interval_in,
															 CStringGetDatum(pnstrdup(v->val.string.val, v->val.string.len)),
															 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		dedup_memory = dedup_memory_option(OPTION("dedup_memory"));
	}
#undef OPTION

	t->default_attnos = palloc(sizeof(AttrNumber) * desc->natts);
	t->default_exprs = palloc(sizeof(Expr *) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *def;

		if (att->attisdropped || att->attgenerated || !(att->atthasdef || att->attidentity))
			continue;
		def = build_column_default(rel, att->attnum);
		if (def == NULL)
			continue;
		t->default_attnos[t->ndefaults] = att->attnum;
		t->default_exprs[t->ndefaults++] = expression_planner((Expr *) def);
	}
	table_close(rel, AccessShareLock);
	AsOwnerEnd(&as);

	if (t->ndedup > 0)
		t->dedup = DedupCreate(source_id, &horizon, dedup_memory, cxt);

	SPI_connect();
	{
		Oid			dtypes[7] = {TEXTOID, TEXTOID, INT4OID, INT8OID, BYTEAOID, BYTEAOID, TEXTOID};

		t->dead_plan = SPI_prepare("INSERT INTO iotstream.dead_letters"
								   " (source, topic, partition, \"offset\", key, payload, reason)"
								   " VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, dtypes);
		if (t->dead_plan == NULL)
			elog(ERROR, "could not prepare iotstream ingest statements");
		SPI_keepplan(t->dead_plan);
	}
	SPI_finish();
	MemoryContextSwitchTo(old);
	return t;
}

/* Whether the mapping reads Kafka headers (see DecodeNeedsHeaders). */
bool
IngestNeedsHeaders(const IngestTarget *t)
{
	return DecodeNeedsHeaders(t->plan);
}

/* After an aborted batch: memory may hold keys the table does not. */
void
IngestDedupReset(IngestTarget *t)
{
	if (t->dedup)
		DedupForget(t->dedup);
}

void
IngestDedupMemory(const IngestTarget *t, int64 *bytes, int64 *keys, int64 *filtered_keys)
{
	DedupUsage	u = {0};

	if (t->dedup)
		DedupMemory(t->dedup, &u);
	*bytes = u.bytes;
	*keys = u.keys;
	*filtered_keys = u.filtered_keys + u.unfiltered_keys;
}

/*
 * A row's dedup key: two independent 64-bit hashes of its key columns'
 * values (hi as 0.2.0 computed it), so that two different keys pass for
 * one about once in 2^128: never, at any rate and horizon.
 */
#define DEDUP_LO_SEED	UINT64CONST(0x9e3779b97f4a7c15)

static DedupKey
dedup_hash(IngestTarget *t, Relation rel, const Datum *values, const bool *nulls, bool *usable)
{
	DedupKey	h = {0, 0};

	*usable = true;
	for (int k = 0; k < t->ndedup; k++)
	{
		int			a = t->dedup_attnos[k] - 1;
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), a);
		const unsigned char *p;
		int			len;

		if (nulls[a])
		{
			*usable = false;	/* a row without its key is never a duplicate */
			return h;
		}
		if (att->attbyval)
		{
			p = (const unsigned char *) &values[a];
			len = att->attlen;
		}
		else if (att->attlen == -1)
		{
			struct varlena *d = PG_DETOAST_DATUM_PACKED(values[a]);

			p = (const unsigned char *) VARDATA_ANY(d);
			len = VARSIZE_ANY_EXHDR(d);
		}
		else
		{
			p = (const unsigned char *) DatumGetPointer(values[a]);
			len = att->attlen > 0 ? att->attlen : strlen(DatumGetCString(values[a]));
		}
		h.hi = hash_combine64(h.hi, hash_bytes_extended(p, len, k));
		h.lo = hash_combine64(h.lo, hash_bytes_extended(p, len, DEDUP_LO_SEED + k));
	}
	return h;
}

/* Stores one row in its own subtransaction; returns the error, or NULL. */
typedef struct OneRow
{
	IngestTarget *t;
	const Datum *values;
	const bool *nulls;
} OneRow;

static void
insert_one(void *arg)
{
	OneRow	   *r = arg;
	RoutedInsert *st = RoutedInsertBegin(r->t->relid, false, CurrentMemoryContext);

	(void) RoutedInsertRow(st, r->values, r->nulls);
	RoutedInsertEnd(st, false);
}

static const char *
insert_one_safely(IngestTarget *t, const Datum *values, const bool *nulls)
{
	OneRow		r = {t, values, nulls};

	return CatchError(insert_one, &r);
}

static void
store_dead_letter(IngestTarget *t, const SourceMessage *m, const char *reason)
{
	Datum		args[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	size_t		plen = Min(m->payload_len, (size_t) t->max_message_bytes);
	bytea	   *payload = NULL;
	bytea	   *key = NULL;

	if (m->payload)
	{
		payload = palloc(VARHDRSZ + plen);
		SET_VARSIZE(payload, VARHDRSZ + plen);
		memcpy(VARDATA(payload), m->payload, plen);
	}
	if (m->key)
	{
		key = palloc(VARHDRSZ + m->key_len);
		SET_VARSIZE(key, VARHDRSZ + m->key_len);
		memcpy(VARDATA(key), m->key, m->key_len);
	}
	args[0] = CStringGetTextDatum(t->source_name);
	args[1] = CStringGetTextDatum(m->topic ? m->topic : "");
	args[2] = Int32GetDatum(m->partition);
	args[3] = Int64GetDatum(m->offset);
	args[4] = PointerGetDatum(key);
	nulls[4] = key ? ' ' : 'n';
	args[5] = PointerGetDatum(payload);
	nulls[5] = payload ? ' ' : 'n';
	args[6] = CStringGetTextDatum(reason);
	if (SPI_execute_plan(t->dead_plan, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store a dead letter");
}

/*
 * Stores the messages of one batch: good rows in the target, bad ones in
 * iotstream.dead_letters with their reason, duplicates nowhere.
 */
void
IngestBatch(IngestTarget *t, const SourceMessage *msgs, int n,
			bool row_by_row, IngestCounts *counts, IngestedRows *out)
{
	int			natts = t->natts;
	Datum	   *values = palloc(sizeof(Datum) * natts * n);
	bool	   *nulls = palloc(sizeof(bool) * natts * n);
	const char **reason = palloc0(sizeof(char *) * n);
	bool	   *skip = palloc0(sizeof(bool) * n);	/* bad or duplicate */
	StreamTime *ts = palloc(sizeof(StreamTime) * n);
	StreamRowVerdict *verdicts = palloc(sizeof(StreamRowVerdict) * n);
	DedupKey   *new_keys = NULL;
	int		   *new_rows = NULL;	/* the message each new key came from */
	int			nnew = 0;
	Relation	rel;
	EState	   *defstate = NULL;	/* evaluates defaults, made when needed */
	ExprState **defexprs = NULL;
	const char **errors;
	AsOwner		as;

	/* iotstream's own reads and writes are the extension owner's ... */
	if (t->dedup)
		DedupBatchBegin(t->dedup);	/* loads, or forgets what expired */

	/*
	 * ... but everything the table brings (domains the decoder's values
	 * enter, defaults, partitions, triggers, constraints, generated columns,
	 * index expressions) runs as its owner, once per batch.
	 */
	AsOwnerBegin(&as, TableOwner(t->relid));
	for (int i = 0; i < n; i++)
	{
		const SourceMessage *m = &msgs[i];
		int			ta = t->time_attno - 1;

		if (m->payload == NULL)
			reason[i] = "the message has no payload";
		else if (m->payload_len > (size_t) t->max_message_bytes)
			reason[i] = psprintf("the message is %zu bytes, more than max_message_bytes (" INT64_FORMAT ")",
								 m->payload_len, t->max_message_bytes);
		else if (!DecodeMessage(t->plan, m, values + i * natts, nulls + i * natts, &reason[i]))
		{
			if (reason[i] == NULL)
				reason[i] = "the message could not be decoded";
		}
		else if (t->ndefaults > 0)
		{
			const bool *use_default = DecodeUseDefault(t->plan);

			for (int k = 0; k < t->ndefaults; k++)
			{
				int			a = t->default_attnos[k] - 1;

				if (!use_default[a])
					continue;
				if (defstate == NULL)
				{
					defstate = CreateExecutorState();
					defexprs = palloc0(sizeof(ExprState *) * t->ndefaults);
				}
				if (defexprs[k] == NULL)
					defexprs[k] = ExecPrepareExpr(t->default_exprs[k], defstate);
				values[i * natts + a] = ExecEvalExpr(defexprs[k], GetPerTupleExprContext(defstate),
													 &nulls[i * natts + a]);
			}
		}
		if (reason[i] == NULL && !nulls[i * natts + ta])
			ts[i] = StreamTimeFromDatum(values[i * natts + ta], t->time_type);
		skip[i] = reason[i] != NULL || nulls[i * natts + ta];
	}

	/* partitions first: the table cannot be in use while one is attached */
	errors = row_by_row ? palloc0(sizeof(char *) * n) : NULL;
	StreamEnsurePartitions(t->relid, ts, skip, n, verdicts, errors);
	for (int i = 0; i < n; i++)
	{
		if (reason[i] == NULL && verdicts[i] != STREAM_ROW_OK)
			reason[i] = verdicts[i] == STREAM_ROW_NO_PARTITION && errors[i] ? errors[i] :
				StreamRowVerdictReason(verdicts[i]);
		skip[i] = reason[i] != NULL;
	}

	/*
	 * The decode plan, the defaults and the dedup keys were made for the
	 * table's columns as they were when the worker started; the lock, now
	 * held to the end of the batch's transaction, keeps the columns as they
	 * are.  If an ALTER TABLE changed them, the values decoded above must
	 * not reach them: the batch fails whole, and the worker starts again
	 * with plans for the new columns, from the stored offsets.
	 */
	rel = table_open(t->relid, AccessShareLock);
	if (!same_columns(t->desc, RelationGetDescr(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the columns of stream table \"%s\" changed while source \"%s\" was running",
						RelationGetRelationName(rel), t->source_name),
				 errdetail("The batch was not stored; nothing is lost."),
				 errhint("The source worker starts again and reads the messages with the new columns.")));
	if (t->dedup)
	{
		DedupKey   *keys = palloc(sizeof(DedupKey) * n);
		DedupVerdict *verdict = palloc(sizeof(DedupVerdict) * n);
		int			nkeys = 0;

		new_keys = palloc(sizeof(DedupKey) * n);
		new_rows = palloc(sizeof(int) * n);
		for (int i = 0; i < n; i++)
		{
			bool		usable;

			if (skip[i])
				continue;
			keys[nkeys] = dedup_hash(t, rel, values + i * natts, nulls + i * natts, &usable);
			if (usable)
				new_rows[nkeys++] = i;
		}
		/* a row-by-row batch may leave rows unstored: their keys wait for DedupRemember */
		if (DedupClassify(t->dedup, keys, nkeys, verdict, !row_by_row) > 0)
		{
			/* the catalog is read as the extension's owner */
			AsOwnerEnd(&as);
			DedupResolve(t->dedup, keys, nkeys, verdict);
			AsOwnerBegin(&as, TableOwner(t->relid));
		}
		for (int k = 0; k < nkeys; k++)
		{
			if (verdict[k] == DEDUP_SEEN)
			{
				skip[new_rows[k]] = true;
				counts->duplicates++;
				continue;
			}
			new_rows[nnew] = new_rows[k];
			new_keys[nnew++] = keys[k];
		}
	}
	table_close(rel, NoLock);	/* the lock stays: see above */

	if (!row_by_row)
	{
		RoutedInsert *st = RoutedInsertBegin(t->relid, false, CurrentMemoryContext);

		for (int i = 0; i < n; i++)
			if (!skip[i])
			{
				(void) RoutedInsertRow(st, values + i * natts, nulls + i * natts);
				counts->rows++;
			}
		RoutedInsertEnd(st, false);
	}
	else
	{
		for (int i = 0; i < n; i++)
			if (!skip[i])
			{
				reason[i] = insert_one_safely(t, values + i * natts, nulls + i * natts);
				if (reason[i] == NULL)
					counts->rows++;
			}
	}
	AsOwnerEnd(&as);

	SPI_connect();
	for (int i = 0; i < n; i++)
		if (reason[i] != NULL)
		{
			store_dead_letter(t, &msgs[i], reason[i]);
			counts->dead++;
		}
	SPI_finish();
	if (row_by_row && nnew > 0)
	{
		/* a key whose row was not stored was not seen: a redelivery may store it */
		int			kept = 0;

		for (int k = 0; k < nnew; k++)
			if (reason[new_rows[k]] == NULL)
				new_keys[kept++] = new_keys[k];
		nnew = kept;
	}
	if (nnew > 0)
		DedupRemember(t->dedup, new_keys, nnew);
	if (defstate)
		FreeExecutorState(defstate);
	counts->messages += n;

	if (out)
	{
		bool	   *stored = palloc(sizeof(bool) * n);

		for (int i = 0; i < n; i++)
			stored[i] = !skip[i] && reason[i] == NULL;
		out->n = n;
		out->natts = natts;
		out->values = values;
		out->nulls = nulls;
		out->stored = stored;
		out->ts = ts;
		out->msgs = msgs;
	}
}

/*
 * iotstream._validate_source(target regclass, mapping jsonb, options jsonb)
 * Builds what a worker would build, so create_source fails at once, with
 * the decoder's hint, on a mapping or dedup key that cannot work.
 */
PG_FUNCTION_INFO_V1(iotstream_validate_source);
Datum
iotstream_validate_source(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "iotstream validation",
											  ALLOCSET_SMALL_SIZES);
	IngestTarget *t;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a source needs a target table"),
				 errhint("Pass the stream table to ingest into.")));
	t = IngestTargetCreate(PG_GETARG_OID(0), PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1),
						   PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), "", 0, cxt);
	SPI_freeplan(t->dead_plan);
	if (t->dedup)
		DedupFree(t->dedup);
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}
