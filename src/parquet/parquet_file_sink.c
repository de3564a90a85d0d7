/*-------------------------------------------------------------------------
 * parquet_file_sink.c
 *		A local-file destination for the Parquet writer's write callback.
 *
 * Bytes are gathered in one of two buffers; a full buffer goes to a
 * writer thread, which hands it to the kernel with write() while the
 * backend fills the other one.  Copying into the page cache is a good part
 * of a narrow write's cost, and the backend's thread is the one that bounds
 * it.  The thread also starts writeback every few megabytes, so that disk
 * writes overlap encoding instead of piling up for the fsync at the end.
 *
 * The thread runs nothing but write() and sync_file_range() on the
 * descriptor and the buffer it was handed: no palloc, no ereport, every
 * signal blocked.  A failed write is recorded and reported by the backend
 * at its next hand-off or at close.  The descriptor is ours rather than a
 * transient file of fd.c: at abort fd.c closes its files before memory
 * goes, and the thread could then write to whatever file reused the
 * number.  A reset callback of the sink's memory context stops the thread
 * and only then closes the descriptor.  The caller owns naming (write to a
 * temporary name, rename when done) and removal on failure.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "storage/fd.h"

#define SINK_BUFFER_SIZE (1024 * 1024)
/* ask the kernel to start writing back every this many bytes */
#define SINK_FLUSH_EVERY (8 * 1024 * 1024)

struct ParquetFileSink
{
	char	   *path;
	int			fd;				/* -1 once closed */
	char	   *buf[2];
	int			cur;			/* the buffer the backend fills */
	size_t		len;			/* bytes in it */

	/* shared with the thread, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t	tid;
	bool		started;
	bool		stop;
	const char *job;			/* a buffer to write, NULL when idle */
	size_t		job_len;
	int			err;			/* errno of a failed write, 0 if none */

	/* the thread's own (the backend's when there is no thread) */
	off_t		written;		/* bytes handed to the kernel */
	off_t		flushed;		/* bytes whose writeback was started */
};

/* Writes len bytes at p; returns 0 or an errno.  Any thread. */
static int
write_all(ParquetFileSink *sink, const char *p, size_t len)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		n = write(sink->fd, p + done, len - done);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return errno;
		}
		done += n;
	}
	sink->written += len;
	/* start writeback early, so that the final fsync has little to wait for */
	if (sink->written - sink->flushed >= SINK_FLUSH_EVERY)
	{
#ifdef HAVE_SYNC_FILE_RANGE
		/* a hint: the fsync at close reports real errors */
		(void) sync_file_range(sink->fd, sink->flushed, sink->written - sink->flushed,
							   SYNC_FILE_RANGE_WRITE);
#endif
		sink->flushed = sink->written;
	}
	return 0;
}

static void *
sink_thread_main(void *arg)
{
	ParquetFileSink *sink = (ParquetFileSink *) arg;

	pthread_mutex_lock(&sink->lock);
	for (;;)
	{
		const char *p;
		size_t		len;
		int			err;

		while (sink->job == NULL && !sink->stop)
			pthread_cond_wait(&sink->cond, &sink->lock);
		if (sink->job == NULL)
			break;				/* stopped, nothing left to write */
		p = sink->job;
		len = sink->job_len;
		pthread_mutex_unlock(&sink->lock);
		/* after a failure, later buffers are dropped: the write has failed */
		err = sink->err ? 0 : write_all(sink, p, len);
		pthread_mutex_lock(&sink->lock);
		if (err)
			sink->err = err;
		sink->job = NULL;
		pthread_cond_broadcast(&sink->cond);
	}
	pthread_mutex_unlock(&sink->lock);
	return NULL;
}

/* Waits until the thread has no buffer; reports a failed write. */
static void
sink_wait(ParquetFileSink *sink)
{
	int			err;

	pthread_mutex_lock(&sink->lock);
	while (sink->job != NULL)
		pthread_cond_wait(&sink->cond, &sink->lock);
	err = sink->err;
	pthread_mutex_unlock(&sink->lock);
	if (err)
	{
		errno = err;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write to file \"%s\": %m", sink->path)));
	}
}

/* Hands the current buffer to the thread (or writes it) and takes the other. */
static void
sink_flush(ParquetFileSink *sink)
{
	if (sink->len == 0)
		return;
	if (!sink->started)
	{
		int			err = write_all(sink, sink->buf[sink->cur], sink->len);

		if (err)
		{
			errno = err;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write to file \"%s\": %m", sink->path)));
		}
		sink->len = 0;
		return;
	}
	sink_wait(sink);
	pthread_mutex_lock(&sink->lock);
	sink->job = sink->buf[sink->cur];
	sink->job_len = sink->len;
	pthread_cond_broadcast(&sink->cond);
	pthread_mutex_unlock(&sink->lock);
	sink->cur ^= 1;
	sink->len = 0;
}

/* Stops the thread (after the buffer it writes) and closes the file. */
static void
sink_release(void *arg)
{
	ParquetFileSink *sink = (ParquetFileSink *) arg;

	ParquetThreadRelease(sink->tid, &sink->lock, &sink->cond, &sink->started, &sink->stop);
	if (sink->fd >= 0)
	{
		close(sink->fd);
		ReleaseExternalFD();
		sink->fd = -1;
	}
}

/* Creates path, which must not exist yet. */
ParquetFileSink *
ParquetFileSinkOpen(const char *path)
{
	ParquetFileSink *sink = palloc0(sizeof(ParquetFileSink));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));

	sink->path = pstrdup(path);
	sink->buf[0] = palloc(SINK_BUFFER_SIZE);
	sink->buf[1] = palloc(SINK_BUFFER_SIZE);
	ReserveExternalFD();
	sink->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY | O_CLOEXEC,
					S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
	if (sink->fd < 0)
	{
		int			save = errno;

		ReleaseExternalFD();
		errno = save;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", path),
				 errhint("The directory must exist and be writable by the server's operating system user.")));
	}
	pthread_mutex_init(&sink->lock, NULL);
	pthread_cond_init(&sink->cond, NULL);
	cb->func = sink_release;
	cb->arg = sink;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	/* no thread to be had: the backend writes */
	sink->started = ParquetThreadStart(&sink->tid, sink_thread_main, sink);
	return sink;
}

void
ParquetFileSinkWrite(void *arg, const void *data, size_t len)
{
	ParquetFileSink *sink = (ParquetFileSink *) arg;
	const char *p = data;

	while (len > 0)
	{
		size_t		n = Min(len, SINK_BUFFER_SIZE - sink->len);

		memcpy(sink->buf[sink->cur] + sink->len, p, n);
		sink->len += n;
		p += n;
		len -= n;
		if (sink->len == SINK_BUFFER_SIZE)
			sink_flush(sink);
	}
}

/* Writes what is buffered, fsyncs and closes the file. */
void
ParquetFileSinkClose(ParquetFileSink *sink)
{
	sink_flush(sink);
	if (sink->started)
	{
		sink_wait(sink);
		ParquetThreadStop(sink->tid, &sink->lock, &sink->cond, &sink->stop);
		sink->started = false;
	}
	if (pg_fsync(sink->fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", sink->path)));
	if (close(sink->fd) != 0)
	{
		sink->fd = -1;
		ReleaseExternalFD();
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", sink->path)));
	}
	sink->fd = -1;
	ReleaseExternalFD();
}
