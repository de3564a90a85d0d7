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

static inline uint32
get_level(const uint8 *v8, const uint32 *v32, int64 i)
{
	return v8 ? v8[i] : v32[i];
}

/* One bit-packed run of the hybrid encoding, zero-padded to a group of 8. */
static void
rle_literals(MemoryContext cxt, ParquetBuf *out, const uint8 *v8, const uint32 *v32,
			 int64 start, int64 count, int64 n, int bw)
{
	int64		groups = (count + 7) / 8;
	int64		j;
	uint64		acc = 0;
	int			nbits = 0;

	if (count == 0)
		return;
	buf_varint(cxt, out, ((uint64) groups << 1) | 1);
	ParquetBufReserve(cxt, out, groups * bw + 8);
	for (j = 0; j < groups * 8; j++)
	{
		uint64		val = (start + j < n) ? get_level(v8, v32, start + j) : 0;

		acc |= val << nbits;
		nbits += bw;
		while (nbits >= 8)
		{
			out->data[out->len++] = (char) (acc & 0xFF);
			acc >>= 8;
			nbits -= 8;
		}
	}
}

/*
 * The RLE/bit-packed hybrid encoding of n values of bw bits.  Runs of 8 or
 * more equal values become RLE runs; the rest is bit-packed in groups of 8,
 * borrowing from the next run to fill a group so that only the last
 * bit-packed run is padded.
 */
void
ParquetRleEncode(MemoryContext cxt, ParquetBuf *out, const uint8 *v8, const uint32 *v32,
		   int64 n, int bw)
{
	int64		i = 0,
				lit_start = 0,
				lit_count = 0;

	while (i < n)
	{
		uint32		v = get_level(v8, v32, i);
		int64		r = 1;

		while (i + r < n && get_level(v8, v32, i + r) == v)
			r++;
		if (r >= 8 && lit_count % 8 != 0)
		{
			int64		fill = 8 - lit_count % 8;

			lit_count += fill;
			i += fill;
			r -= fill;
		}
		if (r >= 8)
		{
			int			k;

			rle_literals(cxt, out, v8, v32, lit_start, lit_count, n, bw);
			buf_varint(cxt, out, (uint64) r << 1);
			ParquetBufReserve(cxt, out, 4);
			for (k = 0; k < (bw + 7) / 8; k++)
				out->data[out->len++] = (char) ((v >> (8 * k)) & 0xFF);
			i += r;
			lit_start = i;
			lit_count = 0;
		}
		else
		{
			lit_count += r;
			i += r;
		}
	}
	rle_literals(cxt, out, v8, v32, lit_start, lit_count, n, bw);
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

/*
 * Compresses in into out (for PARQUET_CODEC_NONE: nothing) and returns the
 * buffer that holds the page's bytes.  level 0 is the codec's default.
 */
ParquetBuf *
ParquetCompress(ParquetCodec codec, int level, ZSTD_CCtx *zstd,
				ParquetBuf *in, ParquetBuf *out, MemoryContext cxt)
{

	out->len = 0;
	switch (codec)
	{
		case PARQUET_CODEC_NONE:
			return in;
		case PARQUET_CODEC_SNAPPY:
			{
				size_t		cap = snappy_max_compressed_length(in->len);

				ParquetBufReserve(cxt, out, cap);
				if (snappy_compress(in->data, in->len, out->data, &cap) != SNAPPY_OK)
					elog(ERROR, "snappy compression failed");
				out->len = cap;
				break;
			}
		case PARQUET_CODEC_ZSTD:
			{
				size_t		cap = ZSTD_compressBound(in->len);
				size_t		r;

				ParquetBufReserve(cxt, out, cap);
				r = ZSTD_compressCCtx(zstd, out->data, cap, in->data, in->len,
									  level ? level : 3);
				if (ZSTD_isError(r))
					elog(ERROR, "zstd compression failed: %s", ZSTD_getErrorName(r));
				out->len = r;
				break;
			}
		case PARQUET_CODEC_GZIP:
			{
				z_stream	zs;
				int			rc;

				memset(&zs, 0, sizeof(zs));
				if (deflateInit2(&zs, level ? level : Z_DEFAULT_COMPRESSION,
								 Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
					elog(ERROR, "could not initialize gzip compression");
				ParquetBufReserve(cxt, out, deflateBound(&zs, in->len) + 32);
				zs.next_in = (Bytef *) in->data;
				zs.avail_in = in->len;
				zs.next_out = (Bytef *) out->data;
				zs.avail_out = out->cap;
				rc = deflate(&zs, Z_FINISH);
				out->len = zs.total_out;
				deflateEnd(&zs);
				if (rc != Z_STREAM_END)
					elog(ERROR, "gzip compression failed");
				break;
			}
	}
	return out;
}

