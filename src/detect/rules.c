/*-------------------------------------------------------------------------
 * rules.c
 *		Evaluates detection rules over event time, once per window.
 *
 * A rule has evaluated everything before rule_progress.evaluated_until.
 * Its horizon is the watermark minus the rule's lateness: no row before it
 * can still arrive within the lateness.  Windowed detectors seal a window
 * when the horizon passes its end; row detectors take every row before the
 * horizon.  The detection worker's RuleEvaluate evaluates exactly
 * [evaluated_until, horizon) with the rule's query over the stream table
 * and moves evaluated_until, in one transaction with the anomalies and the
 * detector state.  In each batch's transaction RuleNoteBatch counts the
 * rows before the horizon the batch started from as late, and starts the
 * rule at its first batch.
 *
 * threshold_count is one query that returns the anomalies, built from the
 * analytics aggregates.  The others read rows in key and event-time order
 * and feed them to C: zscore gets each key's window means and compares each
 * with the key's previous windows' means (the ring of them is the key's
 * state); mad scores each value against its key and window (RobustZscore);
 * ewma, cusum, spike_dip and change_point are the detectors of detectors.c,
 * per key across windows.  The state of each key is kept in
 * iotstream.rule_state.  backtest_rule() runs the same
 * evaluation (evaluate_range) with fresh state and writes nothing.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest.h"
#include "analytics/analytics.h"
#include "detect/detect_int.h"

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

#define KEY_MAX			512		/* bytes of a key's JSON text */
#define RAW_KEY_MAX		120		/* bytes of a key's binary form that key_names caches */
#define RULE_KEYS_MAX	32		/* key columns of a row or zscore rule */
#define KEY_NAMES_MAX	100000	/* entries of key_names before it starts afresh */
#define FETCH_ROWS		5000

typedef enum RuleKind
{
	RULE_SQL,					/* the query returns the anomalies */
	RULE_ZSCORE,
	RULE_MAD,
	RULE_SPIKE_DIP,
	RULE_CHANGE_POINT,
	RULE_EWMA,
	RULE_CUSUM
} RuleKind;

struct Rule
{
	int			rule_id;
	char	   *name;
	char	   *detector;
	char	   *params_text;
	char	   *severity;
	char	   *alert_topic;	/* NULL: none */
	Interval	window;
	Interval	lateness;
	SPIPlanPtr	eval_plan;
	MemoryContext cxt;			/* where the rule lives */
	bool		keep_plans;		/* a worker's rule, not a backtest's */
	SPIPlanPtr	key_plan;		/* key columns -> the key's JSON text */
	Oid			key_types[RULE_KEYS_MAX];
	int			nkeys;
	HTAB	   *key_names;		/* KeyName: raw key -> JSON text */
	bool		started;		/* evaluated_until is set */
	TimestampTz last_evaluation;	/* wall clock, in this worker */

	RuleKind	kind;
	float8		threshold;		/* mad, zscore */
	int			min_count;		/* mad */
	int			history;		/* zscore: windows */
	int			min_history;
	float8		confidence;		/* spike_dip, change_point */
	int			history_size;
	KdeMode		mode;
	float8		lambda;			/* ewma */
	float8		L;
	int			warmup;
	bool		have_mu_sigma;
	float8		mu;
	float8		sigma;
	float8		target;			/* cusum */
	float8		k;
	float8		h;
	Oid			owner;			/* the table's: its query runs as this role */
};

/* One anomaly as evaluate_range reports it. */
typedef struct Anomaly
{
	const char *key;			/* JSON text */
	bool		has_window;
	TimestampTz window_start;
	TimestampTz window_end;
	bool		has_time;
	TimestampTz event_time;
	float8		value;
	float8		score;
} Anomaly;

typedef void (*EmitFn) (void *arg, const Anomaly *a);

/* A key's detector state, in the hash of one evaluation. */
typedef struct KeyState
{
	char		key[KEY_MAX];
	void	   *state;
	bool		changed;
} KeyState;

/*
 * A key's JSON text by its binary form (the key columns' datums, each
 * after a null flag and, for a varlena, its length).  The queries of row
 * detectors, mad and zscore return the raw key columns, sorted: the JSON
 * text is only looked up when the key changes, and made by SQL
 * (jsonb_build_object, as the anomalies and rule_state spell keys) only
 * the first time the worker sees the key.
 */
typedef struct KeyName
{
	char		raw[RAW_KEY_MAX];
	char		json[KEY_MAX];
} KeyName;

static SPIPlanPtr progress_read_plan = NULL;
static SPIPlanPtr progress_write_plan = NULL;
static SPIPlanPtr late_plan = NULL;
static SPIPlanPtr anomaly_plan = NULL;

static float8
param_number(Jsonb *params, const char *name, float8 dflt)
{
	JsonbValue	key;
	JsonbValue *v;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	v = findJsonbValueFromContainer(&params->root, JB_FOBJECT, &key);
	if (v == NULL || v->type != jbvNumeric)
		return dflt;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

static bool
param_present(Jsonb *params, const char *name)
{
	JsonbValue	key;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	return findJsonbValueFromContainer(&params->root, JB_FOBJECT, &key) != NULL;
}

/*
 * A detector parameter within [lo, hi], or its default.  _rule_sql()
 * checks params before they are stored; this checks them again wherever
 * they come from (a row written by hand, _evaluate's caller), so that no
 * value can size an allocation wrongly.
 */
static float8
param_in_range(Jsonb *params, const char *detector, const char *name, float8 dflt,
			   float8 lo, float8 hi)
{
	JsonbValue	key;
	JsonbValue *v;
	float8		x;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	v = findJsonbValueFromContainer(&params->root, JB_FOBJECT, &key);
	if (v == NULL)
		return dflt;
	x = v->type == jbvNumeric ?
		DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric))) :
		get_float8_nan();
	if (isnan(x) || x < lo || x > hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params.%s of detector %s must be a number between %g and %g",
						name, detector, lo, hi),
				 errhint("See the detector table under \"Rules\" in README.md.")));
	return x;
}

/* The detector's settings from params, checked. */
static void
rule_setup(Rule *r, const char *detector, Jsonb *params)
{
	if (params == NULL || !JB_ROOT_IS_OBJECT(params) || JB_ROOT_IS_SCALAR(params))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params must be a JSON object"),
				 errhint("Pass for example '{\"threshold\": 100, \"min_count\": 5}'.")));
	if (strcmp(detector, "zscore") == 0)
	{
		param_in_range(params, detector, "threshold", 3, 0, get_float8_infinity());
		param_in_range(params, detector, "history", 10, 2, 100000);
		param_in_range(params, detector, "min_history", 3, 2, 100000);
	}
	else if (strcmp(detector, "mad") == 0)
	{
		param_in_range(params, detector, "threshold", 3.5, 0, get_float8_infinity());
		param_in_range(params, detector, "min_count", 5, 3, 1e9);
	}
	else if (strcmp(detector, "spike_dip") == 0 || strcmp(detector, "change_point") == 0)
	{
		param_in_range(params, detector, "confidence", 99, 1, 100);
		param_in_range(params, detector, "history_size", 100, 2, 100000);
	}
	else if (strcmp(detector, "ewma") == 0)
	{
		param_in_range(params, detector, "lambda", 0.2, 1e-9, 1);
		param_in_range(params, detector, "L", 3, 1e-9, get_float8_infinity());
		param_in_range(params, detector, "warmup", 30, 2, 1e9);
		param_in_range(params, detector, "mu", 0, -get_float8_infinity(), get_float8_infinity());
		param_in_range(params, detector, "sigma", 1, 0, get_float8_infinity());
	}
	else if (strcmp(detector, "cusum") == 0)
	{
		param_in_range(params, detector, "target", 0, -get_float8_infinity(), get_float8_infinity());
		param_in_range(params, detector, "k", 0, 0, get_float8_infinity());
		param_in_range(params, detector, "h", 0, 0, get_float8_infinity());
	}
	r->detector = pstrdup(detector);
	r->threshold = param_number(params, "threshold", 3.5);
	r->min_count = (int) param_number(params, "min_count", 5);
	r->confidence = param_number(params, "confidence", 99);
	r->history_size = (int) param_number(params, "history_size", 100);
	r->history = (int) param_number(params, "history", 10);
	r->min_history = (int) param_number(params, "min_history", 3);
	r->lambda = param_number(params, "lambda", 0.2);
	r->L = param_number(params, "L", 3);
	r->warmup = (int) param_number(params, "warmup", 30);
	r->have_mu_sigma = param_present(params, "mu") && param_present(params, "sigma");
	r->mu = param_number(params, "mu", 0);
	r->sigma = param_number(params, "sigma", 1);
	r->target = param_number(params, "target", 0);
	r->k = param_number(params, "k", 0);
	r->h = param_number(params, "h", 0);
	r->mode = KDE_SPIKES_AND_DIPS;
	{
		JsonbValue	key;
		JsonbValue *v;

		key.type = jbvString;
		key.val.string.val = "mode";
		key.val.string.len = 4;
		v = findJsonbValueFromContainer(&params->root, JB_FOBJECT, &key);
		if (v && v->type == jbvString && v->val.string.len == 6 &&
			strncmp(v->val.string.val, "spikes", 6) == 0)
			r->mode = KDE_SPIKES;
		else if (v && v->type == jbvString && v->val.string.len == 4 &&
				 strncmp(v->val.string.val, "dips", 4) == 0)
			r->mode = KDE_DIPS;
	}

	if (strcmp(detector, "threshold_count") == 0)
		r->kind = RULE_SQL;
	else if (strcmp(detector, "zscore") == 0)
		r->kind = RULE_ZSCORE;
	else if (strcmp(detector, "mad") == 0)
		r->kind = RULE_MAD;
	else if (strcmp(detector, "spike_dip") == 0)
		r->kind = RULE_SPIKE_DIP;
	else if (strcmp(detector, "change_point") == 0)
		r->kind = RULE_CHANGE_POINT;
	else if (strcmp(detector, "ewma") == 0)
		r->kind = RULE_EWMA;
	else if (strcmp(detector, "cusum") == 0)
		r->kind = RULE_CUSUM;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown detector \"%s\"", detector),
				 errhint("Use threshold_count, zscore, mad, ewma, cusum, spike_dip or change_point.")));
}

/* A rule's query, prepared in SPI's memory. */
static SPIPlanPtr
prepare_eval(const char *sql, Oid owner)
{
	Oid			argtypes[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	SPIPlanPtr	plan;
	AsOwner		as;

	AsOwnerBegin(&as, owner);
	plan = SPI_prepare(sql, 2, argtypes);
	AsOwnerEnd(&as);

	if (plan == NULL)
		elog(ERROR, "could not prepare a rule's query: %s", SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * The enabled rules on relid, with their queries prepared; inside SPI.  The
 * plans stay SPI's until RulesKeep (see RollupsLoad).
 */
List *
RulesLoad(Oid relid, MemoryContext cxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	List	   *result = NIL;
	SPITupleTable *tt;
	uint64		nrows;

	if (SPI_execute_with_args("SELECT r.rule_id, name, detector, params, severity, alert_topic,"
							  "  window_size, lateness, eval_sql, p.evaluated_until IS NOT NULL"
							  " FROM iotstream.rules r JOIN iotstream.rule_progress p USING (rule_id)"
							  " WHERE source_table = $1 AND enabled ORDER BY rule_id",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.rules");
	tt = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 row = 0; row < nrows; row++)
	{
		HeapTuple	tup = tt->vals[row];
		TupleDesc	desc = tt->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Rule	   *r = palloc0(sizeof(Rule));
		bool		isnull;
		char	   *sql;

		r->rule_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		r->cxt = cxt;
		r->keep_plans = true;
		r->name = SPI_getvalue(tup, desc, 2);
		rule_setup(r, SPI_getvalue(tup, desc, 3),
				   DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull)));
		r->params_text = SPI_getvalue(tup, desc, 4);
		r->severity = SPI_getvalue(tup, desc, 5);
		r->alert_topic = SPI_getvalue(tup, desc, 6);
		r->window = *DatumGetIntervalP(SPI_getbinval(tup, desc, 7, &isnull));
		r->lateness = *DatumGetIntervalP(SPI_getbinval(tup, desc, 8, &isnull));
		sql = RelationPlaceholderSubstitute(SPI_getvalue(tup, desc, 9), PLACEHOLDER_SOURCE, relid);
		r->started = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
		r->owner = TableOwner(relid);
		result = lappend(result, r);
		MemoryContextSwitchTo(old);
		r->eval_plan = prepare_eval(sql, r->owner);
	}
	return result;
}

/* Keeps the plans of loaded rules past the SPI call (until RulesRelease). */
void
RulesKeep(List *rules)
{
	ListCell   *lc;

	foreach(lc, rules)
		SPI_keepplan(((Rule *) lfirst(lc))->eval_plan);
}

void
RulesRelease(List *rules)
{
	ListCell   *lc;

	foreach(lc, rules)
	{
		Rule	   *r = (Rule *) lfirst(lc);

		SPI_freeplan(r->eval_plan);
		if (r->key_plan)
			SPI_freeplan(r->key_plan);
	}
}

/* ---------------------------------------------------------------- states */

/* zscore: a key's last window means, oldest first from head. */
typedef struct ZscoreWindow
{
	TimestampTz start;
	float8		mean;
} ZscoreWindow;

typedef struct ZscoreState
{
	int32		n;
	int32		head;
	ZscoreWindow w[FLEXIBLE_ARRAY_MEMBER];
} ZscoreState;

static Size
state_size(const Rule *r)
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

static void
state_init(const Rule *r, void *state)
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
			memset(state, 0, state_size(r));
			break;
		default:
			break;
	}
}

static HTAB *
states_create(const Rule *r, bool load)
{
	HASHCTL		ctl;
	HTAB	   *states;

	ctl.keysize = KEY_MAX;
	ctl.entrysize = sizeof(KeyState);
	ctl.hcxt = CurrentMemoryContext;
	states = hash_create("iotstream rule states", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	if (load && state_size(r) > 0)
	{
		Oid			argtypes[1] = {INT4OID};
		Datum		args[1] = {Int32GetDatum(r->rule_id)};
		Size		size = state_size(r);

		if (SPI_execute_with_args("SELECT key::text, state FROM iotstream.rule_state WHERE rule_id = $1",
								  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
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

static void
states_save(const Rule *r, HTAB *states)
{
	HASH_SEQ_STATUS st;
	KeyState   *ks;
	Size		size = state_size(r);
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
							  " ON CONFLICT (rule_id, key) DO UPDATE SET state = excluded.state",
							  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store iotstream.rule_state");
}

/* ---------------------------------------------------------------- keys */

/* The binary form of the key in columns first.. of a row (see KeyName). */
static void
key_raw(TupleDesc desc, int first, const Datum *values, const bool *nulls, StringInfo raw)
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
	if (r->key_names)
		hash_destroy(r->key_names);
	r->key_names = NULL;
}

/*
 * The JSON text of the row's key (columns first..), whose binary form is
 * raw: from key_names, or made by SQL and remembered.  The result lives in
 * key_names or in the current memory context.
 */
static const char *
key_json(Rule *r, TupleDesc desc, int first, Datum *values, bool *nulls, StringInfo raw)
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

			if (r->key_names)
				hash_destroy(r->key_names);
			ctl.keysize = RAW_KEY_MAX;
			ctl.entrysize = sizeof(KeyName);
			ctl.hcxt = r->cxt;
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
	strlcpy(kn->json, json, KEY_MAX);
	return kn->json;
}

/* ---------------------------------------------------------------- evaluation */

/*
 * Feeds one value to a key's row detector.  ewma, cusum and change_point
 * report the row where an alarm begins, spike_dip every spike.
 */
static bool
detector_step(const Rule *r, void *state, float8 x, float8 *score)
{
	switch (r->kind)
	{
		case RULE_SPIKE_DIP:
			{
				KdeHistory *h = state;

				KdeSpikeStep(h, x);
				*score = h->score;
				return h->alarm;
			}
		case RULE_CHANGE_POINT:
			{
				KdeHistory *h = state;
				bool		was = h->alarm;

				KdeChangePointStep(h, x);
				*score = h->martingale;
				return h->alarm && !was;
			}
		case RULE_EWMA:
			{
				EwmaChartState *s = state;
				bool		was = s->alarm;

				EwmaChartStep(s, x);
				*score = s->z;
				return s->alarm && !was;
			}
		case RULE_CUSUM:
			{
				CusumState *s = state;
				bool		was = s->alarm;

				CusumStep(s, x, r->target, r->k, r->h);
				*score = Max(s->hi, s->lo);
				return s->alarm && !was;
			}
		default:
			return false;
	}
}

/*
 * zscore: the z-score of a window's mean against the means of the key's
 * windows that started within history windows before it (the SQL
 * `stats_agg(mean) OVER (RANGE BETWEEN history PRECEDING AND 1 PRECEDING)`);
 * then the window joins them.  True if it is flagged.
 */
static bool
zscore_step(const Rule *r, ZscoreState *s, TimestampTz start, float8 mean, float8 *score)
{
	TimestampTz oldest = start - DetectIntervalUsecs(&r->window) * r->history;
	StatsState h;
	bool		flagged = false;

	StatsInit(&h);
	for (int i = 0; i < s->n; i++)
	{
		const ZscoreWindow *e = &s->w[(s->head + i) % r->history];

		if (e->start >= oldest && e->start < start)
			StatsAdd(&h, e->mean);
	}
	*score = get_float8_nan();
	if (h.n >= r->min_history && StatsZscore(&h, mean, score))
		flagged = fabs(*score) > r->threshold;
	if (s->n < r->history)
		s->w[(s->head + s->n++) % r->history] = (ZscoreWindow) {start, mean};
	else
	{
		s->w[s->head] = (ZscoreWindow) {start, mean};
		s->head = (s->head + 1) % r->history;
	}
	return flagged;
}

/* mad: scores every value of one key's window against that window. */
static int64
mad_window(const Rule *r, const char *key, TimestampTz grp, TimestampTz grp_end,
		   const float8 *v, const TimestampTz *t, int n, float8 *scratch,
		   EmitFn emit, void *arg)
{
	int64		found = 0;

	if (n < r->min_count)
		return 0;
	for (int i = 0; i < n; i++)
	{
		float8		median;
		float8		mad;
		float8		m;

		memcpy(scratch, v, sizeof(float8) * n);
		m = RobustZscore(scratch, n, v[i], &median, &mad);
		if (fabs(m) > r->threshold)
		{
			Anomaly		a = {key, true, grp, grp_end, true, t[i], v[i], m};

			emit(arg, &a);
			found++;
		}
	}
	return found;
}

/* An emit that stores the anomaly as the worker, from inside the owner's query. */
typedef struct OwnerEmit
{
	EmitFn		emit;
	void	   *arg;
	AsOwner    *as;
	Oid			owner;
} OwnerEmit;

static void
emit_as_worker(void *arg, const Anomaly *a)
{
	OwnerEmit  *oe = arg;
	bool		was_owner = oe->as->active;

	if (was_owner)
		AsOwnerEnd(oe->as);
	oe->emit(oe->arg, a);
	if (was_owner)
		AsOwnerBegin(oe->as, oe->owner);
}

/*
 * Evaluates [from, to): emits each anomaly and returns how many; *nrows
 * gets the rows read by row detectors.  With persist, row detectors start
 * from and save iotstream.rule_state.  Inside SPI.
 */
static int64
evaluate_range(Rule *r, SPIPlanPtr plan, TimestampTz from, TimestampTz to,
			   bool persist, EmitFn emit, void *arg, int64 *nrows)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "iotstream rule evaluation",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Datum		args[2] = {TimestampTzGetDatum(from), TimestampTzGetDatum(to)};
	int64		found = 0;
	AsOwner		as = {0};
	OwnerEmit	oe = {emit, arg, &as, r->owner};

	/* the rule's query reads the table as its owner; anomalies are ours */
	emit = emit_as_worker;
	arg = &oe;
	*nrows = 0;
	if (r->kind == RULE_SQL)
	{
		SPITupleTable *tt;
		uint64		nfound;

		AsOwnerBegin(&as, r->owner);
		if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not evaluate rule \"%s\"", r->name ? r->name : r->detector);
		AsOwnerEnd(&as);
		nfound = SPI_processed;
		MemoryContextSwitchTo(cxt);
		tt = SPI_tuptable;
		/* emit() runs statements of its own: SPI_processed changes */
		for (uint64 i = 0; i < nfound; i++)
		{
			HeapTuple	tup = tt->vals[i];
			bool		n2,
						n3,
						n4,
						n5,
						n6;
			Anomaly		a;

			a.key = SPI_getvalue(tup, tt->tupdesc, 1);
			a.window_start = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 2, &n2));
			a.window_end = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 3, &n3));
			a.event_time = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 4, &n4));
			a.value = DatumGetFloat8(SPI_getbinval(tup, tt->tupdesc, 5, &n5));
			a.score = DatumGetFloat8(SPI_getbinval(tup, tt->tupdesc, 6, &n6));
			a.has_window = !n2 && !n3;
			a.has_time = !n4;
			if (n5)
				a.value = get_float8_nan();
			if (n6)
				a.score = get_float8_nan();
			emit(arg, &a);
			found++;
		}
		SPI_freetuptable(tt);
	}
	else
	{
		HTAB	   *states = states_create(r, persist);
		Portal		portal;
		MemoryContext rowcxt;
		char		cur_key[KEY_MAX] = "";
		KeyState   *cur = NULL;
		bool		have_group = false;
		TimestampTz grp = 0;
		TimestampTz grp_end = 0;
		int			gn = 0;
		int			gcap = 256;
		float8	   *gv = palloc(sizeof(float8) * gcap);
		TimestampTz *gt = palloc(sizeof(TimestampTz) * gcap);
		float8	   *scratch = palloc(sizeof(float8) * gcap);
		Size		size = state_size(r);
		Datum	   *values = NULL;
		bool	   *nulls = NULL;
		StringInfoData raw;
		StringInfoData cur_raw;

		/*
		 * The query's fixed columns, then the key columns (see _rule_sql):
		 * row detectors (ts, value), zscore (grp, grp_end, value), mad
		 * (grp, grp_end, ts, value).
		 */
		int			nfixed = r->kind == RULE_MAD ? 4 : r->kind == RULE_ZSCORE ? 3 : 2;
		int			at_grp = r->kind == RULE_MAD || r->kind == RULE_ZSCORE ? 0 : -1;
		int			at_ts = r->kind == RULE_MAD ? 2 : r->kind == RULE_ZSCORE ? -1 : 0;
		int			at_value = nfixed - 1;

		initStringInfo(&raw);
		initStringInfo(&cur_raw);

		/* zscore without saved state reads the history before from too */
		if (r->kind == RULE_ZSCORE && hash_get_num_entries(states) == 0)
		{
			int64		back;

			/* a huge window times a long history reads from the beginning */
			if (pg_mul_s64_overflow(DetectIntervalUsecs(&r->window), r->history, &back) ||
				pg_sub_s64_overflow(from, back, &back) || back < MIN_TIMESTAMP)
				back = MIN_TIMESTAMP;
			args[0] = TimestampTzGetDatum(back);
		}
		AsOwnerBegin(&as, r->owner);
		portal = SPI_cursor_open(NULL, plan, args, NULL, false);
		rowcxt = AllocSetContextCreate(cxt, "iotstream rule rows", ALLOCSET_DEFAULT_SIZES);
		for (;;)
		{
			SPITupleTable *tt;
			uint64		got;

			SPI_cursor_fetch(portal, true, FETCH_ROWS);
			tt = SPI_tuptable;
			got = SPI_processed;
			if (got == 0)
				break;
			MemoryContextSwitchTo(rowcxt);
			if (values == NULL)
			{
				values = MemoryContextAlloc(cxt, sizeof(Datum) * tt->tupdesc->natts);
				nulls = MemoryContextAlloc(cxt, sizeof(bool) * tt->tupdesc->natts);
			}
			for (uint64 i = 0; i < got; i++)
			{
				const char *key = cur_key;
				bool		new_key;
				Datum		g;
				TimestampTz ts;
				float8		x;

				heap_deform_tuple(tt->vals[i], tt->tupdesc, values, nulls);
				g = at_grp >= 0 ? values[at_grp] : 0;
				ts = at_ts >= 0 ? DatumGetTimestampTz(values[at_ts]) : 0;
				x = DatumGetFloat8(values[at_value]);
				key_raw(tt->tupdesc, nfixed, values, nulls, &raw);
				if (cur_key[0] == '\0' || raw.len != cur_raw.len ||
					memcmp(raw.data, cur_raw.data, raw.len) != 0)
				{
					key = key_json(r, tt->tupdesc, nfixed, values, nulls, &raw);
					/* its SPI call left SPI's context current */
					MemoryContextSwitchTo(rowcxt);
					resetStringInfo(&cur_raw);
					appendBinaryStringInfo(&cur_raw, raw.data, raw.len);
				}
				new_key = strcmp(key, cur_key) != 0;

				(*nrows)++;
				if (r->kind == RULE_MAD)
				{
					TimestampTz gi = DatumGetTimestampTz(g);

					if (have_group && (new_key || gi != grp))
					{
						MemoryContextSwitchTo(cxt);
						found += mad_window(r, cur_key, grp, grp_end, gv, gt, gn, scratch, emit, arg);
						MemoryContextSwitchTo(rowcxt);
						gn = 0;
					}
					if (new_key)
						strlcpy(cur_key, key, KEY_MAX);
					have_group = true;
					grp = gi;
					grp_end = DatumGetTimestampTz(values[at_grp + 1]);
					if (gn == gcap)
					{
						gcap *= 2;
						gv = repalloc(gv, sizeof(float8) * gcap);
						gt = repalloc(gt, sizeof(TimestampTz) * gcap);
						scratch = repalloc(scratch, sizeof(float8) * gcap);
					}
					gv[gn] = x;
					gt[gn++] = ts;
				}
				else
				{
					float8		score;

					if (new_key || cur == NULL)
					{
						bool		exists;

						strlcpy(cur_key, key, KEY_MAX);
						cur = hash_search(states, cur_key, HASH_ENTER, &exists);
						if (!exists)
						{
							cur->state = MemoryContextAlloc(cxt, size);
							state_init(r, cur->state);
						}
					}
					cur->changed = true;
					if (r->kind == RULE_ZSCORE)
					{
						TimestampTz gi = DatumGetTimestampTz(g);

						if (zscore_step(r, cur->state, gi, x, &score) && gi >= from)
						{
							Anomaly		a = {cur_key, true, gi, DatumGetTimestampTz(values[at_grp + 1]),
							false, 0, x, score};

							emit(arg, &a);
							found++;
						}
					}
					else if (detector_step(r, cur->state, x, &score))
					{
						Anomaly		a = {cur_key, false, 0, 0, true, ts, x, score};

						emit(arg, &a);
						found++;
					}
				}
			}
			MemoryContextSwitchTo(cxt);
			MemoryContextReset(rowcxt);
			SPI_freetuptable(tt);
		}
		SPI_cursor_close(portal);
		AsOwnerEnd(&as);
		if (r->kind == RULE_MAD && have_group)
			found += mad_window(r, cur_key, grp, grp_end, gv, gt, gn, scratch, oe.emit, oe.arg);
		if (persist && size > 0)
			states_save(r, states);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return found;
}

/* ---------------------------------------------------------------- the worker's side */

typedef struct StoreArg
{
	const Rule *rule;
	const DetectOrigin *origin;
} StoreArg;

static void
prepare_static_plans(void)
{
	if (progress_read_plan == NULL)
	{
		Oid			t1[1] = {INT4OID};

		progress_read_plan = SPI_prepare("SELECT evaluated_until FROM iotstream.rule_progress WHERE rule_id = $1",
										 1, t1);
		if (progress_read_plan == NULL)
			elog(ERROR, "could not prepare the progress read of iotstream rules");
		SPI_keepplan(progress_read_plan);
	}
	if (progress_write_plan == NULL)
	{
		Oid			t2[6] = {INT4OID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID};

		progress_write_plan = SPI_prepare("UPDATE iotstream.rule_progress"
										  " SET evaluated_until = $2,"
										  "     windows_evaluated = windows_evaluated + $3,"
										  "     rows_evaluated = rows_evaluated + $4,"
										  "     anomalies = anomalies + $5, late_rows = late_rows + $6,"
										  "     last_evaluation = now()"
										  " WHERE rule_id = $1", 6, t2);
		if (progress_write_plan == NULL)
			elog(ERROR, "could not prepare the progress write of iotstream rules");
		SPI_keepplan(progress_write_plan);
	}
	if (late_plan == NULL)
	{
		Oid			t4[2] = {INT4OID, INT8OID};

		late_plan = SPI_prepare("UPDATE iotstream.rule_progress SET late_rows = late_rows + $2"
								" WHERE rule_id = $1", 2, t4);
		if (late_plan == NULL)
			elog(ERROR, "could not prepare the late count of iotstream rules");
		SPI_keepplan(late_plan);
	}
	if (anomaly_plan == NULL)
	{
		Oid			t3[14] = {INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		TEXTOID, FLOAT8OID, FLOAT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		anomaly_plan = SPI_prepare("INSERT INTO iotstream.anomalies (rule_id, rule, key, window_start, window_end,"
								   "  event_time, detector, value, score, params, severity, source, source_offsets,"
								   "  alert_topic)"
								   " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12,"
								   "  $13::jsonb, $14)", 14, t3);
		if (anomaly_plan == NULL)
			elog(ERROR, "could not prepare the anomaly insert of iotstream rules");
		SPI_keepplan(anomaly_plan);
	}
}

static void
store_anomaly(void *arg, const Anomaly *a)
{
	StoreArg   *s = arg;
	const Rule *r = s->rule;
	MemoryContext old = CurrentMemoryContext;
	Datum		v[14];
	char		n[14];

	memset(n, ' ', sizeof(n));
	v[0] = Int32GetDatum(r->rule_id);
	v[1] = CStringGetTextDatum(r->name);
	v[2] = CStringGetTextDatum(a->key);
	v[3] = TimestampTzGetDatum(a->window_start);
	v[4] = TimestampTzGetDatum(a->window_end);
	if (!a->has_window)
		n[3] = n[4] = 'n';
	v[5] = TimestampTzGetDatum(a->event_time);
	if (!a->has_time)
		n[5] = 'n';
	v[6] = CStringGetTextDatum(r->detector);
	v[7] = Float8GetDatum(a->value);
	v[8] = Float8GetDatum(a->score);
	v[9] = CStringGetTextDatum(r->params_text);
	v[10] = CStringGetTextDatum(r->severity);
	v[11] = CStringGetTextDatum(s->origin->source);
	v[12] = CStringGetTextDatum(s->origin->offsets);
	v[13] = r->alert_topic ? CStringGetTextDatum(r->alert_topic) : (Datum) 0;
	if (r->alert_topic == NULL)
		n[13] = 'n';
	if (SPI_execute_plan(anomaly_plan, v, n, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store an anomaly of rule \"%s\"", r->name);
	/* its NOTIFY and alert go out once the anomaly is durable: see DetectRun */
	(void) set_config_option("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	MemoryContextSwitchTo(old);		/* SPI leaves us in its procedure context */
}

/*
 * A rule evaluates at most this often: a window that seals sooner after the
 * last evaluation waits that long (a backlog seals one every few batches),
 * so one query and one save of the keys' state cover several.
 */
#define EVALUATION_MS	200

static bool
row_detector(const Rule *r)
{
	return r->kind == RULE_SPIKE_DIP || r->kind == RULE_CHANGE_POINT ||
		r->kind == RULE_EWMA || r->kind == RULE_CUSUM;
}

/*
 * What the watermark lets the rule evaluate: everything before
 * watermark - lateness, down to a window boundary for windowed detectors.
 */
static TimestampTz
rule_horizon(const Rule *r, TimestampTz watermark)
{
	TimestampTz t = watermark - DetectIntervalUsecs(&r->lateness);

	return row_detector(r) ? t : DetectDateBin(&r->window, t);
}

/*
 * The batch's part, in its transaction: the batch's rows before the
 * horizon of the watermark it started from are late.  The first batch a
 * rule sees starts it, from the horizon of its oldest row.  Inside SPI.
 */
void
RuleNoteBatch(Rule *r, const IngestedRows *rows, bool have_watermark,
			  TimestampTz old_watermark, TimestampTz new_watermark, TimestampTz batch_min)
{
	Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		args[2];
	int64		late = 0;
	TimestampTz cutoff;

	prepare_static_plans();
	args[0] = Int32GetDatum(r->rule_id);
	if (!r->started)
	{
		/* rows up to the lateness older than the first may still come */
		args[1] = TimestampTzGetDatum(rule_horizon(r, Min(batch_min, new_watermark)));
		if (SPI_execute_with_args("UPDATE iotstream.rule_progress SET evaluated_until = $2"
								  " WHERE rule_id = $1 AND evaluated_until IS NULL",
								  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not start rule \"%s\"", r->name);
		r->started = true;
		return;
	}
	if (!have_watermark)
		return;
	cutoff = rule_horizon(r, old_watermark);
	for (int i = 0; i < rows->n; i++)
		if (rows->stored[i] && rows->ts[i] < cutoff)
			late++;
	if (late == 0)
		return;
	args[1] = Int64GetDatum(late);
	if (SPI_execute_plan(late_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not count the late rows of rule \"%s\"", r->name);
}

/*
 * The detection worker's part: evaluates [evaluated_until, horizon) and
 * stores the anomalies, the state and the progress; returns the anomalies
 * raised.  A rule that ran less than EVALUATION_MS ago waits, and sets
 * *deferred.  Inside SPI, in the worker's transaction.
 */
int64
RuleEvaluate(Rule *r, TimestampTz watermark, const DetectOrigin *origin, bool *deferred)
{
	TimestampTz horizon = rule_horizon(r, watermark);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz from;
	bool		isnull;
	int64		windows = 0;
	int64		nrows = 0;
	int64		found;
	Datum		args[6];
	StoreArg	s = {r, origin};

	prepare_static_plans();
	args[0] = Int32GetDatum(r->rule_id);
	if (SPI_execute_plan(progress_read_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the progress of rule \"%s\"", r->name);
	if (SPI_processed == 0)
		return 0;				/* dropped meanwhile */
	from = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || horizon <= from)
		return 0;				/* not started, or nothing sealed */
	if (!TimestampDifferenceExceeds(r->last_evaluation, now, EVALUATION_MS))
	{
		*deferred = true;
		return 0;
	}

	found = evaluate_range(r, r->eval_plan, from, horizon, true, store_anomaly, &s, &nrows);
	if (!row_detector(r))
		windows = (horizon - from) / DetectIntervalUsecs(&r->window);
	r->last_evaluation = now;

	args[1] = TimestampTzGetDatum(horizon);
	args[2] = Int64GetDatum(windows);
	args[3] = Int64GetDatum(nrows);
	args[4] = Int64GetDatum(found);
	args[5] = Int64GetDatum(0);
	if (SPI_execute_plan(progress_write_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not store the progress of rule \"%s\"", r->name);
	return found;
}

/* Whether the rule's anomalies go to an alert topic. */
bool
RuleAlerts(const Rule *r)
{
	return r->alert_topic != NULL;
}

/* ---------------------------------------------------------------- backtest */

typedef struct BacktestArg
{
	Tuplestorestate *store;
	TupleDesc	desc;
} BacktestArg;

static void
backtest_row(void *arg, const Anomaly *a)
{
	BacktestArg *b = arg;
	Datum		v[6];
	bool		n[6] = {false, !a->has_window, !a->has_window, !a->has_time, false, false};

	v[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(a->key));
	v[1] = TimestampTzGetDatum(a->window_start);
	v[2] = TimestampTzGetDatum(a->window_end);
	v[3] = TimestampTzGetDatum(a->event_time);
	v[4] = Float8GetDatum(a->value);
	v[5] = Float8GetDatum(a->score);
	tuplestore_putvalues(b->store, b->desc, v, n);
}

/*
 * iotstream._evaluate(detector, params, eval_sql, window, from, to,
 * source_table): the anomalies a rule raises over stored rows, from fresh
 * detector state, unwritten; the query runs as source_table's owner.
 */
PG_FUNCTION_INFO_V1(iotstream_evaluate);
Datum
iotstream_evaluate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Rule		r;
	BacktestArg b;
	int64		nrows;
	TimestampTz from;
	TimestampTz to;

	for (int i = 0; i < 7; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a backtest needs a rule and a time range"),
					 errhint("Pass from_time and to_time, e.g. now() - interval '1 day' and now().")));
	from = PG_GETARG_TIMESTAMPTZ(4);
	to = PG_GETARG_TIMESTAMPTZ(5);
	if (from > to)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_time is after to_time"),
				 errhint("Pass the earlier time first.")));
	InitMaterializedSRF(fcinfo, 0);
	b.store = rsinfo->setResult;
	b.desc = rsinfo->setDesc;

	memset(&r, 0, sizeof(r));
	r.cxt = CurrentMemoryContext;
	r.window = *PG_GETARG_INTERVAL_P(3);	/* zscore's history is in windows */
	if (r.window.month != 0 || r.window.day < 0 || r.window.day > 36525 ||
		DetectIntervalUsecs(&r.window) <= 0 ||
		DetectIntervalUsecs(&r.window) > (int64) 36525 * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a rule's window must be positive, without months, and at most a century"),
				 errhint("Use for example '1 minute' or '1 hour'.")));
	rule_setup(&r, text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_JSONB_P(1));
	/* the caller may act as the table's owner, and the query runs as that */
	r.owner = OwnerForCaller(PG_GETARG_OID(6));
	SPI_connect();
	evaluate_range(&r, prepare_eval(RelationPlaceholderSubstitute(text_to_cstring(PG_GETARG_TEXT_PP(2)),
																  PLACEHOLDER_SOURCE, PG_GETARG_OID(6)),
									r.owner),
				   from, to, false, backtest_row, &b, &nrows);
	SPI_finish();
	return (Datum) 0;
}
