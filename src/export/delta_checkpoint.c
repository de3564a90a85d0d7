/*-------------------------------------------------------------------------
 * delta_checkpoint.c
 *		Writes a Delta checkpoint: _delta_log/NNN.checkpoint.parquet in the
 *		checkpoint schema of PROTOCOL.md (txn, add, remove, metaData,
 *		protocol as nested columns), then _delta_log/_last_checkpoint.
 *		Which actions a checkpoint holds is decided in SQL
 *		(sql/install/70_export_delta.sql); this file only encodes and stores
 *		them.
 *
 * The invariant: _last_checkpoint names a version only after that
 * version's checkpoint is complete.  The checkpoint is written whole
 * (locally under a temporary name, renamed; in a container with Put Blob or
 * a committed block list), and _last_checkpoint after it.  Rewriting the
 * checkpoint of a version is harmless: it holds the same state.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "export/export_int.h"

#include "common/file_perm.h"
#include "common/pg_prng.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"

static const ParquetNode string_leaf[] = {{"element", PARQUET_NODE_STRING, 0, NULL}};

static const ParquetNode txn_fields[] = {
	{"appId", PARQUET_NODE_STRING, 0, NULL},
	{"version", PARQUET_NODE_INT64, 0, NULL},
	{"lastUpdated", PARQUET_NODE_INT64, 0, NULL},
};

static const ParquetNode add_fields[] = {
	{"path", PARQUET_NODE_STRING, 0, NULL},
	{"partitionValues", PARQUET_NODE_MAP, 1, string_leaf},
	{"size", PARQUET_NODE_INT64, 0, NULL},
	{"modificationTime", PARQUET_NODE_INT64, 0, NULL},
	{"dataChange", PARQUET_NODE_BOOLEAN, 0, NULL},
	{"stats", PARQUET_NODE_STRING, 0, NULL},
	{"tags", PARQUET_NODE_MAP, 1, string_leaf},
};

static const ParquetNode remove_fields[] = {
	{"path", PARQUET_NODE_STRING, 0, NULL},
	{"deletionTimestamp", PARQUET_NODE_INT64, 0, NULL},
	{"dataChange", PARQUET_NODE_BOOLEAN, 0, NULL},
	{"extendedFileMetadata", PARQUET_NODE_BOOLEAN, 0, NULL},
	{"partitionValues", PARQUET_NODE_MAP, 1, string_leaf},
	{"size", PARQUET_NODE_INT64, 0, NULL},
};

static const ParquetNode format_fields[] = {
	{"provider", PARQUET_NODE_STRING, 0, NULL},
	{"options", PARQUET_NODE_MAP, 1, string_leaf},
};

static const ParquetNode metadata_fields[] = {
	{"id", PARQUET_NODE_STRING, 0, NULL},
	{"name", PARQUET_NODE_STRING, 0, NULL},
	{"description", PARQUET_NODE_STRING, 0, NULL},
	{"format", PARQUET_NODE_STRUCT, 2, format_fields},
	{"schemaString", PARQUET_NODE_STRING, 0, NULL},
	{"partitionColumns", PARQUET_NODE_LIST, 1, string_leaf},
	{"configuration", PARQUET_NODE_MAP, 1, string_leaf},
	{"createdTime", PARQUET_NODE_INT64, 0, NULL},
};

static const ParquetNode protocol_fields[] = {
	{"minReaderVersion", PARQUET_NODE_INT32, 0, NULL},
	{"minWriterVersion", PARQUET_NODE_INT32, 0, NULL},
	{"readerFeatures", PARQUET_NODE_LIST, 1, string_leaf},
	{"writerFeatures", PARQUET_NODE_LIST, 1, string_leaf},
};

static const ParquetNode checkpoint_fields[] = {
	{"txn", PARQUET_NODE_STRUCT, lengthof(txn_fields), txn_fields},
	{"add", PARQUET_NODE_STRUCT, lengthof(add_fields), add_fields},
	{"remove", PARQUET_NODE_STRUCT, lengthof(remove_fields), remove_fields},
	{"metaData", PARQUET_NODE_STRUCT, lengthof(metadata_fields), metadata_fields},
	{"protocol", PARQUET_NODE_STRUCT, lengthof(protocol_fields), protocol_fields},
};

/* The checkpoint is built in memory (it is small next to the data). */
static void
append_bytes(void *arg, const void *data, size_t len)
{
	appendBinaryStringInfo((StringInfo) arg, data, len);
}

/* Stores name under the log whole: a temporary file renamed, or one upload. */
static void
store(BlobLocation *loc, BlobClient *client, const char *logpath, const char *name,
	  const char *data, size_t len)
{
	if (client == NULL)
	{
		char	   *path = psprintf("%s/%s", logpath, name);
		/* unique also against writers of other servers sharing the folder */
		char	   *tmp = psprintf("%s/.%s.tmp.%d.%016llx", logpath, name, MyProcPid,
								   (unsigned long long) pg_prng_uint64(&pg_global_prng_state));
		FILE	   *fp = AllocateFile(tmp, PG_BINARY_W);

		if (fp == NULL)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create file \"%s\": %m", tmp),
					 errhint("The destination must be writable by the server's operating system user.")));
		if (fwrite(data, 1, len, fp) != len || fflush(fp) != 0 || pg_fsync(fileno(fp)) != 0)
		{
			int			save = errno;

			FreeFile(fp);
			unlink(tmp);
			errno = save;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", tmp),
					 errhint("Check the space and permissions of the destination.")));
		}
		FreeFile(fp);
		(void) durable_rename(tmp, path, ERROR);
	}
	else
	{
		BlobUpload *u = BlobUploadBegin(client, psprintf("%s/%s", logpath, name));

		BlobUploadWrite(u, data, len);
		BlobUploadCommit(u);
	}
}

PG_FUNCTION_INFO_V1(delta_write_checkpoint);

/*
 * _delta_write_checkpoint(destination, folder, credential, version bigint,
 *						   actions jsonb[], adds int) → bigint (its bytes)
 * Each action is one row: {"add": {...}}, {"txn": {...}}, ...
 */
Datum
delta_write_checkpoint(PG_FUNCTION_ARGS)
{
	char	   *destination;
	char	   *folder;
	char	   *credential;
	int64		version;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	ParquetNestedWriter *w;
	StringInfoData file;
	StringInfoData last;
	BlobLocation *loc;
	BlobClient *client = NULL;
	char	   *logpath;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to write a delta checkpoint"),
				 errhint("Run exports as a superuser.")));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3) || PG_ARGISNULL(4) || PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a delta checkpoint needs a destination, a folder, a version and actions"),
				 errhint("It is called by iotstream.run_export().")));
	destination = text_to_cstring(PG_GETARG_TEXT_PP(0));
	folder = text_to_cstring(PG_GETARG_TEXT_PP(1));
	credential = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	version = PG_GETARG_INT64(3);
	arr = PG_GETARG_ARRAYTYPE_P(4);
	if (folder[0] == '\0' || folder[0] == '.' || strchr(folder, '/') != NULL || strlen(folder) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid delta table folder \"%.64s\"", folder),
				 errhint("A table folder is one path component below the destination.")));

	w = ParquetNestedCreate(checkpoint_fields, lengthof(checkpoint_fields));
	deconstruct_array(arr, JSONBOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (!nulls[i])
			ParquetNestedAddRow(w, DatumGetJsonbP(elems[i]));
	initStringInfo(&file);
	(void) ParquetNestedWrite(w, append_bytes, &file);

	loc = BlobParseLocation(destination);
	if (loc->local)
		logpath = psprintf("%s/%s/_delta_log", loc->path, folder);
	else
	{
		BlobAuth	auth;
		BlobOptions opts = {.parallel = 2,.block_size = 16 * 1024 * 1024,.max_retries = 6,.timeout_ms = 120000};

		logpath = loc->path[0] ? psprintf("%s/%s/_delta_log", loc->path, folder)
			: psprintf("%s/_delta_log", folder);
		AzureAuthLoad(credential, loc, &auth);
		client = BlobClientCreate(loc, &auth, &opts);
	}
	store(loc, client, logpath, psprintf("%020lld.checkpoint.parquet", (long long) version),
		  file.data, file.len);
	initStringInfo(&last);
	appendStringInfo(&last, "{\"version\":" INT64_FORMAT ",\"size\":%d,\"sizeInBytes\":%d,\"numOfAddFiles\":%d}",
					 version, n, file.len, PG_GETARG_INT32(5));
	store(loc, client, logpath, "_last_checkpoint", last.data, last.len);
	if (client)
		BlobClientDestroy(client);
	PG_RETURN_INT64(file.len);
}
