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
 * nothing new costs one request per page of names; with date_levels, once
 * a group's resume date is known, it goes folder by folder (delimiter
 * "/") and skips the folders dated before it, one request per folder on
 * the way to the newest date (and per newer one); a file to read is
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
 * One listing of the names under prefix, page by page: its blobs (full
 * names, in order) into *blobs, and with delimited (delimiter "/") the
 * folders right under it, as "prefix/name/", into *dirs.  False, with the
 * reason in errbuf, if a request failed.
 */
static bool
list_prefix(FileBlob *b, const char *prefix, bool delimited,
			FileEntry **blobs, int *nblobs, char ***dirs, int *ndirs,
			char *errbuf, size_t errlen)
{
	char	   *path = psprintf("%s/%s", b->loc->path_prefix, BlobEncodePath(b->loc->container));
	char	   *marker = NULL;
	int			cap = 0,
				dcap = 0;
	StringInfoData body;

	*blobs = NULL;
	*nblobs = 0;
	*dirs = NULL;
	*ndirs = 0;
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
		if (delimited)
		{
			appendStringInfoString(&sendq, "&delimiter=%2F");
			appendStringInfoString(&signq, "&delimiter=/");
		}
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
			return false;
		if (status != 200)
		{
			char	   *code = xml_value(body.data, body.data + body.len, "Code");

			snprintf(errbuf, errlen, "listing container \"%s\" of account \"%s\" failed: HTTP %ld%s%s",
					 b->loc->container, b->loc->account, status, code ? " " : "", code ? code : "");
			return false;
		}
		for (s = strstr(body.data, "<Blob>"); s; s = strstr(s, "<Blob>"))
		{
			const char *end = strstr(s, "</Blob>");
			FileEntry  *e;
			char	   *len;
			char	   *etag;
			char	   *modified;

			if (end == NULL)
				break;
			if (*nblobs == cap)
			{
				cap = cap ? cap * 2 : 64;
				*blobs = *blobs ? repalloc(*blobs, sizeof(FileEntry) * cap) :
					palloc(sizeof(FileEntry) * cap);
			}
			e = &(*blobs)[*nblobs];
			e->path = xml_value(s, end, "Name");
			len = xml_value(s, end, "Content-Length");
			etag = xml_value(s, end, "Etag");
			modified = xml_value(s, end, "Last-Modified");
			s = end;
			if (e->path == NULL)
				continue;
			e->size = len ? strtoll(len, NULL, 10) : 0;
			e->mtime_ns = modified ? (int64) curl_getdate(modified, NULL) * 1000000000 : 0;
			if (etag && etag[0] == '"')
			{
				etag++;
				if (etag[0] && etag[strlen(etag) - 1] == '"')
					etag[strlen(etag) - 1] = '\0';
			}
			strlcpy(e->etag, etag ? etag : "", FILE_ETAG_LEN);
			(*nblobs)++;
		}
		for (s = strstr(body.data, "<BlobPrefix>"); s; s = strstr(s, "<BlobPrefix>"))
		{
			const char *end = strstr(s, "</BlobPrefix>");
			char	   *name;

			if (end == NULL)
				break;
			name = xml_value(s, end, "Name");
			s = end;
			if (name == NULL)
				continue;
			if (*ndirs == dcap)
			{
				dcap = dcap ? dcap * 2 : 16;
				*dirs = *dirs ? repalloc(*dirs, sizeof(char *) * dcap) : palloc(sizeof(char *) * dcap);
			}
			(*dirs)[(*ndirs)++] = name;
		}
		marker = xml_value(body.data, body.data + body.len, "NextMarker");
	} while (marker && marker[0]);
	return true;
}

/* Adds the blobs of a listing that match pattern, by path relative to the folder. */
static void
add_matching(FileBlob *b, const char *pattern, FileEntry *blobs, int nblobs,
			 FileEntry **entries, int *count, int *cap)
{
	const char *folder = b->loc->path;
	size_t		skip = folder[0] ? strlen(folder) + 1 : 0;

	for (int i = 0; i < nblobs; i++)
	{
		const char *name = blobs[i].path;

		if (strlen(name) <= skip || strncmp(name, folder, skip ? skip - 1 : 0) != 0 ||
			!FilePatternMatches(pattern, name + skip))
			continue;
		if (*count == *cap)
		{
			*cap = *cap ? *cap * 2 : 64;
			*entries = *entries ? repalloc(*entries, sizeof(FileEntry) * *cap) :
				palloc(sizeof(FileEntry) * *cap);
		}
		(*entries)[*count] = blobs[i];
		(*entries)[*count].path = pstrdup(name + skip);
		(*count)++;
	}
}

typedef struct BlobWalk
{
	FileBlob   *b;
	const char *pattern;
	char	  **segs;
	int			nsegs;
	const FileListResume *resume;
	int			group_depth;
	FileEntry  *entries;
	int			count;
	int			cap;
	char	   *errbuf;
	size_t		errlen;
} BlobWalk;

/*
 * Lists the folder rel (relative to the location, "" or ending in "/"),
 * where segment si of the pattern is to be matched, one request a page:
 * the folders under it that the pattern leads to and that are not dated
 * before their group's resume date are walked in turn.
 */
static bool
walk_blob(BlobWalk *w, const char *rel, int si)
{
	const char *folder = w->b->loc->path;
	char	   *prefix = psprintf("%s%s%s", folder, folder[0] ? "/" : "", rel);
	FileEntry  *blobs;
	int			nblobs;
	char	  **dirs;
	int			ndirs;
	bool		last = si == w->nsegs - 1;

	if (!list_prefix(w->b, prefix, true, &blobs, &nblobs, &dirs, &ndirs, w->errbuf, w->errlen))
		return false;
	if (last)
	{
		add_matching(w->b, w->pattern, blobs, nblobs, &w->entries, &w->count, &w->cap);
		return true;
	}
	for (int i = 0; i < ndirs; i++)
	{
		char	   *child = dirs[i] + strlen(prefix) - strlen(rel);	/* rel + "name/" */
		char	   *name;

		if (strlen(dirs[i]) <= strlen(prefix) + 1)
			continue;
		name = pnstrdup(dirs[i] + strlen(prefix), strlen(dirs[i]) - strlen(prefix) - 1);
		if (!FileSegmentMatches(w->segs[si], name, false))
			continue;
		if (si >= w->group_depth &&
			FileListBeforeResume(w->resume, w->group_depth, pnstrdup(child, strlen(child) - 1), si))
			continue;			/* dated before its group's resume: not listed */
		if (!walk_blob(w, child, si + 1))
			return false;
	}
	return true;
}

/*
 * The blobs under the location that match pattern, by path relative to
 * it, sorted; NULL (with the reason in errbuf) if the listing failed.
 * With a resume (date_levels, a pattern without "**"), folder by folder
 * (delimiter "/") from each group's resume date; else all the names under
 * the pattern's literal folders, in one listing of as many pages.
 */
FileEntry *
FileBlobList(FileBlob *b, const char *pattern, const FileListResume *resume,
			 int *n, char *errbuf, size_t errlen)
{
	const char *folder = b->loc->path;
	FileEntry  *blobs;
	int			nblobs;
	char	  **dirs;
	int			ndirs;
	FileEntry  *entries = NULL;
	int			count = 0,
				cap = 0;

	*n = -1;					/* a failed listing */
	if (resume && resume->date_levels > 0 && resume->n > 0 && strstr(pattern, "**") == NULL)
	{
		BlobWalk	w = {0};
		char	   *p = pstrdup(pattern);
		char	   *save = NULL;

		w.b = b;
		w.pattern = pattern;
		w.segs = palloc(sizeof(char *) * (strlen(pattern) / 2 + 2));
		for (char *tok = strtok_r(p, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
			w.segs[w.nsegs++] = tok;
		w.resume = resume;
		w.group_depth = Max(w.nsegs - 1 - resume->date_levels, 0);
		w.errbuf = errbuf;
		w.errlen = errlen;
		if (w.nsegs == 0 || !walk_blob(&w, "", 0))
			return NULL;
		if (w.count > 1)
			qsort(w.entries, w.count, sizeof(FileEntry), FileEntryCmp);
		*n = w.count;
		return w.entries;
	}
	if (!list_prefix(b, psprintf("%s%s%s", folder, folder[0] ? "/" : "", FilePatternPrefix(pattern)),
					 false, &blobs, &nblobs, &dirs, &ndirs, errbuf, errlen))
		return NULL;
	add_matching(b, pattern, blobs, nblobs, &entries, &count, &cap);
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
