/*-------------------------------------------------------------------------
 * parquet_read_footer.c
 *		The reading half of the Thrift compact protocol, and a Parquet
 *		footer read with it: the schema elements and, per row group, where
 *		each column chunk is and how it is compressed.  parquet_read.c
 *		reads the pages.
 *
 * The invariant: nothing is read past the buffer it was given; a truncated
 * or malformed footer is an error, never a read out of bounds.  Fields this
 * reader does not need are skipped whatever their type.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"


/* ---- the Thrift compact protocol, read ---- */

void
ParquetReadCorrupt(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("could not read a parquet file: %s", what)));
}

uint64
ThriftReadVarint(ThriftReader *r)
{
	uint64		v = 0;
	int			shift = 0;

	while (r->p < r->end && shift < 64)
	{
		uint8		b = *r->p++;

		v |= (uint64) (b & 0x7F) << shift;
		if ((b & 0x80) == 0)
			return v;
		shift += 7;
	}
	ParquetReadCorrupt("truncated varint");
	return 0;
}

int64
ThriftReadZigzag(ThriftReader *r)
{
	uint64		u = ThriftReadVarint(r);

	return (int64) (u >> 1) ^ -(int64) (u & 1);
}

/* A field header: its type (0 at the end of a struct) and id. */
int
ThriftReadField(ThriftReader *r, int16 *id)
{
	uint8		b;
	int			delta;

	if (r->p >= r->end)
		ParquetReadCorrupt("truncated struct");
	b = *r->p++;
	if (b == 0)
		return 0;
	delta = b >> 4;
	*id = delta ? *id + delta : (int16) ThriftReadZigzag(r);
	return b & 0x0F;
}

int
ThriftReadList(ThriftReader *r, int *elem)
{
	uint8		b;
	int			n;

	if (r->p >= r->end)
		ParquetReadCorrupt("truncated list");
	b = *r->p++;
	n = b >> 4;
	*elem = b & 0x0F;
	if (n == 15)
		n = (int) ThriftReadVarint(r);
	if (n < 0 || n > r->end - r->p)
		ParquetReadCorrupt("list too long");
	return n;
}

const uint8 *
ThriftReadBinary(ThriftReader *r, int *len)
{
	uint64		n = ThriftReadVarint(r);
	const uint8 *p = r->p;

	if (n > (uint64) (r->end - r->p))
		ParquetReadCorrupt("truncated binary");
	r->p += n;
	*len = (int) n;
	return p;
}

void
ThriftSkip(ThriftReader *r, int type)
{
	int			i,
				n,
				elem,
				len;
	int16		id = 0;

	switch (type)
	{
		case 1:					/* true */
		case 2:					/* false */
			return;
		case 3:					/* byte */
			if (r->p >= r->end)
				ParquetReadCorrupt("truncated byte");
			r->p++;
			return;
		case 4:
		case 5:
		case 6:
			(void) ThriftReadVarint(r);
			return;
		case 7:
			if (r->end - r->p < 8)
				ParquetReadCorrupt("truncated double");
			r->p += 8;
			return;
		case 8:
			(void) ThriftReadBinary(r, &len);
			return;
		case 9:
		case 10:
			n = ThriftReadList(r, &elem);
			for (i = 0; i < n; i++)
			{
				if (elem == 1 || elem == 2)
					r->p++;		/* booleans in a list: a byte each */
				else
					ThriftSkip(r, elem);
			}
			return;
		case 11:
			n = (int) ThriftReadVarint(r);
			if (n > 0)
			{
				uint8		kv = *r->p++;

				for (i = 0; i < n; i++)
				{
					ThriftSkip(r, kv >> 4);
					ThriftSkip(r, kv & 0x0F);
				}
			}
			return;
		case 12:
			while ((elem = ThriftReadField(r, &id)) != 0)
				ThriftSkip(r, elem);
			return;
		default:
			ParquetReadCorrupt("unknown thrift type");
	}
}

/* ---- the footer ---- */

static void
read_schema_element(ThriftReader *r, PqrSchema *s)
{
	int16		id = 0;
	int			t;

	memset(s, 0, sizeof(PqrSchema));
	s->type = -1;
	s->converted = -1;
	while ((t = ThriftReadField(r, &id)) != 0)
	{
		if (id == 1 && t == 5)
			s->type = (int) ThriftReadZigzag(r);
		else if (id == 3 && t == 5)
			s->repetition = (int) ThriftReadZigzag(r);
		else if (id == 4 && t == 8)
		{
			int			len;
			const uint8 *p = ThriftReadBinary(r, &len);

			s->name = pnstrdup((const char *) p, len);
		}
		else if (id == 5 && t == 5)
			s->nchildren = (int) ThriftReadZigzag(r);
		else if (id == 6 && t == 5)
		{
			s->converted = (int) ThriftReadZigzag(r);
			if (s->converted == 3)
				s->is_list = true;
			if (s->converted == 1 || s->converted == 2)
				s->is_map = true;
		}
		else if (id == 10 && t == 12)
		{
			/* LogicalType: a union, LIST is 3 and MAP is 2 */
			int16		lid = 0;
			int			lt;

			while ((lt = ThriftReadField(r, &lid)) != 0)
			{
				if (lid == 3)
					s->is_list = true;
				if (lid == 2)
					s->is_map = true;
				ThriftSkip(r, lt);
			}
		}
		else
			ThriftSkip(r, t);
	}
}

static void
read_column_meta(ThriftReader *r, PqrChunk *c)
{
	int16		id = 0;
	int			t;

	c->dict_offset = -1;
	while ((t = ThriftReadField(r, &id)) != 0)
	{
		if (id == 4 && t == 5)
			c->codec = (int) ThriftReadZigzag(r);
		else if (id == 5 && t == 6)
			c->num_values = ThriftReadZigzag(r);
		else if (id == 7 && t == 6)
			c->compressed = ThriftReadZigzag(r);
		else if (id == 9 && t == 6)
			c->data_offset = ThriftReadZigzag(r);
		else if (id == 11 && t == 6)
			c->dict_offset = ThriftReadZigzag(r);
		else
			ThriftSkip(r, t);
	}
}

void
ParquetReadFooter(const uint8 *data, size_t len, PqrFile *f)
{
	ThriftReader		r;
	uint32		flen;
	int16		id = 0;
	int			t,
				n,
				elem,
				i,
				g;

	if (len < 12 || memcmp(data, "PAR1", 4) != 0 || memcmp(data + len - 4, "PAR1", 4) != 0)
		ParquetReadCorrupt("not a parquet file");
	memcpy(&flen, data + len - 8, 4);
	if (flen > len - 12)
		ParquetReadCorrupt("footer too long");
	r.p = data + len - 8 - flen;
	r.end = data + len - 8;
	memset(f, 0, sizeof(PqrFile));
	while ((t = ThriftReadField(&r, &id)) != 0)
	{
		if (id == 2 && t == 9)
		{
			n = ThriftReadList(&r, &elem);
			f->schema = palloc0(sizeof(PqrSchema) * Max(n, 1));
			f->nschema = n;
			for (i = 0; i < n; i++)
				read_schema_element(&r, &f->schema[i]);
			for (i = 0; i < n; i++)
				if (f->schema[i].type >= 0)
					f->nleaves++;
		}
		else if (id == 3 && t == 6)
			f->num_rows = ThriftReadZigzag(&r);
		else if (id == 4 && t == 9)
		{
			n = ThriftReadList(&r, &elem);
			f->nrowgroups = n;
			f->chunks = palloc0(sizeof(PqrChunk) * Max(n * Max(f->nleaves, 1), 1));
			for (g = 0; g < n; g++)
			{
				int16		gid = 0;
				int			gt;

				while ((gt = ThriftReadField(&r, &gid)) != 0)
				{
					if (gid == 1 && gt == 9)
					{
						int			nc = ThriftReadList(&r, &elem);

						if (nc != f->nleaves)
							ParquetReadCorrupt("a row group's columns are not the schema's leaves");
						for (i = 0; i < nc; i++)
						{
							int16		cid = 0;
							int			ct;

							while ((ct = ThriftReadField(&r, &cid)) != 0)
							{
								if (cid == 3 && ct == 12)
									read_column_meta(&r, &f->chunks[g * f->nleaves + i]);
								else
									ThriftSkip(&r, ct);
							}
						}
					}
					else
						ThriftSkip(&r, gt);
				}
			}
		}
		else
			ThriftSkip(&r, t);
	}
	if (f->nschema == 0)
		ParquetReadCorrupt("no schema");
}

