/*-------------------------------------------------------------------------
 * file_avro.c
 *		The records of an Avro object container file, read with avro-c
 *		(Debian's libavro), Event Hubs Capture files understood.
 *
 * A file whose records have a field Body (the Event Hubs Capture schema:
 * bytes, or null) gives that Body as the message payload (none: a dead
 * letter), for the decoder and the
 * mapping to read as JSON, and the record's SequenceNumber, Offset,
 * EnqueuedTimeUtc, SystemProperties and Properties as message headers
 * ($headers), EnqueuedTimeUtc also as its timestamp ($timestamp).  Any
 * other record is handed on as its JSON encoding.  A position is a record
 * count: a reader resumes by reading past that many records.  avro-c
 * cannot skip a block it cannot read, so a corrupt block ends the file
 * (failed, with avro-c's reason), the records before it stored.
 *
 * avro-c parses schemas with jansson, whose json_object() the server's own
 * SQL function json_object() would stand in for if libavro were linked
 * like the other libraries: it is loaded with dlopen(RTLD_DEEPBIND), so
 * that it and its libraries see their own symbols first.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"

#include <avro.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <time.h>

#include "utils/memutils.h"

/* the functions of libavro used here (the value methods are in its ifaces) */
static struct
{
	bool		tried;
	void	   *lib;
	int			(*file_reader) (const char *, avro_file_reader_t *);
	avro_schema_t (*get_writer_schema) (avro_file_reader_t);
	int			(*read_value) (avro_file_reader_t, avro_value_t *);
	int			(*reader_close) (avro_file_reader_t);
	avro_value_iface_t *(*class_from_schema) (avro_schema_t);
	int			(*value_new) (avro_value_iface_t *, avro_value_t *);
	void		(*value_decref) (avro_value_t *);
	int			(*value_to_json) (const avro_value_t *, int, char **);
	int			(*schema_decref) (avro_schema_t);
	const char *(*strerror) (void);
} Avro;

/* Loads libavro once; false, with the reason, if it cannot. */
static bool
avro_load(char *errbuf, size_t errlen)
{
	if (!Avro.tried)
	{
		Avro.tried = true;
		Avro.lib = dlopen("libavro.so", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
		if (Avro.lib == NULL)
			Avro.lib = dlopen("libavro.so.23", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
		if (Avro.lib)
		{
#define LOAD(field, name) (*(void **) &Avro.field = dlsym(Avro.lib, name))
			if (!LOAD(file_reader, "avro_file_reader") ||
				!LOAD(get_writer_schema, "avro_file_reader_get_writer_schema") ||
				!LOAD(read_value, "avro_file_reader_read_value") ||
				!LOAD(reader_close, "avro_file_reader_close") ||
				!LOAD(class_from_schema, "avro_generic_class_from_schema") ||
				!LOAD(value_new, "avro_generic_value_new") ||
				!LOAD(value_decref, "avro_value_decref") ||
				!LOAD(value_to_json, "avro_value_to_json") ||
				!LOAD(schema_decref, "avro_schema_decref") ||
				!LOAD(strerror, "avro_strerror"))
				Avro.lib = NULL;
#undef LOAD
		}
	}
	if (Avro.lib == NULL)
		snprintf(errbuf, errlen, "libavro (avro-c) could not be loaded; install Debian's libavro23");
	return Avro.lib != NULL;
}

struct FileAvro
{
	avro_file_reader_t reader;
	avro_schema_t schema;
	avro_value_iface_t *iface;
	avro_value_t value;
	bool		capture;		/* the records have a Body */
	bool		headers;		/* Capture's metadata as headers, not just the time */
	bool		empty;			/* a file of no bytes: no records */
	int64		records;		/* read so far */
	char		error[256];
};

static const char *const capture_fields[] = {
	"SequenceNumber", "Offset", "EnqueuedTimeUtc", "SystemProperties", "Properties"
};

/* Opens path to read after position records; NULL with the reason. */
FileAvro *
FileAvroOpen(const char *path, int64 position, bool headers, char *errbuf, size_t errlen)
{
	FileAvro   *a;
	avro_value_t body;

	struct stat st;

	if (!avro_load(errbuf, errlen))
		return NULL;
	a = palloc0(sizeof(FileAvro));
	a->headers = headers;
	/* a writer with no record to write may leave no bytes at all (avsc does) */
	if (stat(path, &st) == 0 && st.st_size == 0)
	{
		a->empty = true;
		return a;
	}
	if (Avro.file_reader(path, &a->reader) != 0)
	{
		snprintf(errbuf, errlen, "not an Avro object container file: %s", Avro.strerror());
		pfree(a);
		return NULL;
	}
	a->schema = Avro.get_writer_schema(a->reader);
	a->iface = Avro.class_from_schema(a->schema);
	if (a->iface == NULL || Avro.value_new(a->iface, &a->value) != 0)
	{
		snprintf(errbuf, errlen, "unsupported Avro schema: %s", Avro.strerror());
		Avro.reader_close(a->reader);
		pfree(a);
		return NULL;
	}
	a->capture = avro_value_get_type(&a->value) == AVRO_RECORD &&
		avro_value_get_by_name(&a->value, "Body", &body, NULL) == 0;
	while (a->records < position)
	{
		if (Avro.read_value(a->reader, &a->value) != 0)
		{
			snprintf(errbuf, errlen, "could not read to record " INT64_FORMAT ": %s",
					 position, Avro.strerror());
			FileAvroClose(a);
			return NULL;
		}
		a->records++;
	}
	return a;
}

/* "12/7/2026 11:00:00 AM" (Capture's EnqueuedTimeUtc) in ms since 1970; -1 if not. */
static int64
capture_time_ms(const char *s)
{
	int			mon,
				day,
				year,
				h,
				m,
				sec;
	char		ampm[3] = "";
	struct tm	tm = {0};

	if (sscanf(s, "%d/%d/%d %d:%d:%d %2s", &mon, &day, &year, &h, &m, &sec, ampm) < 6)
		return -1;
	if (ampm[0] == 'P' && h < 12)
		h += 12;
	else if (ampm[0] == 'A' && h == 12)
		h = 0;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	return (int64) timegm(&tm) * 1000;
}

/* A field as header text: strings as they are, others as JSON. */
static char *
field_text(avro_value_t *f, MemoryContext cxt)
{
	const char *str;
	size_t		size;
	int64_t		l;
	char	   *json;
	char	   *r;

	switch (avro_value_get_type(f))
	{
		case AVRO_STRING:
			avro_value_get_string(f, &str, &size);
			return MemoryContextStrdup(cxt, str);
		case AVRO_INT64:
			avro_value_get_long(f, &l);
			r = MemoryContextAlloc(cxt, 24);
			snprintf(r, 24, INT64_FORMAT, (int64) l);
			return r;
		default:
			if (Avro.value_to_json(f, 1, &json) != 0)
				return NULL;
			r = MemoryContextStrdup(cxt, json);
			free(json);
			return r;
	}
}

/* The next record: 1, 0 at the end, -1 on an error (FileAvroError). */
int
FileAvroNext(FileAvro *a, FileRecord *rec, MemoryContext cxt)
{
	int			rc;

	if (a->empty)
		return 0;
	rc = Avro.read_value(a->reader, &a->value);
	if (rc == EOF)
		return 0;
	if (rc != 0)
	{
		snprintf(a->error, sizeof(a->error), "could not read Avro record " INT64_FORMAT ": %s",
				 a->records + 1, Avro.strerror());
		return -1;
	}
	a->records++;
	memset(rec, 0, sizeof(FileRecord));
	rec->line = a->records;
	rec->end = a->records;
	rec->lines_after = a->records;
	rec->timestamp_ms = -1;
	if (a->capture)
	{
		avro_value_t f;
		const void *buf = NULL;
		size_t		size = 0;
		SourceHeader *h = MemoryContextAllocZero(cxt, sizeof(SourceHeader) * lengthof(capture_fields));

		if (avro_value_get_by_name(&a->value, "Body", &f, NULL) == 0)
		{
			avro_value_t branch;

			/* Capture's Body is ["null", "bytes"] */
			if (avro_value_get_type(&f) == AVRO_UNION &&
				avro_value_get_current_branch(&f, &branch) == 0)
				f = branch;
			if (avro_value_get_type(&f) == AVRO_BYTES)
				avro_value_get_bytes(&f, &buf, &size);
			else if (avro_value_get_type(&f) == AVRO_STRING)
				avro_value_get_string(&f, (const char **) &buf, &size);
		}
		if (buf != NULL)
		{
			rec->payload = MemoryContextAlloc(cxt, size + 1);
			if (size > 0)
				memcpy(rec->payload, buf, size);
			rec->payload[size] = '\0';
			rec->len = size;
		}
		for (int i = 0; i < lengthof(capture_fields); i++)
		{
			char	   *v = NULL;

			/* without $headers in the mapping, only the time is read */
			if (!a->headers && i != 2)
				continue;

			if (avro_value_get_by_name(&a->value, capture_fields[i], &f, NULL) == 0)
			{
				/* a union (nullable) field: its branch */
				if (avro_value_get_type(&f) == AVRO_UNION)
				{
					avro_value_t branch;

					if (avro_value_get_current_branch(&f, &branch) == 0)
						f = branch;
				}
				if (avro_value_get_type(&f) != AVRO_NULL)
					v = field_text(&f, cxt);
			}
			h[rec->nheaders].name = capture_fields[i];
			h[rec->nheaders].value = v;
			h[rec->nheaders].len = v ? strlen(v) : 0;
			rec->nheaders++;
			if (i == 2 && v)
				rec->timestamp_ms = capture_time_ms(v);
		}
		rec->headers = h;
		if (!a->headers)
			rec->nheaders = 0;
	}
	else
	{
		char	   *json;

		if (Avro.value_to_json(&a->value, 1, &json) != 0)
		{
			snprintf(a->error, sizeof(a->error), "could not encode Avro record " INT64_FORMAT ": %s",
					 a->records, Avro.strerror());
			return -1;
		}
		rec->payload = MemoryContextStrdup(cxt, json);
		rec->len = strlen(json);
		free(json);
	}
	return 1;
}

const char *
FileAvroError(FileAvro *a)
{
	return a->error[0] ? a->error : NULL;
}

void
FileAvroClose(FileAvro *a)
{
	if (a->empty)
	{
		pfree(a);
		return;
	}
	Avro.value_decref(&a->value);
	avro_value_iface_decref(a->iface);
	Avro.schema_decref(a->schema);
	Avro.reader_close(a->reader);
	pfree(a);
}
