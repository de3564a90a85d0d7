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
 * encoding.  The blocks come from file_avro_block.c, and each is decoded
 * whole before any of its records is handed out: a corrupt block is one
 * dead letter (its reason, its offset, its first bytes), none of its
 * records stored, and the file goes on after it.
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

/* A record of a block, decoded, until it is handed out (copied). */
typedef struct AvroRecord
{
	char	   *payload;		/* NULL: none (a Body that is null) */
	size_t		len;
	int64		timestamp_ms;
	SourceHeader *headers;
	int			nheaders;
} AvroRecord;

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
	MemoryContext block_cxt;	/* its records, decoded: reset per block */
	AvroRecord *recs;
	int64		block_read;		/* its records handed out */
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
	/* (avro_schema_record_field_get is not safe for a field that is absent) */
	a->capture = is_avro_record(a->schema) &&
		a->lib->schema_record_field_get_index(a->schema, "Body") >= 0;
	if (a->capture && !headers)
	{
		/*
		 * Only Body and EnqueuedTimeUtc are wanted: avro-c resolves the
		 * writer's records into a record of those two, and skips the
		 * other fields (maps among them) without making values of them.
		 */
		static const char *const wanted[] = {"EnqueuedTimeUtc", "Body"};

		a->projection = a->lib->schema_record(a->lib->schema_name(a->schema),
											  a->lib->schema_namespace(a->schema));
		for (int i = 0; i < lengthof(wanted); i++)
		{
			int			k = a->lib->schema_record_field_get_index(a->schema, wanted[i]);

			if (k >= 0)
				a->lib->schema_record_field_append(a->projection, wanted[i],
												   a->lib->schema_record_field_get_by_index(a->schema, k));
		}
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
	a->block_cxt = AllocSetContextCreate(CurrentMemoryContext, "iotstream Avro block",
										 ALLOCSET_DEFAULT_SIZES);
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

/* The record avro-c has read into a->value, into r (its memory in cxt). */
static bool
take_record(FileAvro *a, AvroRecord *r, MemoryContext cxt)
{
	avro_value_t f;

	memset(r, 0, sizeof(AvroRecord));
	r->timestamp_ms = -1;
	if (a->capture)
	{
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
			r->payload = MemoryContextAlloc(cxt, size + 1);
			if (size > 0)
				memcpy(r->payload, buf, size);
			r->payload[size] = '\0';
			r->len = size;
		}
		if (!a->headers)
		{
			/* only the time, read where avro-c holds it */
			const char *str;

			if (a->field_index[2] >= 0 &&
				avro_value_get_by_index(&a->value, a->field_index[2], &f, NULL) == 0 &&
				field_branch(&f) == AVRO_STRING &&
				avro_value_get_string(&f, &str, &size) == 0)
				r->timestamp_ms = capture_time_ms(str);
			return true;
		}
		h = MemoryContextAllocZero(cxt, sizeof(SourceHeader) * lengthof(capture_fields));
		for (int i = 0; i < lengthof(capture_fields); i++)
		{
			char	   *v = NULL;

			if (a->field_index[i] >= 0 &&
				avro_value_get_by_index(&a->value, a->field_index[i], &f, NULL) == 0 &&
				field_branch(&f) != AVRO_NULL)
				v = field_text(a->lib, &f, cxt);
			h[r->nheaders].name = capture_fields[i];
			h[r->nheaders].value = v;
			h[r->nheaders].len = v ? strlen(v) : 0;
			r->nheaders++;
			if (i == 2 && v)
				r->timestamp_ms = capture_time_ms(v);
		}
		r->headers = h;
	}
	else
	{
		char	   *json;

		if (a->lib->value_to_json(&a->value, 1, &json) != 0)
			return false;
		r->payload = MemoryContextStrdup(cxt, json);
		r->len = strlen(json);
		free(json);
	}
	return true;
}

/*
 * Decodes all the records of a block (AvroDecodeBlock): a block is handed
 * out only if all its records, and nothing else, are its bytes.
 */
static bool
decode_block(void *arg, const AvroBlock *block, char *reason, size_t reasonlen)
{
	FileAvro   *a = arg;
	char		extra;

	MemoryContextReset(a->block_cxt);
	a->recs = NULL;
	/* a record is at least a byte (a schema of nulls alone is not read) */
	if (block->count > (int64) block->len)
	{
		snprintf(reason, reasonlen, "its " INT64_FORMAT " records cannot fit in its %zu bytes",
				 block->count, block->len);
		return false;
	}
	a->recs = MemoryContextAlloc(a->block_cxt, sizeof(AvroRecord) * Max(block->count, 1));
	a->lib->reader_memory_set_source(a->reader, block->data, block->len);
	for (int64 i = 0; i < block->count; i++)
		if (a->lib->value_read(a->reader, a->target) != 0 ||
			!take_record(a, &a->recs[i], a->block_cxt))
		{
			snprintf(reason, reasonlen, "record " INT64_FORMAT " of " INT64_FORMAT " cannot be decoded: %s",
					 i + 1, block->count, a->lib->strerror());
			return false;
		}
	if (a->lib->read(a->reader, &extra, 1) == 0)
	{
		snprintf(reason, reasonlen, "its " INT64_FORMAT " records end before its %zu bytes do",
				 block->count, block->len);
		return false;
	}
	return true;
}

/* The next record: 1, 0 at the end, -1 on an error (FileAvroError). */
int
FileAvroNext(FileAvro *a, FileRecord *rec, MemoryContext cxt)
{
	AvroRecord *r;

	if (a->empty)
		return 0;
	memset(rec, 0, sizeof(FileRecord));
	rec->timestamp_ms = -1;
	while (a->block_read >= a->block.count)
	{
		int64		at = a->next;
		int			got = AvroBlocksNext(a->blocks, at, &a->block, decode_block, a);

		a->block_read = 0;
		if (got == 0)
			return 0;
		a->next = a->block.resume;
		if (got < 0)
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
		/* resuming: the records of the block already stored */
		a->block_read = Min(a->skip, a->block.count);
		a->skip = 0;
	}
	/* the block's records live until the next block: a copy for the batch */
	r = &a->recs[a->block_read++];
	a->records++;
	rec->line = a->records;
	rec->end = a->block.offset;
	rec->lines_after = a->block_read;
	rec->timestamp_ms = r->timestamp_ms;
	if (r->payload)
	{
		rec->payload = MemoryContextAlloc(cxt, r->len + 1);
		memcpy(rec->payload, r->payload, r->len + 1);
		rec->len = r->len;
	}
	if (r->nheaders > 0)
	{
		SourceHeader *h = MemoryContextAlloc(cxt, sizeof(SourceHeader) * r->nheaders);

		for (int i = 0; i < r->nheaders; i++)
		{
			h[i] = r->headers[i];
			if (h[i].value)
				h[i].value = MemoryContextStrdup(cxt, h[i].value);
		}
		rec->headers = h;
		rec->nheaders = r->nheaders;
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
	MemoryContextDelete(a->block_cxt);
	pfree(a);
}
