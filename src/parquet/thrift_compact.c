/*-------------------------------------------------------------------------
 * thrift_compact.c
 *		A minimal encoder for the Thrift compact protocol, enough to write
 *		Parquet page headers and file footers.
 *
 * Only writing is needed, and only the types Parquet's metadata uses:
 * bool, i8, i32, i64, binary, list and struct.  The caller drives it like a
 * SAX writer: fields of a struct must be written in increasing id order, as
 * the compact protocol encodes each field id as a delta from the previous
 * one.  The invariant kept here is the stack of "last field id" values, one
 * per open struct, so nested structs and structs inside lists get their own
 * deltas.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

/* Compact protocol type codes (the wire values). */
#define TC_BOOL_TRUE	1
#define TC_BOOL_FALSE	2
#define TC_BYTE			3
#define TC_I32			5
#define TC_I64			6
#define TC_BINARY		8
#define TC_LIST			9
#define TC_STRUCT		12

static inline void
thrift_reserve(ThriftBuf *t, size_t extra)
{
	if (t->len + extra > t->cap)
	{
		size_t		newcap = Max(t->cap * 2, t->len + extra + 64);

		t->data = t->data ? repalloc_huge(t->data, newcap)
			: MemoryContextAllocHuge(t->cxt, newcap);
		t->cap = newcap;
	}
}

static inline void
thrift_byte(ThriftBuf *t, uint8 b)
{
	thrift_reserve(t, 1);
	t->data[t->len++] = (char) b;
}

static void
thrift_varint(ThriftBuf *t, uint64 v)
{
	thrift_reserve(t, 10);
	while (v >= 0x80)
	{
		t->data[t->len++] = (char) ((v & 0x7F) | 0x80);
		v >>= 7;
	}
	t->data[t->len++] = (char) v;
}

static inline uint64
zigzag64(int64 v)
{
	return ((uint64) v << 1) ^ (uint64) (v >> 63);
}

/* A field header: short form when the id delta fits in four bits. */
static void
thrift_field_header(ThriftBuf *t, int16 id, uint8 type)
{
	int			delta = id - t->last_field;

	if (delta > 0 && delta <= 15)
		thrift_byte(t, (uint8) ((delta << 4) | type));
	else
	{
		thrift_byte(t, type);
		thrift_varint(t, zigzag64(id));
	}
	t->last_field = id;
}

/* The buffer grows in cxt, which must outlive it. */
void
ThriftInit(ThriftBuf *t, MemoryContext cxt)
{
	memset(t, 0, sizeof(ThriftBuf));
	t->cxt = cxt;
}

void
ThriftReset(ThriftBuf *t)
{
	t->len = 0;
	t->depth = 0;
	t->last_field = 0;
}

void
ThriftFieldBool(ThriftBuf *t, int16 id, bool v)
{
	thrift_field_header(t, id, v ? TC_BOOL_TRUE : TC_BOOL_FALSE);
}

void
ThriftFieldI8(ThriftBuf *t, int16 id, int8 v)
{
	thrift_field_header(t, id, TC_BYTE);
	thrift_byte(t, (uint8) v);
}

void
ThriftFieldI32(ThriftBuf *t, int16 id, int32 v)
{
	thrift_field_header(t, id, TC_I32);
	thrift_varint(t, zigzag64(v));
}

void
ThriftFieldI64(ThriftBuf *t, int16 id, int64 v)
{
	thrift_field_header(t, id, TC_I64);
	thrift_varint(t, zigzag64(v));
}

void
ThriftFieldBinary(ThriftBuf *t, int16 id, const void *p, size_t len)
{
	thrift_field_header(t, id, TC_BINARY);
	ThriftListBinary(t, p, len);
}

void
ThriftFieldString(ThriftBuf *t, int16 id, const char *s)
{
	ThriftFieldBinary(t, id, s, strlen(s));
}

/* Opens a struct-valued field; close it with ThriftStructEnd(). */
void
ThriftStructBegin(ThriftBuf *t, int16 id)
{
	thrift_field_header(t, id, TC_STRUCT);
	ThriftListStructBegin(t);
}

/* Opens a struct that is an element of a list (no field header). */
void
ThriftListStructBegin(ThriftBuf *t)
{
	if (t->depth >= THRIFT_MAX_DEPTH)
		elog(ERROR, "thrift structs nested too deeply");
	t->stack[t->depth++] = t->last_field;
	t->last_field = 0;
}

/* Writes the stop byte of the innermost open struct. */
void
ThriftStructEnd(ThriftBuf *t)
{
	thrift_byte(t, 0);
	if (t->depth > 0)
		t->last_field = t->stack[--t->depth];
}

void
ThriftFieldListBegin(ThriftBuf *t, int16 id, ThriftElemType elem, int n)
{
	thrift_field_header(t, id, TC_LIST);
	if (n < 15)
		thrift_byte(t, (uint8) ((n << 4) | elem));
	else
	{
		thrift_byte(t, (uint8) (0xF0 | elem));
		thrift_varint(t, (uint64) n);
	}
}

void
ThriftListI32(ThriftBuf *t, int32 v)
{
	thrift_varint(t, zigzag64(v));
}

void
ThriftListBinary(ThriftBuf *t, const void *p, size_t len)
{
	thrift_varint(t, len);
	thrift_reserve(t, len);
	if (len > 0)
		memcpy(t->data + t->len, p, len);
	t->len += len;
}
