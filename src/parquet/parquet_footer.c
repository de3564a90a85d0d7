/*-------------------------------------------------------------------------
 * parquet_footer.c
 *		Serializes a Parquet file's FileMetaData (the footer) in the Thrift
 *		compact protocol.
 *
 * The field ids follow parquet.thrift of apache/parquet-format.  Every
 * column carries both its LogicalType and, where one exists, the matching
 * ConvertedType, so that old and new readers agree.  ColumnOrder is
 * TYPE_ORDER for every column: readers may trust min_value/max_value.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#define ENC_PLAIN			0
#define ENC_RLE				3
#define ENC_RLE_DICTIONARY	8

static void
write_logical_type(ThriftBuf *t, const ParquetColumnSpec *s)
{
	int16		id;

	switch (s->logical)
	{
		case PARQUET_LOGICAL_NONE:
			return;
		case PARQUET_LOGICAL_STRING:
			id = 1;
			break;
		case PARQUET_LOGICAL_DECIMAL:
			id = 5;
			break;
		case PARQUET_LOGICAL_DATE:
			id = 6;
			break;
		case PARQUET_LOGICAL_TIMESTAMP_UTC:
		case PARQUET_LOGICAL_TIMESTAMP_LOCAL:
			id = 8;
			break;
		case PARQUET_LOGICAL_INT16:
		case PARQUET_LOGICAL_INT32:
		case PARQUET_LOGICAL_INT64:
			id = 10;
			break;
		case PARQUET_LOGICAL_JSON:
			id = 12;
			break;
		case PARQUET_LOGICAL_UUID:
			id = 14;
			break;
		default:
			return;
	}
	ThriftStructBegin(t, 10);
	ThriftStructBegin(t, id);
	switch (s->logical)
	{
		case PARQUET_LOGICAL_DECIMAL:
			ThriftFieldI32(t, 1, s->scale);
			ThriftFieldI32(t, 2, s->precision);
			break;
		case PARQUET_LOGICAL_TIMESTAMP_UTC:
		case PARQUET_LOGICAL_TIMESTAMP_LOCAL:
			ThriftFieldBool(t, 1, s->logical == PARQUET_LOGICAL_TIMESTAMP_UTC);
			ThriftStructBegin(t, 2);	/* TimeUnit */
			ThriftStructBegin(t, 2);	/* MICROS */
			ThriftStructEnd(t);
			ThriftStructEnd(t);
			break;
		case PARQUET_LOGICAL_INT16:
		case PARQUET_LOGICAL_INT32:
		case PARQUET_LOGICAL_INT64:
			ThriftFieldI8(t, 1, s->logical == PARQUET_LOGICAL_INT16 ? 16 :
						  s->logical == PARQUET_LOGICAL_INT32 ? 32 : 64);
			ThriftFieldBool(t, 2, true);
			break;
		default:
			break;
	}
	ThriftStructEnd(t);
	ThriftStructEnd(t);
}

/* The ConvertedType matching a logical type, or -1 for none. */
static int32
converted_type(ParquetLogicalType l)
{
	switch (l)
	{
		case PARQUET_LOGICAL_STRING:
			return 0;			/* UTF8 */
		case PARQUET_LOGICAL_DECIMAL:
			return 5;
		case PARQUET_LOGICAL_DATE:
			return 6;
		case PARQUET_LOGICAL_TIMESTAMP_UTC:
			return 10;			/* TIMESTAMP_MICROS */
		case PARQUET_LOGICAL_INT16:
			return 16;
		case PARQUET_LOGICAL_INT32:
			return 17;
		case PARQUET_LOGICAL_INT64:
			return 18;
		case PARQUET_LOGICAL_JSON:
			return 19;
		default:
			return -1;
	}
}

/* Appends the Thrift FileMetaData of a finished file to t. */
void
ParquetEncodeFooter(ThriftBuf *t, const ParquetFooter *f)
{
	int			i,
				g;

	ThriftFieldI32(t, 1, 1);
	ThriftFieldListBegin(t, 2, THRIFT_ELEM_STRUCT, f->ncols + 1);
	ThriftListStructBegin(t);
	ThriftFieldString(t, 4, "schema");
	ThriftFieldI32(t, 5, f->ncols);
	ThriftStructEnd(t);
	for (i = 0; i < f->ncols; i++)
	{
		const ParquetColumnSpec *s = &f->cols[i];
		int32		conv = converted_type(s->logical);

		ThriftListStructBegin(t);
		ThriftFieldI32(t, 1, s->type);
		if (s->type == PARQUET_FIXED_LEN_BYTE_ARRAY)
			ThriftFieldI32(t, 2, s->type_length);
		ThriftFieldI32(t, 3, s->nullable ? 1 : 0);
		ThriftFieldString(t, 4, s->name);
		if (conv >= 0)
			ThriftFieldI32(t, 6, conv);
		if (s->logical == PARQUET_LOGICAL_DECIMAL)
		{
			ThriftFieldI32(t, 7, s->scale);
			ThriftFieldI32(t, 8, s->precision);
		}
		write_logical_type(t, s);
		ThriftStructEnd(t);
	}
	ThriftFieldI64(t, 3, f->total_rows);
	ThriftFieldListBegin(t, 4, THRIFT_ELEM_STRUCT, f->nrowgroups);
	for (g = 0; g < f->nrowgroups; g++)
	{
		int64		total_uncompressed = 0,
					total_compressed = 0;

		ThriftListStructBegin(t);
		ThriftFieldListBegin(t, 1, THRIFT_ELEM_STRUCT, f->ncols);
		for (i = 0; i < f->ncols; i++)
		{
			ParquetChunkMeta *m = &f->chunks[i][g];

			total_uncompressed += m->uncompressed;
			total_compressed += m->compressed;
			ThriftListStructBegin(t);
			ThriftFieldI64(t, 2, m->offset);
			ThriftStructBegin(t, 3);
			ThriftFieldI32(t, 1, f->cols[i].type);
			ThriftFieldListBegin(t, 2, THRIFT_ELEM_I32, m->dictionary ? 3 : 2);
			ThriftListI32(t, ENC_PLAIN);
			ThriftListI32(t, ENC_RLE);
			if (m->dictionary)
				ThriftListI32(t, ENC_RLE_DICTIONARY);
			ThriftFieldListBegin(t, 3, THRIFT_ELEM_BINARY, 1);
			ThriftListBinary(t, f->cols[i].name, strlen(f->cols[i].name));
			ThriftFieldI32(t, 4, f->codec);
			ThriftFieldI64(t, 5, m->num_values);
			ThriftFieldI64(t, 6, m->uncompressed);
			ThriftFieldI64(t, 7, m->compressed);
			ThriftFieldI64(t, 9, m->data_offset);
			if (m->dictionary)
				ThriftFieldI64(t, 11, m->dict_offset);
			ThriftStructBegin(t, 12);
			ThriftFieldI64(t, 3, m->null_count);
			if (m->has_minmax)
			{
				ThriftFieldBinary(t, 5, m->max, m->maxlen);
				ThriftFieldBinary(t, 6, m->min, m->minlen);
			}
			ThriftStructEnd(t);
			ThriftStructEnd(t);
			ThriftStructEnd(t);
		}
		ThriftFieldI64(t, 2, total_uncompressed);
		ThriftFieldI64(t, 3, f->rg_nrows[g]);
		ThriftFieldI64(t, 5, f->chunks[0][g].offset);
		ThriftFieldI64(t, 6, total_compressed);
		ThriftStructEnd(t);
	}
	if (f->nkv > 0)
	{
		ThriftFieldListBegin(t, 5, THRIFT_ELEM_STRUCT, f->nkv);
		for (i = 0; i < f->nkv; i++)
		{
			ThriftListStructBegin(t);
			ThriftFieldString(t, 1, f->kv_keys[i]);
			ThriftFieldString(t, 2, f->kv_values[i]);
			ThriftStructEnd(t);
		}
	}
	ThriftFieldString(t, 6, "iotstream version " IOTSTREAM_VERSION);
	ThriftFieldListBegin(t, 7, THRIFT_ELEM_STRUCT, f->ncols);
	for (i = 0; i < f->ncols; i++)
	{
		ThriftListStructBegin(t);
		ThriftStructBegin(t, 1);	/* TYPE_ORDER */
		ThriftStructEnd(t);
		ThriftStructEnd(t);
	}
	ThriftStructEnd(t);
}
