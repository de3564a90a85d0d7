/*-------------------------------------------------------------------------
 * parquet_compress.c
 *		Compressing Parquet pages off the backend's own thread: a window of
 *		pages compressed in parallel at the end of a row group, and a
 *		background compressor for pages cut while rows are still coming.
 *
 * The writer fills up to PAGE_WINDOW pages; when the window is full (or the
 * column chunk ends) all of them are compressed at once, by the calling
 * thread and up to threads - 1 helper threads, and handed back in order to
 * an emit callback.  Helper threads run nothing but ParquetCompressRaw() on
 * buffers reserved beforehand: they touch no Postgres state (no palloc, no
 * ereport), block every signal so that the backend's handlers keep running
 * on the main thread, and are joined before anything can raise an error.
 * When the background compressor falls behind, the backend compresses
 * queued pages itself (ParquetCompressorHelp) rather than wait for them.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include <pthread.h>
#include <signal.h>

#include <zstd.h>

#include "utils/memutils.h"

#define PAGE_WINDOW 8
#define MAX_THREADS 8

struct ParquetPageWindow
{
	MemoryContext cxt;
	ParquetCodec codec;
	int			level;
	int			threads;
	ParquetPage pages[PAGE_WINDOW];
	int			npages;
	ZSTD_CCtx  *zstd[MAX_THREADS];	/* [0] is the calling thread's */
	int			next;			/* the next page to take, atomically */
};

typedef struct Helper
{
	ParquetPageWindow *win;
	ZSTD_CCtx  *zstd;
	pthread_t	tid;
} Helper;

/* ZSTD contexts are malloc'd: free them when the window's memory goes. */
static void
window_release(void *arg)
{
	ParquetPageWindow *win = (ParquetPageWindow *) arg;
	int			i;

	for (i = 0; i < MAX_THREADS; i++)
	{
		if (win->zstd[i])
			ZSTD_freeCCtx(win->zstd[i]);
		win->zstd[i] = NULL;
	}
}

ParquetPageWindow *
ParquetPageWindowCreate(MemoryContext cxt, ParquetCodec codec, int level, int threads)
{
	ParquetPageWindow *win = MemoryContextAllocZero(cxt, sizeof(ParquetPageWindow));
	MemoryContextCallback *cb = MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));

	win->cxt = cxt;
	win->codec = codec;
	win->level = level;
	win->threads = Max(1, Min(threads, MAX_THREADS));
	cb->func = window_release;
	cb->arg = win;
	MemoryContextRegisterResetCallback(cxt, cb);
	if (codec == PARQUET_CODEC_ZSTD && (win->zstd[0] = ZSTD_createCCtx()) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a zstd compression context")));
	return win;
}

static void
compress_pages(ParquetPageWindow *win, ZSTD_CCtx *zstd)
{
	for (;;)
	{
		int			i = __atomic_fetch_add(&win->next, 1, __ATOMIC_RELAXED);
		ParquetPage *j;

		if (i >= win->npages)
			break;
		j = &win->pages[i];
		j->outlen = ParquetCompressRaw(win->codec, win->level, zstd, j->raw.data,
									   j->raw.len, j->out.data, j->out.cap);
	}
}

static void *
helper_main(void *arg)
{
	Helper	   *h = (Helper *) arg;

	compress_pages(h->win, h->zstd);
	return NULL;
}

/*
 * Sizes a page's output buffer for its compressed bytes, in the backend:
 * helper threads must not allocate.
 */
static void
prepare_output(MemoryContext cxt, ParquetCodec codec, ParquetPage *j)
{
	if (j->raw.len > (size_t) PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("parquet page of %zu bytes is too large", j->raw.len),
				 errhint("Lower the page_size option.")));
	j->out.len = 0;
	if (codec != PARQUET_CODEC_NONE)
		ParquetBufReserve(cxt, &j->out, ParquetCompressBound(codec, j->raw.len));
}

/* Compresses the pages of the window and emits them in order. */
void
ParquetPageWindowFlush(ParquetPageWindow *win, ParquetPageEmitFn emit, void *arg)
{
	Helper		helpers[MAX_THREADS];
	int			nhelpers = 0,
				i;

	if (win->npages == 0)
		return;
	for (i = 0; i < win->npages; i++)
		prepare_output(win->cxt, win->codec, &win->pages[i]);

	if (win->codec != PARQUET_CODEC_NONE)
	{
		int			want = Min(win->threads - 1, win->npages - 1);

		for (i = 1; i <= want; i++)
			if (win->codec == PARQUET_CODEC_ZSTD && win->zstd[i] == NULL &&
				(win->zstd[i] = ZSTD_createCCtx()) == NULL)
				break;
		want = i - 1;
		win->next = 0;
		for (i = 0; i < want; i++)
		{
			helpers[nhelpers].win = win;
			helpers[nhelpers].zstd = win->zstd[i + 1];
			if (!ParquetThreadStart(&helpers[nhelpers].tid, helper_main, &helpers[nhelpers]))
				break;			/* fewer helpers, same result */
			nhelpers++;
		}
		compress_pages(win, win->zstd[0]);
		for (i = 0; i < nhelpers; i++)
			pthread_join(helpers[i].tid, NULL);
		for (i = 0; i < win->npages; i++)
			if (win->pages[i].outlen == 0)
				elog(ERROR, "parquet page compression failed");
	}
	for (i = 0; i < win->npages; i++)
	{
		ParquetPage *j = &win->pages[i];

		if (win->codec == PARQUET_CODEC_NONE)
			emit(arg, j, j->raw.data, j->raw.len);
		else
			emit(arg, j, j->out.data, j->outlen);
	}
	win->npages = 0;
}

/* The next page to fill (empty), after emitting the window if it is full. */
ParquetPage *
ParquetPageWindowNext(ParquetPageWindow *win, ParquetPageEmitFn emit, void *arg)
{
	ParquetPage *j;

	if (win->npages == PAGE_WINDOW)
		ParquetPageWindowFlush(win, emit, arg);
	j = &win->pages[win->npages++];
	j->raw.len = 0;
	j->outlen = 0;
	return j;
}

/*
 * A background compressor: one helper thread that compresses pages handed
 * to it while the backend goes on producing rows.  The writer uses it for
 * pages it cuts before the end of a row group.  Pages are taken in order;
 * the backend waits for a page only when it must write it.  The thread is
 * stopped and joined by a reset callback of the memory context that holds
 * the pages, before that memory goes away (including at abort).
 */
struct ParquetCompressor
{
	MemoryContext cxt;
	ParquetCodec codec;
	int			level;
	ZSTD_CCtx  *zstd;
	ZSTD_CCtx  *zstd_backend;	/* for pages the backend takes back */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	ParquetPage *head;			/* queue of pages to compress */
	ParquetPage *tail;
	int			nqueued;
	bool		started;
	bool		stop;
	pthread_t	tid;
};

/*
 * Starts fn(arg) on a thread of its own, with every signal blocked: the
 * backend's signal handlers must only ever run on the backend's thread.
 */
bool
ParquetThreadStart(pthread_t *tid, void *(*fn) (void *), void *arg)
{
	sigset_t	all,
				old;
	int			rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(tid, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc == 0;
}

/* Sets *stop under lock, wakes the thread waiting on cond and joins it. */
void
ParquetThreadStop(pthread_t tid, pthread_mutex_t *lock, pthread_cond_t *cond, bool *stop)
{
	pthread_mutex_lock(lock);
	*stop = true;
	pthread_cond_broadcast(cond);
	pthread_mutex_unlock(lock);
	pthread_join(tid, NULL);
}

/*
 * A reset callback's part for a helper thread: stops and joins it if it
 * was started, then destroys its lock and condition.
 */
void
ParquetThreadRelease(pthread_t tid, pthread_mutex_t *lock, pthread_cond_t *cond,
					 bool *started, bool *stop)
{
	if (*started)
	{
		ParquetThreadStop(tid, lock, cond, stop);
		*started = false;
	}
	pthread_mutex_destroy(lock);
	pthread_cond_destroy(cond);
}

/* Takes the oldest queued page; with pc->lock held and a page queued. */
static ParquetPage *
take_page(ParquetCompressor *pc)
{
	ParquetPage *j = pc->head;

	pc->head = j->next;
	if (pc->head == NULL)
		pc->tail = NULL;
	pc->nqueued--;
	return j;
}

/* Compresses a taken page with the zstd context zstd, and marks it done. */
static void
compress_page(ParquetCompressor *pc, ParquetPage *j, ZSTD_CCtx *zstd)
{
	j->outlen = ParquetCompressRaw(pc->codec, pc->level, zstd, j->raw.data,
								   j->raw.len, j->out.data, j->out.cap);
	pthread_mutex_lock(&pc->lock);
	j->done = true;
	pthread_cond_broadcast(&pc->cond);
	pthread_mutex_unlock(&pc->lock);
}

static void *
compressor_main(void *arg)
{
	ParquetCompressor *pc = (ParquetCompressor *) arg;

	for (;;)
	{
		ParquetPage *j;

		pthread_mutex_lock(&pc->lock);
		while (pc->head == NULL && !pc->stop)
			pthread_cond_wait(&pc->cond, &pc->lock);
		if (pc->stop)
		{
			pthread_mutex_unlock(&pc->lock);
			return NULL;
		}
		j = take_page(pc);
		pthread_mutex_unlock(&pc->lock);
		compress_page(pc, j, pc->zstd);
	}
}

static void
compressor_release(void *arg)
{
	ParquetCompressor *pc = (ParquetCompressor *) arg;

	/* stop before the pages' memory goes away; queued pages are dropped */
	ParquetThreadRelease(pc->tid, &pc->lock, &pc->cond, &pc->started, &pc->stop);
	if (pc->zstd)
		ZSTD_freeCCtx(pc->zstd);
	pc->zstd = NULL;
	if (pc->zstd_backend)
		ZSTD_freeCCtx(pc->zstd_backend);
	pc->zstd_backend = NULL;
}

/* A compressor for codec; NULL for PARQUET_CODEC_NONE. */
ParquetCompressor *
ParquetCompressorCreate(MemoryContext cxt, ParquetCodec codec, int level)
{
	ParquetCompressor *pc;
	MemoryContextCallback *cb;

	if (codec == PARQUET_CODEC_NONE)
		return NULL;
	pc = MemoryContextAllocZero(cxt, sizeof(ParquetCompressor));
	cb = MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));
	pc->cxt = cxt;
	pc->codec = codec;
	pc->level = level;
	pthread_mutex_init(&pc->lock, NULL);
	pthread_cond_init(&pc->cond, NULL);
	cb->func = compressor_release;
	cb->arg = pc;
	MemoryContextRegisterResetCallback(cxt, cb);
	if (codec == PARQUET_CODEC_ZSTD && (pc->zstd = ZSTD_createCCtx()) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a zstd compression context")));
	return pc;
}

/*
 * Queues a page whose raw bytes are complete.  Returns false if no helper
 * thread could be started: the caller then compresses the page itself.
 */
bool
ParquetCompressorSubmit(ParquetCompressor *pc, ParquetPage *j)
{
	prepare_output(pc->cxt, pc->codec, j);
	j->done = false;
	j->next = NULL;
	if (!pc->started)
	{
		if (!ParquetThreadStart(&pc->tid, compressor_main, pc))
			return false;
		pc->started = true;
	}
	pthread_mutex_lock(&pc->lock);
	if (pc->tail)
		pc->tail->next = j;
	else
		pc->head = j;
	pc->tail = j;
	pc->nqueued++;
	pthread_cond_broadcast(&pc->cond);
	pthread_mutex_unlock(&pc->lock);
	return true;
}

/*
 * The backend compresses queued pages itself while more than `keep` wait:
 * when rows come faster than one thread compresses (wide JSON rows with
 * zstd), the backend shares the work instead of piling up pages and then
 * waiting for them at the end of the row group.
 */
void
ParquetCompressorHelp(ParquetCompressor *pc, int keep)
{
	/* no context of its own: the thread keeps the pages */
	if (pc->codec == PARQUET_CODEC_ZSTD && pc->zstd_backend == NULL &&
		(pc->zstd_backend = ZSTD_createCCtx()) == NULL)
		return;
	for (;;)
	{
		ParquetPage *j;

		pthread_mutex_lock(&pc->lock);
		if (pc->nqueued <= keep)
		{
			pthread_mutex_unlock(&pc->lock);
			return;
		}
		j = take_page(pc);
		pthread_mutex_unlock(&pc->lock);
		compress_page(pc, j, pc->zstd_backend);
	}
}

/* Whether a submitted page is compressed (without waiting). */
bool
ParquetCompressorDone(ParquetCompressor *pc, ParquetPage *j)
{
	bool		done;

	pthread_mutex_lock(&pc->lock);
	done = j->done;
	pthread_mutex_unlock(&pc->lock);
	return done;
}

/* Waits until a submitted page is compressed. */
void
ParquetCompressorWait(ParquetCompressor *pc, ParquetPage *j)
{
	pthread_mutex_lock(&pc->lock);
	while (!j->done)
		pthread_cond_wait(&pc->cond, &pc->lock);
	pthread_mutex_unlock(&pc->lock);
	if (j->outlen == 0)
		elog(ERROR, "parquet page compression failed");
}
