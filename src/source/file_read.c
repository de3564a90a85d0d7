/*-------------------------------------------------------------------------
 * file_read.c
 *		The records of a CSV or JSON-lines file, plain or gzip-compressed
 *		(and of Avro files, through file_avro.c).
 *
 * zlib reads both kinds (a file that is not gzip is read as it is), so a
 * position is always an offset in the uncompressed text, and a reader
 * resumes at a stored position with gzseek.  A JSON line is a record as
 * it is; a CSV record (quoted fields may span lines) is handed on split
 * into its unquoted fields, named by the header or the columns option
 * (empty unquoted fields null), which the decoder reads by name with no
 * JSON in between (decode_fields.c), and its raw text, for a dead letter.
 * A CSV record whose field count differs from the columns', or whose
 * quote never closes, carries the reason: it becomes a dead letter, with
 * the rest of the file stored.
 * Invariant: each record's end is the position just after it (its line
 * ending included), so storing it with the record's rows resumes after it.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"

#include <zlib.h>

#include "lib/stringinfo.h"
#include "utils/memutils.h"

#define READ_CHUNK	(256 * 1024)

/* Each reader's SourceFields gets a new id: its names may differ. */
static uint64 fieldsets_made = 0;

struct FileReader
{
	FileAvro   *avro;			/* an Avro file: file_avro.c reads it */
	gzFile		gz;
	FileFormat	fmt;
	char	  **names;			/* CSV column names */
	int			nnames;
	SourceFields fieldset;		/* the names, for the decoder */
	char	   *buf;
	size_t		cap;
	size_t		start;			/* first unread byte in buf */
	size_t		len;			/* bytes in buf */
	int64		buf_pos;		/* file position of buf[0] */
	int64		lines;			/* lines before buf[start] */
	bool		eof;
	char		error[256];
	StringInfoData unquoted;	/* one record's fields, unquoted */
	char	  **fields;			/* one record's fields, reused */
	int		   *lens;
	bool	   *quoted;
	int			maxfields;
};

/* More bytes after buf[len]; false at the end of the file or on an error. */
static bool
fill(FileReader *r)
{
	int			got;

	if (r->eof)
		return false;
	if (r->start > 0)
	{
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->buf_pos += r->start;
		r->len -= r->start;
		r->start = 0;
	}
	if (r->cap - r->len < READ_CHUNK / 2)
	{
		r->cap *= 2;
		r->buf = repalloc(r->buf, r->cap);
	}
	got = gzread(r->gz, r->buf + r->len, (unsigned) (r->cap - r->len));
	if (got < 0)
	{
		int			zerr;
		const char *msg = gzerror(r->gz, &zerr);

		snprintf(r->error, sizeof(r->error), "could not read: %s", msg ? msg : "unknown error");
		r->eof = true;
		return false;
	}
	if (got == 0)
	{
		r->eof = true;
		return false;
	}
	r->len += got;
	return true;
}

/*
 * Splits the CSV record at buf[start..] into fields, unquoting them in
 * a copy, each with a quote before and after it (the decoder's string
 * tokens span their quotes) and a NUL.  Returns the record's length (line ending included), 0
 * if the buffer does not hold all of it yet, -1 for an unclosed quote at
 * the end of the file (the rest is the record).  *nl counts its lines.
 */
static ssize_t
csv_split(FileReader *r, int *nfields, int *nl, bool at_eof)
{
	const char *p = r->buf + r->start;
	const char *end = r->buf + r->len;
	const char *q = p;
	char		d = r->fmt.delimiter;
	char		quote = r->fmt.quote;
	char	   *out;
	int			n = 0;

	*nl = 0;
	/* pass 1: find the end of the record */
	{
		bool		inq = false;

		while (q < end)
		{
			if (*q == quote)
				inq = !inq;
			else if (*q == '\n')
			{
				(*nl)++;
				if (!inq)
					break;
			}
			q++;
		}
		if (q == end)
		{
			if (!at_eof)
				return 0;
			if (inq)
				return -1;
		}
	}
	/* pass 2: the fields, unquoted, into the reader's scratch buffer */
	resetStringInfo(&r->unquoted);
	enlargeStringInfo(&r->unquoted, (int) (q - p) * 4 + 8);
	out = r->unquoted.data;
	{
		const char *s = p;
		const char *rec_end = q;
		char	   *o = out;

		if (rec_end > p && rec_end[-1] == '\r')
			rec_end--;
		for (;;)
		{
			bool		was_quoted = false;
			char	   *field;

			*o++ = '"';
			field = o;

			if (s < rec_end && *s == quote)
			{
				was_quoted = true;
				s++;
				while (s < rec_end)
				{
					if (*s == quote)
					{
						if (s + 1 < rec_end && s[1] == quote)
						{
							*o++ = quote;
							s += 2;
							continue;
						}
						s++;
						break;
					}
					*o++ = *s++;
				}
			}
			while (s < rec_end && *s != d)
				*o++ = *s++;	/* text after a closing quote is kept */
			if (n == r->maxfields)
			{
				r->maxfields *= 2;
				r->fields = repalloc(r->fields, sizeof(char *) * r->maxfields);
				r->lens = repalloc(r->lens, sizeof(int) * r->maxfields);
				r->quoted = repalloc(r->quoted, sizeof(bool) * r->maxfields);
			}
			r->lens[n] = (int) (o - field);
			*o++ = '"';
			*o++ = '\0';
			r->fields[n] = field;
			r->quoted[n] = was_quoted;
			n++;
			if (s >= rec_end)
				break;
			s++;				/* the delimiter */
		}
		r->unquoted.len = (int) (o - out);
	}
	*nfields = n;
	return (q < end ? q + 1 : q) - p;
}

/* Reads the header record: the column names. */
static bool
read_header(FileReader *r)
{
	for (;;)
	{
		int			nf,
					nl;
		ssize_t		len = csv_split(r, &nf, &nl, r->eof);

		if (len == 0 && fill(r))
			continue;
		if (len <= 0)
			return false;		/* an empty file, or nothing but a broken header */
		r->names = palloc(sizeof(char *) * nf);
		for (int i = 0; i < nf; i++)
			r->names[i] = pnstrdup(r->fields[i], r->lens[i]);
		r->nnames = nf;
		r->start += len;
		r->lines += nl;
		return true;
	}
}

/*
 * Opens fullpath to read from position, after lines lines (Avro: from the
 * block at position, past lines of its records, records read before it).
 * NULL, with the reason in errbuf, if it cannot be opened.
 */
FileReader *
FileReaderOpen(const char *fullpath, const FileFormat *fmt, int64 position, int64 lines,
			   int64 records, char *errbuf, size_t errlen)
{
	FileReader *r = palloc0(sizeof(FileReader));

	if (fmt->avro)
	{
		r->fmt = *fmt;
		r->avro = FileAvroOpen(fullpath, position, lines, records, fmt->headers, errbuf, errlen);
		if (r->avro == NULL)
		{
			pfree(r);
			return NULL;
		}
		return r;
	}
	r->gz = gzopen(fullpath, "rb");
	if (r->gz == NULL)
	{
		snprintf(errbuf, errlen, "could not open file \"%s\": %m", fullpath);
		pfree(r);
		return NULL;
	}
	gzbuffer(r->gz, READ_CHUNK);
	r->fmt = *fmt;
	r->cap = READ_CHUNK;
	r->buf = palloc(r->cap);
	r->maxfields = 16;
	r->fields = palloc(sizeof(char *) * r->maxfields);
	r->lens = palloc(sizeof(int) * r->maxfields);
	r->quoted = palloc(sizeof(bool) * r->maxfields);
	initStringInfo(&r->unquoted);

	if (!fmt->jsonl)
	{
		if (fmt->header && !read_header(r) && r->error[0] == '\0' && position == 0)
		{
			r->names = NULL;	/* an empty file: no records either */
			r->nnames = 0;
		}
		if (fmt->columns)
		{
			r->names = fmt->columns;
			r->nnames = fmt->ncolumns;
		}
		r->fieldset.id = ++fieldsets_made;
		r->fieldset.names = r->names;
		r->fieldset.nnames = r->nnames;
	}
	if (position > r->buf_pos + (int64) r->start)
	{
		/* resume: skip what is stored (zlib decompresses up to it) */
		if (gzseek(r->gz, position, SEEK_SET) < 0)
		{
			snprintf(errbuf, errlen, "could not seek in file \"%s\" to position " INT64_FORMAT,
					 fullpath, position);
			FileReaderClose(r);
			return NULL;
		}
		r->start = r->len = 0;
		r->buf_pos = position;
		r->eof = false;
		r->lines = lines;
	}
	if (r->error[0])
	{
		snprintf(errbuf, errlen, "%s", r->error);
		FileReaderClose(r);
		return NULL;
	}
	return r;
}

/*
 * The next record, its payload in cxt: 1, or 0 at the end of the file, or
 * -1 on a read error (FileReaderError says which).
 */
int
FileReaderNext(FileReader *r, FileRecord *rec, MemoryContext cxt)
{
	if (r->avro)
		return FileAvroNext(r->avro, rec, cxt);
	memset(rec, 0, sizeof(FileRecord));
	rec->timestamp_ms = -1;
	for (;;)
	{
		const char *p = r->buf + r->start;
		size_t		avail = r->len - r->start;

		if (r->fmt.jsonl)
		{
			const char *nl = memchr(p, '\n', avail);
			size_t		linelen;
			size_t		reclen;

			if (nl == NULL && !r->eof)
			{
				if (!fill(r) && r->error[0])
					return -1;
				continue;
			}
			if (nl == NULL && avail == 0)
				return r->error[0] ? -1 : 0;
			reclen = nl ? (size_t) (nl - p) + 1 : avail;
			linelen = nl ? (size_t) (nl - p) : avail;
			if (linelen > 0 && p[linelen - 1] == '\r')
				linelen--;
			r->start += reclen;
			r->lines++;
			if (linelen == 0)
				continue;		/* blank lines are no records */
			rec->payload = MemoryContextAlloc(cxt, linelen + 1);
			memcpy(rec->payload, p, linelen);
			rec->payload[linelen] = '\0';
			rec->len = linelen;
			rec->line = r->lines;
			rec->end = r->buf_pos + r->start;
			rec->lines_after = r->lines;
			return 1;
		}
		else
		{
			int			nf = 0,
						nl = 0;
			ssize_t		len;
			size_t		rawlen;
			bool		unclosed = false;

			if (avail == 0)
			{
				if (!fill(r))
					return r->error[0] ? -1 : 0;
				continue;
			}
			len = csv_split(r, &nf, &nl, r->eof);
			if (len == 0)
			{
				if (!fill(r) && r->error[0])
					return -1;
				continue;
			}
			if (len < 0)
			{
				len = avail;	/* an unclosed quote takes the rest */
				unclosed = true;
			}
			rec->line = r->lines + 1;
			r->lines += Max(nl, 1);
			r->start += len;
			/* a blank line is no record */
			if (nf == 1 && r->lens[0] == 0 && !r->quoted[0])
				continue;
			rawlen = len;
			while (rawlen > 0 && (p[rawlen - 1] == '\n' || p[rawlen - 1] == '\r'))
				rawlen--;
			if (unclosed)
				rec->error = "the CSV record has a quote that never closes";
			else if (r->names == NULL)
				rec->error = "the CSV file has no header to name its fields";
			else if (nf != r->nnames)
				rec->error = MemoryContextStrdup(cxt,
												 psprintf("the CSV record has %d fields, the header %d", nf, r->nnames));
			if (rec->error)
			{
				rec->payload = MemoryContextAlloc(cxt, rawlen + 1);
				memcpy(rec->payload, p, rawlen);
				rec->payload[rawlen] = '\0';
				rec->len = rawlen;
			}
			else
			{
				/* one chunk: the raw text, the fields, their pointers and lengths */
				size_t		ptrs = MAXALIGN(sizeof(char *) * nf + sizeof(int) * nf);
				char	   *chunk = MemoryContextAlloc(cxt, ptrs + r->unquoted.len + rawlen + 1);
				char	   *text = chunk + ptrs;
				char	   *raw = text + r->unquoted.len;

				rec->fields = (char **) chunk;
				rec->field_lens = (int *) (chunk + sizeof(char *) * nf);
				memcpy(text, r->unquoted.data, r->unquoted.len);
				for (int i = 0; i < nf; i++)
				{
					bool		isnull = r->lens[i] == 0 && !r->quoted[i];

					rec->fields[i] = isnull ? NULL : text + (r->fields[i] - r->unquoted.data);
					rec->field_lens[i] = r->lens[i];
				}
				memcpy(raw, p, rawlen);
				raw[rawlen] = '\0';
				rec->payload = raw;
				rec->len = rawlen;
				rec->fieldset = &r->fieldset;
			}
			rec->end = r->buf_pos + r->start;
			rec->lines_after = r->lines;
			return 1;
		}
	}
}

const char *
FileReaderError(FileReader *r)
{
	if (r->avro)
		return FileAvroError(r->avro);
	return r->error[0] ? r->error : NULL;
}

void
FileReaderClose(FileReader *r)
{
	if (r->avro)
	{
		FileAvroClose(r->avro);
		pfree(r);
		return;
	}
	if (r->gz)
		gzclose(r->gz);
	pfree(r->buf);
	pfree(r->fields);
	pfree(r->lens);
	pfree(r->quoted);
	pfree(r->unquoted.data);
	pfree(r);
}
