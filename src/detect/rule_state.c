/*-------------------------------------------------------------------------
 * rule_state.c
 *		Each key's detector state, and its key as JSON.
 *
 * A row-by-row rule keeps a state per key (iotstream.rule_state), loaded
 * before and saved after each evaluation in its transaction.  A key that
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

HTAB *
RuleStatesCreate(const Rule *r, bool load)
{
	HASHCTL		ctl;
	HTAB	   *states;

	ctl.keysize = KEY_MAX;
	ctl.entrysize = sizeof(KeyState);
	ctl.hcxt = CurrentMemoryContext;
	states = hash_create("iotstream rule states", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	if (load && RuleStateSize(r) > 0)
	{
		Oid			argtypes[2] = {INT4OID, TIMESTAMPTZOID};
		TimestampTz now = GetCurrentTransactionStartTimestamp();
		Datum		args[2] = {Int32GetDatum(r->rule_id),
		TimestampTzGetDatum(now - (TimestampTz) iotstream_rule_state_idle * 60 * USECS_PER_SEC)};
		Size		size = RuleStateSize(r);

		if (SPI_execute_with_args("DELETE FROM iotstream.rule_state WHERE rule_id = $1 AND seen_at < $2",
								  2, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not forget idle keys of iotstream.rule_state");
		if (SPI_execute_with_args("SELECT key::text, state FROM iotstream.rule_state WHERE rule_id = $1 AND seen_at >= $2",
								  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read iotstream.rule_state");
		MemoryContextSwitchTo(ctl.hcxt);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			char	   *key = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			bytea	   *b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			KeyState   *ks;

			if (strlen(key) >= KEY_MAX || VARSIZE_ANY_EXHDR(b) != size)
				continue;		/* from other parameters: start afresh */
			ks = hash_search(states, key, HASH_ENTER, NULL);
			ks->state = palloc(size);
			memcpy(ks->state, VARDATA_ANY(b), size);
			ks->changed = false;
		}
	}
	return states;
}

void
RuleStatesSave(const Rule *r, HTAB *states)
{
	HASH_SEQ_STATUS st;
	KeyState   *ks;
	Size		size = RuleStateSize(r);
	List	   *keys = NIL;
	List	   *vals = NIL;
	Datum	   *kd;
	Datum	   *vd;
	int			n = 0;
	Oid			argtypes[3] = {INT4OID, TEXTARRAYOID, BYTEAARRAYOID};
	Datum		args[3];

	hash_seq_init(&st, states);
	while ((ks = hash_seq_search(&st)) != NULL)
	{
		bytea	   *b;

		if (!ks->changed)
			continue;
		b = palloc(VARHDRSZ + size);
		SET_VARSIZE(b, VARHDRSZ + size);
		memcpy(VARDATA(b), ks->state, size);
		keys = lappend(keys, (void *) DatumGetPointer(CStringGetTextDatum(ks->key)));
		vals = lappend(vals, b);
	}
	if (keys == NIL)
		return;
	kd = palloc(sizeof(Datum) * list_length(keys));
	vd = palloc(sizeof(Datum) * list_length(keys));
	for (int i = 0; i < list_length(keys); i++)
	{
		kd[n] = PointerGetDatum(list_nth(keys, i));
		vd[n++] = PointerGetDatum(list_nth(vals, i));
	}
	args[0] = Int32GetDatum(r->rule_id);
	args[1] = PointerGetDatum(construct_array(kd, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(vd, n, BYTEAOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("INSERT INTO iotstream.rule_state AS s (rule_id, key, state)"
							  " SELECT $1, k::jsonb, v FROM unnest($2, $3) u(k, v)"
							  " ON CONFLICT (rule_id, key) DO UPDATE SET state = excluded.state, seen_at = excluded.seen_at",
							  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store iotstream.rule_state");
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
