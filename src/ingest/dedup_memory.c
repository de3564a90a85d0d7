/*-------------------------------------------------------------------------
 * dedup_memory.c
 *		Dedup's memory, within dedup_memory bytes: the hash table of the
 *		newest keys, the steps that say when keys entered it, and the
 *		Bloom filters older keys move behind.
 *
 * Invariant: memory only ever says "seen" of a key stored within the
 * horizon, and "new" of a key never stored within it; what it cannot tell
 * it answers "maybe" (dedup.c then asks iotstream.source_dedup).  Sizes and
 * layout: the banner of dedup.c.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include <sys/mman.h>

#include "ingest/dedup_int.h"

#include "utils/memutils.h"

/* ---------------------------------------------------------- hash table */

/*
 * Zeroed memory of the kernel's, mapped for the table and the filters:
 * its pages are zero until first written, so no memset is needed, and
 * the table's memory is taken as keys arrive.
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
table_alloc(DedupState *d, uint64 nslots)
{
	d->slots = zeroed_map(nslots * sizeof(DedupSlot), false);
	d->nslots = nslots;
	d->live = 0;
}

static void
dedup_table_free(DedupState *d)
{
	if (d->slots)
		munmap(d->slots, d->nslots * sizeof(DedupSlot));
	d->slots = NULL;
	d->nslots = 0;
	d->live = 0;
}



void
dedup_table_put(DedupState *d, DedupKey k, TimestampTz t)
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
void
dedup_table_delete(DedupState *d, uint64 i)
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
void
dedup_steps_add(DedupState *d, TimestampTz seen, uint64 n)
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
void
dedup_steps_forget(DedupState *d, TimestampTz cut)
{
	int			i = 0;

	while (i < d->nsteps && d->steps[i].seen < cut)
		i++;
	memmove(&d->steps[0], &d->steps[i], sizeof(DedupStep) * (d->nsteps - i));
	d->nsteps -= i;
}

/* ---------------------------------------------------------- segments */


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



void
dedup_segment_drop_filter(DedupState *d, DedupSegment *s)
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
				dedup_segment_drop_filter(d, &d->seg[g]);
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
	dedup_steps_forget(d, cut);

	s = d->nseg > 0 ? &d->seg[d->nseg - 1] : NULL;
	if (s == NULL || s->bits == NULL || s->nkeys + (int64) Min(sum, d->live) > s->capacity)
	{
		if (d->nseg == MAX_SEGMENTS)
		{
			/* the two oldest become one, without a filter */
			dedup_segment_drop_filter(d, &d->seg[0]);
			dedup_segment_drop_filter(d, &d->seg[1]);
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
			dedup_table_delete(d, j);
		}
	}
	if (nmoving > 0)
		bloom_add_keys(s, moving, nmoving);
}

/*
 * Grows the table four times, up to max_slots: its memory follows the keys
 * of the horizon, up to half of the bound.  The old and the new table
 * together take at most 1.25 times the largest, and the filters' arena is
 * made only once the table is at its largest: within the bound.
 */
static void
table_grow(DedupState *d)
{
	DedupSlot  *old = d->slots;
	uint64		on = d->nslots;

	table_alloc(d, Min(d->max_slots, on * 4));
	for (uint64 i = 0; i < on; i++)
	{
		if (i + 8 < on && old[i + 8].key.hi != 0)
			__builtin_prefetch(&d->slots[slot_home(d, old[i + 8].key.hi)], 1);
		if (old[i].key.hi != 0)
			dedup_table_put(d, old[i].key, old[i].seen);
	}
	munmap(old, on * sizeof(DedupSlot));
}

/* room for n more keys in the hash table, within the bound */
void
dedup_table_make_room(DedupState *d, uint64 n)
{
	if (d->slots == NULL)
		table_alloc(d, Min(d->max_slots, MIN_SLOTS));
	while ((d->live + n) * MAX_LOAD_DEN > d->nslots * MAX_LOAD_NUM && d->nslots < d->max_slots)
		table_grow(d);
	while ((d->live + n) * MAX_LOAD_DEN > d->nslots * MAX_LOAD_NUM)
		table_evict(d, d->live + n - d->nslots * MAX_LOAD_NUM / MAX_LOAD_DEN);
}

/*
 * Keys seen at a time, in pieces the hash table has room for: n keys of
 * keys, or (keys NULL) n big-endian keys of width bytes at be.
 */
void
dedup_table_add(DedupState *d, const DedupKey *keys, const char *be, int width, int n, TimestampTz seen)
{
	while (n > 0)
	{
		int			piece;

		dedup_table_make_room(d, 0);
		piece = Min(n, (int) Max(1, d->max_slots * MAX_LOAD_NUM / MAX_LOAD_DEN / 2));
		dedup_table_make_room(d, piece);
		for (int i = 0; i < piece; i++)
		{
			if (keys && i + 8 < piece)
				__builtin_prefetch(&d->slots[slot_home(d, keys[i + 8].hi)], 1);
			dedup_table_put(d, keys ? keys[i] : key_from_be(be + (size_t) i * width, width), seen);
		}
		dedup_steps_add(d, seen, piece);
		if (keys)
			keys += piece;
		else
			be += (size_t) piece * width;
		n -= piece;
	}
}

/* Gives back the hash table, the filters and what they held. */
void
dedup_memory_free(DedupState *d)
{
	dedup_table_free(d);
	d->nseg = 0;
	if (d->arena)
		munmap(d->arena, d->seg_bytes);
	d->arena = NULL;
	d->seg_bytes = 0;
	d->nsteps = 0;
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
