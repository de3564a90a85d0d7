/*-------------------------------------------------------------------------
 * parquet_file_sink.c
 *		A local-file destination for the Parquet writer's write callback.
 *
 * Small writes (page headers, the footer) are gathered in a buffer so that
 * the file sees few large write() calls, and writeback is started every few
 * megabytes so that disk writes overlap encoding instead of piling up for
 * the fsync at the end.  The file is opened as a transient
 * file, so an ERROR anywhere closes it; the caller owns naming (write to a
 * temporary name, rename when done) and removal on failure.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include <fcntl.h>
#include <unistd.h>

#include "storage/fd.h"

#define SINK_BUFFER_SIZE (1024 * 1024)
/* ask the kernel to start writing back every this many bytes */
#define SINK_FLUSH_EVERY (8 * 1024 * 1024)

struct ParquetFileSink
{
	char	   *path;
	int			fd;
	char	   *buf;
	size_t		len;
	off_t		written;		/* bytes handed to the kernel */
	off_t		flushed;		/* bytes whose writeback was started */
};

static void
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
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write to file \"%s\": %m", sink->path)));
		}
		done += n;
	}
	sink->written += len;
	/* start writeback early, so that the final fsync has little to wait for */
	if (sink->written - sink->flushed >= SINK_FLUSH_EVERY)
	{
		pg_flush_data(sink->fd, sink->flushed, sink->written - sink->flushed);
		sink->flushed = sink->written;
	}
}

static void
sink_flush(ParquetFileSink *sink)
{
	write_all(sink, sink->buf, sink->len);
	sink->len = 0;
}

/* Creates path, which must not exist yet. */
ParquetFileSink *
ParquetFileSinkOpen(const char *path)
{
	ParquetFileSink *sink = palloc0(sizeof(ParquetFileSink));

	sink->path = pstrdup(path);
	sink->fd = OpenTransientFilePerm(path, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY,
									 S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
	if (sink->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", path),
				 errhint("The directory must exist and be writable by the server's operating system user.")));
	sink->buf = palloc(SINK_BUFFER_SIZE);
	return sink;
}

void
ParquetFileSinkWrite(void *arg, const void *data, size_t len)
{
	ParquetFileSink *sink = (ParquetFileSink *) arg;

	if (sink->len + len > SINK_BUFFER_SIZE)
		sink_flush(sink);
	if (len >= SINK_BUFFER_SIZE)
	{
		/* large pages go straight to the file */
		write_all(sink, data, len);
		return;
	}
	memcpy(sink->buf + sink->len, data, len);
	sink->len += len;
}

/* Writes what is buffered, fsyncs and closes the file. */
void
ParquetFileSinkClose(ParquetFileSink *sink)
{
	sink_flush(sink);
	if (pg_fsync(sink->fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", sink->path)));
	if (CloseTransientFile(sink->fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", sink->path)));
	sink->fd = -1;
}
