/*-------------------------------------------------------------------------
 * parquet_types.c
 *		How each PostgreSQL column type becomes a Parquet column.
 *
 * Each column's conversion is decided once, from the result's tuple
 * descriptor, so that the per-row loop (parquet_query.c) only follows it.
 * The mapping itself is documented once, in docs/parquet.md ("Types");
 * domains map as their base type, arrays and composite types become LIST
 * and STRUCT (parquet_shred.c), and any other type without a mapping of
 * its own is written as STRING, its text output.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"


#include <math.h>
#include <unistd.h>

#include <zstd.h>

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"


/* Bytes of a FIXED_LEN_BYTE_ARRAY that holds any DECIMAL of p digits. */
static int
decimal_bytes(int p)
{
	return (int) ceil((p * log2(10.0) + 1) / 8);
}

/*
 * Decides the Parquet leaf and the conversion for a value of type declared
 * (with typmod); arrays and composites are parquet_shred.c's.
 */
void
ParquetMapType(Oid declared, int32 declared_typmod, ParquetColumnSpec *spec, ColumnConv *conv)
{
	int32		typmod = declared_typmod;
	Oid			typid = getBaseTypeAndTypmod(declared, &typmod);

	spec->nullable = true;
	spec->logical = PARQUET_LOGICAL_NONE;
	conv->text = false;
	switch (typid)
	{
		case BOOLOID:
			spec->type = PARQUET_BOOLEAN;
			conv->kind = CONV_BOOL;
			return;
		case INT2OID:
			spec->type = PARQUET_INT32;
			spec->logical = PARQUET_LOGICAL_INT16;
			conv->kind = CONV_INT2;
			return;
		case INT4OID:
			spec->type = PARQUET_INT32;
			spec->logical = PARQUET_LOGICAL_INT32;
			conv->kind = CONV_INT4;
			return;
		case INT8OID:
			spec->type = PARQUET_INT64;
			spec->logical = PARQUET_LOGICAL_INT64;
			conv->kind = CONV_INT8;
			return;
		case FLOAT4OID:
			spec->type = PARQUET_FLOAT;
			conv->kind = CONV_FLOAT4;
			return;
		case FLOAT8OID:
			spec->type = PARQUET_DOUBLE;
			conv->kind = CONV_FLOAT8;
			return;
		case NUMERICOID:
			if (typmod >= (int32) VARHDRSZ)
			{
				int			p = ((typmod - VARHDRSZ) >> 16) & 0xffff;
				int			s = (((typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;

				if (p >= 1 && p <= 38 && s >= 0 && s <= p)
				{
					spec->logical = PARQUET_LOGICAL_DECIMAL;
					spec->precision = p;
					spec->scale = s;
					if (p <= 9)
						spec->type = PARQUET_INT32;
					else if (p <= 18)
						spec->type = PARQUET_INT64;
					else
					{
						spec->type = PARQUET_FIXED_LEN_BYTE_ARRAY;
						spec->type_length = decimal_bytes(p);
					}
					conv->kind = CONV_DECIMAL;
					fmgr_info(F_NUMERIC_OUT, &conv->out);
					return;
				}
			}
			break;				/* lossless as text */
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			spec->type = PARQUET_BYTE_ARRAY;
			spec->logical = PARQUET_LOGICAL_STRING;
			conv->kind = CONV_VARLENA;
			conv->text = true;
			return;
		case NAMEOID:
			spec->type = PARQUET_BYTE_ARRAY;
			spec->logical = PARQUET_LOGICAL_STRING;
			conv->kind = CONV_NAME;
			conv->text = true;
			return;
		case JSONOID:
			spec->type = PARQUET_BYTE_ARRAY;
			spec->logical = PARQUET_LOGICAL_JSON;
			conv->kind = CONV_VARLENA;
			conv->text = true;
			return;
		case JSONBOID:
			spec->type = PARQUET_BYTE_ARRAY;
			spec->logical = PARQUET_LOGICAL_JSON;
			conv->kind = CONV_JSONB;
			conv->text = true;
			return;
		case BYTEAOID:
			spec->type = PARQUET_BYTE_ARRAY;
			conv->kind = CONV_VARLENA;
			return;
		case UUIDOID:
			spec->type = PARQUET_FIXED_LEN_BYTE_ARRAY;
			spec->type_length = UUID_LEN;
			spec->logical = PARQUET_LOGICAL_UUID;
			conv->kind = CONV_UUID;
			return;
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
			spec->type = PARQUET_INT64;
			spec->logical = typid == TIMESTAMPTZOID ? PARQUET_LOGICAL_TIMESTAMP_UTC
				: PARQUET_LOGICAL_TIMESTAMP_LOCAL;
			conv->kind = CONV_TIMESTAMP;
			return;
		case DATEOID:
			spec->type = PARQUET_INT32;
			spec->logical = PARQUET_LOGICAL_DATE;
			conv->kind = CONV_DATE;
			return;
		default:
			break;
	}
	/* everything else: the text output of the column's own type */
	{
		Oid			outfn;
		bool		isvarlena;

		getTypeOutputInfo(declared, &outfn, &isvarlena);
		fmgr_info(outfn, &conv->out);
		spec->type = PARQUET_BYTE_ARRAY;
		spec->logical = PARQUET_LOGICAL_STRING;
		conv->kind = CONV_OUTPUT;
		conv->text = true;
	}
}
