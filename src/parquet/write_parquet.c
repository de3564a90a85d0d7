/*-------------------------------------------------------------------------
 * write_parquet.c
 *		iotstream.write_parquet(query, path, options): the result of any
 *		query, written as a local Parquet file.
 *
 * The rows go through parquet_query.c; the file goes to "<path>.tmp.<pid>"
 * next to the target and is renamed over it only when complete, so a
 * failed call leaves any previous file untouched.  Only superusers and
 * members of pg_write_server_files may call it.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"


#include <math.h>
#include <unistd.h>

#include <zstd.h>

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"


static void
check_privileges(void)
{
	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_WRITE_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to write parquet files on the server"),
				 errdetail("iotstream.write_parquet writes files as the server's operating system user."),
				 errhint("Only superusers and members of pg_write_server_files may call it; GRANT pg_write_server_files TO the role.")));
}

/* write_parquet writes one local file through a ParquetFileSink. */
typedef struct LocalFile
{
	const char *path;
	ParquetFileSink *sink;
	int			row_groups;
} LocalFile;

static void
local_open(void *arg, int fileno, ParquetWriteFn *write, void **write_arg)
{
	LocalFile  *f = (LocalFile *) arg;

	f->sink = ParquetFileSinkOpen(f->path);
	*write = ParquetFileSinkWrite;
	*write_arg = f->sink;
}

static void
local_close(void *arg, int fileno, ParquetWriter *w)
{
	LocalFile  *f = (LocalFile *) arg;

	ParquetFileSinkClose(f->sink);
	f->sink = NULL;
	f->row_groups = ParquetWriterRowGroups(w);
}

PG_FUNCTION_INFO_V1(write_parquet);

/*
 * write_parquet(query text, path text, options jsonb,
 *				 OUT rows bigint, OUT bytes bigint, OUT row_groups int)
 */
Datum
write_parquet(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *options = PG_GETARG_JSONB_P(2);
	ParquetWriteOptions opts;
	char	   *tmppath;
	LocalFile	file;
	ParquetQuerySinks sinks;
	int64		rows;
	int64		bytes;
	TupleDesc	rettype;
	Datum		result[3];
	bool		isnull[3] = {false, false, false};

	check_privileges();
	if (get_call_result_type(fcinfo, NULL, &rettype) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (strlen(path) > MAXPGPATH - 32)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("parquet file path is too long (%zu bytes)", strlen(path)),
				 errhint("Pass a path of at most %d bytes.", MAXPGPATH - 32)));
	for (const char *c = path; *c;)
	{
		size_t		len = strcspn(c, "/");

		if (len > 200)
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("a name in parquet file path is too long (%zu bytes)", len),
					 errhint("File and folder names have at most 200 bytes here.")));
		c += len;
		while (*c == '/')
			c++;
	}
	if (!is_absolute_path(path) || path[strlen(path) - 1] == '/')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parquet file path \"%s\" is not an absolute file name", path),
				 errhint("Pass the full path of the file to create, such as /var/lib/exports/data.parquet.")));
	ParquetParseWriteOptions(options, &opts);

	/* same directory, so that the final rename is atomic */
	tmppath = psprintf("%s.tmp.%d", path, MyProcPid);
	(void) unlink(tmppath);
	memset(&file, 0, sizeof(file));
	file.path = tmppath;
	memset(&sinks, 0, sizeof(sinks));
	sinks.open = local_open;
	sinks.close = local_close;
	sinks.arg = &file;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PG_TRY();
	{
		(void) ParquetWriteQuery(query, &opts.w, &sinks, &rows, &bytes);
		(void) durable_rename(tmppath, path, ERROR);
	}
	PG_CATCH();
	{
		/* no partial file stays behind; the fd is closed at abort */
		(void) unlink(tmppath);
		PG_RE_THROW();
	}
	PG_END_TRY();

	result[0] = Int64GetDatum(rows);
	result[1] = Int64GetDatum(bytes);
	result[2] = Int32GetDatum(file.row_groups);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(rettype, result, isnull)));
}
