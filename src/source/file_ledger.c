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
 *
 * Memory holds what the table does not need to be asked for: every file
 * not done (seen or in progress), and a cache of at most
 * FILE_LEDGER_CACHE files done, failed or rewritten.  A listing's other
 * files are looked up in the table (FileLedgerLookup), a query per
 * FILE_LEDGER_LOOKUP of them, and forgotten at the next lookup.  The
 * cache drops the files the last listing did not name when it is full,
 * and a table emptied to a quarter of its peak is made again, so the
 * ledger's memory follows the files to read, not the files ever read.
 * Invariant: what memory holds of a file is what the table holds of it,
 * as of the last commit.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define FILE_LEDGER_CACHE	2048	/* files done, failed or rewritten */
#define FILE_LEDGER_LOOKUP	1024	/* paths a lookup asks for at once */
#define FILE_LEDGER_SHRINK	1024	/* a table this big at its peak may shrink */

/* A hash of ledger entries by path, with the memory of both. */
typedef struct LedgerTable
{
	const char *name;
	MemoryContext parent;
	MemoryContext cxt;
	HTAB	   *hash;			/* path -> FileLedgerEntry */
	long		peak;
} LedgerTable;

struct FileLedger
{
	int			source_id;
	Oid			target;
	char	   *delete_sql;		/* the earlier rows of a path; NULL: none */
	LedgerTable open;			/* files seen or in progress */
	LedgerTable done;			/* a cache of files done, failed or rewritten */
	LedgerTable listed;			/* the last lookup's files beyond the cache */
	uint32		pass;			/* lookups so far */
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

/* Keys are pointers to the paths, which each table copies. */
static void
table_init(LedgerTable *t, const char *name, MemoryContext parent)
{
	HASHCTL		ctl;

	t->name = name;
	t->parent = parent;
	t->cxt = AllocSetContextCreate(parent, "iotstream file ledger", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSetIdentifier(t->cxt, name);
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(FileLedgerEntry);
	ctl.hash = StringPtrHash;
	ctl.match = StringPtrMatch;
	ctl.hcxt = t->cxt;
	t->hash = hash_create(name, 64, &ctl,
						  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	t->peak = 0;
}

static long
table_count(LedgerTable *t)
{
	return hash_get_num_entries(t->hash);
}

static FileLedgerEntry *
table_find(LedgerTable *t, const char *path)
{
	return hash_search(t->hash, &path, HASH_FIND, NULL);
}

/* The entry of path, made (zeroed, with its own copy of path) if new. */
static FileLedgerEntry *
table_enter(LedgerTable *t, const char *path)
{
	bool		found;
	FileLedgerEntry *e = hash_search(t->hash, &path, HASH_ENTER, &found);

	if (!found)
	{
		memset(e, 0, sizeof(FileLedgerEntry));
		e->path = MemoryContextStrdup(t->cxt, path);
		t->peak = Max(t->peak, table_count(t));
	}
	return e;
}

static void
table_remove(LedgerTable *t, FileLedgerEntry *e)
{
	char	   *path = e->path;

	(void) hash_search(t->hash, &path, HASH_REMOVE, NULL);
	pfree(path);
}

/*
 * Makes t again with the entries keep says to keep (all if NULL): a hash
 * never gives back what it grew to.
 */
static void
table_rebuild(LedgerTable *t, bool (*keep) (const FileLedgerEntry *e, uint32 pass), uint32 pass)
{
	LedgerTable old = *t;
	HASH_SEQ_STATUS seq;
	FileLedgerEntry *e;

	table_init(t, old.name, old.parent);
	hash_seq_init(&seq, old.hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (keep == NULL || keep(e, pass))
		{
			FileLedgerEntry *n = table_enter(t, e->path);
			char	   *path = n->path;

			*n = *e;
			n->path = path;
		}
	MemoryContextDelete(old.cxt);
}

static bool
listed_last(const FileLedgerEntry *e, uint32 pass)
{
	return e->pass == pass;
}

static void
entry_from_tuple(FileLedgerEntry *e, HeapTuple tup, TupleDesc desc)
{
	char	   *etag = SPI_getvalue(tup, desc, 2);
	bool		isnull;

	char	   *state = SPI_getvalue(tup, desc, 5);

	strlcpy(e->etag, etag ? etag : "", sizeof(e->etag));
	e->position = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	e->lines = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	e->state = state_of(state);
	e->rows = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	if (etag)
		pfree(etag);
	pfree(state);
}

/*
 * The ledger of the source whose consumer group is group_id, read in a
 * transaction of its own: the files not done; path_column (or NULL) is the
 * target's column that holds each row's file.
 */
FileLedger *
FileLedgerLoad(const char *group_id, const char *path_column, MemoryContext cxt)
{
	FileLedger *l = MemoryContextAllocZero(cxt, sizeof(FileLedger));
	MemoryContext old = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	l->cxt = cxt;
	table_init(&l->open, "files not done", cxt);
	table_init(&l->done, "files done", cxt);
	table_init(&l->listed, "files looked up", cxt);

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
							  " WHERE source_id = $1 AND state IN ('seen', 'in progress')",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.source_files");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *path = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		FileLedgerEntry *e = table_enter(&l->open, path);

		entry_from_tuple(e, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		pfree(path);
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

/* Asks the table for the n paths of ask (one query); what it holds is kept. */
static void
lookup_paths(FileLedger *l, Datum *ask, int n)
{
	Oid			argtypes[2] = {INT4OID, TEXTARRAYOID};
	Datum		args[2];
	ArrayType  *paths = construct_array(ask, n, TEXTOID, -1, false, TYPALIGN_INT);

	args[0] = Int32GetDatum(l->source_id);
	args[1] = PointerGetDatum(paths);
	if (SPI_execute_with_args("SELECT path, etag, position, lines, state, rows FROM iotstream.source_files"
							  " WHERE source_id = $1 AND path = ANY ($2)",
							  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.source_files");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		char	   *path = SPI_getvalue(tup, SPI_tuptable->tupdesc, 1);
		FileLedgerEntry e;
		LedgerTable *t;
		FileLedgerEntry *into;

		entry_from_tuple(&e, tup, SPI_tuptable->tupdesc);
		if (FileStateOpen(e.state))
			t = &l->open;		/* memory holds them all: not so */
		else if (table_count(&l->done) < FILE_LEDGER_CACHE)
			t = &l->done;
		else
			t = &l->listed;
		into = table_enter(t, path);
		e.path = into->path;
		e.pass = l->pass;
		*into = e;
		pfree(path);
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(paths);
}

/*
 * Before a listing's n files are looked at: what memory does not hold of
 * them is read from the table, in a transaction of its own, and held
 * until FileLedgerForgetListed.
 */
void
FileLedgerLookup(FileLedger *l, const FileEntry *files, int n)
{
	MemoryContext old = CurrentMemoryContext;
	MemoryContext tmp;
	Datum	   *ask;
	int			nask = 0;
	long		stale = 0;
	HASH_SEQ_STATUS seq;
	FileLedgerEntry *e;
	bool		xact = false;

	/* a full cache keeps the files the last listing named */
	hash_seq_init(&seq, l->done.hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		stale += e->pass != l->pass;
	if (table_count(&l->done) >= FILE_LEDGER_CACHE && stale > 0)
		table_rebuild(&l->done, listed_last, l->pass);
	if (l->open.peak >= FILE_LEDGER_SHRINK && table_count(&l->open) < l->open.peak / 4)
		table_rebuild(&l->open, NULL, 0);
	l->pass++;

	tmp = AllocSetContextCreate(CurrentMemoryContext, "iotstream file ledger paths",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(tmp);
	ask = palloc(sizeof(Datum) * FILE_LEDGER_LOOKUP);
	for (int i = 0; i <= n; i++)
	{
		if (i < n)
		{
			if ((e = FileLedgerGet(l, files[i].path)) != NULL)
				e->pass = l->pass;
			else
				ask[nask++] = CStringGetTextDatum(files[i].path);
		}
		if (nask == 0 || (nask < FILE_LEDGER_LOOKUP && i < n))
			continue;
		if (!xact)
		{
			MemoryContextSwitchTo(old);
			WorkerBeginXact("reading the file ledger");
			SPI_connect();
			MemoryContextSwitchTo(tmp);
			xact = true;
		}
		lookup_paths(l, ask, nask);
		MemoryContextSwitchTo(tmp);
		for (int k = 0; k < nask; k++)
			pfree(DatumGetPointer(ask[k]));
		nask = 0;
	}
	if (xact)
	{
		SPI_finish();
		WorkerCommitXact();
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
}

/* After a listing's files were looked at: those beyond the cache go. */
void
FileLedgerForgetListed(FileLedger *l)
{
	if (table_count(&l->listed) == 0)
		return;
	MemoryContextDelete(l->listed.cxt);
	table_init(&l->listed, l->listed.name, l->listed.parent);
}

/*
 * What the ledger holds of path; NULL for a file never seen, or one done
 * that is neither cached nor of the lookup under way.
 */
FileLedgerEntry *
FileLedgerGet(FileLedger *l, const char *path)
{
	FileLedgerEntry *e;

	if ((e = table_find(&l->open, path)) == NULL &&
		(e = table_find(&l->done, path)) == NULL)
		e = table_find(&l->listed, path);
	return e;
}

/* How many files memory holds. */
int64
FileLedgerCached(FileLedger *l)
{
	return table_count(&l->open) + table_count(&l->done) + table_count(&l->listed);
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

/*
 * Every file of the ledger, path and state, to fn: one query, read a
 * page at a time, so memory does not hold them all.
 */
void
FileLedgerScan(FileLedger *l, void (*fn) (void *arg, const char *path, FileState state), void *arg)
{
	MemoryContext old = CurrentMemoryContext;
	MemoryContext tmp;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	Portal		portal;

	WorkerBeginXact("reading the file ledger");
	SPI_connect();
	tmp = AllocSetContextCreate(old, "iotstream file ledger scan", ALLOCSET_DEFAULT_SIZES);
	args[0] = Int32GetDatum(l->source_id);
	portal = SPI_cursor_open_with_args(NULL, "SELECT path, state FROM iotstream.source_files WHERE source_id = $1",
									   1, argtypes, args, NULL, true, CURSOR_OPT_NO_SCROLL);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, FILE_LEDGER_LOOKUP);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			MemoryContext spi = MemoryContextSwitchTo(tmp);
			char	   *path = SPI_getvalue(tup, SPI_tuptable->tupdesc, 1);
			char	   *state = SPI_getvalue(tup, SPI_tuptable->tupdesc, 2);

			MemoryContextSwitchTo(old);
			fn(arg, path, state_of(state));
			MemoryContextSwitchTo(spi);
			MemoryContextReset(tmp);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	WorkerCommitXact();
	MemoryContextDelete(tmp);
	MemoryContextSwitchTo(old);
}

/*
 * After the commit of what FileLedgerWrite wrote: the ledger in memory.  A
 * file not done is held; a file done, failed or rewritten is cached if it
 * was, or if there is room, and forgotten otherwise: the table has it.
 */
void
FileLedgerRemember(FileLedger *l, const FileProgress *p, int n)
{
	for (int i = 0; i < n; i++)
	{
		const char *path = p[i].file->path;
		LedgerTable *from = &l->open;
		LedgerTable *to;
		FileLedgerEntry *e;
		FileLedgerEntry was;

		if ((e = table_find(from, path)) == NULL &&
			(e = table_find(from = &l->done, path)) == NULL &&
			(e = table_find(from = &l->listed, path)) == NULL)
			from = NULL;
		if (e)
			was = *e;
		else if (p[i].state == FILE_REWRITTEN)
			continue;			/* the etag its rows are of is the table's */
		else
			memset(&was, 0, sizeof(was));
		if (p[i].state == FILE_REWRITTEN)
			was.state = FILE_REWRITTEN;
		else
		{
			strlcpy(was.etag, p[i].file->etag, sizeof(was.etag));
			was.position = p[i].position;
			was.lines = p[i].lines;
			was.rows = p[i].reingest ? p[i].rows : was.rows + p[i].rows;
			was.state = p[i].state;
		}
		was.pass = l->pass;
		if (FileStateOpen(was.state))
			to = &l->open;
		else if (from == &l->done || table_count(&l->done) < FILE_LEDGER_CACHE)
			to = &l->done;
		else
			to = NULL;
		if (from && from != to)
			table_remove(from, e);
		if (to)
		{
			e = table_enter(to, path);
			was.path = e->path;
			*e = was;
		}
	}
}
