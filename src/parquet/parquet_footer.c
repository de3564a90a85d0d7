/*-------------------------------------------------------------------------
 * parquet_footer.c
 *		Serializes a Parquet file's FileMetaData (the footer) in the Thrift
 *		compact protocol.
 *
 * The field ids follow parquet.thrift of apache/parquet-format.  The schema
 * elements are parquet_schema.c's; a column chunk is named by its leaf's
 * path.  ColumnOrder is TYPE_ORDER for every column: readers may trust
 * min_value/max_value.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#define ENC_PLAIN			0
#define ENC_RLE				3
#define ENC_RLE_DICTIONARY	8

/* Appends the Thrift FileMetaData of a finished file to t. */
void
ParquetEncodeFooter(ThriftBuf *t, const ParquetFooter *f)
{
	int			i,
				g,
				k;

	ThriftFieldI32(t, 1, 1);
	ParquetSchemaEncode(t, f->schema);
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
			ThriftFieldListBegin(t, 3, THRIFT_ELEM_BINARY, f->schema->depths[i]);
			for (k = 0; k < f->schema->depths[i]; k++)
				ThriftListBinary(t, f->schema->paths[i][k], strlen(f->schema->paths[i][k]));
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
