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
 *    hash table (24 bytes a slot) that grows with them up to half the bound;
 *  - when it is full, its oldest keys move into a segment: a blocked Bloom
 *    filter (24 bits a key at capacity) over the time range they were seen
 *    in, in one of 8 places of an arena that takes the rest of the bound
 *    from the first time the table is full.  When every place is taken,
 *    the oldest segment loses its filter and answers "maybe" for its range.
 * Expired keys leave in bulk: a sweep of the hash table, whole segments,
 * and whole rows of the table (one row per batch and key shard).  This
 * file asks and stores; dedup_memory.c holds the memory.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include "ingest/dedup_int.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

static TimestampTz
horizon_start(DedupState *d, TimestampTz now)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
												   TimestampTzGetDatum(now),
												   IntervalPGetDatum(&d->horizon)));
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
	/* the table at its largest takes half the bound; it grows with the keys */
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
	dedup_memory_free(d);
	if (d->batch)
		pfree(d->batch);
	d->batch = NULL;
	d->batch_slots = 0;
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
	dedup_table_add(d, NULL, VARDATA_ANY(b), width, VARSIZE_ANY_EXHDR(b) / width, seen);
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
				dedup_table_delete(d, i);
		dedup_steps_forget(d, oldest);
		while (d->nseg > 0 && d->seg[0].tmax < oldest)
		{
			dedup_segment_drop_filter(d, &d->seg[0]);
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
		dedup_table_make_room(d, n);
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
		dedup_steps_add(d, now, put);
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
	{
		/*
		 * The rows come LOAD_ROWS at a time: a filter's range may hold
		 * thousands of rows of a shard, more memory than the bound allows
		 * if they came at once.
		 */
		Portal		portal = SPI_cursor_open(NULL, d->lookup_plan, args, NULL, true);
		MemoryContext per_fetch = AllocSetContextCreate(CurrentMemoryContext, "dedup lookup",
														ALLOCSET_DEFAULT_SIZES);

		for (;;)
		{
			MemoryContext old;

			SPI_cursor_fetch(portal, true, LOAD_ROWS);
			if (SPI_processed == 0)
				break;
			old = MemoryContextSwitchTo(per_fetch);
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
			MemoryContextSwitchTo(old);
			MemoryContextReset(per_fetch);
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
		MemoryContextDelete(per_fetch);
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
				dedup_table_put(d, k, GetCurrentTransactionStartTimestamp());
				dedup_steps_add(d, GetCurrentTransactionStartTimestamp(), 1);
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
		dedup_table_add(d, keys, NULL, 0, n, now);
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
