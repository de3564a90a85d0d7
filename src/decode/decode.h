/*-------------------------------------------------------------------------
 * decode/decode.h
 *		What other stages may use of the decoder.
 *
 * A mapping compiled once per target table, then one message at a time to
 * the table's column values, never raising an error for any message.
 *-------------------------------------------------------------------------
 */
#ifndef DECODE_DECODE_H
#define DECODE_DECODE_H

#include "iotstream.h"
#include "source/source.h"

/* in decode.c */

/*
 * A compiled mapping from messages to the columns of one target table.
 *
 * DecodePlanCreate compiles mapping (NULL: keys to columns by name, see
 * decode.c) against relid's tuple descriptor into cxt.  Call it inside a
 * transaction; a bad mapping raises an error with a hint.
 *
 * DecodeMessage fills values/nulls, one entry per attribute of that
 * descriptor (dropped and generated columns come back NULL).  It never
 * raises an error for any message: it returns false with *reason (static
 * or palloc'd, short, naming the column) for a dead letter.  Datums are
 * palloc'd in CurrentMemoryContext.  A plan decodes one message at a time.
 */
typedef struct DecodePlan DecodePlan;

extern DecodePlan *DecodePlanCreate(Oid relid, Jsonb *mapping, MemoryContext cxt);
extern bool DecodeMessage(DecodePlan *plan, const SourceMessage *msg,
						  Datum *values, bool *nulls, const char **reason);

/*
 * After a successful DecodeMessage: for each column (index attno - 1), true
 * if the message supplied no value at all and the column has a DEFAULT (or
 * is an identity column), so the ingest path should evaluate the default
 * instead of storing the NULL in nulls[].  Valid until the next call.
 */
extern const bool *DecodeUseDefault(const DecodePlan *plan);
extern bool DecodeNeedsHeaders(const DecodePlan *plan);

#endif							/* DECODE_DECODE_H */
