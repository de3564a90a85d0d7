/*-------------------------------------------------------------------------
 * parquet_encode.c
 *		Byte-level building blocks of the Parquet writer: growing buffers,
 *		the RLE/bit-packed hybrid encoding, and page compression.
 *
 * Nothing here knows about schemas or files; parquet_writer.c composes
 * these into pages.  Buffers grow geometrically and are reused across pages
 * and row groups, so the steady state allocates nothing.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

void
ParquetBufReserve(MemoryContext cxt, ParquetBuf *b, size_t extra)
{
	if (b->len + extra > b->cap)
	{
		size_t		newcap = Max(b->cap * 2, b->len + extra + 256);

		b->data = b->data ? repalloc_huge(b->data, newcap)
			: MemoryContextAllocHuge(cxt, newcap);
		b->cap = newcap;
	}
}

void
ParquetBufSet(MemoryContext cxt, ParquetBuf *b, const void *p, size_t len)
{
	b->len = 0;
	ParquetBufAppend(cxt, b, p, len);
}


static void
buf_varint(MemoryContext cxt, ParquetBuf *b, uint64 v)
{
	ParquetBufReserve(cxt, b, 10);
	while (v >= 0x80)
	{
		b->data[b->len++] = (char) ((v & 0x7F) | 0x80);
		v >>= 7;
	}
	b->data[b->len++] = (char) v;
}

/*
 * The encoder below is written once and instantiated for each size of
 * source value (definition levels as bytes, dictionary indices as 1, 2 or
 * 4 bytes): with the size a compile-time constant, the per-value loads need
 * no branch.
 */
#define LEVEL(size, v, i) \
	((size) == 4 ? ((const uint32 *) (v))[i] : \
	 (size) == 2 ? (uint32) ((const uint16 *) (v))[i] : (uint32) ((const uint8 *) (v))[i])

/*
 * One bit-packed run of the hybrid encoding, zero-padded to a group of 8.
 * Only the last run of a page can end short of a group, and it ends at n.
 */
static pg_attribute_always_inline void
rle_literals(MemoryContext cxt, ParquetBuf *out, const void *v,
			 int64 start, int64 count, int bw, int size)
{
	int64		groups = (count + 7) / 8;
	int64		j;
	uint64		acc = 0;
	int			nbits = 0;
	char	   *o;

	if (count == 0)
		return;
	buf_varint(cxt, out, ((uint64) groups << 1) | 1);
	ParquetBufReserve(cxt, out, groups * bw + 16);
	o = out->data + out->len;
#if defined(HAVE_INT128) && !defined(WORDS_BIGENDIAN)
	if (bw <= 16)
	{
		/*
		 * A group of 8 values of up to 16 bits fits one 128-bit word: each
		 * group is built there and stored whole (16 bytes, the reserve
		 * covers the last), and the next group starts bw bytes on.
		 */
		for (j = 0; j < count; j += 8)
		{
			uint64		lo = 0,
						hi = 0;
			uint128		acc;
			int			k;

			if (count - j >= 8)
			{
				/* two halves in 64-bit words, one 128-bit shift */
				for (k = 0; k < 4; k++)
				{
					lo |= (uint64) LEVEL(size, v, start + j + k) << (k * bw);
					hi |= (uint64) LEVEL(size, v, start + j + 4 + k) << (k * bw);
				}
			}
			else
			{
				for (k = 0; k < count - j; k++)
				{
					if (k < 4)
						lo |= (uint64) LEVEL(size, v, start + j + k) << (k * bw);
					else
						hi |= (uint64) LEVEL(size, v, start + j + k) << ((k - 4) * bw);
				}
			}
			acc = (uint128) lo | ((uint128) hi << (4 * bw));
			memcpy(o, &acc, 16);
			o += bw;
		}
		out->len = o - out->data;
		return;
	}
#endif
	for (j = 0; j < groups * 8; j++)
	{
		uint64		val = j < count ? LEVEL(size, v, start + j) : 0;

		acc |= val << nbits;
		nbits += bw;
		while (nbits >= 8)
		{
			*o++ = (char) (acc & 0xFF);
			acc >>= 8;
			nbits -= 8;
		}
	}
	out->len = o - out->data;
}

/* Whether the 8 values from v[i] on are all equal. */
static pg_attribute_always_inline bool
group_equal(const void *v, int64 i, int size)
{
	uint32		first = LEVEL(size, v, i);
	int			k;

	if (size == 1)
	{
		uint64		x;

		memcpy(&x, (const uint8 *) v + i, 8);
		return x == (uint64) first * UINT64CONST(0x0101010101010101);
	}
	for (k = 1; k < 8; k++)
		if (LEVEL(size, v, i + k) != first)
			return false;
	return true;
}

/*
 * The RLE/bit-packed hybrid encoding of n values of bw bits.  The values
 * are read in groups of 8 from the start of the current bit-packed run: a
 * group of 8 equal values begins an RLE run, as long as the value lasts;
 * any other group is bit-packed.  Only the last bit-packed run is padded.
 * (A run of 8 or more that begins inside a group goes partly into the
 * bit-packed run, which needs whole groups anyway.)
 */
static pg_attribute_always_inline void
rle_encode(MemoryContext cxt, ParquetBuf *out, const void *v,
		   int64 n, int bw, int size)
{
	int64		i = 0,
				lit_start = 0;

	while (n - i >= 8)
	{
		uint32		val;
		int64		r = 8;
		int			k;

		if (!group_equal(v, i, size))
		{
			i += 8;
			continue;
		}
		val = LEVEL(size, v, i);
		while (i + r < n && LEVEL(size, v, i + r) == val)
			r++;
		rle_literals(cxt, out, v, lit_start, i - lit_start, bw, size);
		buf_varint(cxt, out, (uint64) r << 1);
		ParquetBufReserve(cxt, out, 4);
		for (k = 0; k < (bw + 7) / 8; k++)
			out->data[out->len++] = (char) ((val >> (8 * k)) & 0xFF);
		i += r;
		lit_start = i;
	}
	rle_literals(cxt, out, v, lit_start, n - lit_start, bw, size);
}

/* The hybrid encoding of n values of size bytes each (1, 2 or 4) at v. */
void
ParquetRleEncode(MemoryContext cxt, ParquetBuf *out, const void *v, int size,
				 int64 n, int bw)
{
	if (size == 1)
		rle_encode(cxt, out, v, n, bw, 1);
	else if (size == 2)
		rle_encode(cxt, out, v, n, bw, 2);
	else
		rle_encode(cxt, out, v, n, bw, 4);
}

int
ParquetBitWidth(uint32 max)
{
	int			bw = 0;

	while (max > 0)
	{
		bw++;
		max >>= 1;
	}
	return Max(bw, 1);
}

/* An upper bound of the compressed size of len bytes. */
size_t
ParquetCompressBound(ParquetCodec codec, size_t len)
{
	switch (codec)
	{
		case PARQUET_CODEC_NONE:
			return len;
		case PARQUET_CODEC_SNAPPY:
			return snappy_max_compressed_length(len);
		case PARQUET_CODEC_ZSTD:
			return ZSTD_compressBound(len);
		case PARQUET_CODEC_GZIP:
			/* zlib's bound plus the gzip header and trailer */
			return compressBound(len) + 32;
	}
	return len;
}

/*
 * Compresses len bytes of in into out (of capacity cap, at least the
 * bound); returns the compressed size, or 0 on failure.  It touches no
 * Postgres state, so helper threads may call it.  level 0 is the codec's
 * default.
 */
size_t
ParquetCompressRaw(ParquetCodec codec, int level, ZSTD_CCtx *zstd,
				   const char *in, size_t len, char *out, size_t cap)
{
	switch (codec)
	{
		case PARQUET_CODEC_NONE:
			if (cap < len)
				return 0;
			memcpy(out, in, len);
			return len;
		case PARQUET_CODEC_SNAPPY:
			{
				size_t		outlen = cap;

				if (snappy_compress(in, len, out, &outlen) != SNAPPY_OK)
					return 0;
				return outlen;
			}
		case PARQUET_CODEC_ZSTD:
			{
				size_t		r = ZSTD_compressCCtx(zstd, out, cap, in, len,
												  level ? level : 3);

				return ZSTD_isError(r) ? 0 : r;
			}
		case PARQUET_CODEC_GZIP:
			{
				z_stream	zs;
				int			rc;

				memset(&zs, 0, sizeof(zs));
				if (deflateInit2(&zs, level ? level : Z_DEFAULT_COMPRESSION,
								 Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
					return 0;
				zs.next_in = (Bytef *) in;
				zs.avail_in = len;
				zs.next_out = (Bytef *) out;
				zs.avail_out = cap;
				rc = deflate(&zs, Z_FINISH);
				deflateEnd(&zs);
				return rc == Z_STREAM_END ? zs.total_out : 0;
			}
	}
	return 0;
}
