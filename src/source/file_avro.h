/*-------------------------------------------------------------------------
 * source/file_avro.h
 *		What file_avro.c (records) and file_avro_block.c (the container's
 *		blocks) share: libavro's functions, loaded with dlopen, and the
 *		blocks of a container file.
 *
 * Only the two file_avro*.c files include it.
 *-------------------------------------------------------------------------
 */
#ifndef SOURCE_FILE_AVRO_H
#define SOURCE_FILE_AVRO_H

#include <avro.h>

/* the functions of libavro used (the value methods are in its ifaces) */
typedef struct AvroLib
{
	avro_value_iface_t *(*class_from_schema) (avro_schema_t);
	int			(*value_new) (avro_value_iface_t *, avro_value_t *);
	void		(*value_decref) (avro_value_t *);
	int			(*value_to_json) (const avro_value_t *, int, char **);
	int			(*value_read) (avro_reader_t, avro_value_t *);
	int			(*value_sizeof) (avro_value_t *, size_t *);
	int			(*read) (avro_reader_t, void *, int64_t);
	avro_reader_t (*reader_memory) (const char *, int64_t);
	void		(*reader_memory_set_source) (avro_reader_t, const char *, int64_t);
	void		(*reader_free) (avro_reader_t);
	int			(*schema_from_json_length) (const char *, size_t, avro_schema_t *);
	int			(*schema_decref) (avro_schema_t);
	avro_schema_t (*schema_record) (const char *, const char *);
	int			(*schema_record_field_get_index) (const avro_schema_t, const char *);
	avro_schema_t (*schema_record_field_get_by_index) (const avro_schema_t, int);
	int			(*schema_record_field_append) (const avro_schema_t, const char *, const avro_schema_t);
	const char *(*schema_name) (const avro_schema_t);
	const char *(*schema_namespace) (const avro_schema_t);
	avro_value_iface_t *(*resolved_writer_new) (avro_schema_t, avro_schema_t);
	int			(*resolved_writer_new_value) (avro_value_iface_t *, avro_value_t *);
	void		(*resolved_writer_set_dest) (avro_value_t *, avro_value_t *);
	const char *(*strerror) (void);
} AvroLib;

/* in file_avro_block.c */
extern const AvroLib *AvroLoad(char *errbuf, size_t errlen);

typedef struct AvroBlocks AvroBlocks;

/* A block of records, or a stretch of the file that is not one. */
typedef struct AvroBlock
{
	int64		offset;			/* where it starts in the file */
	int64		count;			/* its records */
	const char *data;			/* its records' bytes, uncompressed */
	size_t		len;
	/* a corrupt block (AvroBlocksNext returned -1): */
	const char *reason;
	int64		resume;			/* where the file goes on: a block, or its end */
	const char *raw;			/* its first bytes, for the dead letter */
	size_t		raw_len;
} AvroBlock;

extern AvroBlocks *AvroBlocksOpen(const char *path, avro_schema_t *schema,
								  int64 *first, char *errbuf, size_t errlen);
/* reads the records of a block; false, with the reason, if it cannot */
typedef bool (*AvroDecodeBlock) (void *arg, const AvroBlock *block,
								 char *reason, size_t reasonlen);

extern int	AvroBlocksNext(AvroBlocks *b, int64 offset, AvroBlock *out,
						   AvroDecodeBlock decode, void *arg);
extern void AvroBlocksClose(AvroBlocks *b);

#endif							/* SOURCE_FILE_AVRO_H */
