/*-------------------------------------------------------------------------
 * iotstream.h
 *		The common core: what every stage may use.
 *
 * The data flows one way, and the folders show it: source -> decode ->
 * ingest (into partitions) -> detect -> export (parquet -> the lake), with
 * analytics beside detect.  Each stage declares what the others may call
 * in its own header (source/source.h, decode/decode.h, ...); this one
 * holds only what belongs to none of them: the module entry, the launcher
 * and its GUCs, and running table code as the table's owner (owner.c).
 *-------------------------------------------------------------------------
 */
#ifndef IOTSTREAM_H
#define IOTSTREAM_H

#include "postgres.h"

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "fmgr.h"
#include "utils/jsonb.h"

/* IOTSTREAM_VERSION comes from the control file, through the Makefile. */

/* in iotstream.c */
extern void _PG_init(void);

/* for in-memory hash tables of the stages */

/*
 * Hash of a short byte string, 8 bytes at a time: device names and metric
 * types cost a few multiplies (hash_bytes was a quarter of the Parquet
 * dictionary thread's time).  For in-memory tables only: it is not stable
 * across versions.
 */
static inline uint32
BytesHash(const char *v, size_t len)
{
	uint64		h = (uint64) len * UINT64CONST(0x9e3779b97f4a7c15);
	uint64		x;

	while (len >= 8)
	{
		memcpy(&x, v, 8);
		h = (h ^ x) * UINT64CONST(0xbf58476d1ce4e5b9);
		h ^= h >> 31;
		v += 8;
		len -= 8;
	}
	if (len > 0)
	{
		x = 0;
		memcpy(&x, v, len);
		h = (h ^ x) * UINT64CONST(0xbf58476d1ce4e5b9);
		h ^= h >> 31;
	}
	h *= UINT64CONST(0x94d049bb133111eb);
	h ^= h >> 32;
	return (uint32) h;
}

/*
 * A dynahash keyed by a pointer to a string (HASHCTL: keysize
 * sizeof(char *), hash StringPtrHash, match StringPtrMatch, flags
 * HASH_FUNCTION | HASH_COMPARE): each entry's key is a char * to its own
 * copy, set after a HASH_ENTER that made it, so an entry takes what its
 * string takes instead of a fixed buffer.
 */
static inline uint32
StringPtrHash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return BytesHash(s, strlen(s));
}

static inline int
StringPtrMatch(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* in owner.c: table code runs as the table's owner (see owner.c) */
typedef struct AsOwner
{
	Oid			saved_user;
	int			saved_sec;
	int			guc_level;
	bool		active;
} AsOwner;

extern Oid	TableOwner(Oid relid);
extern void AsOwnerBegin(AsOwner *s, Oid owner);
extern void AsOwnerEnd(AsOwner *s);
extern Oid	OwnerForCaller(Oid relid);

/* how stored statements name their tables (sql/install/50_detect.sql) */
#define PLACEHOLDER_SOURCE	"\"@iotstream.source@\""
#define PLACEHOLDER_ROLLUP	"\"@iotstream.rollup@\""
#define PLACEHOLDER_DELTA	"\"@iotstream.delta@\""
extern char *RelationPlaceholderSubstitute(const char *sql, const char *placeholder, Oid relid);
extern void RequireArguments(FunctionCallInfo fcinfo, int n, const char *function);

/* in catch.c: a step in a subtransaction, its error as a value */
extern const char *CatchError(void (*step) (void *arg), void *arg);

/* in launcher.c: the GUCs, the launcher, and every worker's transactions */
extern char *iotstream_database;
extern int	iotstream_detection_yield;
extern int	iotstream_rule_state_idle;	/* minutes */
extern int	iotstream_max_workers;
extern void LauncherInit(void);
extern void WorkerBeginXact(const char *activity);
extern void WorkerCommitXact(void);
extern void WorkerMemoryInit(void);

#endif							/* IOTSTREAM_H */
