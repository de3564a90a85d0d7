/*-------------------------------------------------------------------------
 * azure_blob.c
 *		A small Azure Blob Storage client: block uploads, block list commit,
 *		delete.  It knows bytes and blob names, nothing of Postgres tuples.
 *
 * A BlobUpload turns a stream of bytes into blocks of block_size bytes;
 * each full block is sent with Put Block (Content-MD5 checked by the
 * service) on one of `parallel` curl easy handles driven by one curl multi
 * handle, which keeps connections alive from block to block and file to
 * file.  Memory is bounded by (parallel + 1) blocks.  Nothing is visible in
 * the container until BlobUploadCommit() sends Put Block List, so a failure
 * before it leaves only uncommitted blocks, which the service discards.  A
 * blob that fits in one block is kept until then and sent whole with one
 * Put Blob instead (as atomic, one request instead of two).
 *
 * Transient failures (curl errors such as refused connections and
 * timeouts; HTTP 408, 429, 500, 502, 503, 504) are retried with exponential
 * backoff and full jitter, waiting at least what Retry-After asks.
 *
 * The one invariant: every curl handle belongs to a BlobClient whose memory
 * context has a reset callback that releases them, so an ERROR anywhere
 * (including CHECK_FOR_INTERRUPTS in the wait loop) leaks nothing.
 * Messages name the account, container, blob and credential, never a key,
 * token or SAS signature (URLs in messages carry no query string).
 * Requests are signed in blob_sign.c; destinations are parsed in
 * blob_location.c.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "export/export_int.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 10000
#define RETRY_AFTER_CAP_MS 60000
/* while a block fills, let curl send every this many bytes appended */
#define PUMP_EVERY (256 * 1024)

typedef enum SlotState
{
	SLOT_FREE,
	SLOT_RUNNING,
	SLOT_WAITING				/* for its retry time */
} SlotState;

/* One request on its way: its own easy handle and, for Put Block, a block. */
typedef struct BlobSlot
{
	CURL	   *easy;
	SlotState	state;
	const char *method;
	char	   *path;			/* URL path, encoded: what is signed */
	char	   *query;			/* canonical query (without SAS), or NULL */
	char	   *body;			/* owned by the slot when it is a block */
	size_t		len;
	size_t		cap;
	const char *content_type;
	bool		put_blob;		/* Put Blob: sends x-ms-blob-type: BlockBlob */
	char		md5[32];		/* base64 Content-MD5, or empty */
	bool		ok_404;			/* Delete Blob: already gone is success */
	bool		ok_conflict;	/* put-if-absent: 409 and 412 are answers */
	const char *if_none_match;	/* sent as If-None-Match, or NULL */
	StringInfo	body_out;		/* Get Blob: the whole body goes here */
	long		status;			/* HTTP status of the last answer */
	int			attempts;
	TimestampTz retry_at;
	struct curl_slist *headers;
	StringInfoData response;
	char		what[64];		/* "put block 3", for messages */
	char		errbuf[CURL_ERROR_SIZE];
} BlobSlot;

struct BlobClient
{
	MemoryContext cxt;
	BlobLocation loc;
	BlobAuth	auth;
	BlobOptions opts;
	CURLM	   *multi;
	BlobSlot   *slots;
	int			nbusy;
	struct BlobUpload *uploads;
};

struct BlobUpload
{
	BlobClient *client;
	char	   *blob;			/* name inside the container */
	char	   *path;			/* URL path of the blob, encoded */
	char	   *cur;			/* the block being filled */
	size_t		curlen;
	size_t		pumped;			/* curlen when requests were last moved along */
	EVP_MD_CTX *md5;			/* of the block being filled */
	int			nblocks;		/* sent or being sent */
	int64		bytes;
	struct BlobUpload *next;	/* the client's uploads */
};

static bool curl_ready = false;

/* Releases every curl handle; runs on delete or reset of the client's context. */
static void
client_release(void *arg)
{
	BlobClient *c = (BlobClient *) arg;
	int			i;

	for (i = 0; i < c->opts.parallel; i++)
	{
		BlobSlot   *s = &c->slots[i];

		if (s->easy)
		{
			if (c->multi && s->state == SLOT_RUNNING)
				curl_multi_remove_handle(c->multi, s->easy);
			curl_easy_cleanup(s->easy);
			s->easy = NULL;
		}
		if (s->headers)
			curl_slist_free_all(s->headers);
		s->headers = NULL;
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	c->multi = NULL;
	for (; c->uploads; c->uploads = c->uploads->next)
		EVP_MD_CTX_free(c->uploads->md5);
}

static size_t
collect_response(char *ptr, size_t size, size_t nmemb, void *arg)
{
	BlobSlot   *s = (BlobSlot *) arg;
	size_t		n = size * nmemb;

	if (s->body_out)
	{
		appendBinaryStringInfo(s->body_out, ptr, n);
		return n;
	}
	/* error bodies are short; keep the first few kilobytes only */
	if (s->response.len < 8192)
		appendBinaryStringInfo(&s->response, ptr, Min(n, 8192 - s->response.len));
	return n;
}

/* Puts the slot's request on its easy handle and hands it to the multi handle. */
static void
start_request(BlobClient *c, BlobSlot *s)
{
	CURL	   *e = s->easy;
	char		date[64];
	time_t		now = time(NULL);
	StringInfoData url;

	curl_easy_reset(e);
	if (s->headers)
		curl_slist_free_all(s->headers);
	s->headers = NULL;
	resetStringInfo(&s->response);

	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&now));
	initStringInfo(&url);
	appendStringInfo(&url, "%s%s", c->loc.base, s->path);
	if (s->query || c->auth.kind == BLOB_AUTH_SAS)
		appendStringInfo(&url, "?%s%s%s", s->query ? s->query : "",
						 s->query && c->auth.kind == BLOB_AUTH_SAS ? "&" : "",
						 c->auth.kind == BLOB_AUTH_SAS ? c->auth.sas : "");

	s->headers = curl_slist_append(s->headers, psprintf("x-ms-date: %s", date));
	s->headers = curl_slist_append(s->headers, "x-ms-version: " BLOB_API_VERSION);
	if (s->put_blob)
		s->headers = curl_slist_append(s->headers, "x-ms-blob-type: BlockBlob");
	/* no 100-continue round trip before each block */
	s->headers = curl_slist_append(s->headers, "Expect:");
	if (s->content_type)
		s->headers = curl_slist_append(s->headers, psprintf("Content-Type: %s", s->content_type));
	if (s->md5[0])
		s->headers = curl_slist_append(s->headers, psprintf("Content-MD5: %s", s->md5));
	if (s->if_none_match)
		s->headers = curl_slist_append(s->headers, psprintf("If-None-Match: %s", s->if_none_match));
	if (s->body_out)
		resetStringInfo(s->body_out);
	if (c->auth.kind == BLOB_AUTH_SHARED_KEY)
		s->headers = curl_slist_append(s->headers, BlobSharedKeyHeader(&c->auth, c->loc.account, &(BlobSignedRequest) {s->method, s->len, s->md5, s->content_type, s->put_blob, s->path, s->query, s->if_none_match}, date));
	else if (c->auth.kind == BLOB_AUTH_BEARER)
		s->headers = curl_slist_append(s->headers, psprintf("Authorization: Bearer %s", c->auth.bearer));

	curl_easy_setopt(e, CURLOPT_URL, url.data);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) c->opts.timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_response);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	s->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
	if (strcmp(s->method, "PUT") == 0)
	{
		/* the body stays in the slot until the request is done, retries too */
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body ? s->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) s->len);
		/* large sends: fewer system calls per block */
		curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
	}
	pfree(url.data);

	s->attempts++;
	s->state = SLOT_RUNNING;
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
		elog(ERROR, "curl_multi_add_handle failed");
}

/* The <Code> of an Azure error body, or the empty string. */
static char *
error_code(BlobSlot *s)
{
	char	   *b = strstr(s->response.data, "<Code>");
	char	   *e;

	if (b == NULL || (e = strstr(b, "</Code>")) == NULL)
		return "";
	b += 6;
	return psprintf(" (%.*s)", (int) Min(e - b, 80), b);
}

static void
request_failed(BlobClient *c, BlobSlot *s, CURLcode rc, long status)
{
	const char *cred = c->auth.credential ? c->auth.credential : "(none)";

	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not reach azure storage account \"%s\" for %s of \"%s\" in container \"%s\": %s",
						c->loc.account, s->what, s->path, c->loc.container,
						s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc)),
				 errdetail("Gave up after %d attempts.", s->attempts),
				 errhint("Check that the endpoint %s is reachable from the database server.", c->loc.base)));
	if (status == 403)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("azure storage answered 403 (forbidden) to %s of \"%s\": account \"%s\", container \"%s\", credential \"%s\"%s",
						s->what, s->path, c->loc.account, c->loc.container, cred, error_code(s)),
				 errdetail("The signature, token or SAS was not accepted, or it lacks write permission."),
				 errhint("Check the key, token or SAS of credential \"%s\" with iotstream.create_storage_credential(), and that it grants write and delete on the container.", cred)));
	if (status == 404)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("azure storage has no container \"%s\" in account \"%s\" (credential \"%s\")%s",
						c->loc.container, c->loc.account, cred, error_code(s)),
				 errdetail("The service answered 404 to %s of \"%s\".", s->what, s->path),
				 errhint("Create the container, or correct the destination of the export.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("azure storage answered %ld to %s of \"%s\": account \"%s\", container \"%s\"%s",
					status, s->what, s->path, c->loc.account, c->loc.container, error_code(s)),
			 errdetail("Gave up after %d attempts.", s->attempts),
			 errhint("Retry later; the export resumes where it stopped.")));
}

static bool
retryable(CURLcode rc, long status)
{
	if (rc != CURLE_OK)
		return rc != CURLE_URL_MALFORMAT && rc != CURLE_UNSUPPORTED_PROTOCOL &&
			rc != CURLE_OUT_OF_MEMORY;
	return status == 408 || status == 429 || status == 500 || status == 502 ||
		status == 503 || status == 504;
}

/* Handles one finished request: done, scheduled for a retry, or ERROR. */
static void
request_done(BlobClient *c, BlobSlot *s, CURLcode rc)
{
	long		status = 0;

	curl_multi_remove_handle(c->multi, s->easy);
	s->state = SLOT_FREE;
	if (rc == CURLE_OK)
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	s->status = status;
	if (rc == CURLE_OK && ((status >= 200 && status < 300) || (status == 404 && s->ok_404) ||
						   ((status == 409 || status == 412) && s->ok_conflict)))
	{
		c->nbusy--;
		return;
	}
	if (retryable(rc, status) && s->attempts <= c->opts.max_retries)
	{
		/* full jitter over an exponential ceiling; Retry-After is a floor */
		int64		ceiling = Min((int64) BACKOFF_CAP_MS, (int64) BACKOFF_BASE_MS << Min(s->attempts - 1, 20));
		int64		delay = (int64) (pg_prng_double(&pg_global_prng_state) * ceiling);
		curl_off_t	after = 0;

		if (rc == CURLE_OK &&
			curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
			delay = Max(delay, Min((int64) after * 1000, (int64) RETRY_AFTER_CAP_MS));
		elog(DEBUG1, "iotstream: %s of \"%s\" failed (%s %ld), retry %d in %ld ms",
			 s->what, s->path, curl_easy_strerror(rc), status, s->attempts, (long) delay);
		s->retry_at = GetCurrentTimestamp() + delay * 1000;
		s->state = SLOT_WAITING;
		return;
	}
	c->nbusy--;
	request_failed(c, s, rc, status);
}

/*
 * Moves every request along as far as it goes without waiting: starts the
 * retries that are due and handles finished requests.  Returns how long a
 * wait may last before a retry falls due (at most 100 ms).
 */
static long
pump(BlobClient *c)
{
	int			running;
	CURLMsg    *msg;
	int			left;
	long		wait_ms = 100;
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	for (i = 0; i < c->opts.parallel; i++)
	{
		BlobSlot   *s = &c->slots[i];

		if (s->state != SLOT_WAITING)
			continue;
		if (s->retry_at <= now)
			start_request(c, s);
		else
			wait_ms = Min(wait_ms, (long) ((s->retry_at - now) / 1000) + 1);
	}
	if (curl_multi_perform(c->multi, &running) != CURLM_OK)
		elog(ERROR, "curl_multi_perform failed");
	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL)
	{
		if (msg->msg != CURLMSG_DONE)
			continue;
		for (i = 0; i < c->opts.parallel; i++)
			if (c->slots[i].easy == msg->easy_handle && c->slots[i].state == SLOT_RUNNING)
			{
				request_done(c, &c->slots[i], msg->data.result);
				break;
			}
	}
	return wait_ms;
}

/* Runs requests until fewer than `busy_limit` are busy (0: until all done). */
static void
drive(BlobClient *c, int busy_limit)
{
	while (c->nbusy > 0 && c->nbusy >= Max(busy_limit, 1))
	{
		long		wait_ms = pump(c);

		if (c->nbusy > 0 && c->nbusy >= Max(busy_limit, 1))
			curl_multi_poll(c->multi, NULL, 0, (int) wait_ms, NULL);
		CHECK_FOR_INTERRUPTS();
	}
}

/* A free slot, waiting for one if all are busy. */
static BlobSlot *
free_slot(BlobClient *c)
{
	int			i;

	drive(c, c->opts.parallel);
	for (i = 0; i < c->opts.parallel; i++)
		if (c->slots[i].state == SLOT_FREE)
		{
			BlobSlot   *s = &c->slots[i];

			s->attempts = 0;
			s->ok_404 = false;
			s->ok_conflict = false;
			s->if_none_match = NULL;
			s->body_out = NULL;
			s->md5[0] = '\0';
			s->put_blob = false;
			s->query = NULL;
			s->content_type = NULL;
			s->len = 0;
			c->nbusy++;
			return s;
		}
	elog(ERROR, "no free upload slot");
	return NULL;
}

BlobClient *
BlobClientCreate(const BlobLocation *loc, const BlobAuth *auth, const BlobOptions *opts)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "iotstream blob client",
											  ALLOCSET_DEFAULT_SIZES);
	BlobClient *c = MemoryContextAllocZero(cxt, sizeof(BlobClient));
	MemoryContextCallback *cb = MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));
	MemoryContext old = MemoryContextSwitchTo(cxt);
	int			i;

	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			elog(ERROR, "curl_global_init failed");
		curl_ready = true;
	}
	c->cxt = cxt;
	c->loc = *loc;
	c->auth = *auth;
	c->opts = *opts;
	c->slots = palloc0(sizeof(BlobSlot) * opts->parallel);
	cb->func = client_release;
	cb->arg = c;
	MemoryContextRegisterResetCallback(cxt, cb);
	c->multi = curl_multi_init();
	if (c->multi == NULL)
		elog(ERROR, "curl_multi_init failed");
	/* one connection per parallel request, kept from request to request */
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) opts->parallel);
	for (i = 0; i < opts->parallel; i++)
	{
		c->slots[i].easy = curl_easy_init();
		if (c->slots[i].easy == NULL)
			elog(ERROR, "curl_easy_init failed");
		initStringInfo(&c->slots[i].response);
	}
	MemoryContextSwitchTo(old);
	return c;
}

/* Releases the client and its connections. */
void
BlobClientDestroy(BlobClient *c)
{
	MemoryContextDelete(c->cxt);
}

BlobUpload *
BlobUploadBegin(BlobClient *c, const char *blob)
{
	MemoryContext old = MemoryContextSwitchTo(c->cxt);
	BlobUpload *u = palloc0(sizeof(BlobUpload));

	u->client = c;
	u->blob = pstrdup(blob);
	u->path = psprintf("%s/%s/%s", c->loc.path_prefix, c->loc.container, BlobEncodePath(blob));
	u->cur = palloc(c->opts.block_size);
	u->md5 = EVP_MD_CTX_new();
	if (u->md5 == NULL || !EVP_DigestInit_ex(u->md5, EVP_md5(), NULL))
		elog(ERROR, "MD5 failed");
	/* the digest context is released with the client, also on ERROR */
	u->next = c->uploads;
	c->uploads = u;
	MemoryContextSwitchTo(old);
	return u;
}

/*
 * Hands the bytes being filled, with their Content-MD5, to a free slot as
 * the body of its next request; the upload goes on in the slot's old buffer.
 */
static BlobSlot *
take_buffer(BlobUpload *u)
{
	BlobClient *c = u->client;
	BlobSlot   *s = free_slot(c);
	unsigned char md5[EVP_MAX_MD_SIZE];
	unsigned int md5len;
	char	   *swap;

	if (!EVP_DigestFinal_ex(u->md5, md5, &md5len) ||
		!EVP_DigestInit_ex(u->md5, EVP_md5(), NULL))
		elog(ERROR, "MD5 failed");
	BlobBase64(md5, md5len, s->md5);

	if (s->cap < c->opts.block_size)
	{
		if (s->body)
			pfree(s->body);
		s->body = MemoryContextAlloc(c->cxt, c->opts.block_size);
		s->cap = c->opts.block_size;
	}
	swap = s->body;
	s->body = u->cur;
	s->len = u->curlen;
	u->cur = swap;
	u->curlen = 0;
	u->pumped = 0;
	s->method = "PUT";
	s->path = u->path;
	s->content_type = "application/octet-stream";
	return s;
}

/* Sends the block being filled as Put Block number u->nblocks. */
static void
send_block(BlobUpload *u)
{
	BlobClient *c = u->client;
	BlobSlot   *s = take_buffer(u);
	char		id[16];
	char		id64[24];

	/* equal-length ids; twelve digits make base64 with neither '+', '/' nor '=' */
	snprintf(id, sizeof(id), "%012d", u->nblocks);
	BlobBase64((unsigned char *) id, 12, id64);
	s->query = MemoryContextStrdup(c->cxt, psprintf("blockid=%s&comp=block", id64));
	snprintf(s->what, sizeof(s->what), "put block %d", u->nblocks);
	u->nblocks++;
	start_request(c, s);
}

/* A ParquetWriteFn: appends bytes, sending every full block. */
void
BlobUploadWrite(void *arg, const void *data, size_t len)
{
	BlobUpload *u = (BlobUpload *) arg;
	size_t		bs = u->client->opts.block_size;
	const char *p = data;

	u->bytes += len;
	while (len > 0)
	{
		size_t		n = Min(len, bs - u->curlen);

		memcpy(u->cur + u->curlen, p, n);
		if (!EVP_DigestUpdate(u->md5, p, n))
			elog(ERROR, "MD5 failed");
		u->curlen += n;
		p += n;
		len -= n;
		if (u->curlen == bs)
			send_block(u);
		else if (u->client->nbusy > 0 && u->curlen - u->pumped >= PUMP_EVERY)
		{
			/* curl moves data only when called: keep the sockets busy */
			pump(u->client);
			u->pumped = u->curlen;
		}
	}
}

/*
 * Room to fill in place, for a caller that reads its bytes from somewhere
 * (a file): the free part of the block being filled, at least one byte.
 * BlobUploadAppended() then takes the n bytes written there.  Saves the
 * copy BlobUploadWrite() makes.
 */
char *
BlobUploadRoom(BlobUpload *u, size_t *room)
{
	*room = u->client->opts.block_size - u->curlen;
	return u->cur + u->curlen;
}

void
BlobUploadAppended(BlobUpload *u, size_t n)
{
	BlobClient *c = u->client;

	Assert(n <= c->opts.block_size - u->curlen);
	if (!EVP_DigestUpdate(u->md5, u->cur + u->curlen, n))
		elog(ERROR, "MD5 failed");
	u->bytes += n;
	u->curlen += n;
	if (u->curlen == c->opts.block_size)
		send_block(u);
	else if (c->nbusy > 0 && u->curlen - u->pumped >= PUMP_EVERY)
	{
		pump(c);
		u->pumped = u->curlen;
	}
}

/*
 * Sends the last partial block and waits until every block is stored.  A
 * blob that fits in one block sends nothing yet: BlobUploadCommit() sends it
 * whole with one Put Blob.
 */
void
BlobUploadFinishBlocks(BlobUpload *u)
{
	if (u->curlen > 0 && u->nblocks > 0)
		send_block(u);
	drive(u->client, 0);
}

/*
 * The blob becomes visible, whole, in one request: Put Block List, or for
 * a blob that fits in one block, Put Blob of its bytes (one request instead
 * of two; the service checks its Content-MD5 too, and Put Blob is as atomic
 * as a block list).
 */
void
BlobUploadCommit(BlobUpload *u)
{
	BlobClient *c = u->client;
	BlobSlot   *s;
	StringInfoData xml;
	int			i;

	BlobUploadFinishBlocks(u);
	if (u->nblocks == 0)
	{
		s = take_buffer(u);
		s->put_blob = true;
		snprintf(s->what, sizeof(s->what), "put blob");
		start_request(c, s);
		drive(c, 0);
		return;
	}
	initStringInfo(&xml);
	appendStringInfoString(&xml, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
	for (i = 0; i < u->nblocks; i++)
	{
		char		id[16];
		char		id64[24];

		snprintf(id, sizeof(id), "%012d", i);
		BlobBase64((unsigned char *) id, 12, id64);
		appendStringInfo(&xml, "<Latest>%s</Latest>", id64);
	}
	appendStringInfoString(&xml, "</BlockList>");

	s = free_slot(c);
	if (s->cap < (size_t) xml.len + 1)
	{
		if (s->body)
			pfree(s->body);
		s->body = MemoryContextAlloc(c->cxt, xml.len + 1);
		s->cap = xml.len + 1;
	}
	memcpy(s->body, xml.data, xml.len);
	s->len = xml.len;
	s->method = "PUT";
	s->path = u->path;
	s->query = "comp=blocklist";
	s->content_type = "application/xml";
	snprintf(s->what, sizeof(s->what), "put block list");
	start_request(c, s);
	drive(c, 0);
}

int64
BlobUploadBytes(BlobUpload *u)
{
	return u->bytes;
}

/* Delete Blob; a blob that is already gone counts as deleted.  Returns
 * whether it was there. */
bool
BlobDelete(BlobClient *c, const char *blob)
{
	BlobSlot   *s = free_slot(c);

	s->method = "DELETE";
	s->path = MemoryContextStrdup(c->cxt, psprintf("%s/%s/%s", c->loc.path_prefix,
												   c->loc.container, BlobEncodePath(blob)));
	s->ok_404 = true;
	snprintf(s->what, sizeof(s->what), "delete");
	start_request(c, s);
	drive(c, 0);
	return s->status != 404;
}

/* Deletes the blob of an upload (a committed one that must go again). */
void
BlobDeleteUpload(BlobUpload *u)
{
	BlobClient *c = u->client;
	BlobSlot   *s;

	/* one try: this runs after a failure, when storage is likely down */
	c->opts.max_retries = 0;
	s = free_slot(c);
	s->method = "DELETE";
	s->path = u->path;
	s->ok_404 = true;
	snprintf(s->what, sizeof(s->what), "delete");
	start_request(c, s);
	drive(c, 0);
}

/*
 * Get Blob of a small blob (a log entry) into out; false if it does not
 * exist.
 */
bool
BlobGetSmall(BlobClient *c, const char *blob, StringInfo out)
{
	BlobSlot   *s = free_slot(c);

	s->method = "GET";
	s->path = MemoryContextStrdup(c->cxt, psprintf("%s/%s/%s", c->loc.path_prefix,
												   c->loc.container, BlobEncodePath(blob)));
	s->ok_404 = true;
	s->body_out = out;
	snprintf(s->what, sizeof(s->what), "get blob");
	start_request(c, s);
	drive(c, 0);
	s->body_out = NULL;
	return s->status != 404;
}

/*
 * Put Blob with If-None-Match: *, which the service refuses with 409 or 412
 * when the blob exists: true if this call created it.  A retried request
 * whose first attempt did create it also answers 409; the caller tells the
 * two apart by reading the blob.
 */
bool
BlobPutIfAbsent(BlobClient *c, const char *blob, const char *data, size_t len)
{
	BlobSlot   *s = free_slot(c);

	if (s->cap < len + 1)
	{
		if (s->body)
			pfree(s->body);
		s->body = MemoryContextAlloc(c->cxt, len + 1);
		s->cap = len + 1;
	}
	memcpy(s->body, data, len);
	s->len = len;
	s->method = "PUT";
	s->path = MemoryContextStrdup(c->cxt, psprintf("%s/%s/%s", c->loc.path_prefix,
												   c->loc.container, BlobEncodePath(blob)));
	s->put_blob = true;
	s->content_type = "application/json";
	s->if_none_match = "*";
	s->ok_conflict = true;
	snprintf(s->what, sizeof(s->what), "put blob if absent");
	start_request(c, s);
	drive(c, 0);
	return s->status != 409 && s->status != 412;
}
