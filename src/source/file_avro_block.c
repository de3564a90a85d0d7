/*-------------------------------------------------------------------------
 * file_avro_block.c
 *		The blocks of an Avro object container file: its header read with
 *		avro-c, its blocks framed here, so that a corrupt block is skipped.
 *
 * avro-c's file reader stops for good at a block it cannot read: it has
 * no way to look for the next sync marker.  So this file does the
 * container's framing itself, as the Avro specification lays it out, and
 * leaves everything else to avro-c: the header is decoded by avro-c as the
 * record it is (magic, metadata map, sync marker), a block's records by
 * avro-c from memory (in file_avro.c, which decodes a whole block before
 * it hands out any of its records).  What is done here is only the framing of each block (its record
 * count, byte size, bytes and sync marker) and its codec: null, deflate
 * (zlib) or snappy.
 *
 * A block is good when its size fits in the file, its bytes decompress,
 * its count of records decodes to exactly its bytes, and the file's sync
 * marker follows it.  Else it is corrupt: the file goes on after it if
 * its framing held (its sync marker is there, or its records decoded),
 * and otherwise at the next sync marker found from its start, or ends.
 * Offsets are of the uncompressed file (gzip, read with zlib, is
 * transparent), and only move forward.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"
#include "source/file_avro.h"

#include <dlfcn.h>
#include <snappy-c.h>
#include <zlib.h>

#include "utils/memutils.h"

#define AVRO_SYNC_LEN	16
#define AVRO_READ_CHUNK	(256 * 1024)
#define AVRO_RAW_MAX	(64 * 1024)	/* of a corrupt block, in its dead letter */

static const char header_schema[] =
"{\"type\": \"record\", \"name\": \"org.apache.avro.file.Header\", \"fields\": ["
"{\"name\": \"magic\", \"type\": {\"type\": \"fixed\", \"name\": \"Magic\", \"size\": 4}},"
"{\"name\": \"meta\", \"type\": {\"type\": \"map\", \"values\": \"bytes\"}},"
"{\"name\": \"sync\", \"type\": {\"type\": \"fixed\", \"name\": \"Sync\", \"size\": 16}}]}";

typedef enum AvroCodec
{
	CODEC_NULL,
	CODEC_DEFLATE,
	CODEC_SNAPPY
} AvroCodec;

struct AvroBlocks
{
	gzFile		gz;
	char	   *buf;			/* a window on the file */
	size_t		cap;
	size_t		start;			/* first byte still wanted */
	size_t		len;
	int64		buf_pos;		/* file offset of buf[0] */
	bool		eof;
	char		sync[AVRO_SYNC_LEN];
	AvroCodec	codec;
	avro_schema_t schema;
	MemoryContext cxt;			/* the reader's: its buffers live there */
	char	   *plain;			/* a decompressed block */
	size_t		plain_cap;
	char		reason[384];
};

/*
 * avro-c parses schemas with jansson, whose json_object() the server's own
 * SQL function json_object() would stand in for if libavro were linked
 * like the other libraries: it is loaded with dlopen(RTLD_DEEPBIND), so
 * that it and its libraries see their own symbols first.
 */
static AvroLib Avro;
static bool avro_tried = false;
static bool avro_loaded = false;

const AvroLib *
AvroLoad(char *errbuf, size_t errlen)
{
	if (!avro_tried)
	{
		void	   *lib;

		avro_tried = true;
		lib = dlopen("libavro.so", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
		if (lib == NULL)
			lib = dlopen("libavro.so.23", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
		if (lib)
		{
#define LOAD(field, name) (*(void **) &Avro.field = dlsym(lib, name))
			avro_loaded = LOAD(class_from_schema, "avro_generic_class_from_schema") &&
				LOAD(value_new, "avro_generic_value_new") &&
				LOAD(value_decref, "avro_value_decref") &&
				LOAD(value_to_json, "avro_value_to_json") &&
				LOAD(value_read, "avro_value_read") &&
				LOAD(value_sizeof, "avro_value_sizeof") &&
				LOAD(read, "avro_read") &&
				LOAD(reader_memory, "avro_reader_memory") &&
				LOAD(reader_memory_set_source, "avro_reader_memory_set_source") &&
				LOAD(reader_free, "avro_reader_free") &&
				LOAD(schema_from_json_length, "avro_schema_from_json_length") &&
				LOAD(schema_decref, "avro_schema_decref") &&
				LOAD(schema_record, "avro_schema_record") &&
				LOAD(schema_record_field_get_index, "avro_schema_record_field_get_index") &&
				LOAD(schema_record_field_get_by_index, "avro_schema_record_field_get_by_index") &&
				LOAD(schema_record_field_append, "avro_schema_record_field_append") &&
				LOAD(schema_name, "avro_schema_name") &&
				LOAD(schema_namespace, "avro_schema_namespace") &&
				LOAD(resolved_writer_new, "avro_resolved_writer_new") &&
				LOAD(resolved_writer_new_value, "avro_resolved_writer_new_value") &&
				LOAD(resolved_writer_set_dest, "avro_resolved_writer_set_dest") &&
				LOAD(strerror, "avro_strerror");
#undef LOAD
		}
	}
	if (!avro_loaded)
	{
		snprintf(errbuf, errlen, "libavro (avro-c) could not be loaded; install Debian's libavro23");
		return NULL;
	}
	return &Avro;
}

/* At least n bytes from buf[start], unless the file ends first. */
static bool
want(AvroBlocks *b, size_t n)
{
	while (b->len - b->start < n)
	{
		int			got;

		if (b->eof || n > MaxAllocSize / 2)
			return false;
		if (b->start > 0)
		{
			memmove(b->buf, b->buf + b->start, b->len - b->start);
			b->buf_pos += b->start;
			b->len -= b->start;
			b->start = 0;
		}
		while (b->cap < Min(n, MaxAllocSize / 2) + AVRO_READ_CHUNK / 2)
		{
			b->cap *= 2;
			b->buf = repalloc(b->buf, b->cap);
		}
		got = gzread(b->gz, b->buf + b->len, (unsigned) (b->cap - b->len));
		if (got <= 0)
			b->eof = true;		/* a read error ends the file as its end would */
		else
			b->len += got;
	}
	return true;
}

/* The window from offset on (never before its start). */
static void
seek(AvroBlocks *b, int64 offset)
{
	Assert(offset >= b->buf_pos + (int64) b->start);
	while (offset > b->buf_pos + (int64) b->len)
	{
		b->start = b->len;
		if (!want(b, 1))
			return;
	}
	b->start = offset - b->buf_pos;
}

/* A zigzag varint long at p (at most avail bytes); its length, or 0. */
static int
read_long(const char *p, size_t avail, int64 *v)
{
	uint64		u = 0;

	for (int i = 0; i < 10 && i < (int) avail; i++)
	{
		u |= (uint64) (p[i] & 0x7f) << (7 * i);
		if ((p[i] & 0x80) == 0)
		{
			*v = (int64) (u >> 1) ^ -(int64) (u & 1);
			return i + 1;
		}
	}
	return 0;
}

/* The metadata value of key, or NULL. */
static const char *
meta_get(avro_value_t *meta, const char *key, size_t *len)
{
	avro_value_t v;
	const void *buf;

	/* (some avro-c versions give an absent key as a child of no value) */
	if (avro_value_get_by_name(meta, key, &v, NULL) != 0 || v.self == NULL ||
		avro_value_get_bytes(&v, &buf, len) != 0)
		return NULL;
	return buf;
}

/* Reads the header with avro-c; false, with the reason, if it is not one. */
static bool
read_header(AvroBlocks *b, char *errbuf, size_t errlen)
{
	avro_schema_t hs;
	avro_value_iface_t *iface;
	avro_value_t hdr,
				f;
	avro_reader_t r;
	size_t		want_len = AVRO_READ_CHUNK;
	size_t		size = 0;
	int			rc;
	bool		ok = false;
	const void *p;
	size_t		n;

	if (Avro.schema_from_json_length(header_schema, sizeof(header_schema) - 1, &hs) != 0)
		elog(ERROR, "avro-c cannot parse the container header's schema: %s", Avro.strerror());
	iface = Avro.class_from_schema(hs);
	Avro.value_new(iface, &hdr);
	/* a header (its schema) may be larger than a first read */
	for (;;)
	{
		(void) want(b, want_len);
		if (b->len - b->start < 4 || memcmp(b->buf + b->start, "Obj\1", 4) != 0)
		{
			rc = -1;			/* not worth reading on */
			break;
		}
		r = Avro.reader_memory(b->buf + b->start, b->len - b->start);
		rc = Avro.value_read(r, &hdr);
		Avro.reader_free(r);
		if (rc == 0 || b->eof || want_len > MaxAllocSize / 4)
			break;
		want_len = (b->len - b->start) * 2;
	}
	if (rc < 0)
		snprintf(errbuf, errlen, "not an Avro object container file: its first bytes are not Obj1");
	else if (rc != 0)
		snprintf(errbuf, errlen, "not an Avro object container file: %s", Avro.strerror());
	else
	{
		const char *schema;
		const char *codec;
		size_t		codec_len = 0;
		bool		codec_ok = true;

		avro_value_get_by_name(&hdr, "sync", &f, NULL);
		avro_value_get_fixed(&f, &p, &n);
		memcpy(b->sync, p, AVRO_SYNC_LEN);
		avro_value_get_by_name(&hdr, "meta", &f, NULL);
		schema = meta_get(&f, "avro.schema", &n);
		codec = meta_get(&f, "avro.codec", &codec_len);
		Avro.value_sizeof(&hdr, &size);
		if (codec == NULL || (codec_len == 4 && memcmp(codec, "null", 4) == 0))
			b->codec = CODEC_NULL;
		else if (codec_len == 7 && memcmp(codec, "deflate", 7) == 0)
			b->codec = CODEC_DEFLATE;
		else if (codec_len == 6 && memcmp(codec, "snappy", 6) == 0)
			b->codec = CODEC_SNAPPY;
		else
			codec_ok = false;
		if (!codec_ok)
			snprintf(errbuf, errlen, "the Avro codec \"%.*s\" is not supported (null, deflate and snappy are)",
					 (int) Min(codec_len, 32), codec);
		else if (schema == NULL)
			snprintf(errbuf, errlen, "the Avro file has no avro.schema");
		else if (Avro.schema_from_json_length(schema, n, &b->schema) != 0)
			snprintf(errbuf, errlen, "unsupported Avro schema: %s", Avro.strerror());
		else if (size < 4 + AVRO_SYNC_LEN || size > b->len - b->start ||
				 memcmp(b->buf + b->start + size - AVRO_SYNC_LEN, b->sync, AVRO_SYNC_LEN) != 0)
		{
			/* a writer that split the map in blocks: the marker ends the header */
			char	   *at = memmem(b->buf + b->start, b->len - b->start, b->sync, AVRO_SYNC_LEN);

			if (at == NULL)
				snprintf(errbuf, errlen, "the Avro header has no sync marker");
			else
			{
				size = at - (b->buf + b->start) + AVRO_SYNC_LEN;
				ok = true;
			}
		}
		else
			ok = true;
	}
	Avro.value_decref(&hdr);
	avro_value_iface_decref(iface);
	Avro.schema_decref(hs);
	if (ok)
		b->start += size;
	else if (b->schema)
	{
		Avro.schema_decref(b->schema);
		b->schema = NULL;
	}
	return ok;
}

/*
 * Opens path and reads its header: the writer's schema, and the offset of
 * the first block.  NULL, with the reason, if it cannot.
 */
AvroBlocks *
AvroBlocksOpen(const char *path, avro_schema_t *schema, int64 *first,
			   char *errbuf, size_t errlen)
{
	AvroBlocks *b;

	if (AvroLoad(errbuf, errlen) == NULL)
		return NULL;
	b = palloc0(sizeof(AvroBlocks));
	b->cxt = CurrentMemoryContext;
	b->gz = gzopen(path, "rb");
	if (b->gz == NULL)
	{
		snprintf(errbuf, errlen, "could not open file \"%s\": %m", path);
		pfree(b);
		return NULL;
	}
	gzbuffer(b->gz, AVRO_READ_CHUNK);
	b->cap = AVRO_READ_CHUNK;
	b->buf = palloc(b->cap);
	if (!read_header(b, errbuf, errlen))
	{
		gzclose(b->gz);
		pfree(b->buf);
		pfree(b);
		return NULL;
	}
	*schema = b->schema;
	*first = b->buf_pos + b->start;
	return b;
}

/* The block's records, uncompressed, into out; false with the reason. */
static bool
decompress(AvroBlocks *b, const char *data, size_t len, AvroBlock *out)
{
	if (b->codec == CODEC_NULL)
	{
		/* the window holds it until the next block is read */
		out->data = data;
		out->len = len;
		return true;
	}
	if (b->codec == CODEC_SNAPPY)
	{
		size_t		n;
		uint32		crc;

		/* snappy, then the CRC-32 of the uncompressed bytes, big-endian */
		if (len < 4 || snappy_uncompressed_length(data, len - 4, &n) != SNAPPY_OK ||
			n > MaxAllocSize / 2)
		{
			snprintf(b->reason, sizeof(b->reason), "its snappy data is not valid");
			return false;
		}
		if (b->plain_cap < n + 1)
		{
			b->plain_cap = Max(n + 1, 2 * b->plain_cap);
			b->plain = b->plain ? repalloc(b->plain, b->plain_cap) : MemoryContextAlloc(b->cxt, b->plain_cap);
		}
		if (snappy_uncompress(data, len - 4, b->plain, &n) != SNAPPY_OK)
		{
			snprintf(b->reason, sizeof(b->reason), "its snappy data is not valid");
			return false;
		}
		crc = ((uint32) (uint8) data[len - 4] << 24) | ((uint32) (uint8) data[len - 3] << 16) |
			((uint32) (uint8) data[len - 2] << 8) | (uint8) data[len - 1];
		if (crc32(0, (const Bytef *) b->plain, n) != crc)
		{
			snprintf(b->reason, sizeof(b->reason), "its snappy data fails its CRC");
			return false;
		}
		out->data = b->plain;
		out->len = n;
		return true;
	}
	else
	{
		/* deflate: raw (RFC 1951), no zlib header */
		z_stream	z;
		int			rc;

		memset(&z, 0, sizeof(z));
		if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
			elog(ERROR, "zlib could not start inflating");
		if (b->plain_cap < len * 4 + 1024)
		{
			b->plain_cap = Max(len * 4 + 1024, 2 * b->plain_cap);
			b->plain = b->plain ? repalloc(b->plain, b->plain_cap) : MemoryContextAlloc(b->cxt, b->plain_cap);
		}
		z.next_in = (Bytef *) data;
		z.avail_in = len;
		for (;;)
		{
			z.next_out = (Bytef *) b->plain + z.total_out;
			z.avail_out = b->plain_cap - z.total_out;
			rc = inflate(&z, Z_NO_FLUSH);
			if (rc == Z_STREAM_END)
				break;
			if (rc == Z_OK && z.avail_out == 0 && b->plain_cap < MaxAllocSize / 2)
			{
				b->plain_cap *= 2;
				b->plain = repalloc(b->plain, b->plain_cap);
				continue;
			}
			inflateEnd(&z);
			snprintf(b->reason, sizeof(b->reason), "its deflate data is not valid: %s",
					 z.msg ? z.msg : (rc == Z_OK || rc == Z_BUF_ERROR) ? "it ends early" : "zlib error");
			return false;
		}
		out->data = b->plain;
		out->len = z.total_out;
		inflateEnd(&z);
		return true;
	}
}

/*
 * The block at offset: 1 (out is the block, out->resume the next one's
 * offset), 0 at the end of the file, -1 for a corrupt block (out->reason,
 * out->resume where the file goes on, out->raw its first bytes).  decode
 * reads the block's records: false, with the reason, if they are not
 * exactly its bytes.  out's bytes are valid until the next call.
 */
int
AvroBlocksNext(AvroBlocks *b, int64 offset, AvroBlock *out,
			   AvroDecodeBlock decode, void *arg)
{
	const char *p;
	size_t		avail;
	int			n1,
				n2 = 0;
	int64		count = 0,
				size = 0;
	bool		framed = false;	/* the next block's offset is known */
	bool		good = false;

	memset(out, 0, sizeof(AvroBlock));
	out->offset = offset;
	b->reason[0] = '\0';
	seek(b, offset);
	(void) want(b, 20);
	avail = b->len - b->start;
	if (avail == 0)
		return 0;
	p = b->buf + b->start;
	n1 = read_long(p, avail, &count);
	if (n1 > 0)
		n2 = read_long(p + n1, avail - n1, &size);
	if (n1 == 0 || n2 == 0 || count < 0 || size < 0 || count > ((int64) 1 << 40) ||
		size > (int64) (MaxAllocSize / 2))
		snprintf(b->reason, sizeof(b->reason), "its header is not a record count and a size");
	else if (!want(b, n1 + n2 + size + AVRO_SYNC_LEN))
		snprintf(b->reason, sizeof(b->reason),
				 "it is truncated: its " INT64_FORMAT " bytes and sync marker end after the file does, at byte " INT64_FORMAT,
				 size, b->buf_pos + (int64) b->len);
	else
	{
		bool		sync_ok;
		bool		records_ok;

		p = b->buf + b->start;	/* the window may have moved */
		out->count = count;
		sync_ok = memcmp(p + n1 + n2 + size, b->sync, AVRO_SYNC_LEN) == 0;
		records_ok = decompress(b, p + n1 + n2, size, out) &&
			decode(arg, out, b->reason, sizeof(b->reason));
		/* the sync marker alone damaged: the next block is still after it */
		framed = sync_ok || records_ok;
		good = sync_ok && records_ok;
		if (!sync_ok && records_ok)
			snprintf(b->reason, sizeof(b->reason), "the file's sync marker does not follow it");
	}
	if (good)
	{
		out->resume = offset + n1 + n2 + size + AVRO_SYNC_LEN;
		return 1;
	}
	/* corrupt: its first bytes for the dead letter, then where to go on */
	out->reason = b->reason;
	avail = Min(b->len - b->start, AVRO_RAW_MAX);
	out->raw = palloc(Max(avail, 1));
	memcpy((char *) out->raw, b->buf + b->start, avail);
	out->raw_len = avail;
	if (framed)
		out->resume = offset + n1 + n2 + size + AVRO_SYNC_LEN;
	else
	{
		/* the next sync marker from its start on (its own is not trusted) */
		seek(b, offset + 1);
		for (;;)
		{
			char	   *at;

			(void) want(b, AVRO_READ_CHUNK);
			at = memmem(b->buf + b->start, b->len - b->start, b->sync, AVRO_SYNC_LEN);
			if (at)
			{
				out->resume = b->buf_pos + (at - b->buf) + AVRO_SYNC_LEN;
				break;
			}
			if (b->eof)
			{
				out->resume = b->buf_pos + b->len;
				break;
			}
			/* keep what could be the start of a marker */
			if (b->len - b->start > AVRO_SYNC_LEN - 1)
				b->start = b->len - (AVRO_SYNC_LEN - 1);
			(void) want(b, b->len - b->start + 1);
		}
	}
	return -1;
}

void
AvroBlocksClose(AvroBlocks *b)
{
	Avro.schema_decref(b->schema);
	gzclose(b->gz);
	pfree(b->buf);
	if (b->plain)
		pfree(b->plain);
	pfree(b);
}
