/*-------------------------------------------------------------------------
 * file_source.c
 *		The file source: files of a folder, read once, as an implementation
 *		of the source interface (source.h).
 *
 * The worker loop drives it as it drives Kafka.  A poll lists the folder
 * (local, file_list.c, or a blob container, file_blob.c)
 * (at most every poll_ms), takes the files whose ledger entry says they
 * are not done, and hands out their records as messages: the topic is the
 * file's path, the partition 0, the offset the record's line number, the
 * payload a JSON line, or a CSV record split into named fields (file_read.c), so
 * the decoder, the mapping, dead letters and dedup work as for any source.
 * A batch's position of a file is the byte after its last record; the
 * ledger (file_ledger.c) stores it, with the file's version and state, in
 * the batch's transaction (in_batch), which is what makes a file read
 * exactly once and a crash resume mid-file.
 *
 * Invariant: every message handed out since the last release belongs to
 * the batch the worker stores next, so a batch's files and positions are
 * known here without reading the messages back.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define FILE_POLL_MS_DEFAULT	1000

/* One file's part of the current batch. */
typedef struct BatchFile
{
	FileEntry	file;
	FileProgress progress;
	SourceFields *fieldset;		/* CSV: its names, as long as its messages */
} BatchFile;

typedef struct FileSource
{
	char	   *root;			/* the folder, if local */
	FileBlob   *blob;			/* else the container */
	char	   *tmpfile;		/* where a blob is fetched to be read */
	char	   *pattern;
	FileFormat	fmt;
	bool		reingest;		/* on_rewrite 'reingest', else 'skip' */
	int			poll_ms;
	FileLedger *ledger;
	MemoryContext cxt;			/* lives as long as the source */
	MemoryContext msg_cxt;		/* the messages handed out: reset on release */
	MemoryContext list_cxt;		/* the last listing */

	FileListResume resume;		/* date-laid folders: where listing goes on */

	FileEntry  *todo;			/* files of the last listing to read */
	bool	   *todo_reingest;	/* whose rows replace an earlier version's */
	int			ntodo;
	int			next;
	TimestampTz listed_at;

	FileReader *reader;			/* the file being read, or NULL */
	FileEntry	cur;
	bool		cur_reingest;	/* its rows replace an earlier version's */
	char		cur_path[MAXPGPATH];

	BatchFile  *batch;			/* the files of the messages handed out */
	int			nbatch;
	int			maxbatch;

	char		last_error[512];
	int64		nerrors;
} FileSource;

static void resume_from_ledger(FileSource *s);

static void
set_error(FileSource *s, const char *msg)
{
	strlcpy(s->last_error, msg, sizeof(s->last_error));
	s->nerrors++;
}

static const char *
prop(const SourceProperty *props, int n, const char *name)
{
	for (int i = n - 1; i >= 0; i--)
		if (strcmp(props[i].name, name) == 0)
			return props[i].value;
	return NULL;
}

/* The names of a JSON array of strings (the columns option). */
static void
parse_columns(FileSource *s, const char *json)
{
	Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	s->fmt.columns = palloc(sizeof(char *) * (JB_ROOT_COUNT(jb) + 1));
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM && v.type == jbvString)
			s->fmt.columns[s->fmt.ncolumns++] = pnstrdup(v.val.string.val, v.val.string.len);
}

static void *
file_open(const SourceProperty *props, int nprops, const char *const *streams, int nstreams,
		  const SourceCallbacks *cb, bool headers, char *errbuf, size_t errlen)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "iotstream file source",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	FileSource *s = palloc0(sizeof(FileSource));
	const char *location = prop(props, nprops, "bootstrap.servers");
	const char *v;

	s->cxt = cxt;
	s->msg_cxt = AllocSetContextCreate(cxt, "iotstream file messages", ALLOCSET_DEFAULT_SIZES);
	s->list_cxt = AllocSetContextCreate(cxt, "iotstream file listing", ALLOCSET_DEFAULT_SIZES);
	if (location == NULL)
	{
		snprintf(errbuf, errlen, "the source has no location");
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		return NULL;
	}
	if (strncmp(location, "file://", 7) == 0)
	{
		s->root = pstrdup(location + 7);
		while (strlen(s->root) > 1 && s->root[strlen(s->root) - 1] == '/')
			s->root[strlen(s->root) - 1] = '\0';
	}
	else
	{
		v = prop(props, nprops, "file.list_page");
		s->blob = FileBlobOpen(location, prop(props, nprops, "file.credential"),
							   v ? atoi(v) : 0, cxt);
		(void) MakePGDirectory(PG_TEMP_FILES_DIR);
		s->tmpfile = psprintf("%s/iotstream_file_%d", PG_TEMP_FILES_DIR, MyProcPid);
	}
	s->pattern = pstrdup(nstreams > 0 ? streams[0] : "**/*");
	v = prop(props, nprops, "file.format");
	s->fmt.jsonl = v && strcmp(v, "jsonl") == 0;
	s->fmt.avro = v && strcmp(v, "avro") == 0;
	s->fmt.headers = headers;
	v = prop(props, nprops, "file.header");
	s->fmt.header = v == NULL || strcmp(v, "true") == 0;
	v = prop(props, nprops, "file.delimiter");
	s->fmt.delimiter = v && v[0] ? v[0] : ',';
	v = prop(props, nprops, "file.quote");
	s->fmt.quote = v && v[0] ? v[0] : '"';
	if ((v = prop(props, nprops, "file.columns")) != NULL)
		parse_columns(s, v);
	v = prop(props, nprops, "file.on_rewrite");
	s->reingest = v && strcmp(v, "reingest") == 0;
	v = prop(props, nprops, "file.poll_ms");
	s->poll_ms = v ? atoi(v) : FILE_POLL_MS_DEFAULT;
	v = prop(props, nprops, "file.date_levels");
	s->resume.date_levels = v ? atoi(v) : 0;
	s->maxbatch = 16;
	s->batch = palloc(sizeof(BatchFile) * s->maxbatch);
	s->ledger = FileLedgerLoad(prop(props, nprops, "group.id"),
							   prop(props, nprops, "file.path_column"), cxt);
	if (s->resume.date_levels > 0 && strstr(s->pattern, "**") == NULL)
		resume_from_ledger(s);
	MemoryContextSwitchTo(old);
	return s;
}

static int
file_fd(void *src)
{
	return -1;					/* the worker's 1 s wait paces the listing */
}

/* The batch's entry for the file being read, made on its first message. */
static BatchFile *
batch_file(FileSource *s)
{
	BatchFile  *b;

	if (s->nbatch > 0 && strcmp(s->batch[s->nbatch - 1].file.path, s->cur.path) == 0)
		return &s->batch[s->nbatch - 1];
	if (s->nbatch == s->maxbatch)
	{
		s->maxbatch *= 2;
		s->batch = repalloc(s->batch, sizeof(BatchFile) * s->maxbatch);
		/* each file's progress points at its entry, which moved */
		for (int i = 0; i < s->nbatch; i++)
			s->batch[i].progress.file = &s->batch[i].file;
	}
	b = &s->batch[s->nbatch++];
	memset(b, 0, sizeof(BatchFile));
	b->file = s->cur;
	b->file.path = MemoryContextStrdup(s->msg_cxt, s->cur.path);
	b->progress.file = &b->file;
	b->progress.state = FILE_IN_PROGRESS;
	b->progress.reingest = s->cur_reingest;
	return b;
}

/* The current file is over: done, or failed with error. */
static void
finish_file(FileSource *s, FileState state, const char *error)
{
	BatchFile  *b = NULL;

	if (s->nbatch > 0 && strcmp(s->batch[s->nbatch - 1].file.path, s->cur.path) == 0)
		b = &s->batch[s->nbatch - 1];
	if (b)
	{
		/* the batch that holds its last records says so */
		b->progress.state = state;
		b->progress.error = error ? MemoryContextStrdup(s->msg_cxt, error) : NULL;
	}
	else
	{
		/* nothing of it waits: an empty file, or read to its end before */
		FileLedgerEntry *e = FileLedgerGet(s->ledger, s->cur.path);
		FileProgress p = {&s->cur, 0, 0, 0, state, error, s->cur_reingest};

		if (e && !s->cur_reingest)
		{
			p.position = e->position;
			p.lines = e->lines;
		}
		FileLedgerWrite(s->ledger, &p, 1, true);
		FileLedgerRemember(s->ledger, &p, 1);
	}
	if (error)
	{
		char		msg[600];

		snprintf(msg, sizeof(msg), "file \"%s\": %s", s->cur.path, error);
		set_error(s, msg);
	}
	if (s->reader)
		FileReaderClose(s->reader);
	s->reader = NULL;
	if (s->tmpfile)
		(void) unlink(s->tmpfile);
}

/* Whether path has records in the batch, or is being read. */
static bool
in_batch(FileSource *s, const char *path)
{
	if (s->reader && strcmp(s->cur.path, path) == 0)
		return true;
	for (int i = 0; i < s->nbatch; i++)
		if (strcmp(s->batch[i].file.path, path) == 0)
			return true;
	return false;
}

/* How many folders of a path before its dates are its group. */
static int
group_depth(FileSource *s)
{
	int			nsegs = 1;

	for (const char *p = s->pattern; *p; p++)
		nsegs += *p == '/';
	return Max(nsegs - 1 - s->resume.date_levels, 0);
}

/* The index of group in the resume, added (with date) if it is new. */
static int
resume_group(FileListResume *r, char *group, char *date, bool *added)
{
	int			g;

	for (g = 0; g < r->n; g++)
		if (strcmp(r->groups[g], group) == 0)
		{
			*added = false;
			return g;
		}
	r->groups = r->n ? repalloc(r->groups, sizeof(char *) * (r->n + 1)) : palloc(sizeof(char *));
	r->dates = r->n ? repalloc(r->dates, sizeof(char *) * (r->n + 1)) : palloc(sizeof(char *));
	r->groups[g] = group;
	r->dates[g] = date;
	r->n++;
	*added = true;
	return g;
}

/*
 * Where the next listing of date-laid folders goes on from: per group, the
 * date of its newest file, or of its oldest file still to read (a file
 * not listed again would not be read).
 */
static void
update_resume(FileSource *s, const FileEntry *all, int n)
{
	MemoryContext old = MemoryContextSwitchTo(s->cxt);
	FileListResume *r = &s->resume;
	int			depth = group_depth(s);
	bool	   *held = palloc0(sizeof(bool) * (r->n + n));	/* by a file to read */

	/* the listing is sorted: a group's first file to read is its oldest */
	for (int i = 0; i < n; i++)
	{
		char	   *group;
		char	   *date;
		bool		todo = false;
		bool		added;
		int			g;

		(void) FilePathSplit(all[i].path, depth, r->date_levels, &group, &date);
		for (int k = 0; k < s->ntodo && !todo; k++)
			todo = strcmp(s->todo[k].path, all[i].path) == 0;
		g = resume_group(r, group, date, &added);
		if (added)
		{
			held[g] = todo;
			continue;
		}
		pfree(group);
		if (!held[g] && strcmp(date, r->dates[g]) > 0)
		{
			pfree(r->dates[g]);
			r->dates[g] = date;
		}
		else
			pfree(date);
		held[g] = held[g] || todo;
	}
	pfree(held);
	MemoryContextSwitchTo(old);
}

/* The state of resume_from_ledger's scan of the ledger. */
typedef struct ResumeScan
{
	FileSource *s;
	int			depth;
	char	  **oldest_todo;	/* by group: the date of its oldest file to read */
	int			ngroups;		/* room in oldest_todo */
} ResumeScan;

static void
resume_file(void *arg, const char *path, FileState state)
{
	ResumeScan *rs = arg;
	FileListResume *r = &rs->s->resume;
	char	   *group;
	char	   *date;
	bool		todo = FileStateOpen(state);
	bool		added;
	int			g;

	if (!FilePatternMatches(rs->s->pattern, path))
		return;
	(void) FilePathSplit(path, rs->depth, r->date_levels, &group, &date);
	g = resume_group(r, group, date, &added);
	if (g >= rs->ngroups)
	{
		rs->oldest_todo = repalloc(rs->oldest_todo, sizeof(char *) * rs->ngroups * 2);
		memset(rs->oldest_todo + rs->ngroups, 0, sizeof(char *) * rs->ngroups);
		rs->ngroups *= 2;
	}
	if (!added)
	{
		pfree(group);
		if (strcmp(date, r->dates[g]) > 0)
		{
			pfree(r->dates[g]);
			r->dates[g] = pstrdup(date);
		}
	}
	if (todo && (rs->oldest_todo[g] == NULL || strcmp(date, rs->oldest_todo[g]) < 0))
		rs->oldest_todo[g] = pstrdup(date);
	if (!added)
		pfree(date);
}

/*
 * Where a (re)started worker lists from: the same dates, from the files
 * of the ledger (which commits with their rows) instead of a listing, so
 * a restart does not list from the root.  The ledger's files are read
 * from its table, a page at a time.
 */
static void
resume_from_ledger(FileSource *s)
{
	FileListResume *r = &s->resume;
	ResumeScan	rs;

	rs.s = s;
	rs.depth = group_depth(s);
	rs.ngroups = 16;
	rs.oldest_todo = palloc0(sizeof(char *) * rs.ngroups);
	FileLedgerScan(s->ledger, resume_file, &rs);
	for (int g = 0; g < r->n; g++)
		if (rs.oldest_todo[g])
		{
			pfree(r->dates[g]);
			r->dates[g] = rs.oldest_todo[g];
		}
	pfree(rs.oldest_todo);
}

/*
 * Lists the folder again (if poll_ms has passed): the files to read are
 * those the ledger has not seen done in their current version.  New files
 * are written as seen; a done file whose version changed is read again
 * (reingest) or marked rewritten.
 */
static void
list_files(FileSource *s)
{
	TimestampTz now = GetCurrentTimestamp();
	FileEntry  *all;
	int			n;
	FileProgress *seen;
	int			nseen = 0;

	MemoryContext old;

	if (s->listed_at != 0 && !TimestampDifferenceExceeds(s->listed_at, now, s->poll_ms))
		return;
	s->listed_at = now;
	MemoryContextReset(s->list_cxt);
	old = MemoryContextSwitchTo(s->list_cxt);
	if (s->blob)
	{
		char		errbuf[512];

		all = FileBlobList(s->blob, s->pattern, &s->resume, &n, errbuf, sizeof(errbuf));
		if (n == 0)
			all = palloc(sizeof(FileEntry));
		if (n < 0)
		{
			set_error(s, errbuf);
			s->todo = NULL;
			s->ntodo = s->next = 0;
			MemoryContextSwitchTo(old);
			return;				/* the ledger stays as it is: try again later */
		}
	}
	else
		all = FileListLocal(s->root, s->pattern, &s->resume, &n);
	s->todo = palloc(sizeof(FileEntry) * Max(n, 1));
	s->todo_reingest = palloc0(sizeof(bool) * Max(n, 1));
	seen = palloc(sizeof(FileProgress) * Max(n, 1));
	s->ntodo = s->next = 0;
	FileLedgerLookup(s->ledger, all, n);
	for (int i = 0; i < n; i++)
	{
		FileLedgerEntry *e = FileLedgerGet(s->ledger, all[i].path);
		bool		same = e && strcmp(e->etag, all[i].etag) == 0;

		/* a file of the batch not yet stored: the ledger will say after */
		if (in_batch(s, all[i].path))
			continue;
		if (e == NULL)
		{
			FileProgress p = {&all[i], 0, 0, 0, FILE_SEEN, NULL, false};

			seen[nseen++] = p;
			s->todo[s->ntodo++] = all[i];
		}
		else if (same && FileStateOpen(e->state))
			s->todo[s->ntodo++] = all[i];
		else if (!same && s->reingest && !FileStateOpen(e->state))
		{
			/* the ledger may not hold it by the time it is read */
			s->todo_reingest[s->ntodo] = true;
			s->todo[s->ntodo++] = all[i];
		}
		else if (!same && FileStateOpen(e->state))
			s->todo[s->ntodo++] = all[i];	/* changed before it was done: read on */
		else if (!same && e->state == FILE_DONE)
		{
			FileProgress p = {&all[i], 0, 0, 0, FILE_REWRITTEN,
				psprintf("rewritten after it was read (now %s); its rows are of the earlier version", all[i].etag),
			false};

			seen[nseen++] = p;
		}
	}
	FileLedgerWrite(s->ledger, seen, nseen, true);
	FileLedgerRemember(s->ledger, seen, nseen);
	FileLedgerForgetListed(s->ledger);
	MemoryContextSwitchTo(old);
	if (s->resume.date_levels > 0 && strstr(s->pattern, "**") == NULL)
		update_resume(s, all, n);
}

/* Opens the next file to read; false if there is none. */
static bool
next_file(FileSource *s)
{
	char		errbuf[512];

	for (;;)
	{
		FileEntry  *f;
		FileLedgerEntry *e;
		char	   *full;
		int64		position = 0,
					lines = 0,
					records = 0;

		if (s->next >= s->ntodo)
		{
			list_files(s);
			if (s->next >= s->ntodo)
				return false;
		}
		f = &s->todo[s->next++];
		e = FileLedgerGet(s->ledger, f->path);
		s->cur = *f;
		strlcpy(s->cur_path, f->path, sizeof(s->cur_path));
		s->cur.path = s->cur_path;
		s->cur_reingest = s->todo_reingest[s->next - 1];
		if (e && !s->cur_reingest && e->state == FILE_IN_PROGRESS)
		{
			position = e->position;
			lines = e->lines;
			records = e->rows;
		}
		if (s->blob)
		{
			/* fetched whole; a failure leaves it to the next listing */
			if (!FileBlobFetch(s->blob, f, s->tmpfile, errbuf, sizeof(errbuf)))
			{
				set_error(s, errbuf);
				continue;
			}
			full = pstrdup(s->tmpfile);
		}
		else
			full = psprintf("%s/%s", s->root, f->path);
		{
			/* the reader lives across batches, its records only until release */
			MemoryContext old = MemoryContextSwitchTo(s->cxt);

			s->reader = FileReaderOpen(full, &s->fmt, position, lines, records, errbuf, sizeof(errbuf));
			MemoryContextSwitchTo(old);
		}
		pfree(full);
		if (s->reader != NULL)
			return true;
		finish_file(s, FILE_FAILED, errbuf);
	}
}

static int
file_poll(void *src, SourceMessage *out, int max)
{
	FileSource *s = src;
	MemoryContext old = MemoryContextSwitchTo(s->msg_cxt);
	int			got = 0;

	while (got < max)
	{
		FileRecord rec;
		int			r;
		BatchFile  *b;
		SourceMessage *m;

		if (s->reader == NULL && !next_file(s))
			break;
		r = FileReaderNext(s->reader, &rec, s->msg_cxt);
		if (r <= 0)
		{
			finish_file(s, r == 0 ? FILE_DONE : FILE_FAILED,
						r == 0 ? NULL : FileReaderError(s->reader));
			continue;
		}
		b = batch_file(s);
		b->progress.position = rec.end;
		b->progress.lines = rec.lines_after;
		b->progress.rows++;
		m = &out[got++];
		memset(m, 0, sizeof(SourceMessage));
		m->payload = rec.payload;
		m->payload_len = rec.len;
		m->topic = b->file.path;
		m->partition = 0;
		m->offset = rec.line;
		m->timestamp_ms = rec.timestamp_ms >= 0 ? rec.timestamp_ms : s->cur.mtime_ns / 1000000;
		m->headers = rec.headers;
		m->nheaders = rec.nheaders;
		if (rec.fieldset && b->fieldset == NULL)
		{
			/* the reader may close before the batch is stored */
			b->fieldset = palloc(sizeof(SourceFields));
			*b->fieldset = *rec.fieldset;
			b->fieldset->names = palloc(sizeof(char *) * rec.fieldset->nnames);
			for (int i = 0; i < rec.fieldset->nnames; i++)
				b->fieldset->names[i] = pstrdup(rec.fieldset->names[i]);
		}
		m->fieldset = b->fieldset;
		m->fields = rec.fields;
		m->field_lens = rec.field_lens;
		m->error = rec.error;
	}
	MemoryContextSwitchTo(old);
	return got;
}

static int
file_positions(void *src, const SourceMessage *msgs, int n, SourcePosition *out)
{
	FileSource *s = src;
	int			k = 0;

	for (int i = 0; i < s->nbatch; i++)
	{
		if (s->batch[i].progress.rows == 0)
			continue;
		out[k].topic = s->batch[i].file.path;
		out[k].partition = 0;
		out[k].offset = s->batch[i].progress.position;
		k++;
	}
	return k;
}

static int64
file_end_offset(void *src, const char *topic, int32 partition)
{
	FileSource *s = src;
	size_t		len = strlen(topic);

	if ((len > 3 && strcmp(topic + len - 3, ".gz") == 0) || s->fmt.avro)
		return -1;				/* positions are not bytes of the file */
	for (int i = 0; i < s->nbatch; i++)
		if (strcmp(s->batch[i].file.path, topic) == 0)
			return s->batch[i].file.size;
	return -1;
}

static bool
file_drained(void *src, const char *topic, int32 partition)
{
	return true;
}

/* In the batch's transaction: the ledger moves with the rows. */
static void
file_in_batch(void *src, const SourcePosition *positions, int n)
{
	FileSource *s = src;
	FileProgress *p = palloc(sizeof(FileProgress) * Max(s->nbatch, 1));

	for (int i = 0; i < s->nbatch; i++)
		p[i] = s->batch[i].progress;
	FileLedgerWrite(s->ledger, p, s->nbatch, false);
}

static void
file_ack(void *src, const SourcePosition *positions, int n)
{
	FileSource *s = src;

	for (int i = 0; i < s->nbatch; i++)
	{
		FileLedgerRemember(s->ledger, &s->batch[i].progress, 1);
		/* the earlier version's rows are gone: later batches add to it */
		if (strcmp(s->batch[i].file.path, s->cur.path) == 0)
			s->cur_reingest = false;
	}
}

static void
file_release(void *src)
{
	FileSource *s = src;

	s->nbatch = 0;
	MemoryContextReset(s->msg_cxt);	/* the reader lives in cxt */
}

static const char *
file_last_error(void *src, int64 *count)
{
	FileSource *s = src;

	*count = s->nerrors;
	return s->nerrors ? s->last_error : NULL;
}

static void
file_close(void *src)
{
	FileSource *s = src;

	if (s->reader)
		FileReaderClose(s->reader);
	if (s->blob)
		FileBlobClose(s->blob);
	if (s->tmpfile)
		(void) unlink(s->tmpfile);
	MemoryContextDelete(s->cxt);
}

/* How many files the ledger holds in memory. */
static int64
file_cached(void *src)
{
	FileSource *s = src;

	return FileLedgerCached(s->ledger);
}

/* An idle worker polls again when the next listing is due. */
static long
file_idle_ms(void *src)
{
	FileSource *s = src;
	TimestampTz due = TimestampTzPlusMilliseconds(s->listed_at, s->poll_ms);

	return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due);
}

const SourceOps FileSourceOps = {
	.kind = "file",
	.open = file_open,
	.fd = file_fd,
	.idle_ms = file_idle_ms,
	.poll = file_poll,
	.positions = file_positions,
	.end_offset = file_end_offset,
	.drained = file_drained,
	.in_batch = file_in_batch,
	.ack = file_ack,
	.release = file_release,
	.last_error = file_last_error,
	.close = file_close,
	.cached = file_cached,
};
