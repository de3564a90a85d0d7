/*-------------------------------------------------------------------------
 * export.c
 *		The C half of exports: write one period's rows as Parquet files to a
 *		local folder or a blob container, delete replaced files, parse
 *		destinations.  Which periods to export, the ledger and scheduling
 *		are SQL (sql/install/70_export.sql); this file only moves bytes.
 *
 * The invariant: no file of a period becomes visible before every file of
 * that period is complete.  Locally, files are written under temporary
 * names and renamed at the end; in a container, all blocks of all files are
 * uploaded first and the block lists committed last, so an error during
 * encoding or upload leaves nothing visible (uncommitted blocks expire).
 * Files are cut when one reaches target_file_size, on a row group boundary,
 * so a period becomes about ceil(bytes / target_file_size) files, none of
 * them small except the last.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet.h"
#include "export/export_int.h"

#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "common/file_perm.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#define MAX_EXPORT_FILES 10000

/* Upload settings from the export's options, with their defaults. */
static void
upload_options(Jsonb *jb, BlobOptions *o, int64 *target)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken r;

	o->parallel = 4;
	o->block_size = 16 * 1024 * 1024;
	o->max_retries = 6;
	o->timeout_ms = 120000;
	if (target)
		*target = INT64CONST(256) * 1024 * 1024;
	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return;
	it = JsonbIteratorInit(&jb->root);
	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		int			val;
		const char *hint = NULL;
		char	   *s;

		if (r != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		r = JsonbIteratorNext(&it, &v, true);
		if (v.type == jbvNumeric)
			s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
		else if (v.type == jbvString)
			s = pnstrdup(v.val.string.val, v.val.string.len);
		else
			s = "";
		if (strcmp(key, "target_file_size") == 0 || strcmp(key, "block_size") == 0)
		{
			int64		bytes;

			/* a JSON number is bytes (create_export stores bigint); a string has a unit */
			if (v.type == jbvNumeric)
				bytes = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v.val.numeric)));
			else if (parse_int(s, &val, GUC_UNIT_KB, &hint) && val > 0 && strpbrk(s, "kKMGT") != NULL)
				bytes = (int64) val * 1024;
			else if (parse_int(s, &val, GUC_UNIT_BYTE, &hint) && val > 0)
				bytes = val;
			else
				bytes = 0;
			if (bytes <= 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid %s \"%s\"", key, s),
						 errhint("Give a size such as 256MB or 8MB.")));
			if (strcmp(key, "block_size") == 0)
			{
				if (bytes < 64 * 1024 || bytes > 100 * 1024 * 1024)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("block_size must be between 64kB and 100MB"),
							 errhint("4MB to 8MB blocks suit most networks.")));
				o->block_size = bytes;
			}
			else if (target)
				*target = bytes;
		}
		else if (strcmp(key, "parallel_uploads") == 0 || strcmp(key, "max_retries") == 0 ||
				 strcmp(key, "request_timeout_ms") == 0)
		{
			if (!parse_int(s, &val, 0, &hint) || val < 0 ||
				(strcmp(key, "parallel_uploads") == 0 && (val < 1 || val > 32)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid %s \"%s\"", key, s),
						 errhint("parallel_uploads is 1 to 32; max_retries and request_timeout_ms are non-negative integers.")));
			if (key[0] == 'p')
				o->parallel = val;
			else if (key[0] == 'm')
				o->max_retries = val;
			else
				o->timeout_ms = Max(val, 1000);
		}
	}
}

/* The files of one call, kept until they are all complete. */
typedef struct ExportFiles
{
	MemoryContext cxt;			/* the call's: outlives SPI_finish */
	BlobLocation *loc;
	BlobClient *client;			/* NULL for a local folder */
	char	   *folder;			/* below loc->path */
	char	   *name_fmt;		/* "part-%05d-<uuid>.parquet" */
	char	   *dir;			/* local: the folder's absolute path */
	int			n;
	char	   *names[MAX_EXPORT_FILES];
	BlobUpload *uploads[MAX_EXPORT_FILES];
	ParquetFileSink *sink;		/* local: the open file */
	bool		renamed[MAX_EXPORT_FILES];
	int			committed;		/* blobs whose block list is committed */
	/* what a table log records of each file */
	int64		sizes[MAX_EXPORT_FILES];
	int64		nrows[MAX_EXPORT_FILES];
	char	   *stats[MAX_EXPORT_FILES];	/* Delta per-file statistics */
	char	   *schema;			/* Delta schema fields of the files */
} ExportFiles;

static char *blob_name(ExportFiles *f, const char *name);

static char *
tmp_name(ExportFiles *f, int i)
{
	return psprintf("%s/.%s.tmp.%d", f->dir, f->names[i], MyProcPid);
}

static void
files_open(void *arg, int fileno, ParquetWriteFn *write, void **write_arg)
{
	ExportFiles *f = (ExportFiles *) arg;
	MemoryContext old;

	if (fileno >= MAX_EXPORT_FILES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a period would become more than %d files", MAX_EXPORT_FILES),
				 errhint("Raise the export's target_file_size.")));
	/*
	 * The writer runs in SPI's memory, which SPI_finish frees; the names
	 * make the call's result after that.
	 */
	old = MemoryContextSwitchTo(f->cxt);
	f->names[fileno] = psprintf(f->name_fmt, fileno);
	MemoryContextSwitchTo(old);
	f->n = fileno + 1;
	if (f->client == NULL)
	{
		f->sink = ParquetFileSinkOpen(tmp_name(f, fileno));
		*write = ParquetFileSinkWrite;
		*write_arg = f->sink;
	}
	else
	{
		f->uploads[fileno] = BlobUploadBegin(f->client, blob_name(f, f->names[fileno]));
		*write = BlobUploadWrite;
		*write_arg = f->uploads[fileno];
	}
}

static void
files_close(void *arg, int fileno, ParquetWriter *w)
{
	ExportFiles *f = (ExportFiles *) arg;
	MemoryContext old = MemoryContextSwitchTo(f->cxt);

	/* once per file: the table log's view of it, kept past SPI_finish */
	f->sizes[fileno] = ParquetWriterBytes(w);
	f->nrows[fileno] = ParquetWriterRows(w);
	f->stats[fileno] = DeltaFileStats(w);
	if (f->schema == NULL)
		f->schema = DeltaSchemaFields(w);
	MemoryContextSwitchTo(old);
	if (f->client == NULL)
	{
		ParquetFileSinkClose(f->sink);
		f->sink = NULL;
	}
	else
		BlobUploadFinishBlocks(f->uploads[fileno]);
}

/* Every file becomes visible: renames, or Put Block List. */
static void
files_commit(ExportFiles *f)
{
	int			i;

	for (i = 0; i < f->n; i++)
	{
		if (f->client == NULL)
		{
			(void) durable_rename(tmp_name(f, i), psprintf("%s/%s", f->dir, f->names[i]), ERROR);
			f->renamed[i] = true;
		}
		else
		{
			BlobUploadCommit(f->uploads[i]);
			f->committed = i + 1;
		}
	}
}

static char *
blob_name(ExportFiles *f, const char *name)
{
	return f->loc->path[0] ? psprintf("%s/%s/%s", f->loc->path, f->folder, name)
		: psprintf("%s/%s", f->folder, name);
}

/*
 * Removes files numbered past the last one written, left by an attempt with
 * the same name pattern whose transaction rolled back after committing its
 * files (a cancelled or crashed run): names are derived from the export,
 * period and version, so a rerun overwrites that attempt's files, and this
 * removes any it wrote beyond this attempt's count.
 */
static void
files_sweep(ExportFiles *f)
{
	int			i;

	for (i = f->n; i < MAX_EXPORT_FILES; i++)
	{
		char	   *name = psprintf(f->name_fmt, i);

		if (f->client == NULL)
		{
			char	   *path = psprintf("%s/%s", f->dir, name);

			if (unlink(path) != 0)
			{
				if (errno == ENOENT)
					break;
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not remove stale file \"%s\": %m", path)));
			}
		}
		else if (!BlobDelete(f->client, blob_name(f, name)))
			break;
	}
}

/*
 * After a failure between the block-list commits of a multi-file period,
 * deletes the files already committed, so that the attempt leaves nothing
 * visible; best effort, one try each (storage is likely failing).
 */
static void
files_uncommit(ExportFiles *f)
{
	volatile int i;

	for (i = 0; i < f->committed; i++)
	{
		MemoryContext cxt = CurrentMemoryContext;

		PG_TRY();
		{
			BlobDeleteUpload(f->uploads[i]);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			FlushErrorState();
			ereport(WARNING,
					(errmsg("could not delete \"%s\", committed by a failed export attempt",
							f->names[i]),
					 errhint("Delete it by hand; the export ledger does not list it.")));
		}
		PG_END_TRY();
	}
}

static char *
text_arg(FunctionCallInfo fcinfo, int i)
{
	return PG_ARGISNULL(i) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(i));
}

static void
check_privileges(const char *what)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Exports read storage credentials, which only superusers may read."),
				 errhint("Run exports as a superuser, for example from the pg_cron job that create_export registers.")));
}

PG_FUNCTION_INFO_V1(export_write_files);

/*
 * A folder or file name below an export's destination: relative, made of
 * non-empty components other than "." and "..", without backslashes or
 * control characters.  The SQL side builds them from sanitized parts
 * (_export_folder); this is the last word before anything is written.
 */
static void
check_relative_path(const char *what, const char *path)
{
	const char *p = path;
	bool		ok = *p != '\0' && *p != '/';

	while (ok && *p)
	{
		const char *end = strchr(p, '/');
		size_t		len = end ? (size_t) (end - p) : strlen(p);

		if (len == 0 || len > 200 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			ok = false;
		for (size_t i = 0; ok && i < len; i++)
			if ((unsigned char) p[i] < 0x20 || p[i] == '\\' || p[i] == 0x7f)
				ok = false;
		p += len;
		if (*p == '/')
			p++;
	}
	if (strlen(path) > 1024)
		ok = false;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid export %s \"%.64s\"", what, path),
				 errhint("Exported files stay below the destination: names are relative, of at most 200 bytes a component, without \".\" or \"..\" components.")));
}

/*
 * _export_write_files(query, destination, folder, file_id, credential,
 *					   writer_options jsonb, upload_options jsonb,
 *					   source_table regclass,
 *					   OUT files text[], OUT rows bigint, OUT bytes bigint,
 *					   OUT sizes bigint[], OUT file_rows bigint[],
 *					   OUT stats text[], OUT schema text)
 * sizes, file_rows and stats (Delta per-file statistics) are per file;
 * schema holds the files' columns as Delta schema fields.
 * The query runs as source_table's owner; the files are written, and the
 * credential read, as the caller.
 */
Datum
export_write_files(PG_FUNCTION_ARGS)
{
	char	   *query = text_arg(fcinfo, 0);
	char	   *destination = text_arg(fcinfo, 1);
	char	   *folder = text_arg(fcinfo, 2);
	char	   *file_id = text_arg(fcinfo, 3);
	char	   *credential = text_arg(fcinfo, 4);
	Jsonb	   *wopts = PG_ARGISNULL(5) ? NULL : PG_GETARG_JSONB_P(5);
	Jsonb	   *uopts = PG_ARGISNULL(6) ? NULL : PG_GETARG_JSONB_P(6);
	ParquetWriterOptions popts;
	BlobOptions bopts;
	ExportFiles *f = palloc0(sizeof(ExportFiles));
	ParquetQuerySinks sinks;
	int64		rows = 0;
	int64		bytes = 0;
	int64		target;
	TupleDesc	rettype;
	Datum		result[7];
	bool		isnull[7] = {false, false, false, false, false, false, false};
	Datum	   *urls;
	Datum	   *sizes;
	Datum	   *nrows;
	Datum	   *stats;
	int			i;
	MemoryContext callcxt;
	Oid			owner;
	AsOwner		as = {0};

	check_privileges("export files");
	RequireArguments(fcinfo, 8, "iotstream._export_write_files");
	if (query == NULL || destination == NULL || folder == NULL || file_id == NULL || PG_ARGISNULL(7))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("_export_write_files needs a query, a destination, a folder, a file id and a table"),
				 errhint("It is called by iotstream.run_export().")));
	check_relative_path("folder", folder);
	/* the file id goes into file names, and into their format string */
	if (strlen(file_id) == 0 || strlen(file_id) > 64 || strspn(file_id,
															"abcdefghijklmnopqrstuvwxyz"
															"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
															"0123456789_-") != strlen(file_id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid export file id \"%.64s\"", file_id),
				 errhint("A file id is 1 to 64 letters, digits, dashes and underscores.")));
	owner = TableOwner(PG_GETARG_OID(7));
	if (get_call_result_type(fcinfo, NULL, &rettype) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	ParquetParseOptions(wopts ? wopts : DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))),
						&popts);
	upload_options(uopts, &bopts, &target);
	/* a file ends on a row group: keep row groups well below the target */
	popts.row_group_bytes = Min(popts.row_group_bytes, Max(target, 1024 * 1024));

	f->cxt = CurrentMemoryContext;
	f->loc = BlobParseLocation(destination);
	f->folder = folder;
	f->name_fmt = psprintf("part-%%05d-%s.parquet", file_id);
	if (f->loc->local)
	{
		f->dir = psprintf("%s/%s", f->loc->path, folder);
		if (pg_mkdir_p(f->dir, pg_dir_create_mode) != 0 && errno != EEXIST)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create directory \"%s\": %m", f->dir),
					 errhint("The destination must be writable by the server's operating system user.")));
	}
	else
	{
		BlobAuth	auth;

		AzureAuthLoad(credential, f->loc, &auth);
		f->client = BlobClientCreate(f->loc, &auth, &bopts);
	}

	memset(&sinks, 0, sizeof(sinks));
	sinks.open = files_open;
	sinks.close = files_close;
	sinks.arg = f;
	sinks.file_bytes = target;

	callcxt = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PG_TRY();
	{
		/* the table's code (views, casts, functions) runs as its owner */
		AsOwnerBegin(&as, owner);
		(void) ParquetWriteQuery(query, &popts, &sinks, &rows, &bytes);
		AsOwnerEnd(&as);
		files_commit(f);
		files_sweep(f);
	}
	PG_CATCH();
	{
		/* local temporaries go; blob uploads were never committed */
		if (f->client == NULL)
		{
			for (i = 0; i < f->n; i++)
				if (!f->renamed[i])
					(void) unlink(tmp_name(f, i));
		}
		else if (f->committed > 0 && !QueryCancelPending && !ProcDiePending)
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(callcxt);
			edata = CopyErrorData();
			FlushErrorState();
			files_uncommit(f);
			ReThrowError(edata);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_finish();
	if (f->client)
		BlobClientDestroy(f->client);

	urls = palloc(sizeof(Datum) * Max(f->n, 1));
	sizes = palloc(sizeof(Datum) * Max(f->n, 1));
	nrows = palloc(sizeof(Datum) * Max(f->n, 1));
	stats = palloc(sizeof(Datum) * Max(f->n, 1));
	for (i = 0; i < f->n; i++)
	{
		char	   *d = pstrdup(destination);
		size_t		dl = strlen(d);

		while (dl > 0 && d[dl - 1] == '/')
			d[--dl] = '\0';
		urls[i] = CStringGetTextDatum(psprintf("%s/%s/%s", d, folder, f->names[i]));
		sizes[i] = Int64GetDatum(f->sizes[i]);
		nrows[i] = Int64GetDatum(f->nrows[i]);
		stats[i] = CStringGetTextDatum(f->stats[i]);
	}
	result[0] = PointerGetDatum(construct_array(urls, f->n, TEXTOID, -1, false, TYPALIGN_INT));
	result[1] = Int64GetDatum(rows);
	result[2] = Int64GetDatum(bytes);
	result[3] = PointerGetDatum(construct_array(sizes, f->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	result[4] = PointerGetDatum(construct_array(nrows, f->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	result[5] = PointerGetDatum(construct_array(stats, f->n, TEXTOID, -1, false, TYPALIGN_INT));
	if (f->schema)
		result[6] = CStringGetTextDatum(f->schema);
	else
		isnull[6] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(rettype, result, isnull)));
}

PG_FUNCTION_INFO_V1(export_delete_files);

/* _export_delete_files(files text[], credential text): replaced files go. */
Datum
export_delete_files(PG_FUNCTION_ARGS)
{
	ArrayType  *arr;
	char	   *credential = text_arg(fcinfo, 1);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	int			deleted = 0;
	BlobClient *client = NULL;
	char	   *client_base = NULL;
	BlobOptions bopts;

	check_privileges("delete exported files");
	if (PG_ARGISNULL(0))
		PG_RETURN_INT32(0);
	arr = PG_GETARG_ARRAYTYPE_P(0);
	upload_options(NULL, &bopts, NULL);
	bopts.parallel = 1;
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		char	   *url;
		BlobLocation *loc;

		if (nulls[i])
			continue;
		url = TextDatumGetCString(elems[i]);
		loc = BlobParseLocation(url);
		if (loc->local)
		{
			if (unlink(loc->path) != 0 && errno != ENOENT)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not remove replaced file \"%s\": %m", loc->path)));
		}
		else
		{
			char	   *base = psprintf("%s%s/%s", loc->base, loc->path_prefix, loc->container);

			if (client == NULL || strcmp(base, client_base) != 0)
			{
				BlobAuth	auth;

				if (client)
					BlobClientDestroy(client);
				AzureAuthLoad(credential, loc, &auth);
				client = BlobClientCreate(loc, &auth, &bopts);
				client_base = base;
			}
			BlobDelete(client, loc->path);
		}
		deleted++;
	}
	if (client)
		BlobClientDestroy(client);
	PG_RETURN_INT32(deleted);
}

PG_FUNCTION_INFO_V1(export_upload_file);

/*
 * _export_upload_file(path text, url text, credential text, options jsonb)
 * uploads a local file through the same block path as exports (for the
 * benchmark and for tests); returns the bytes sent.
 */
Datum
export_upload_file(PG_FUNCTION_ARGS)
{
	char	   *path = text_arg(fcinfo, 0);
	char	   *url = text_arg(fcinfo, 1);
	char	   *credential = text_arg(fcinfo, 2);
	Jsonb	   *uopts = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	BlobOptions bopts;
	BlobLocation *loc;
	BlobAuth	auth;
	BlobClient *client;
	BlobUpload *u;
	FILE	   *fp;
	size_t		n;
	int64		total;

	check_privileges("upload files");
	if (path == NULL || url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("_export_upload_file needs a file and a blob URL"),
				 errhint("Pass the server file to upload and the URL of the blob to write.")));
	if (strlen(path) >= MAXPGPATH)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("file name is too long (%zu bytes)", strlen(path)),
				 errhint("Pass a path of at most %d bytes.", MAXPGPATH - 1)));
	upload_options(uopts, &bopts, NULL);
	loc = BlobParseLocation(url);
	if (loc->local)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("_export_upload_file uploads to blob storage only")));
	AzureAuthLoad(credential, loc, &auth);
	client = BlobClientCreate(loc, &auth, &bopts);
	u = BlobUploadBegin(client, loc->path);
	fp = AllocateFile(path, PG_BINARY_R);
	if (fp == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path),
				 errhint("The file is read by the server, as its operating system user.")));
	/* straight into the block being filled, a megabyte at a time */
	for (;;)
	{
		size_t		room;
		char	   *buf = BlobUploadRoom(u, &room);

		n = fread(buf, 1, Min(room, 1024 * 1024), fp);
		if (n == 0)
			break;
		BlobUploadAppended(u, n);
	}
	if (ferror(fp))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", path)));
	FreeFile(fp);
	BlobUploadCommit(u);
	total = BlobUploadBytes(u);
	BlobClientDestroy(client);
	PG_RETURN_INT64(total);
}

PG_FUNCTION_INFO_V1(parse_destination);

/* parse_destination(url, OUT kind, OUT endpoint, OUT account, OUT container, OUT path) */
Datum
parse_destination(PG_FUNCTION_ARGS)
{
	BlobLocation *loc = BlobParseLocation(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	TupleDesc	rettype;
	Datum		v[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &rettype) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	v[0] = CStringGetTextDatum(loc->local ? "file" : "blob");
	if (loc->local)
	{
		nulls[1] = nulls[2] = nulls[3] = true;
	}
	else
	{
		v[1] = CStringGetTextDatum(psprintf("%s%s", loc->base, loc->path_prefix));
		v[2] = CStringGetTextDatum(loc->account);
		v[3] = CStringGetTextDatum(loc->container);
	}
	v[4] = CStringGetTextDatum(loc->path);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(rettype, v, nulls)));
}

PG_FUNCTION_INFO_V1(export_check_options);

/* _export_check_options(writer_options, upload_options): errors early. */
Datum
export_check_options(PG_FUNCTION_ARGS)
{
	ParquetWriterOptions popts;
	BlobOptions bopts;
	int64		target;

	ParquetParseOptions(PG_GETARG_JSONB_P(0), &popts);
	upload_options(PG_GETARG_JSONB_P(1), &bopts, &target);
	PG_RETURN_VOID();
}
