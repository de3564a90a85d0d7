/*-------------------------------------------------------------------------
 * delta_log.c
 *		The storage half of the Delta log: read the commits of a table's
 *		_delta_log from a version on, create one commit file with
 *		put-if-absent, read _last_checkpoint and a checkpoint's actions (to
 *		join a table whose early log is gone), and delete the entries that
 *		a checkpoint made obsolete.  What a commit holds, optimistic
 *		concurrency, the table's state and which versions log cleanup may
 *		delete are SQL (sql/install/70_export_delta.sql); this file only
 *		moves log entries.
 *
 * The invariant: a commit file is created whole or not at all, and never
 * over another.  In a container, Put Blob with If-None-Match: * (409 or 412
 * when the version exists); in a local folder, the entry is written and
 * fsynced under a temporary name and link()ed to its final name, which
 * fails with EEXIST when another writer took the version.  Either way two
 * writers can never both create one version.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "export/export_int.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "common/file_perm.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

/* A table's log: where its entries are, and a client for a container. */
typedef struct DeltaLog
{
	BlobLocation *loc;
	char	   *dir;			/* local: the _delta_log folder */
	char	   *prefix;			/* container: blob name prefix of the log */
	BlobClient *client;
} DeltaLog;

static void
check_superuser(void)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to access a delta log"),
				 errdetail("Exports read storage credentials, which only superusers may read."),
				 errhint("Run exports as a superuser, for example from the pg_cron job that create_export registers.")));
}

/* Opens the log of the table in folder below destination. */
static void
log_open(DeltaLog *log, FunctionCallInfo fcinfo)
{
	char	   *destination;
	char	   *folder;
	char	   *credential;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || (PG_NARGS() > 3 && PG_ARGISNULL(3)))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a delta log needs a destination, a table folder and a version"),
				 errhint("It is called by iotstream.run_export().")));
	destination = text_to_cstring(PG_GETARG_TEXT_PP(0));
	folder = text_to_cstring(PG_GETARG_TEXT_PP(1));
	credential = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	/* a folder is one sanitized component (_path_component) */
	if (folder[0] == '\0' || folder[0] == '.' || strchr(folder, '/') != NULL || strlen(folder) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid delta table folder \"%.64s\"", folder),
				 errhint("A table folder is one path component below the destination.")));
	memset(log, 0, sizeof(DeltaLog));
	log->loc = BlobParseLocation(destination);
	if (log->loc->local)
	{
		log->dir = psprintf("%s/%s/_delta_log", log->loc->path, folder);
		if (pg_mkdir_p(log->dir, pg_dir_create_mode) != 0 && errno != EEXIST)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create directory \"%s\": %m", log->dir),
					 errhint("The destination must be writable by the server's operating system user.")));
	}
	else
	{
		BlobAuth	auth;
		BlobOptions opts = {.parallel = 1,.block_size = 64 * 1024,.max_retries = 6,.timeout_ms = 120000};

		log->prefix = log->loc->path[0] ? psprintf("%s/%s/_delta_log", log->loc->path, folder)
			: psprintf("%s/_delta_log", folder);
		AzureAuthLoad(credential, log->loc, &auth);
		log->client = BlobClientCreate(log->loc, &auth, &opts);
	}
}

static void
log_close(DeltaLog *log)
{
	if (log->client)
		BlobClientDestroy(log->client);
	log->client = NULL;
}

static char *
entry_name(int64 version)
{
	return psprintf("%020lld.json", (long long) version);
}

/* Reads one entry of the log into out; false if there is no such entry. */
static bool
log_read_entry(DeltaLog *log, const char *name, StringInfo out)
{
	if (log->client)
		return BlobGetSmall(log->client, psprintf("%s/%s", log->prefix, name), out);
	else
	{
		char	   *path = psprintf("%s/%s", log->dir, name);
		FILE	   *fp = AllocateFile(path, PG_BINARY_R);
		char		buf[8192];
		size_t		n;

		resetStringInfo(out);
		if (fp == NULL)
		{
			if (errno == ENOENT)
				return false;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open delta log entry \"%s\": %m", path),
					 errhint("The destination must be readable by the server's operating system user.")));
		}
		while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
			appendBinaryStringInfo(out, buf, n);
		if (ferror(fp))
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read delta log entry \"%s\": %m", path),
					 errhint("The destination must be readable by the server's operating system user.")));
		FreeFile(fp);
		return true;
	}
}

/* Reads one commit into out; false if there is no such version. */
static bool
log_read(DeltaLog *log, int64 version, StringInfo out)
{
	return log_read_entry(log, entry_name(version), out);
}

/* Deletes one entry of the log; false if it was not there. */
static bool
log_delete_entry(DeltaLog *log, const char *name)
{
	char	   *path;

	if (log->client)
		return BlobDelete(log->client, psprintf("%s/%s", log->prefix, name));
	path = psprintf("%s/%s", log->dir, name);
	if (unlink(path) == 0)
		return true;
	if (errno != ENOENT)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not delete delta log entry \"%s\": %m", path),
				 errhint("The destination must be writable by the server's operating system user.")));
	return false;
}

/* Creates one commit unless the version exists; true if this call made it. */
static bool
log_create(DeltaLog *log, int64 version, const char *body, size_t len)
{
	char	   *tmp;
	char	   *path;
	int			fd;
	bool		created;

	if (log->client)
		return BlobPutIfAbsent(log->client, psprintf("%s/%s", log->prefix, entry_name(version)),
							   body, len);
	path = psprintf("%s/%s", log->dir, entry_name(version));
	/* unique also against writers of other servers sharing the folder */
	tmp = psprintf("%s/.%s.tmp.%d.%016llx", log->dir, entry_name(version), MyProcPid,
				   (unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp),
				 errhint("The destination must be writable by the server's operating system user.")));
	if (write(fd, body, len) != (ssize_t) len || pg_fsync(fd) != 0)
	{
		int			save = errno;

		CloseTransientFile(fd);
		unlink(tmp);
		errno = save ? save : ENOSPC;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp),
				 errhint("Check the space and permissions of the destination.")));
	}
	CloseTransientFile(fd);
	/* link() never replaces: EEXIST means another writer took the version */
	created = link(tmp, path) == 0;
	if (!created && errno != EEXIST)
	{
		int			save = errno;

		unlink(tmp);
		errno = save;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create delta log entry \"%s\": %m", path),
				 errhint("Check the permissions of the destination; nothing was committed.")));
	}
	unlink(tmp);
	if (created)
		fsync_fname(log->dir, true);
	return created;
}

PG_FUNCTION_INFO_V1(delta_read_log);

/*
 * _delta_read_log(destination, folder, credential, from_version,
 *				   OUT version bigint, OUT commit text)
 * Every commit from from_version on, up to the first version missing.
 */
Datum
delta_read_log(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DeltaLog	log;
	int64		v;
	StringInfoData body;

	check_superuser();
	log_open(&log, fcinfo);
	InitMaterializedSRF(fcinfo, 0);
	initStringInfo(&body);
	for (v = Max(PG_GETARG_INT64(3), 0);; v++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		CHECK_FOR_INTERRUPTS();
		if (!log_read(&log, v, &body))
			break;
		values[0] = Int64GetDatum(v);
		values[1] = PointerGetDatum(cstring_to_text_with_len(body.data, body.len));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	log_close(&log);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(delta_create_commit);

/*
 * _delta_create_commit(destination, folder, credential, version, commit text)
 * → true if this call created the version, false if it existed.
 */
Datum
delta_create_commit(PG_FUNCTION_ARGS)
{
	DeltaLog	log;
	text	   *body;
	bool		created;

	check_superuser();
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a delta commit needs its actions"),
				 errhint("It is called by iotstream.run_export().")));
	log_open(&log, fcinfo);
	body = PG_GETARG_TEXT_PP(4);
	created = log_create(&log, PG_GETARG_INT64(3), VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
	log_close(&log);
	PG_RETURN_BOOL(created);
}

PG_FUNCTION_INFO_V1(delta_read_last_checkpoint);

/*
 * _delta_read_last_checkpoint(destination, folder, credential) → text
 * The table's _delta_log/_last_checkpoint, or NULL when it has none.
 */
Datum
delta_read_last_checkpoint(PG_FUNCTION_ARGS)
{
	DeltaLog	log;
	StringInfoData body;
	bool		found;

	check_superuser();
	log_open(&log, fcinfo);
	initStringInfo(&body);
	found = log_read_entry(&log, "_last_checkpoint", &body);
	log_close(&log);
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(body.data, body.len));
}

PG_FUNCTION_INFO_V1(delta_read_checkpoint);

/*
 * _delta_read_checkpoint(destination, folder, credential, version) → jsonb[]
 * The actions of version's checkpoint (a classic, single-file one), one a
 * row as in a commit: {"add": {...}}, {"metaData": {...}}, ...; NULL when
 * it has none.
 */
Datum
delta_read_checkpoint(PG_FUNCTION_ARGS)
{
	DeltaLog	log;
	StringInfoData body;
	volatile bool found = false;
	char	  **rows;
	int64		nrows;
	int64		i;
	Datum	   *elems;

	check_superuser();
	log_open(&log, fcinfo);
	initStringInfo(&body);
	PG_TRY();
	{
		found = log_read_entry(&log, psprintf("%020lld.checkpoint.parquet", (long long) PG_GETARG_INT64(3)),
							   &body);
	}
	PG_FINALLY();
	{
		log_close(&log);
	}
	PG_END_TRY();
	if (!found)
		PG_RETURN_NULL();
	rows = ParquetReadJsonRows(body.data, body.len, &nrows);
	if (nrows > MaxAllocSize / sizeof(Datum))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a delta checkpoint of " INT64_FORMAT " actions is too big to read", nrows)));
	elems = palloc(sizeof(Datum) * Max(nrows, 1));
	for (i = 0; i < nrows; i++)
		elems[i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(rows[i]));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, (int) nrows, JSONBOID, -1, false, TYPALIGN_INT));
}

#define DELTA_CLEANUP_MAX_VERSIONS 100000

PG_FUNCTION_INFO_V1(delta_delete_log);

/*
 * _delta_delete_log(destination, folder, credential, from_version,
 *					 before_version) → text[]
 * Deletes the commits and checkpoints of versions from_version up to
 * before_version (excluded) and returns the names of those that were
 * there.  The caller passes a before_version that has a complete
 * checkpoint (_delta_clean_log), so the versions deleted are covered.
 */
Datum
delta_delete_log(PG_FUNCTION_ARGS)
{
	DeltaLog	log;
	int64		from;
	int64		before;
	int64		v;
	ArrayBuildState *volatile names = NULL;

	check_superuser();
	if (PG_ARGISNULL(3) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a delta log cleanup needs the versions it starts at and stops before"),
				 errhint("It is called by iotstream.run_export().")));
	from = PG_GETARG_INT64(3);
	before = PG_GETARG_INT64(4);
	if (from < 0 || before < from)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid delta log range from " INT64_FORMAT " before " INT64_FORMAT, from, before),
				 errhint("Versions start at 0 and the range ends at the checkpoint that covers it.")));
	/* one request per entry: a range is what a cleanup covers, not a table's life */
	if (before - from > DELTA_CLEANUP_MAX_VERSIONS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a delta log cleanup covers at most %d versions, not " INT64_FORMAT,
						DELTA_CLEANUP_MAX_VERSIONS, before - from),
				 errhint("Clean up in steps: run_export cleans up to the newest checkpoint it covers.")));
	log_open(&log, fcinfo);
	PG_TRY();
	{
		for (v = from; v < before; v++)
		{
			char	   *json = entry_name(v);
			char	   *cp = psprintf("%020lld.checkpoint.parquet", (long long) v);

			CHECK_FOR_INTERRUPTS();
			/* the checkpoint first: a version's JSON goes last */
			if (log_delete_entry(&log, cp))
				names = accumArrayResult(names, CStringGetTextDatum(cp), false, TEXTOID,
										 CurrentMemoryContext);
			if (log_delete_entry(&log, json))
				names = accumArrayResult(names, CStringGetTextDatum(json), false, TEXTOID,
										 CurrentMemoryContext);
		}
	}
	PG_FINALLY();
	{
		log_close(&log);
	}
	PG_END_TRY();
	if (names == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));
	PG_RETURN_DATUM(makeArrayResult(names, CurrentMemoryContext));
}
