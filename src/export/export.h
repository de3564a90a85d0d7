/*-------------------------------------------------------------------------
 * export/export.h
 *		What other stages may use of exports: blob locations, storage
 *		credentials and request signing.
 *
 * Exports are the last stage: SQL calls them (sql/install/70_export.sql).
 * The file source (source/file_blob.c) reads the same locations with the
 * same credentials, so it shares how they are parsed, loaded and signed.
 *-------------------------------------------------------------------------
 */
#ifndef EXPORT_EXPORT_H
#define EXPORT_EXPORT_H

#include "iotstream.h"

/* in blob_location.c */

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

extern BlobLocation *BlobParseLocation(const char *url);

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

extern char *BlobEncodePath(const char *s);
extern char *BlobSharedKeyHeader(const BlobAuth *auth, const char *account,
								 const BlobSignedRequest *r, const char *date);

/* in azure_auth.c: in a transaction; name NULL for anonymous requests */
extern void AzureAuthLoad(const char *name, const BlobLocation *loc, BlobAuth *auth);

#endif							/* EXPORT_EXPORT_H */
