/*-------------------------------------------------------------------------
 * file_ledger.c
 *		The file source's ledger: each file's version, position and state,
 *		in iotstream.source_files.
 *
 * A batch's files are written in the batch's transaction, with its rows
 * and offsets (the source's in_batch callback): a file's position moves
 * only with the rows read up to it, so a crash resumes mid-file exactly
 * where the last committed batch ended.  Changes of state no batch carries
 * (a file seen, an empty file done, a file that failed or was rewritten)
 * commit in a transaction of their own, between batches.  A rewritten
 * file read again (on_rewrite 'reingest') loses the rows of its earlier
 * version in the transaction of its new version's first rows: the earlier
 * rows are those whose path_column holds its path, deleted as the table's
 * owner.  The ledger keeps the etag of the version its rows are of until
 * then, so a crash in between reads the new version again, from its start.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

struct FileLedger
{
	int			source_id;
	Oid			target;
	char	   *delete_sql;		/* the earlier rows of a path; NULL: none */
	HTAB	   *files;			/* path -> FileLedgerEntry */
	MemoryContext cxt;
};

static const char *const state_names[] = {"seen", "in progress", "done", "failed", "rewritten"};

static FileState
state_of(const char *name)
{
	for (int i = 0; i < lengthof(state_names); i++)
		if (strcmp(state_names[i], name) == 0)
			return (FileState) i;
	return FILE_SEEN;
}

/*
 * The ledger of the source whose consumer group is group_id, read in a
 * transaction of its own; path_column (or NULL) is the target's column
 * that holds each row's file.
 */
FileLedger *
FileLedgerLoad(const char *group_id, const char *path_column, MemoryContext cxt)
{
	FileLedger *l = MemoryContextAllocZero(cxt, sizeof(FileLedger));
	MemoryContext old = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	HASHCTL		ctl;

	l->cxt = cxt;
	ctl.keysize = MAXPGPATH;
	ctl.entrysize = sizeof(FileLedgerEntry);
	ctl.hcxt = cxt;
	l->files = hash_create("iotstream file ledger", 256, &ctl,
						   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	WorkerBeginXact("reading the file ledger");
	SPI_connect();
	args[0] = CStringGetTextDatum(group_id);
	if (SPI_execute_with_args("SELECT source_id, target::oid FROM iotstream.sources WHERE group_id = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "iotstream file source of group \"%s\" not found", group_id);
	{
		bool		isnull;

		l->source_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		l->target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	argtypes[0] = INT4OID;
	args[0] = Int32GetDatum(l->source_id);
	if (SPI_execute_with_args("SELECT path, etag, position, lines, state, rows FROM iotstream.source_files"
							  " WHERE source_id = $1", 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.source_files");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *path = SPI_getvalue(tup, desc, 1);
		char	   *etag = SPI_getvalue(tup, desc, 2);
		bool		isnull;
		FileLedgerEntry *e;

		if (strlen(path) >= MAXPGPATH)
			continue;
		e = hash_search(l->files, path, HASH_ENTER, NULL);
		strlcpy(e->etag, etag ? etag : "", sizeof(e->etag));
		e->position = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		e->lines = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		e->state = state_of(SPI_getvalue(tup, desc, 5));
		e->rows = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	}
	if (path_column)
	{
		MemoryContext spi = MemoryContextSwitchTo(cxt);

		l->delete_sql = psprintf("DELETE FROM %s WHERE %s = $1",
								 quote_qualified_identifier(get_namespace_name(get_rel_namespace(l->target)),
															get_rel_name(l->target)),
								 quote_identifier(path_column));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	WorkerCommitXact();
	MemoryContextSwitchTo(old);
	return l;
}

/* What the ledger holds of path; NULL for a file never seen. */
FileLedgerEntry *
FileLedgerGet(FileLedger *l, const char *path)
{
	if (strlen(path) >= MAXPGPATH)
		return NULL;
	return hash_search(l->files, path, HASH_FIND, NULL);
}

static void
write_one(FileLedger *l, const FileProgress *p)
{
	Oid			argtypes[11] = {INT4OID, TEXTOID, INT8OID, TEXTOID, TIMESTAMPTZOID, INT8OID,
	INT8OID, INT8OID, TEXTOID, TEXTOID, BOOLOID};
	Datum		args[11];
	char		nulls[11] = "           ";
	const FileEntry *f = p->file;

	if (p->reingest && l->delete_sql)
	{
		AsOwner		as;
		Datum		path = CStringGetTextDatum(f->path);
		Oid			t = TEXTOID;

		AsOwnerBegin(&as, TableOwner(l->target));
		if (SPI_execute_with_args(l->delete_sql, 1, &t, &path, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete the rows of a rewritten file");
		AsOwnerEnd(&as);
	}
	if (p->state == FILE_REWRITTEN)
	{
		/* its rows stay those of the version the ledger names */
		argtypes[0] = INT4OID;
		args[0] = Int32GetDatum(l->source_id);
		args[1] = CStringGetTextDatum(f->path);
		args[2] = CStringGetTextDatum(p->error ? p->error : "rewritten");
		if (SPI_execute_with_args("UPDATE iotstream.source_files SET state = 'rewritten', error = $3,"
								  " updated_at = now() WHERE source_id = $1 AND path = $2",
								  3, (Oid[]) {INT4OID, TEXTOID, TEXTOID}, args, NULL, false, 0) < 0)
			elog(ERROR, "could not write the file ledger");
		return;
	}
	args[0] = Int32GetDatum(l->source_id);
	args[1] = CStringGetTextDatum(f->path);
	args[2] = Int64GetDatum(f->size);
	args[3] = CStringGetTextDatum(f->etag);
	args[4] = TimestampTzGetDatum((TimestampTz) (f->mtime_ns / 1000) -
								  (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
	args[5] = Int64GetDatum(p->rows);
	args[6] = Int64GetDatum(p->position);
	args[7] = Int64GetDatum(p->lines);
	args[8] = CStringGetTextDatum(state_names[p->state]);
	args[9] = p->error ? CStringGetTextDatum(p->error) : (Datum) 0;
	nulls[9] = p->error ? ' ' : 'n';
	args[10] = BoolGetDatum(p->reingest);
	if (SPI_execute_with_args("INSERT INTO iotstream.source_files AS f"
							  " (source_id, path, size, etag, modified_at, rows, position, lines, state, error)"
							  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
							  " ON CONFLICT (source_id, path) DO UPDATE SET size = excluded.size,"
							  " etag = excluded.etag, modified_at = excluded.modified_at,"
							  " rows = CASE WHEN $11 THEN excluded.rows ELSE f.rows + excluded.rows END,"
							  " position = excluded.position, lines = excluded.lines,"
							  " state = excluded.state, error = excluded.error, updated_at = now()",
							  11, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write the file ledger");
}

/*
 * Writes the progress of n files: in the caller's transaction (a batch's),
 * or with own_xact in one of its own.
 */
void
FileLedgerWrite(FileLedger *l, const FileProgress *p, int n, bool own_xact)
{
	MemoryContext old = CurrentMemoryContext;

	if (n == 0)
		return;
	if (own_xact)
		WorkerBeginXact("writing the file ledger");
	SPI_connect();
	for (int i = 0; i < n; i++)
		write_one(l, &p[i]);
	SPI_finish();
	if (own_xact)
		WorkerCommitXact();
	MemoryContextSwitchTo(old);
}

/* The entries of the ledger, in no order; *n of them, palloc'd. */
FileLedgerEntry **
FileLedgerEntries(FileLedger *l, int *n)
{
	FileLedgerEntry **all = palloc(sizeof(FileLedgerEntry *) * Max(hash_get_num_entries(l->files), 1));
	HASH_SEQ_STATUS seq;
	FileLedgerEntry *e;

	*n = 0;
	hash_seq_init(&seq, l->files);
	while ((e = hash_seq_search(&seq)) != NULL)
		all[(*n)++] = e;
	return all;
}

/* After the commit of what FileLedgerWrite wrote: the ledger in memory. */
void
FileLedgerRemember(FileLedger *l, const FileProgress *p, int n)
{
	for (int i = 0; i < n; i++)
	{
		FileLedgerEntry *e;
		bool		found;

		if (strlen(p[i].file->path) >= MAXPGPATH)
			continue;
		e = hash_search(l->files, p[i].file->path, HASH_ENTER, &found);
		if (!found)
			e->rows = 0;
		if (p[i].state == FILE_REWRITTEN)
		{
			e->state = FILE_REWRITTEN;
			continue;
		}
		strlcpy(e->etag, p[i].file->etag, sizeof(e->etag));
		e->position = p[i].position;
		e->lines = p[i].lines;
		e->rows = p[i].reingest ? p[i].rows : e->rows + p[i].rows;
		e->state = p[i].state;
	}
}
