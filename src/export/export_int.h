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

/* Where an export writes: a local directory or a blob container. */
typedef struct BlobLocation
{
	bool		local;			/* file://: path is an absolute directory */
	char	   *base;			/* scheme://host[:port] */
	char	   *path_prefix;	/* "/account" on emulators, "" on Azure */
	char	   *account;
	char	   *container;
	char	   *path;			/* folder inside the container, no '/' at either end */
} BlobLocation;

typedef enum BlobAuthKind
{
	BLOB_AUTH_NONE,
	BLOB_AUTH_SHARED_KEY,
	BLOB_AUTH_SAS,
	BLOB_AUTH_BEARER
} BlobAuthKind;

/* How requests are authorized; the secrets never leave this struct. */
typedef struct BlobAuth
{
	BlobAuthKind kind;
	const char *credential;		/* its name, for messages */
	unsigned char key[128];		/* SharedKey, base64-decoded */
	int			keylen;
	const char *sas;			/* query string without '?' */
	const char *bearer;			/* OAuth2 access token */
} BlobAuth;

typedef struct BlobOptions
{
	int			parallel;		/* concurrent Put Block requests */
	size_t		block_size;
	int			max_retries;
	int			timeout_ms;		/* per request */
} BlobOptions;

typedef struct BlobClient BlobClient;
typedef struct BlobUpload BlobUpload;

extern BlobLocation *BlobParseLocation(const char *url);
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
#define BLOB_API_VERSION "2021-08-06"

/* What a SharedKey signature covers of a request. */
typedef struct BlobSignedRequest
{
	const char *method;
	size_t		len;			/* of the body */
	const char *md5;			/* Content-MD5, base64; "" if none */
	const char *content_type;	/* NULL if none */
	bool		put_blob;		/* sends x-ms-blob-type: BlockBlob */
	const char *path;			/* as sent, percent-encoded */
	const char *query;			/* without '?', names in order; NULL if none */
	const char *if_none_match;	/* If-None-Match, or NULL */
} BlobSignedRequest;

extern void BlobBase64(const unsigned char *in, int n, char *out);
extern char *BlobEncodePath(const char *s);
extern char *BlobSharedKeyHeader(const BlobAuth *auth, const char *account,
								 const BlobSignedRequest *r, const char *date);

/* in azure_auth.c */
extern void AzureAuthLoad(const char *name, const BlobLocation *loc, BlobAuth *auth);

/* in delta_stats.c */
extern char *DeltaSchemaFields(ParquetWriter *w);
extern char *DeltaFileStats(ParquetWriter *w);

#endif							/* EXPORT_EXPORT_INT_H */
