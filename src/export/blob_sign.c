/*-------------------------------------------------------------------------
 * blob_sign.c
 *		Azure Storage request signing (SharedKey) and the encodings it needs.
 *
 * It knows the canonical string of Authorize with Shared Key and nothing
 * of HTTP transfers; the key never leaves the BlobAuth it is given.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "export/export_int.h"

#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/stringinfo.h"

/* Base64 of binary bytes into out (which has room for 4*ceil(n/3)+1). */
void
BlobBase64(const unsigned char *in, int n, char *out)
{
	EVP_EncodeBlock((unsigned char *) out, in, n);
}

/* Percent-encodes a blob name for a URL path; '/' separates folders. */
char *
BlobEncodePath(const char *s)
{
	StringInfoData b;

	initStringInfo(&b);
	for (; *s; s++)
	{
		unsigned char ch = (unsigned char) *s;

		if (isalnum(ch) || strchr("-._~/=", ch))
			appendStringInfoChar(&b, ch);
		else
			appendStringInfo(&b, "%%%02X", ch);
	}
	return b.data;
}

/*
 * The SharedKey signature of a request (Authorize with Shared Key, version
 * 2009-09-19 and later): the canonical resource is /account plus the URL
 * path as sent, then each query parameter as "name:value" in name order.
 */
char *
BlobSharedKeyHeader(const BlobAuth *auth, const char *account, const BlobSignedRequest *s,
					const char *date)
{
	StringInfoData sts;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen;
	char		sig[EVP_MAX_MD_SIZE * 2];
	char		lenbuf[32] = "";

	/* an empty body signs an empty Content-Length */
	if (s->len > 0)
		snprintf(lenbuf, sizeof(lenbuf), "%zu", s->len);
	initStringInfo(&sts);
	appendStringInfo(&sts, "%s\n\n\n%s\n%s\n%s\n\n\n\n%s\n\n\n",
					 s->method, lenbuf, s->md5, s->content_type ? s->content_type : "",
					 s->if_none_match ? s->if_none_match : "");
	/* the x-ms-* headers, in name order */
	if (s->put_blob)
		appendStringInfoString(&sts, "x-ms-blob-type:BlockBlob\n");
	appendStringInfo(&sts, "x-ms-date:%s\nx-ms-version:%s\n", date, BLOB_API_VERSION);
	appendStringInfo(&sts, "/%s%s", account, s->path);
	if (s->query)
	{
		/* our queries are built with names already in order, one per '&' */
		char	   *q = pstrdup(s->query);
		char	   *tok;
		char	   *save;

		for (tok = strtok_r(q, "&", &save); tok; tok = strtok_r(NULL, "&", &save))
		{
			char	   *eq = strchr(tok, '=');

			if (eq)
				*eq = ':';
			appendStringInfo(&sts, "\n%s", tok);
		}
	}
	if (HMAC(EVP_sha256(), auth->key, auth->keylen,
			 (unsigned char *) sts.data, sts.len, mac, &maclen) == NULL)
		elog(ERROR, "HMAC-SHA256 failed");
	BlobBase64(mac, maclen, sig);
	return psprintf("Authorization: SharedKey %s:%s", account, sig);
}
