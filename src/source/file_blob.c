/*-------------------------------------------------------------------------
 * file_blob.c
 *		A file source's folder in Azure Blob Storage or ADLS Gen2: List
 *		Blobs and Get Blob.
 *
 * Locations and storage credentials are the export stage's (export.h):
 * abfss://container@account.dfs.core.windows.net/path, https://account.
 * blob.core.windows.net/container/path, or an emulator's http://host:port/
 * account/container/path, with a SharedKey, SAS or Entra ID credential.
 * A listing is List Blobs under the pattern's literal folders (its prefix),
 * page by page with the marker Azure returns, so a listing that finds
 * nothing new costs one request per page of names; a file to read is
 * fetched whole to a temporary file, which file_read.c then reads as a
 * local one (and seeks in, to resume).  Invariant: a blob's etag is
 * Azure's ETag, which changes whenever the blob is written.  Secrets stay
 * in the BlobAuth; messages name the account, container and blob only.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"
#include "export/export.h"

#include <curl/curl.h>

#include "access/xact.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"

#define BLOB_CONNECT_TIMEOUT_S	10
#define BLOB_LOW_SPEED_S		60	/* a transfer slower than 1 kB/s this long fails */

struct FileBlob
{
	BlobLocation *loc;
	BlobAuth	auth;
	char	   *credential;
	int			page_size;
	CURL	   *curl;
	MemoryContext cxt;
};

/*
 * The client for location, with the credential's secrets loaded in a
 * transaction of its own.
 */
FileBlob *
FileBlobOpen(const char *location, const char *credential, int page_size, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	FileBlob   *b = palloc0(sizeof(FileBlob));

	b->cxt = cxt;
	b->page_size = page_size > 0 ? page_size : 5000;
	b->credential = credential ? pstrdup(credential) : NULL;
	b->loc = BlobParseLocation(location);
	WorkerBeginXact("loading a storage credential");
	MemoryContextSwitchTo(cxt);
	AzureAuthLoad(b->credential, b->loc, &b->auth);
	WorkerCommitXact();
	b->curl = curl_easy_init();
	if (b->curl == NULL)
		elog(ERROR, "could not initialize libcurl");
	MemoryContextSwitchTo(old);
	return b;
}

static size_t
to_buffer(char *ptr, size_t size, size_t nmemb, void *arg)
{
	appendBinaryStringInfo((StringInfo) arg, ptr, size * nmemb);
	return size * nmemb;
}

static size_t
to_file(char *ptr, size_t size, size_t nmemb, void *arg)
{
	return fwrite(ptr, size, nmemb, (FILE *) arg) * size;
}

/*
 * One GET of path (percent-encoded) with query (names in order; sent
 * encoded, signed decoded).  Returns the HTTP status, or 0 with errbuf.
 */
static long
blob_get(FileBlob *b, const char *path, const char *send_query, const char *sign_query,
		 StringInfo body, FILE *out, char *errbuf, size_t errlen)
{
	struct curl_slist *headers = NULL;
	char		date[64];
	time_t		now = time(NULL);
	struct tm	tm;
	StringInfoData url;
	CURLcode	rc;
	long		status = 0;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	initStringInfo(&url);
	appendStringInfo(&url, "%s%s", b->loc->base, path);
	if (send_query || b->auth.kind == BLOB_AUTH_SAS)
		appendStringInfoChar(&url, '?');
	if (send_query)
		appendStringInfoString(&url, send_query);
	if (b->auth.kind == BLOB_AUTH_SAS)
		appendStringInfo(&url, "%s%s", send_query ? "&" : "", b->auth.sas);
	headers = curl_slist_append(headers, psprintf("x-ms-date: %s", date));
	headers = curl_slist_append(headers, "x-ms-version: " BLOB_API_VERSION);
	if (b->auth.kind == BLOB_AUTH_SHARED_KEY)
	{
		BlobSignedRequest r = {0};

		r.method = "GET";
		r.md5 = "";
		r.path = path;
		r.query = sign_query;
		headers = curl_slist_append(headers, BlobSharedKeyHeader(&b->auth, b->loc->account, &r, date));
	}
	else if (b->auth.kind == BLOB_AUTH_BEARER)
		headers = curl_slist_append(headers, psprintf("Authorization: Bearer %s", b->auth.bearer));

	curl_easy_reset(b->curl);
	curl_easy_setopt(b->curl, CURLOPT_URL, url.data);
	curl_easy_setopt(b->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(b->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(b->curl, CURLOPT_CONNECTTIMEOUT, (long) BLOB_CONNECT_TIMEOUT_S);
	curl_easy_setopt(b->curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(b->curl, CURLOPT_LOW_SPEED_TIME, (long) BLOB_LOW_SPEED_S);
	if (out)
	{
		curl_easy_setopt(b->curl, CURLOPT_WRITEFUNCTION, to_file);
		curl_easy_setopt(b->curl, CURLOPT_WRITEDATA, out);
	}
	else
	{
		curl_easy_setopt(b->curl, CURLOPT_WRITEFUNCTION, to_buffer);
		curl_easy_setopt(b->curl, CURLOPT_WRITEDATA, body);
	}
	rc = curl_easy_perform(b->curl);
	curl_slist_free_all(headers);
	pfree(url.data);
	if (rc != CURLE_OK)
	{
		snprintf(errbuf, errlen, "request to account \"%s\", container \"%s\" failed: %s",
				 b->loc->account, b->loc->container, curl_easy_strerror(rc));
		return 0;
	}
	curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* The text of <tag>...</tag> in [from, to), XML entities decoded; NULL if none. */
static char *
xml_value(const char *from, const char *to, const char *tag)
{
	char	   *open = psprintf("<%s>", tag);
	char	   *close = psprintf("</%s>", tag);
	const char *s = from;
	const char *e;
	StringInfoData v;

	while (s < to && (s = strstr(s, open)) != NULL && s < to)
	{
		s += strlen(open);
		e = strstr(s, close);
		if (e == NULL || e > to)
			return NULL;
		initStringInfo(&v);
		while (s < e)
		{
			static const char *const ent[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"},
			{"&quot;", "\""}, {"&apos;", "'"}};
			bool		done = false;

			for (int i = 0; i < lengthof(ent) && !done; i++)
				if (strncmp(s, ent[i][0], strlen(ent[i][0])) == 0)
				{
					appendStringInfoString(&v, ent[i][1]);
					s += strlen(ent[i][0]);
					done = true;
				}
			if (!done)
				appendStringInfoChar(&v, *s++);
		}
		return v.data;
	}
	return NULL;
}

static char *
escape(FileBlob *b, const char *s)
{
	char	   *e = curl_easy_escape(b->curl, s, 0);
	char	   *r = pstrdup(e);

	curl_free(e);
	return r;
}

/*
 * The blobs under the location that match pattern, by path relative to
 * it, sorted; NULL (with the reason in errbuf) if the listing failed.
 */
FileEntry *
FileBlobList(FileBlob *b, const char *pattern, int *n, char *errbuf, size_t errlen)
{
	const char *folder = b->loc->path;
	char	   *prefix = psprintf("%s%s%s", folder, folder[0] ? "/" : "", FilePatternPrefix(pattern));
	size_t		skip = folder[0] ? strlen(folder) + 1 : 0;
	char	   *path = psprintf("%s/%s", b->loc->path_prefix, BlobEncodePath(b->loc->container));
	char	   *marker = NULL;
	FileEntry  *entries = NULL;
	int			count = 0,
				cap = 0;
	StringInfoData body;

	*n = -1;					/* a failed listing */
	initStringInfo(&body);
	do
	{
		StringInfoData sendq,
					signq;
		long		status;
		const char *s;

		initStringInfo(&sendq);
		initStringInfo(&signq);
		appendStringInfoString(&sendq, "comp=list");
		appendStringInfoString(&signq, "comp=list");
		if (marker)
		{
			appendStringInfo(&sendq, "&marker=%s", escape(b, marker));
			appendStringInfo(&signq, "&marker=%s", marker);
		}
		appendStringInfo(&sendq, "&maxresults=%d", b->page_size);
		appendStringInfo(&signq, "&maxresults=%d", b->page_size);
		if (prefix[0])
		{
			appendStringInfo(&sendq, "&prefix=%s", escape(b, prefix));
			appendStringInfo(&signq, "&prefix=%s", prefix);
		}
		appendStringInfoString(&sendq, "&restype=container");
		appendStringInfoString(&signq, "&restype=container");
		resetStringInfo(&body);
		status = blob_get(b, path, sendq.data, signq.data, &body, NULL, errbuf, errlen);
		if (status == 0)
			return NULL;
		if (status != 200)
		{
			char	   *code = xml_value(body.data, body.data + body.len, "Code");

			snprintf(errbuf, errlen, "listing container \"%s\" of account \"%s\" failed: HTTP %ld%s%s",
					 b->loc->container, b->loc->account, status, code ? " " : "", code ? code : "");
			return NULL;
		}
		for (s = strstr(body.data, "<Blob>"); s; s = strstr(s, "<Blob>"))
		{
			const char *end = strstr(s, "</Blob>");
			char	   *name;
			char	   *len;
			char	   *etag;
			char	   *modified;

			if (end == NULL)
				break;
			name = xml_value(s, end, "Name");
			len = xml_value(s, end, "Content-Length");
			etag = xml_value(s, end, "Etag");
			modified = xml_value(s, end, "Last-Modified");
			s = end;
			if (name == NULL || strlen(name) <= skip || strncmp(name, folder, skip ? skip - 1 : 0) != 0 ||
				!FilePatternMatches(pattern, name + skip))
				continue;
			if (count == cap)
			{
				cap = cap ? cap * 2 : 64;
				entries = entries ? repalloc(entries, sizeof(FileEntry) * cap) :
					palloc(sizeof(FileEntry) * cap);
			}
			entries[count].path = pstrdup(name + skip);
			entries[count].size = len ? strtoll(len, NULL, 10) : 0;
			entries[count].mtime_ns = modified ? (int64) curl_getdate(modified, NULL) * 1000000000 : 0;
			if (etag && etag[0] == '"')
			{
				etag++;
				if (etag[0] && etag[strlen(etag) - 1] == '"')
					etag[strlen(etag) - 1] = '\0';
			}
			strlcpy(entries[count].etag, etag ? etag : "", FILE_ETAG_LEN);
			count++;
		}
		marker = xml_value(body.data, body.data + body.len, "NextMarker");
	} while (marker && marker[0]);
	*n = count;
	/* List Blobs returns names in order */
	return entries;
}

/* Fetches f to the local file dest; false, with the reason, if it cannot. */
bool
FileBlobFetch(FileBlob *b, const FileEntry *f, const char *dest, char *errbuf, size_t errlen)
{
	const char *folder = b->loc->path;
	char	   *name = psprintf("%s%s%s", folder, folder[0] ? "/" : "", f->path);
	char	   *path = psprintf("%s/%s/%s", b->loc->path_prefix, BlobEncodePath(b->loc->container),
								BlobEncodePath(name));
	FILE	   *out = fopen(dest, "wb");
	long		status;

	if (out == NULL)
	{
		snprintf(errbuf, errlen, "could not create temporary file \"%s\": %m", dest);
		return false;
	}
	status = blob_get(b, path, NULL, NULL, NULL, out, errbuf, errlen);
	if (fclose(out) != 0 && status == 200)
	{
		snprintf(errbuf, errlen, "could not write temporary file \"%s\": %m", dest);
		return false;
	}
	if (status == 0)
		return false;
	if (status != 200)
	{
		snprintf(errbuf, errlen, "reading blob \"%s\" of container \"%s\" failed: HTTP %ld",
				 name, b->loc->container, status);
		return false;
	}
	return true;
}

void
FileBlobClose(FileBlob *b)
{
	if (b->curl)
		curl_easy_cleanup(b->curl);
	b->curl = NULL;
}
