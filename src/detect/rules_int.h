/*-------------------------------------------------------------------------
 * detect/rules_int.h
 *		What the files of a rule share: its definition, its anomalies, and
 *		the steps of an evaluation.
 *
 * rules.c loads definitions, rule_state.c keeps each key's detector state
 * and spells its key, rule_eval.c evaluates a time range, rule_store.c is
 * the detection worker's side (progress, anomalies), rule_backtest.c the
 * SQL backtest.  Nothing outside them includes this header.
 *-------------------------------------------------------------------------
 */
#ifndef DETECT_RULES_INT_H
#define DETECT_RULES_INT_H

#include "detect/detect_int.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"

#define KEY_MAX			512		/* bytes of a key's JSON text */
#define RAW_KEY_MAX		120		/* bytes of a key's binary form that key_names caches */
#define RULE_KEYS_MAX	32		/* key columns of a row or zscore rule */
#define KEY_NAMES_MAX	50000	/* entries of key_names before it starts afresh (~10MB) */
#define FETCH_ROWS		5000
#define STATES_CHUNK	1000	/* keys' states per statement that reads or saves them */
#define STATES_KEEP		(16 * 1024 * 1024)	/* bytes of states a worker keeps between
											 * evaluations of a rule */

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

typedef struct RuleStates RuleStates;	/* rule_state.c */

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
	MemoryContext key_names_cxt;	/* key_names and its texts */
	RuleStates *states;			/* kept between evaluations, or NULL */
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

/* A key's detector state (see rule_state.c). */
typedef struct KeyState
{
	char	   *key;			/* the hash key: the JSON text, in the states' context */
	void	   *state;
	TimestampTz seen_at;		/* when it was last saved */
	bool		changed;		/* by the evaluation under way */
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
	char	   *json;			/* in key_names_cxt: as long as the key, not KEY_MAX */
} KeyName;

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

/* in rules.c */
extern void RuleSetup(Rule *r, const char *detector, Jsonb *params);
extern SPIPlanPtr RulePrepareEval(const char *sql, Oid owner);

/* in rule_state.c */
extern Size RuleStateSize(const Rule *r);
extern void RuleStateInit(const Rule *r, void *state);
extern RuleStates *RuleStatesBegin(Rule *r, bool persist, TimestampTz from);
extern KeyState *RuleStateFor(const Rule *r, RuleStates *s, const char *key);
extern long RuleStatesCount(const RuleStates *s);
extern void RuleStatesEnd(Rule *r, RuleStates *s, bool persist, TimestampTz to);
extern void RuleKeyRaw(TupleDesc desc, int first, const Datum *values, const bool *nulls, StringInfo raw);
extern const char *RuleKeyJson(Rule *r, TupleDesc desc, int first, Datum *values, bool *nulls, StringInfo raw);

/* in rule_eval.c */
extern int64 RuleEvaluateRange(Rule *r, SPIPlanPtr plan, TimestampTz from, TimestampTz to,
							   bool persist, EmitFn emit, void *arg, int64 *nrows);

#endif							/* DETECT_RULES_INT_H */
