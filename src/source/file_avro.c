/*-------------------------------------------------------------------------
 * file_avro.c
 *		The records of an Avro object container file, decoded with avro-c
 *		(Debian's libavro), Event Hubs Capture files understood.
 *
 * A file whose records have a field Body (the Event Hubs Capture schema:
 * bytes, or null) gives that Body as the message payload (none: a dead
 * letter), for the decoder and the mapping to read as JSON, and the
 * record's SequenceNumber, Offset, EnqueuedTimeUtc, SystemProperties and
 * Properties as message headers ($headers), EnqueuedTimeUtc also as its
 * timestamp ($timestamp).  Any other record is handed on as its JSON
 * encoding.  The blocks come from file_avro_block.c; a corrupt block is
 * one dead letter (its reason, its offset, its first bytes), and the file
 * goes on after it.
 *
 * A position is a block's offset, and "lines" the records of that block
 * already read: a reader resumes at a block, past that many records.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"
#include "source/file_avro.h"

#include <sys/stat.h>

#include "utils/memutils.h"

struct FileAvro
{
	const AvroLib *lib;
	AvroBlocks *blocks;
	avro_schema_t schema;		/* the writer's, owned by blocks */
	avro_schema_t projection;	/* Capture without $headers: Body and the time */
	avro_value_iface_t *iface;
	avro_value_t value;			/* a record, of projection if there is one */
	avro_value_iface_t *resolver;	/* reads the writer's records into value */
	avro_value_t resolved;
	avro_value_t *target;		/* &resolved, or &value */
	avro_reader_t reader;		/* the current block's records */
	AvroBlock	block;
	int64		block_read;		/* its records read */
	int64		next;			/* the offset of the block after it */
	int64		skip;			/* records of the first block already stored */
	bool		capture;		/* the records have a Body */
	bool		headers;		/* Capture's metadata as headers, not just the time */
	bool		empty;			/* a file of no bytes: no records */
	int			body_index;
	int			field_index[5]; /* of capture_fields, -1 if absent */
	int64		records;		/* read so far (a corrupt block counts one) */
	char		error[256];
};

static const char *const capture_fields[] = {
	"SequenceNumber", "Offset", "EnqueuedTimeUtc", "SystemProperties", "Properties"
};

/*
 * Opens path to read from the block at position (0: the first), past
 * in_block of its records; records were read before.  NULL with the reason.
 */
FileAvro *
FileAvroOpen(const char *path, int64 position, int64 in_block, int64 records,
			 bool headers, char *errbuf, size_t errlen)
{
	FileAvro   *a;
	avro_value_t f;
	size_t		index;
	int64		first;

	struct stat st;

	a = palloc0(sizeof(FileAvro));
	a->headers = headers;
	/* a writer with no record to write may leave no bytes at all (avsc does) */
	if (stat(path, &st) == 0 && st.st_size == 0)
	{
		a->empty = true;
		return a;
	}
	a->blocks = AvroBlocksOpen(path, &a->schema, &first, errbuf, errlen);
	if (a->blocks == NULL)
	{
		pfree(a);
		return NULL;
	}
	a->lib = AvroLoad(errbuf, errlen);
	a->capture = is_avro_record(a->schema) &&
		a->lib->schema_record_field_get(a->schema, "Body") != NULL;
	if (a->capture && !headers)
	{
		/*
		 * Only Body and EnqueuedTimeUtc are wanted: avro-c resolves the
		 * writer's records into a record of those two, and skips the
		 * other fields (maps among them) without making values of them.
		 */
		a->projection = a->lib->schema_record(a->lib->schema_name(a->schema),
											  a->lib->schema_namespace(a->schema));
		if (a->lib->schema_record_field_get(a->schema, "EnqueuedTimeUtc"))
			a->lib->schema_record_field_append(a->projection, "EnqueuedTimeUtc",
											   a->lib->schema_record_field_get(a->schema, "EnqueuedTimeUtc"));
		a->lib->schema_record_field_append(a->projection, "Body",
										   a->lib->schema_record_field_get(a->schema, "Body"));
	}
	a->iface = a->lib->class_from_schema(a->projection ? a->projection : a->schema);
	if (a->iface == NULL || a->lib->value_new(a->iface, &a->value) != 0 ||
		(a->projection &&
		 ((a->resolver = a->lib->resolved_writer_new(a->schema, a->projection)) == NULL ||
		  a->lib->resolved_writer_new_value(a->resolver, &a->resolved) != 0)))
	{
		snprintf(errbuf, errlen, "unsupported Avro schema: %s", a->lib->strerror());
		AvroBlocksClose(a->blocks);
		pfree(a);
		return NULL;
	}
	a->target = &a->value;
	if (a->projection)
	{
		a->lib->resolved_writer_set_dest(&a->resolved, &a->value);
		a->target = &a->resolved;
	}
	a->reader = a->lib->reader_memory(NULL, 0);
	a->body_index = -1;
	if (a->capture)
	{
		avro_value_get_by_name(&a->value, "Body", &f, &index);
		a->body_index = (int) index;
		for (int i = 0; i < lengthof(capture_fields); i++)
			a->field_index[i] = avro_value_get_by_name(&a->value, capture_fields[i], &f, &index) == 0 ?
				(int) index : -1;
	}
	a->next = position > 0 ? position : first;
	a->skip = in_block;
	a->records = records;
	return a;
}

/* The digits at *p (at most 4), then sep (none if NUL); false if not. */
static bool
take_int(const char **p, char sep, int *v)
{
	int			n = 0,
				d = 0;

	while (**p >= '0' && **p <= '9' && d < 4)
	{
		n = n * 10 + (**p - '0');
		(*p)++;
		d++;
	}
	if (d == 0 || (sep != '\0' && *(*p)++ != sep))
		return false;
	*v = n;
	return true;
}

/*
 * "12/7/2026 11:00:00 AM" (Capture's EnqueuedTimeUtc) in ms since 1970;
 * -1 if not.  Read by hand: it is read for every record.
 */
static int64
capture_time_ms(const char *s)
{
	int			mon,
				day,
				year,
				h,
				m,
				sec;
	int64		days;
	int			y,
				era,
				yoe,
				doy;

	if (!take_int(&s, '/', &mon) || !take_int(&s, '/', &day) || !take_int(&s, ' ', &year) ||
		!take_int(&s, ':', &h) || !take_int(&s, ':', &m) || !take_int(&s, '\0', &sec) ||
		mon < 1 || mon > 12 || day < 1 || day > 31 || h > 23 || m > 59 || sec > 60)
		return -1;
	while (*s == ' ')
		s++;
	if (*s == 'P' && h < 12)
		h += 12;
	else if (*s == 'A' && h == 12)
		h = 0;
	/* days since 1970-01-01 of a proleptic Gregorian date */
	y = mon <= 2 ? year - 1 : year;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (mon > 2 ? mon - 3 : mon + 9) + 2) / 5 + day - 1;
	days = (int64) era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
	return ((days * 24 + h) * 60 + m) * 60000 + (int64) sec * 1000;
}

/* A field as header text: strings as they are, others as JSON. */
static char *
field_text(const AvroLib *lib, avro_value_t *f, MemoryContext cxt)
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
			if (lib->value_to_json(f, 1, &json) != 0)
				return NULL;
			r = MemoryContextStrdup(cxt, json);
			free(json);
			return r;
	}
}

/* The type of f, made its branch if it is a union (a nullable field). */
static avro_type_t
field_branch(avro_value_t *f)
{
	avro_value_t branch;

	if (avro_value_get_type(f) == AVRO_UNION &&
		avro_value_get_current_branch(f, &branch) == 0)
		*f = branch;
	return avro_value_get_type(f);
}

/* The next record: 1, 0 at the end, -1 on an error (FileAvroError). */
int
FileAvroNext(FileAvro *a, FileRecord *rec, MemoryContext cxt)
{
	if (a->empty)
		return 0;
	memset(rec, 0, sizeof(FileRecord));
	rec->timestamp_ms = -1;
	while (a->block_read >= a->block.count)
	{
		int64		at = a->next;
		int			r = AvroBlocksNext(a->blocks, at, &a->block);

		a->block_read = 0;
		if (r == 0)
			return 0;
		a->next = a->block.resume;
		if (r < 0)
		{
			/* one dead letter for the block; the file goes on after it */
			a->block.count = 0;
			a->skip = 0;
			a->records++;
			rec->error = MemoryContextStrdup(cxt,
											 psprintf("corrupt Avro block at byte " INT64_FORMAT ": %s; the file goes on at byte " INT64_FORMAT,
													  at, a->block.reason, a->next));
			rec->payload = MemoryContextAlloc(cxt, a->block.raw_len + 1);
			memcpy(rec->payload, a->block.raw, a->block.raw_len);
			rec->payload[a->block.raw_len] = '\0';
			rec->len = a->block.raw_len;
			pfree((void *) a->block.raw);
			rec->line = a->records;
			rec->end = a->next;
			rec->lines_after = 0;
			return 1;
		}
		a->lib->reader_memory_set_source(a->reader, a->block.data, a->block.len);
		/* resuming: the records of the block already stored */
		for (; a->skip > 0 && a->block_read < a->block.count; a->skip--, a->block_read++)
			if (a->lib->skip_data(a->reader, a->schema) != 0)
				break;
		a->skip = 0;
	}
	if (a->lib->value_read(a->reader, a->target) != 0)
	{
		/* file_avro_block.c decoded the block already: cannot happen */
		snprintf(a->error, sizeof(a->error), "could not read Avro record " INT64_FORMAT ": %s",
				 a->records + 1, a->lib->strerror());
		return -1;
	}
	a->block_read++;
	a->records++;
	rec->line = a->records;
	rec->end = a->block.offset;
	rec->lines_after = a->block_read;
	if (a->capture)
	{
		avro_value_t f;
		const void *buf = NULL;
		size_t		size = 0;
		SourceHeader *h;

		/* Capture's Body is ["null", "bytes"] */
		if (avro_value_get_by_index(&a->value, a->body_index, &f, NULL) == 0)
		{
			avro_type_t t = field_branch(&f);

			if (t == AVRO_BYTES)
				avro_value_get_bytes(&f, &buf, &size);
			else if (t == AVRO_STRING)
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
		if (!a->headers)
		{
			/* only the time, read where avro-c holds it */
			const char *str;

			if (a->field_index[2] >= 0 &&
				avro_value_get_by_index(&a->value, a->field_index[2], &f, NULL) == 0 &&
				field_branch(&f) == AVRO_STRING &&
				avro_value_get_string(&f, &str, &size) == 0)
				rec->timestamp_ms = capture_time_ms(str);
			return 1;
		}
		h = MemoryContextAllocZero(cxt, sizeof(SourceHeader) * lengthof(capture_fields));
		for (int i = 0; i < lengthof(capture_fields); i++)
		{
			char	   *v = NULL;

			if (a->field_index[i] >= 0 &&
				avro_value_get_by_index(&a->value, a->field_index[i], &f, NULL) == 0 &&
				field_branch(&f) != AVRO_NULL)
				v = field_text(a->lib, &f, cxt);
			h[rec->nheaders].name = capture_fields[i];
			h[rec->nheaders].value = v;
			h[rec->nheaders].len = v ? strlen(v) : 0;
			rec->nheaders++;
			if (i == 2 && v)
				rec->timestamp_ms = capture_time_ms(v);
		}
		rec->headers = h;
	}
	else
	{
		char	   *json;

		if (a->lib->value_to_json(&a->value, 1, &json) != 0)
		{
			snprintf(a->error, sizeof(a->error), "could not encode Avro record " INT64_FORMAT ": %s",
					 a->records, a->lib->strerror());
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
	if (a->projection)
	{
		a->lib->value_decref(&a->resolved);
		avro_value_iface_decref(a->resolver);
	}
	a->lib->value_decref(&a->value);
	avro_value_iface_decref(a->iface);
	if (a->projection)
		a->lib->schema_decref(a->projection);
	a->lib->reader_free(a->reader);
	AvroBlocksClose(a->blocks);	/* and the schema */
	pfree(a);
}
