/*-------------------------------------------------------------------------
 * parquet_compress.c
 *		A window of Parquet pages compressed in parallel, then written in
 *		order.
 *
 * The writer fills up to PAGE_WINDOW pages; when the window is full (or the
 * column chunk ends) all of them are compressed at once, by the calling
 * thread and up to threads - 1 helper threads, and handed back in order to
 * an emit callback.  Helper threads run nothing but ParquetCompressRaw() on
 * buffers reserved beforehand: they touch no Postgres state (no palloc, no
 * ereport), block every signal so that the backend's handlers keep running
 * on the main thread, and are joined before anything can raise an error.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

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
	{
		ParquetPage *j = &win->pages[i];

		if (j->raw.len > (size_t) PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("parquet page of %zu bytes is too large", j->raw.len),
					 errhint("Lower the page_size option.")));
		j->out.len = 0;
		if (win->codec != PARQUET_CODEC_NONE)
			ParquetBufReserve(win->cxt, &j->out, ParquetCompressBound(win->codec, j->raw.len));
	}

	if (win->codec != PARQUET_CODEC_NONE)
	{
		int			want = Min(win->threads - 1, win->npages - 1);
		sigset_t	all,
					old;

		for (i = 1; i <= want; i++)
			if (win->codec == PARQUET_CODEC_ZSTD && win->zstd[i] == NULL &&
				(win->zstd[i] = ZSTD_createCCtx()) == NULL)
				break;
		want = i - 1;
		win->next = 0;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		for (i = 0; i < want; i++)
		{
			helpers[nhelpers].win = win;
			helpers[nhelpers].zstd = win->zstd[i + 1];
			if (pthread_create(&helpers[nhelpers].tid, NULL, helper_main, &helpers[nhelpers]) != 0)
				break;			/* fewer helpers, same result */
			nhelpers++;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
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
