/*-------------------------------------------------------------------------
 * dedup.c
 *		Which messages of a batch repeat a key seen within the horizon:
 *		exactly, in a bounded memory, at any rate and horizon.
 *
 * Invariant: iotstream.source_dedup holds every key stored within the
 * horizon (written in the batch's transaction); memory only decides
 * quickly.  A key memory is sure of is answered from memory; a key it is
 * unsure of ("maybe") is looked up in the table, once per batch for all of
 * them.  A false "maybe" costs a lookup, never a message.
 *
 * Memory (at most dedup_memory bytes, see docs/sources.md, "Deduplication"):
 *  - the newest keys, with the time each was seen, in an open-addressing
 *    hash table (16 bytes a slot, at most half of the bound);
 *  - when it is full, its oldest keys move into a segment: a blocked Bloom
 *    filter (24 bits a key at capacity) over the time range they were seen
 *    in, in one of 8 places of an arena that takes the rest of the bound
 *    from the first time the table is full.  When every place is taken,
 *    the oldest segment loses its filter and answers "maybe" for its range.
 * Expired keys leave in bulk: a sweep of the hash table, whole segments,
 * and whole rows of the table (one row per batch and key shard).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include <sys/mman.h>

#include "ingest/ingest_int.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "port/pg_bswap.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
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
	uint64		nslots;			/* half the bound, in slots */
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

static int
key_cmp(const void *a, const void *b)
{
	const DedupKey *x = a;
	const DedupKey *y = b;

	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
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

static TimestampTz
horizon_start(DedupState *d, TimestampTz now)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
												   TimestampTzGetDatum(now),
												   IntervalPGetDatum(&d->horizon)));
}

/* ---------------------------------------------------------- hash table */

/*
 * Zeroed memory of the kernel's, mapped for the table and the filters:
 * its pages are zero until first written, so neither a memset nor a
 * growing table (a rehash at each doubling) is needed, and memory is
 * taken as keys arrive, up to the size mapped.
 */
static void *
zeroed_map(size_t bytes, bool populate)
{
	void	   *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);

	if (p == MAP_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory for %zu bytes of dedup keys", bytes),
				 errhint("Lower the source's dedup_memory, or free memory on the server.")));
	return p;
}

static void
table_alloc(DedupState *d)
{
	d->slots = zeroed_map(d->max_slots * sizeof(DedupSlot), false);
	d->nslots = d->max_slots;
	d->live = 0;
}

static void
table_free(DedupState *d)
{
	if (d->slots)
		munmap(d->slots, d->nslots * sizeof(DedupSlot));
	d->slots = NULL;
	d->nslots = 0;
	d->live = 0;
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

static void
table_put(DedupState *d, DedupKey k, TimestampTz t)
{
	uint64		i = table_slot(d, k);

	if (d->slots[i].key.hi == 0)
	{
		d->slots[i].key = k;
		d->slots[i].seen = t;
		d->live++;
	}
	else if (d->slots[i].seen < t)
		d->slots[i].seen = t;
}

/*
 * Frees slot i, moving back the keys after it that would no longer be
 * found (linear probing's deletion, without tombstones).  The caller looks
 * at slot i again: a later key may have moved into it.
 */
static void
table_delete(DedupState *d, uint64 i)
{
	uint64		j = i;

	for (;;)
	{
		uint64		home;

		j = j + 1 == d->nslots ? 0 : j + 1;
		if (d->slots[j].key.hi == 0)
			break;
		home = slot_home(d, d->slots[j].key.hi);
		/* the key at j stays if its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		d->slots[i] = d->slots[j];
		i = j;
	}
	d->slots[i].key.hi = 0;
	d->live--;
}

/* n keys entered the hash table at seen */
static void
steps_add(DedupState *d, TimestampTz seen, uint64 n)
{
	if (d->nsteps > 0 && d->steps[d->nsteps - 1].seen >= seen)
	{
		/* the same batch, or a time out of order: it counts with the last */
		d->steps[d->nsteps - 1].n += n;
		return;
	}
	if (d->nsteps == STEPS)
	{
		/* full: pairs become one step, at the later time of the two */
		for (int i = 0; i < STEPS / 2; i++)
		{
			d->steps[i].n = d->steps[2 * i].n + d->steps[2 * i + 1].n;
			d->steps[i].seen = d->steps[2 * i + 1].seen;
		}
		d->nsteps = STEPS / 2;
	}
	d->steps[d->nsteps].seen = seen;
	d->steps[d->nsteps++].n = n;
}

/* forgets the steps before cut (their keys left the table) */
static void
steps_forget(DedupState *d, TimestampTz cut)
{
	int			i = 0;

	while (i < d->nsteps && d->steps[i].seen < cut)
		i++;
	memmove(&d->steps[0], &d->steps[i], sizeof(DedupStep) * (d->nsteps - i));
	d->nsteps -= i;
}

/* ---------------------------------------------------------- segments */

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

/*
 * Adds keys[0..n-1] to a segment's filter.  Each key's block is a cache
 * miss: the blocks of all n are computed and fetched first, so that the
 * misses overlap instead of coming one after another.
 */
static void
bloom_add_keys(DedupSegment *s, const uint64 *keys, int n)
{
	uint64	   *block[EVICT_AHEAD];
	uint32		start[EVICT_AHEAD],
				step[EVICT_AHEAD];

	Assert(n <= EVICT_AHEAD);
	for (int i = 0; i < n; i++)
	{
		block[i] = s->bits + bloom_block(keys[i], s->nblocks, &start[i], &step[i]) * BLOOM_BLOCK_WORDS;
		__builtin_prefetch(block[i], 1);
	}
	for (int i = 0; i < n; i++)
		for (int p = 0; p < BLOOM_PROBES; p++)
		{
			uint32		bit = (start[i] + p * step[i]) & 511;

			block[i][bit >> 6] |= UINT64CONST(1) << (bit & 63);
		}
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

static bool
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

static void
segment_drop_filter(DedupState *d, DedupSegment *s)
{
	if (s->bits)
	{
		d->place_used[s->place] = false;
		s->bits = NULL;
	}
}

/* a zeroed place in the arena for a new filter: the oldest filter's, if need be */
static uint64 *
segment_place(DedupState *d, int *place)
{
	if (d->arena == NULL)
	{
		int64		budget = d->budget - (int64) (d->max_slots * SLOT_BYTES);

		d->place_bytes = Max(64, (budget / PLANNED_SEGMENTS) & ~(int64) 63);
		/*
		 * Its pages are taken now, all of them: memory then stays where it
		 * is as filters fill places, instead of creeping up a place at a time
		 */
		d->arena = zeroed_map(d->place_bytes * PLANNED_SEGMENTS, true);
		d->seg_bytes = d->place_bytes * PLANNED_SEGMENTS;
		memset(d->place_used, 0, sizeof(d->place_used));
		memset(d->place_dirty, 0, sizeof(d->place_dirty));
	}
	for (int pass = 0; pass < 2; pass++)
	{
		for (int p = 0; p < PLANNED_SEGMENTS; p++)
			if (!d->place_used[p])
			{
				uint64	   *bits = d->arena + p * (d->place_bytes / sizeof(uint64));

				/* zero as mapped, the first time */
				if (d->place_dirty[p])
					memset(bits, 0, d->place_bytes);
				d->place_used[p] = d->place_dirty[p] = true;
				*place = p;
				return bits;
			}
		for (int g = 0; g < d->nseg; g++)
			if (d->seg[g].bits)
			{
				segment_drop_filter(d, &d->seg[g]);
				break;
			}
	}
	elog(ERROR, "iotstream dedup: no place for a filter");
	return NULL;
}

/*
 * Moves the oldest keys of the full hash table (a quarter of it at least,
 * and at least `room` of them) into the newest segment, or a new one.  The
 * steps say where to cut; one pass over the table moves the keys.
 */
static void
table_evict(DedupState *d, uint64 room)
{
	uint64		want = Max(d->live / 4, room),
				sum = 0;
	uint64		moving[EVICT_AHEAD];
	int			nmoving = 0;
	int			i;
	TimestampTz cut;
	DedupSegment *s;

	for (i = 0; i < d->nsteps && sum < want; i++)
		sum += d->steps[i].n;
	/* past the last step (counts that ran short): every key moves */
	cut = sum >= want && i > 0 ? d->steps[i - 1].seen + 1 : PG_INT64_MAX;
	steps_forget(d, cut);

	s = d->nseg > 0 ? &d->seg[d->nseg - 1] : NULL;
	if (s == NULL || s->bits == NULL || s->nkeys + (int64) Min(sum, d->live) > s->capacity)
	{
		if (d->nseg == MAX_SEGMENTS)
		{
			/* the two oldest become one, without a filter */
			segment_drop_filter(d, &d->seg[0]);
			segment_drop_filter(d, &d->seg[1]);
			d->seg[1].tmin = d->seg[0].tmin;
			d->seg[1].nkeys += d->seg[0].nkeys;
			memmove(&d->seg[0], &d->seg[1], sizeof(DedupSegment) * (d->nseg - 1));
			d->nseg--;
		}
		s = &d->seg[d->nseg++];
		memset(s, 0, sizeof(*s));
		s->tmin = PG_INT64_MAX;
		s->tmax = PG_INT64_MIN;
		s->bits = segment_place(d, &s->place);
		s->nblocks = d->place_bytes / 64;
		/* past its capacity a filter answers "maybe" more often, and stays exact */
		s->capacity = s->nblocks * 512 / BLOOM_BITS_PER_KEY;
	}
	for (uint64 j = 0; j < d->nslots; j++)
	{
		while (d->slots[j].key.hi != 0 && d->slots[j].seen < cut)
		{
			if (s->bits)
			{
				moving[nmoving++] = d->slots[j].key.hi;
				if (nmoving == EVICT_AHEAD)
				{
					bloom_add_keys(s, moving, nmoving);
					nmoving = 0;
				}
			}
			s->tmin = Min(s->tmin, d->slots[j].seen);
			s->tmax = Max(s->tmax, d->slots[j].seen);
			s->nkeys++;
			table_delete(d, j);
		}
	}
	if (nmoving > 0)
		bloom_add_keys(s, moving, nmoving);
}

/* room for n more keys in the hash table, within the bound */
static void
table_make_room(DedupState *d, uint64 n)
{
	if (d->slots == NULL)
		table_alloc(d);
	while ((d->live + n) * MAX_LOAD_DEN > d->nslots * MAX_LOAD_NUM)
		table_evict(d, d->live + n - d->nslots * MAX_LOAD_NUM / MAX_LOAD_DEN);
}

/*
 * Keys seen at a time, in pieces the hash table has room for: n keys of
 * keys, or (keys NULL) n big-endian keys of width bytes at be.
 */
static void
table_add(DedupState *d, const DedupKey *keys, const char *be, int width, int n, TimestampTz seen)
{
	while (n > 0)
	{
		int			piece;

		table_make_room(d, 0);
		piece = Min(n, (int) Max(1, d->max_slots * MAX_LOAD_NUM / MAX_LOAD_DEN / 2));
		table_make_room(d, piece);
		for (int i = 0; i < piece; i++)
		{
			if (keys && i + 8 < piece)
				__builtin_prefetch(&d->slots[slot_home(d, keys[i + 8].hi)], 1);
			table_put(d, keys ? keys[i] : key_from_be(be + (size_t) i * width, width), seen);
		}
		steps_add(d, seen, piece);
		if (keys)
			keys += piece;
		else
			be += (size_t) piece * width;
		n -= piece;
	}
}

/* ---------------------------------------------------------- the catalog */

DedupState *
DedupCreate(int source_id, const Interval *horizon, int64 budget, MemoryContext cxt)
{
	DedupState *d = MemoryContextAllocZero(cxt, sizeof(DedupState));
	Oid			store_types[3] = {INT4OID, INT2ARRAYOID, BYTEAARRAYOID};
	Oid			lookup_types[4] = {INT4OID, INT2ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
	Oid			expire_types[2] = {INT4OID, TIMESTAMPTZOID};
	int64		usecs;

	d->source_id = source_id;
	d->horizon = *horizon;
	d->budget = budget;
	d->cxt = cxt;
	/* the table takes half the bound (mapped whole, taken as keys come) */
	d->max_slots = Max(MIN_SLOTS, (uint64) budget / 2 / SLOT_BYTES);
	usecs = horizon->time + (int64) horizon->day * USECS_PER_DAY + (int64) horizon->month * 30 * USECS_PER_DAY;
	d->sweep_us = Min(Max(usecs / 16, USECS_PER_SEC), 60 * USECS_PER_SEC);

	SPI_connect();
	d->store_plan = SPI_prepare("INSERT INTO iotstream.source_dedup (source_id, seen_at, shard, keys)"
								" SELECT $1, now(), s, k FROM unnest($2, $3) u(s, k)", 3, store_types);
	d->lookup_plan = SPI_prepare("SELECT d.keys FROM unnest($2, $3, $4) q(shard, lo, hi)"
								 " JOIN iotstream.source_dedup d ON d.source_id = $1 AND d.shard = q.shard"
								 "  AND d.seen_at BETWEEN q.lo AND q.hi",
								 4, lookup_types);
	d->expire_plan = SPI_prepare("DELETE FROM iotstream.source_dedup WHERE source_id = $1 AND seen_at < $2",
								 2, expire_types);
	d->load_plan = SPI_prepare("SELECT seen_at, keys FROM iotstream.source_dedup"
							   " WHERE source_id = $1 AND seen_at >= $2 ORDER BY seen_at",
							   2, expire_types);
	if (!d->store_plan || !d->lookup_plan || !d->expire_plan || !d->load_plan)
		elog(ERROR, "could not prepare the dedup statements");
	SPI_keepplan(d->store_plan);
	SPI_keepplan(d->lookup_plan);
	SPI_keepplan(d->expire_plan);
	SPI_keepplan(d->load_plan);
	SPI_finish();
	return d;
}

void
DedupFree(DedupState *d)
{
	DedupForget(d);
	SPI_freeplan(d->store_plan);
	SPI_freeplan(d->lookup_plan);
	SPI_freeplan(d->expire_plan);
	SPI_freeplan(d->load_plan);
}

/* Memory is only a cache of the table: after an aborted batch it goes. */
void
DedupForget(DedupState *d)
{
	table_free(d);
	if (d->batch)
		pfree(d->batch);
	d->batch = NULL;
	d->batch_slots = 0;
	d->nseg = 0;
	if (d->arena)
		munmap(d->arena, d->seg_bytes);
	d->arena = NULL;
	d->seg_bytes = 0;
	d->nsteps = 0;
	if (d->maybe_segs)
		pfree(d->maybe_segs);
	d->maybe_segs = NULL;
	d->maybe_slots = 0;
	d->put_early = false;
	d->loaded = false;
}

/* the keys of a batch row of source_dedup */
static void
load_block(DedupState *d, TimestampTz seen, bytea *b, int width)
{
	table_add(d, NULL, VARDATA_ANY(b), width, VARSIZE_ANY_EXHDR(b) / width, seen);
}

/* Forgets what the horizon left behind, everywhere; then (re)loads. */
void
DedupBatchBegin(DedupState *d)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz oldest = horizon_start(d, now);
	Datum		args[2] = {Int32GetDatum(d->source_id), TimestampTzGetDatum(oldest)};

	if (d->loaded && now < d->next_sweep)
		return;
	SPI_connect();
	if (SPI_execute_plan(d->expire_plan, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget expired dedup keys");
	if (!d->loaded)
	{
		Portal		portal = SPI_cursor_open(NULL, d->load_plan, args, NULL, true);
		MemoryContext per_block = AllocSetContextCreate(CurrentMemoryContext, "dedup load",
														ALLOCSET_DEFAULT_SIZES);

		DedupForget(d);
		for (;;)
		{
			SPI_cursor_fetch(portal, true, LOAD_ROWS);
			if (SPI_processed == 0)
				break;
			for (uint64 r = 0; r < SPI_processed; r++)
			{
				MemoryContext old = MemoryContextSwitchTo(per_block);
				bool		isnull;
				TimestampTz seen = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
				bytea	   *b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));

				load_block(d, seen, b, KEY_BYTES);
				MemoryContextSwitchTo(old);
				MemoryContextReset(per_block);
			}
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
		MemoryContextDelete(per_block);
		d->loaded = true;
	}
	else
	{
		/* the sweep: expired slots and whole segments */
		for (uint64 i = 0; i < d->nslots; i++)
			while (d->slots[i].key.hi != 0 && d->slots[i].seen < oldest)
				table_delete(d, i);
		steps_forget(d, oldest);
		while (d->nseg > 0 && d->seg[0].tmax < oldest)
		{
			segment_drop_filter(d, &d->seg[0]);
			memmove(&d->seg[0], &d->seg[1], sizeof(DedupSegment) * (d->nseg - 1));
			d->nseg--;
		}
	}
	SPI_finish();
	d->next_sweep = now + d->sweep_us;
}

/*
 * Sorts out keys[0..n-1] (the keys of a batch's rows, in order) into
 * DEDUP_NEW, DEDUP_SEEN (within the horizon, or earlier in the batch) and
 * DEDUP_MAYBE, from memory alone.  Returns how many are DEDUP_MAYBE.
 *
 * With put_new, the caller stores every row found new, or the batch fails
 * and DedupForget follows: the new keys then enter the hash table here, in
 * the slot their probe found, instead of with a second probe in
 * DedupRemember (DedupResolve puts those it settles as new).
 */
int
DedupClassify(DedupState *d, DedupKey *keys, int n, DedupVerdict *verdict, bool put_new)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz oldest = horizon_start(d, now);
	uint64		bslots = 64;
	DedupKey   *batch;
	uint64		put = 0;
	int			nmaybe = 0;

	/* the batch's own sets: kept from batch to batch, not allocated each time */
	while (bslots < (uint64) n * 2)
		bslots *= 2;
	if (d->batch_slots < bslots)
	{
		if (d->batch)
			pfree(d->batch);
		d->batch = MemoryContextAllocExtended(d->cxt, sizeof(DedupKey) * bslots, MCXT_ALLOC_HUGE);
		d->batch_slots = bslots;
	}
	if (d->maybe_slots < n)
	{
		if (d->maybe_segs)
			pfree(d->maybe_segs);
		d->maybe_segs = MemoryContextAllocExtended(d->cxt, sizeof(uint64) * bslots, MCXT_ALLOC_HUGE);
		d->maybe_slots = bslots;
	}
	batch = d->batch;
	memset(d->maybe_segs, 0, sizeof(uint64) * Max(n, 1));

	/*
	 * Room for all of them at once, or DedupRemember puts them in pieces.
	 * Put early, a key seen earlier in the batch is in the hash table (or,
	 * when it was "maybe", DedupResolve finds it twice): no batch set.
	 */
	d->put_early = put_new &&
		(uint64) n <= d->max_slots * MAX_LOAD_NUM / MAX_LOAD_DEN / 2;
	if (d->put_early)
		table_make_room(d, n);
	else
		memset(batch, 0, sizeof(DedupKey) * bslots);
	for (int i = 0; i < n; i++)
		keys[i] = norm_key(keys[i]);
	for (int i = 0; i < n; i++)
	{
		DedupKey	k = keys[i];
		uint64		s = 0;

		/*
		 * The slot and the filter blocks of a key further on: their cache
		 * lines come while this one is looked at.
		 */
		if (i + PREFETCH_AHEAD < n)
		{
			uint64		ahead = keys[i + PREFETCH_AHEAD].hi;

			if (d->slots)
				__builtin_prefetch(&d->slots[slot_home(d, ahead)], 1);
			for (int g = d->nseg - 1; g >= 0; g--)
				if (d->seg[g].tmax >= oldest)
					bloom_prefetch(&d->seg[g], ahead);
		}
		if (!d->put_early)
		{
			uint64		j = mix(k.hi) & (bslots - 1);

			while (batch[j].hi != 0 && !key_eq(batch[j], k))
				j = (j + 1) & (bslots - 1);
			if (batch[j].hi != 0)
			{
				verdict[i] = DEDUP_SEEN;	/* earlier in this batch */
				continue;
			}
			batch[j] = k;
		}
		verdict[i] = DEDUP_NEW;
		if (d->slots)
		{
			s = table_slot(d, k);
			if (d->slots[s].key.hi != 0 && d->slots[s].seen >= oldest)
			{
				verdict[i] = DEDUP_SEEN;
				continue;
			}
		}
		for (int g = d->nseg - 1; g >= 0; g--)
			if (d->seg[g].tmax >= oldest && bloom_maybe(&d->seg[g], k.hi))
				d->maybe_segs[i] |= UINT64CONST(1) << g;
		if (d->maybe_segs[i])
		{
			verdict[i] = DEDUP_MAYBE;
			nmaybe++;
		}
		else if (d->put_early)
		{
			/* new: in its slot, free or held by the key expired */
			if (d->slots[s].key.hi == 0)
				d->live++;
			d->slots[s].key = k;
			d->slots[s].seen = now;
			put++;
		}
	}
	if (put > 0)
		steps_add(d, now, put);
	return nmaybe;
}

/* the first of sorted keys[0..n-1] whose hi is not below hi */
static int
lower_bound_hi(const DedupKey *keys, int n, uint64 hi)
{
	int			a = 0,
				b = n;

	while (a < b)
	{
		int			m = a + (b - a) / 2;

		if (keys[m].hi < hi)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

/*
 * Settles every DEDUP_MAYBE of a classified batch with one lookup of the
 * table: for each key, the rows of its shard in the time range of each
 * segment that said "maybe" (the hash table answered for the rest).
 */
void
DedupResolve(DedupState *d, const DedupKey *keys, int n, DedupVerdict *verdict)
{
	TimestampTz oldest = horizon_start(d, GetCurrentTransactionStartTimestamp());
	uint64		wanted[SHARDS] = {0};	/* per shard, the segments to read */
	DedupKey   *maybe = palloc(sizeof(DedupKey) * n);
	bool	   *held;
	int			nmaybe = 0;
	int			npairs = 0;
	Datum	   *shards = palloc(sizeof(Datum) * SHARDS * MAX_SEGMENTS);
	Datum	   *lo = palloc(sizeof(Datum) * SHARDS * MAX_SEGMENTS);
	Datum	   *hi = palloc(sizeof(Datum) * SHARDS * MAX_SEGMENTS);
	Datum		args[4];

	for (int i = 0; i < n; i++)
		if (verdict[i] == DEDUP_MAYBE)
		{
			maybe[nmaybe++] = keys[i];
			wanted[keys[i].hi >> SHARD_SHIFT] |= d->maybe_segs[i];
		}
	if (nmaybe == 0)
		return;
	for (int sh = 0; sh < SHARDS; sh++)
		for (int g = 0; g < d->nseg; g++)
			if (wanted[sh] & (UINT64CONST(1) << g))
			{
				shards[npairs] = Int16GetDatum(sh);
				lo[npairs] = TimestampTzGetDatum(Max(d->seg[g].tmin, oldest));
				hi[npairs++] = TimestampTzGetDatum(d->seg[g].tmax);
			}
	qsort(maybe, nmaybe, sizeof(DedupKey), key_cmp);
	{
		/* once each: a key may come twice in the batch */
		int			u = 0;

		for (int i = 0; i < nmaybe; i++)
			if (u == 0 || key_cmp(&maybe[u - 1], &maybe[i]) != 0)
				maybe[u++] = maybe[i];
		nmaybe = u;
	}
	held = palloc0(sizeof(bool) * nmaybe);
	args[0] = Int32GetDatum(d->source_id);
	args[1] = PointerGetDatum(construct_array(shards, npairs, INT2OID, 2, true, TYPALIGN_SHORT));
	args[2] = PointerGetDatum(construct_array(lo, npairs, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[3] = PointerGetDatum(construct_array(hi, npairs, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	SPI_connect();
	if (SPI_execute_plan(d->lookup_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look up dedup keys");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		bytea	   *b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		const char *p = VARDATA_ANY(b);
		int			nk = VARSIZE_ANY_EXHDR(b) / KEY_BYTES;

		for (int i = 0; i < nk; i++)
		{
			DedupKey	k = key_from_be(p + (size_t) i * KEY_BYTES, KEY_BYTES);

			/* every key of the batch it equals: its own, or any with its hi (0.2.0) */
			for (int j = lower_bound_hi(maybe, nmaybe, k.hi); j < nmaybe && maybe[j].hi == k.hi; j++)
				if (key_eq(maybe[j], k))
					held[j] = true;
		}
	}
	SPI_finish();
	for (int i = 0; i < n; i++)
		if (verdict[i] == DEDUP_MAYBE)
		{
			DedupKey	k = keys[i];
			DedupKey   *m = bsearch(&k, maybe, nmaybe, sizeof(DedupKey), key_cmp);

			verdict[i] = held[m - maybe] ? DEDUP_SEEN : DEDUP_NEW;
			/* the same key again later in the batch (put early: no batch set) */
			held[m - maybe] = true;
			if (verdict[i] == DEDUP_NEW && d->put_early)
			{
				/* DedupClassify made the room */
				table_put(d, k, GetCurrentTransactionStartTimestamp());
				steps_add(d, GetCurrentTransactionStartTimestamp(), 1);
			}
		}
	pfree(maybe);
	pfree(held);
}

/*
 * Remembers the keys of the rows a batch stored (none twice), in memory
 * and in the table, seen now: one row per key shard, in the batch's
 * transaction.
 */
void
DedupRemember(DedupState *d, const DedupKey *keys, int n)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int			count[SHARDS] = {0};
	bytea	   *block[SHARDS];
	char	   *fill[SHARDS];
	Datum		shards[SHARDS];
	Datum		blocks[SHARDS];
	int			nb = 0;
	Datum		args[3];

	if (n == 0)
		return;
	if (!d->put_early)
		table_add(d, keys, NULL, 0, n, now);
	for (int i = 0; i < n; i++)
		count[keys[i].hi >> SHARD_SHIFT]++;
	for (int sh = 0; sh < SHARDS; sh++)
		if (count[sh] > 0)
		{
			block[sh] = palloc(VARHDRSZ + count[sh] * KEY_BYTES);
			SET_VARSIZE(block[sh], VARHDRSZ + count[sh] * KEY_BYTES);
			fill[sh] = VARDATA(block[sh]);
		}
	for (int i = 0; i < n; i++)
	{
		uint64		be[2] = {pg_hton64(keys[i].hi), pg_hton64(keys[i].lo)};
		int			sh = keys[i].hi >> SHARD_SHIFT;

		memcpy(fill[sh], be, KEY_BYTES);
		fill[sh] += KEY_BYTES;
	}
	for (int sh = 0; sh < SHARDS; sh++)
		if (count[sh] > 0)
		{
			shards[nb] = Int16GetDatum(sh);
			blocks[nb++] = PointerGetDatum(block[sh]);
		}
	args[0] = Int32GetDatum(d->source_id);
	args[1] = PointerGetDatum(construct_array(shards, nb, INT2OID, 2, true, TYPALIGN_SHORT));
	args[2] = PointerGetDatum(construct_array(blocks, nb, BYTEAOID, -1, false, TYPALIGN_INT));
	SPI_connect();
	if (SPI_execute_plan(d->store_plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store dedup keys");
	SPI_finish();
	for (int sh = 0; sh < SHARDS; sh++)
		if (count[sh] > 0)
			pfree(block[sh]);
}

/* What memory holds, for source_status. */
void
DedupMemory(const DedupState *d, DedupUsage *u)
{
	u->bytes = (int64) (d->nslots * SLOT_BYTES) + d->seg_bytes;
	u->keys = d->live;
	u->filtered_keys = 0;
	u->unfiltered_keys = 0;
	for (int i = 0; i < d->nseg; i++)
	{
		if (d->seg[i].bits)
			u->filtered_keys += d->seg[i].nkeys;
		else
			u->unfiltered_keys += d->seg[i].nkeys;
	}
}
