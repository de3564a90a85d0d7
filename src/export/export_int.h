/*-------------------------------------------------------------------------
 * export/export_int.h
 *		The export stage's own declarations: Azure Blob Storage and its
 *		credentials, and what the Delta log says of a written file.
 *
 * The HTTP client knows nothing of tuples; export.c joins it to parquet/.
 * The Delta log (delta_log.c, delta_checkpoint.c) knows files and their
 * statistics, not how they were encoded.
 *-------------------------------------------------------------------------
 */
#ifndef EXPORT_EXPORT_INT_H
#define EXPORT_EXPORT_INT_H

#include "export/export.h"
#include "lib/stringinfo.h"
#include "parquet/parquet.h"

/* in azure_blob.c */


typedef struct BlobOptions
{
	int			parallel;		/* concurrent Put Block requests */
	size_t		block_size;
	int			max_retries;
	int			timeout_ms;		/* per request */
} BlobOptions;

typedef struct BlobClient BlobClient;
typedef struct BlobUpload BlobUpload;

extern BlobClient *BlobClientCreate(const BlobLocation *loc, const BlobAuth *auth,
									const BlobOptions *opts);
extern void BlobClientDestroy(BlobClient *c);
extern BlobUpload *BlobUploadBegin(BlobClient *c, const char *blob);
extern void BlobUploadWrite(void *arg, const void *data, size_t len);
extern char *BlobUploadRoom(BlobUpload *u, size_t *room);
extern void BlobUploadAppended(BlobUpload *u, size_t n);
extern void BlobUploadFinishBlocks(BlobUpload *u);
extern void BlobUploadCommit(BlobUpload *u);
extern int64 BlobUploadBytes(BlobUpload *u);
extern bool BlobDelete(BlobClient *c, const char *blob);
extern void BlobDeleteUpload(BlobUpload *u);
extern bool BlobGetSmall(BlobClient *c, const char *blob, StringInfo out);
extern bool BlobPutIfAbsent(BlobClient *c, const char *blob, const char *data, size_t len);

/* in blob_sign.c */
extern void BlobBase64(const unsigned char *in, int n, char *out);

/* in delta_stats.c */
extern char *DeltaSchemaFields(ParquetWriter *w);
extern char *DeltaFileStats(ParquetWriter *w);

#endif							/* EXPORT_EXPORT_INT_H */
