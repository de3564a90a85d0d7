/*-------------------------------------------------------------------------
 * rule_state.c
 *		Each key's detector state, and its key as JSON.
 *
 * A row-by-row rule keeps a state per key (iotstream.rule_state), saved
 * after each evaluation in its transaction, and kept in the worker's memory
 * for the next one (RuleStatesBegin says when that copy is trusted; a
 * rule whose states outgrow STATES_KEEP reads them again each time).  Both
 * reads and saves go STATES_CHUNK keys at a time, so an evaluation's
 * memory beyond the states does not grow with the keys.  A key that
 * sent nothing for iotstream.rule_state_idle is not loaded (it starts
 * afresh), and such keys leave the table in bulk as the rule's state is
 * loaded (an index range, empty when none is idle): the state a rule holds
 * is bounded by the keys that send.  Keys are
 * spelled as JSON (jsonb_build_object, as anomalies show them) only the
 * first time a key is seen; rows carry them in binary form.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "detect/rules_int.h"

#include "common/int.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* ---------------------------------------------------------------- states */

Size
RuleStateSize(const Rule *r)
{
	switch (r->kind)
	{
		case RULE_SPIKE_DIP:
		case RULE_CHANGE_POINT:
			return KdeHistorySize(r->history_size);
		case RULE_EWMA:
			return sizeof(EwmaChartState);
		case RULE_CUSUM:
			return sizeof(CusumState);
		case RULE_ZSCORE:
			return offsetof(ZscoreState, w) + sizeof(ZscoreWindow) * r->history;
		default:
			return 0;
	}
}

void
RuleStateInit(const Rule *r, void *state)
{
	switch (r->kind)
	{
		case RULE_SPIKE_DIP:
			KdeHistoryInit(state, r->history_size, r->confidence, r->mode);
			break;
		case RULE_CHANGE_POINT:
			KdeHistoryInit(state, r->history_size, r->confidence, KDE_SPIKES_AND_DIPS);
			break;
		case RULE_EWMA:
			EwmaChartInit(state, r->lambda, r->L, r->have_mu_sigma, r->mu, r->sigma, r->warmup);
			break;
		case RULE_CUSUM:
			memset(state, 0, sizeof(CusumState));
			break;
		case RULE_ZSCORE:
			memset(state, 0, RuleStateSize(r));
			break;
		default:
			break;
	}
}

/*
 * The states of one evaluation: a hash by the key's JSON text, whose
 * entries, texts and states live in cxt.  until is the end of the range the
 * states are the result of (0 while an evaluation changes them).
 */
struct RuleStates
{
	MemoryContext cxt;
	HTAB	   *htab;
	TimestampTz until;
};

static RuleStates *
states_new(MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "iotstream rule states", ALLOCSET_DEFAULT_SIZES);
	RuleStates *s = MemoryContextAllocZero(cxt, sizeof(RuleStates));
	HASHCTL		ctl;

	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(KeyState);
	ctl.hash = StringPtrHash;
	ctl.match = StringPtrMatch;
	ctl.hcxt = cxt;
	s->cxt = cxt;
	s->htab = hash_create("iotstream rule states", 256, &ctl,
						  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	return s;
}

/* The key's entry, a fresh state if the key is new. */
KeyState *
RuleStateFor(const Rule *r, RuleStates *s, const char *key)
{
	bool		exists;
	KeyState   *ks = hash_search(s->htab, &key, HASH_ENTER, &exists);

	if (!exists)
	{
		ks->key = MemoryContextStrdup(s->cxt, key);
		ks->state = MemoryContextAlloc(s->cxt, Max(RuleStateSize(r), 1));
		RuleStateInit(r, ks->state);
		ks->seen_at = 0;
		ks->changed = false;
	}
	return ks;
}

long
RuleStatesCount(const RuleStates *s)
{
	return hash_get_num_entries(s->htab);
}

static void
forget(RuleStates *s, KeyState *ks)
{
	char	   *key = ks->key;
	void	   *state = ks->state;

	hash_search(s->htab, &key, HASH_REMOVE, NULL);
	pfree(key);
	pfree(state);
}

/* Reads the rule's saved states, STATES_CHUNK rows at a time; inside SPI. */
static void
states_load(const Rule *r, RuleStates *s, Datum *args, Oid *argtypes)
{
	Size		size = RuleStateSize(r);
	Portal		portal = SPI_cursor_open_with_args(NULL, "SELECT key::text, state, seen_at FROM iotstream.rule_state"
												   " WHERE rule_id = $1 AND seen_at >= $2",
												   2, argtypes, args, NULL, true, 0);

	for (;;)
	{
		SPI_cursor_fetch(portal, true, STATES_CHUNK);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			text	   *key = DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull));
			bytea	   *b = DatumGetByteaPP(SPI_getbinval(tup, desc, 2, &isnull));
			char	   *k;
			KeyState   *ks;

			if (VARSIZE_ANY_EXHDR(key) >= KEY_MAX || VARSIZE_ANY_EXHDR(b) != size)
				continue;		/* from other parameters: start afresh */
			k = text_to_cstring(key);
			ks = RuleStateFor(r, s, k);
			pfree(k);
			memcpy(ks->state, VARDATA_ANY(b), size);
			ks->seen_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
}

/*
 * The states an evaluation of [from, ...) starts from.  A worker keeps a
 * rule's states from one evaluation to the next: they are what it saved,
 * exactly when the stored progress it resumes from is where the last
 * evaluation it made ended (the progress and the states commit together;
 * after an error or an abort they differ, and the states are read again).
 * Keys silent for iotstream.rule_state_idle leave both.  A backtest
 * (!persist) starts afresh.  Inside SPI.
 */
RuleStates *
RuleStatesBegin(Rule *r, bool persist, TimestampTz from)
{
	Oid			argtypes[2] = {INT4OID, TIMESTAMPTZOID};
	TimestampTz cutoff;
	Datum		args[2];
	RuleStates *s;

	if (!persist || RuleStateSize(r) == 0)
		return states_new(CurrentMemoryContext);
	cutoff = GetCurrentTransactionStartTimestamp() - (TimestampTz) iotstream_rule_state_idle * 60 * USECS_PER_SEC;
	args[0] = Int32GetDatum(r->rule_id);
	args[1] = TimestampTzGetDatum(cutoff);
	if (SPI_execute_with_args("DELETE FROM iotstream.rule_state WHERE rule_id = $1 AND seen_at < $2",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget idle keys of iotstream.rule_state");
	if (r->states && r->states->until == from)
	{
		HASH_SEQ_STATUS st;
		KeyState   *ks;

		s = r->states;
		hash_seq_init(&st, s->htab);
		while ((ks = hash_seq_search(&st)) != NULL)
			if (ks->seen_at < cutoff)
				forget(s, ks);	/* dynahash allows removing the current entry */
	}
	else
	{
		if (r->states)
			MemoryContextDelete(r->states->cxt);
		r->states = NULL;
		s = states_new(r->cxt);
		r->states = s;
		states_load(r, s, args, argtypes);
	}
	s->until = 0;				/* being changed */
	return s;
}

/* Saves one statement's worth of changed states; inside SPI. */
static void
states_save(const Rule *r, Datum *kd, Datum *vd, int n)
{
	Oid			argtypes[3] = {INT4OID, TEXTARRAYOID, BYTEAARRAYOID};
	Datum		args[3];

	args[0] = Int32GetDatum(r->rule_id);
	args[1] = PointerGetDatum(construct_array(kd, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(vd, n, BYTEAOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("INSERT INTO iotstream.rule_state AS s (rule_id, key, state)"
							  " SELECT $1, k::jsonb, v FROM unnest($2, $3) u(k, v)"
							  " ON CONFLICT (rule_id, key) DO UPDATE SET state = excluded.state, seen_at = excluded.seen_at",
							  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store iotstream.rule_state");
}

/*
 * Saves the states the evaluation of [..., to) changed, STATES_CHUNK keys
 * per statement, and keeps them for the next evaluation unless they take
 * more than STATES_KEEP bytes (they are read again then).  Inside SPI.
 */
void
RuleStatesEnd(Rule *r, RuleStates *s, bool persist, TimestampTz to)
{
	Size		size = RuleStateSize(r);
	MemoryContext chunk;
	MemoryContext old;
	HASH_SEQ_STATUS st;
	KeyState   *ks;
	Datum		kd[STATES_CHUNK];
	Datum		vd[STATES_CHUNK];
	int			n = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (!persist || size == 0)
		return;
	chunk = AllocSetContextCreate(CurrentMemoryContext, "iotstream rule states saved", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(chunk);
	hash_seq_init(&st, s->htab);
	while ((ks = hash_seq_search(&st)) != NULL)
	{
		bytea	   *b;

		if (!ks->changed)
			continue;
		b = palloc(VARHDRSZ + size);
		SET_VARSIZE(b, VARHDRSZ + size);
		memcpy(VARDATA(b), ks->state, size);
		kd[n] = CStringGetTextDatum(ks->key);
		vd[n++] = PointerGetDatum(b);
		ks->changed = false;
		ks->seen_at = now;
		if (n == STATES_CHUNK)
		{
			states_save(r, kd, vd, n);
			MemoryContextSwitchTo(chunk);	/* SPI left its own current */
			MemoryContextReset(chunk);
			n = 0;
		}
	}
	if (n > 0)
		states_save(r, kd, vd, n);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(chunk);
	s->until = to;
	if (MemoryContextMemAllocated(s->cxt, true) > STATES_KEEP)
	{
		MemoryContextDelete(s->cxt);
		r->states = NULL;
	}
}

/* ---------------------------------------------------------------- keys */

/* The binary form of the key in columns first.. of a row (see KeyName). */
void
RuleKeyRaw(TupleDesc desc, int first, const Datum *values, const bool *nulls, StringInfo raw)
{
	resetStringInfo(raw);
	for (int i = first; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char		present = nulls[i] ? 0 : 1;

		appendBinaryStringInfo(raw, &present, 1);
		if (nulls[i])
			continue;
		if (att->attbyval)
			appendBinaryStringInfo(raw, (const char *) &values[i], sizeof(Datum));
		else if (att->attlen > 0)
			appendBinaryStringInfo(raw, DatumGetPointer(values[i]), att->attlen);
		else if (att->attlen == -1)
		{
			struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(values[i]));
			uint32		len = VARSIZE_ANY_EXHDR(v);

			appendBinaryStringInfo(raw, (const char *) &len, sizeof(len));
			appendBinaryStringInfo(raw, VARDATA_ANY(v), len);
		}
		else
			appendBinaryStringInfo(raw, DatumGetCString(values[i]),
								   strlen(DatumGetCString(values[i])) + 1);
	}
}

/*
 * The JSON texts of keys are a cache: past KEY_NAMES_MAX keys it starts
 * afresh, so keys that stopped sending go, and so does its memory.
 */
static void
key_names_forget(Rule *r)
{
	if (r->key_names_cxt)
		MemoryContextDelete(r->key_names_cxt);
	r->key_names_cxt = NULL;
	r->key_names = NULL;
}

/*
 * Prepares the statement that spells a key: jsonb_build_object over the
 * key columns (named as the rule's query names them), as text.
 */
static void
key_plan_prepare(Rule *r, TupleDesc desc, int first)
{
	StringInfoData sql;
	int			nkeys = desc->natts - first;
	SPIPlanPtr	plan;

	if (nkeys > RULE_KEYS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("rule \"%s\" has %d key columns, more than %d", r->name ? r->name : r->detector,
						nkeys, RULE_KEYS_MAX),
				 errhint("Key the rule on fewer columns.")));
	initStringInfo(&sql);
	appendStringInfoString(&sql, nkeys == 0 ? "SELECT '{}'::jsonb::text" : "SELECT jsonb_build_object(");
	for (int i = 0; i < nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, first + i);

		appendStringInfo(&sql, "%s%s, $%d", i > 0 ? ", " : "",
						 quote_literal_cstr(NameStr(att->attname)), i + 1);
		r->key_types[i] = att->atttypid;
	}
	if (nkeys > 0)
		appendStringInfoString(&sql, ")::text");
	plan = SPI_prepare(sql.data, nkeys, r->key_types);
	if (plan == NULL)
		elog(ERROR, "could not prepare the key of rule \"%s\": %s", r->name ? r->name : r->detector,
			 SPI_result_code_string(SPI_result));
	if (r->key_plan && r->keep_plans)
		SPI_freeplan(r->key_plan);
	if (r->keep_plans)
		SPI_keepplan(plan);
	r->key_plan = plan;
	r->nkeys = nkeys;
	key_names_forget(r);
}

/*
 * The JSON text of the row's key (columns first..), whose binary form is
 * raw: from key_names, or made by SQL and remembered.  The result lives in
 * key_names or in the current memory context.
 */
const char *
RuleKeyJson(Rule *r, TupleDesc desc, int first, Datum *values, bool *nulls, StringInfo raw)
{
	int			nkeys = desc->natts - first;
	KeyName    *kn;
	char	   *json;
	char		nullflags[RULE_KEYS_MAX];
	char		probe[RAW_KEY_MAX];
	bool		stale = r->key_plan == NULL || r->nkeys != nkeys;

	for (int i = 0; !stale && i < nkeys; i++)
		stale = r->key_types[i] != TupleDescAttr(desc, first + i)->atttypid;
	if (stale)
		key_plan_prepare(r, desc, first);
	if (raw->len <= RAW_KEY_MAX)
	{
		if (r->key_names == NULL || hash_get_num_entries(r->key_names) >= KEY_NAMES_MAX)
		{
			HASHCTL		ctl;

			key_names_forget(r);
			r->key_names_cxt = AllocSetContextCreate(r->cxt, "iotstream rule key texts",
													 ALLOCSET_DEFAULT_SIZES);
			ctl.keysize = RAW_KEY_MAX;
			ctl.entrysize = sizeof(KeyName);
			ctl.hcxt = r->key_names_cxt;
			r->key_names = hash_create("iotstream rule keys", 256, &ctl,
									   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		}
		memset(probe, 0, sizeof(probe));
		memcpy(probe, raw->data, raw->len);
		kn = hash_search(r->key_names, probe, HASH_FIND, NULL);
		if (kn)
			return kn->json;
	}
	for (int i = 0; i < nkeys; i++)
		nullflags[i] = nulls[first + i] ? 'n' : ' ';
	if (SPI_execute_plan(r->key_plan, values + first, nullflags, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not spell a key of rule \"%s\"", r->name ? r->name : r->detector);
	json = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	SPI_freetuptable(SPI_tuptable);
	if (strlen(json) >= KEY_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("rule \"%s\": key %s is longer than %d bytes", r->name ? r->name : r->detector,
						json, KEY_MAX - 1),
				 errhint("Use shorter key columns.")));
	if (raw->len > RAW_KEY_MAX)
		return json;
	kn = hash_search(r->key_names, probe, HASH_ENTER, NULL);
	kn->json = MemoryContextStrdup(r->key_names_cxt, json);
	return kn->json;
}
