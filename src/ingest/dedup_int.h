/*-------------------------------------------------------------------------
 * dedup_int.h
 *		Dedup's memory, shared by its two files: dedup.c (the batch's
 *		questions, and iotstream.source_dedup) and dedup_memory.c (the hash
 *		table, its steps and the filters).  Nothing outside them includes it.
 *
 * Layout and sizing: the banner of dedup.c, and docs/sources.md,
 * "Duplicates".
 *-------------------------------------------------------------------------
 */
#ifndef IOTSTREAM_DEDUP_INT_H
#define IOTSTREAM_DEDUP_INT_H

#include "ingest/ingest_int.h"

#include "executor/spi.h"
#include "port/pg_bswap.h"
#include "utils/timestamp.h"

#define SLOT_BYTES		sizeof(DedupSlot)
#define MIN_SLOTS		1024
#define MAX_LOAD_NUM	7			/* the hash table is full at 7/10 */
#define MAX_LOAD_DEN	10
#define BLOOM_BITS_PER_KEY 24		/* at capacity: about 1 false "maybe" in 10,000 */
#define BLOOM_BLOCK_WORDS 8			/* a block: 512 bits, one cache line */
#define BLOOM_PROBES	12
#define PLANNED_SEGMENTS 8			/* a segment's filter: this part of its budget */
#define MAX_SEGMENTS	64
#define SHARDS			32			/* rows per batch in source_dedup */
#define SHARD_SHIFT		59			/* a key's shard: the top 5 bits of hi */
#define KEY_BYTES		16			/* a key in source_dedup: hi, lo, big-endian */
#define LOAD_ROWS		256			/* rows fetched at a time on a reload */
#define STEPS			512			/* when keys entered the hash table, in steps */
#define EVICT_AHEAD		32			/* keys moved to a filter together, blocks prefetched */
#define PREFETCH_AHEAD	16			/* a batch's keys: probes fetched this far ahead */

/* a slot of the hash table: key and time side by side */
typedef struct DedupSlot
{
	DedupKey	key;			/* hi 0: free (a hi of 0 is taken as 1) */
	TimestampTz seen;
} DedupSlot;

/* keys that entered the hash table at a time (or up to it, once merged) */
typedef struct DedupStep
{
	TimestampTz seen;
	uint64		n;
} DedupStep;

typedef struct DedupSegment
{
	TimestampTz tmin;			/* when its keys were seen */
	TimestampTz tmax;
	int64		nkeys;
	int64		capacity;		/* keys its filter was sized for */
	uint64		nblocks;
	uint64	   *bits;			/* NULL: no filter, every key is "maybe" */
	int			place;			/* its filter's place in the arena */
} DedupSegment;

struct DedupState
{
	int			source_id;
	Interval	horizon;
	int64		budget;			/* dedup_memory, bytes */
	MemoryContext cxt;

	/* the newest keys */
	DedupSlot  *slots;
	uint64		nslots;			/* now; up to max_slots (half the bound) */
	uint64		max_slots;
	uint64		live;

	/*
	 * How many keys entered the table when, oldest first: an eviction finds
	 * the time before which a quarter of them entered without scanning the
	 * table.  The counts only guide the cut: a key entered again at a later
	 * time counts twice, so a cut may move fewer keys than planned, and the
	 * next one moves more.
	 */
	DedupStep	steps[STEPS];
	int			nsteps;

	/* older keys, oldest segment first */
	DedupSegment seg[MAX_SEGMENTS];
	int			nseg;
	/*
	 * The filters' arena: PLANNED_SEGMENTS places of equal size, taken in
	 * full the first time the hash table is full (memory then stays at the
	 * bound, flat, instead of growing with every segment)
	 */
	uint64	   *arena;
	uint64		place_bytes;
	bool		place_used[PLANNED_SEGMENTS];
	bool		place_dirty[PLANNED_SEGMENTS];	/* once used: to be zeroed */
	int64		seg_bytes;

	bool		loaded;
	DedupKey   *batch;			/* a batch's keys so far (DedupClassify), kept */
	uint64		batch_slots;
	uint64	   *maybe_segs;		/* per key classified: the segments that said
								 * "maybe" (a bit each), until DedupResolve;
								 * kept like batch */
	int			maybe_slots;
	bool		put_early;		/* DedupClassify put the batch's new keys in
								 * the hash table: DedupRemember need not */
	TimestampTz next_sweep;
	int64		sweep_us;

	SPIPlanPtr	store_plan;
	SPIPlanPtr	lookup_plan;
	SPIPlanPtr	expire_plan;
	SPIPlanPtr	load_plan;
};

/*
 * A key is 128 bits of hash: hi places it (slots, shards, filters), both
 * halves decide equality.  Neither half is 0 in a key hashed here; a lo of
 * 0 is a key stored by 0.2.0, which kept 64 bits (hi), and it matches any
 * key with its hi until its horizon has passed.
 */
static inline DedupKey
norm_key(DedupKey k)
{
	if (k.hi == 0)
		k.hi = 1;
	if (k.lo == 0)
		k.lo = 1;
	return k;
}

static inline bool
key_eq(DedupKey a, DedupKey b)
{
	return a.hi == b.hi && (a.lo == b.lo || a.lo == 0 || b.lo == 0);
}

/* a key of source_dedup, big-endian: 16 bytes (8 from 0.2.0, lo 0) */
static inline DedupKey
key_from_be(const char *p, int width)
{
	DedupKey	k = {0, 0};

	memcpy(&k.hi, p, sizeof(uint64));
	k.hi = pg_ntoh64(k.hi);
	if (k.hi == 0)
		k.hi = 1;
	if (width == KEY_BYTES)
	{
		memcpy(&k.lo, p + sizeof(uint64), sizeof(uint64));
		k.lo = pg_ntoh64(k.lo);
	}
	return k;
}


/* the keys are hashes already; this spreads them over slots and blocks */
static inline uint64
mix(uint64 k)
{
	k ^= k >> 33;
	k *= UINT64CONST(0xff51afd7ed558ccd);
	k ^= k >> 33;
	return k;
}

/* where a key's probe starts: any table size, not only powers of two */
static inline uint64
slot_home(const DedupState *d, uint64 hi)
{
	return (uint64) (((unsigned __int128) mix(hi) * d->nslots) >> 64);
}

/* the slot of k, or of the free slot where it would go */
static inline uint64
table_slot(const DedupState *d, DedupKey k)
{
	uint64		i = slot_home(d, k.hi);

	while (d->slots[i].key.hi != 0 && !key_eq(d->slots[i].key, k))
		i = i + 1 == d->nslots ? 0 : i + 1;
	return i;
}

/* a key's block, and the start and step of its probes within the block */
static inline uint64
bloom_block(uint64 k, uint64 nblocks, uint32 *start, uint32 *step)
{
	uint64		h = mix(k ^ UINT64CONST(0x9e3779b97f4a7c15));
	uint64		g = mix(h);

	*start = g & 511;
	*step = ((g >> 9) & 511) | 1;
	return (uint64) (((unsigned __int128) h * nblocks) >> 64);
}

/* brings the cache line of k's block in a segment's filter */
static inline void
bloom_prefetch(const DedupSegment *s, uint64 k)
{
	uint32		start,
				step;

	if (s->bits)
		__builtin_prefetch(s->bits + bloom_block(k, s->nblocks, &start, &step) * BLOOM_BLOCK_WORDS);
}

/* false: k was never added to the segment's filter; true: it may have been */
static inline bool
bloom_maybe(const DedupSegment *s, uint64 k)
{
	uint32		start,
				step;
	const uint64 *block;

	if (s->bits == NULL)
		return true;
	block = s->bits + bloom_block(k, s->nblocks, &start, &step) * BLOOM_BLOCK_WORDS;
	for (int p = 0; p < BLOOM_PROBES; p++)
	{
		uint32		bit = (start + p * step) & 511;

		if (!(block[bit >> 6] & (UINT64CONST(1) << (bit & 63))))
			return false;
	}
	return true;
}

/* in dedup_memory.c */
extern void dedup_memory_free(DedupState *d);
extern void dedup_table_put(DedupState *d, DedupKey k, TimestampTz t);
extern void dedup_table_delete(DedupState *d, uint64 i);
extern void dedup_table_make_room(DedupState *d, uint64 n);
extern void dedup_table_add(DedupState *d, const DedupKey *keys, const char *be, int width, int n,
							TimestampTz seen);
extern void dedup_steps_add(DedupState *d, TimestampTz seen, uint64 n);
extern void dedup_steps_forget(DedupState *d, TimestampTz cut);
extern void dedup_segment_drop_filter(DedupState *d, DedupSegment *s);

#endif							/* IOTSTREAM_DEDUP_INT_H */
