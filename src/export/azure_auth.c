/*-------------------------------------------------------------------------
 * azure_auth.c
 *		Storage credentials: from iotstream.storage_credentials to the
 *		BlobAuth that blob_sign.c signs requests with.
 *
 * shared_key and sas are used as they are.  service_principal and
 * managed_identity become OAuth2 bearer tokens for the scope
 * https://storage.azure.com/.default: a client-credentials grant against
 * the Microsoft identity platform (authority host overridable), the
 * instance metadata service (IMDS), or, when the credential names a
 * federated_token_file or AZURE_FEDERATED_TOKEN_FILE is set, workload
 * identity (a client assertion grant with the federated
 * token).  Tokens are cached per backend until five minutes before they
 * expire, keyed by the credential's name and row version, so a changed
 * credential never reuses an old token.
 *
 * Secrets are read with SPI from a table only superusers can read, and
 * never appear in a message: errors name the credential and the endpoint.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "export/export_int.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define STORAGE_SCOPE "https://storage.azure.com/.default"
#define STORAGE_RESOURCE "https://storage.azure.com/"
#define DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define DEFAULT_IMDS "http://169.254.169.254/metadata/identity/oauth2/token"
/* refresh this long before the token's stated expiry */
#define EXPIRY_MARGIN_US (INT64CONST(300) * USECS_PER_SEC)

typedef struct CachedToken
{
	char	   *key;			/* credential name and row version */
	char	   *token;
	TimestampTz expires;
	struct CachedToken *next;
} CachedToken;

static CachedToken *token_cache = NULL;

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
	StringInfo	b = (StringInfo) arg;

	if (b->len < 65536)
		appendBinaryStringInfo(b, ptr, size * nmemb);
	return size * nmemb;
}

/* A string member of a JSON object, or NULL. */
static char *
json_member(const char *json, const char *key)
{
	Jsonb	   *jb;
	JsonbValue	k;
	JsonbValue *v;

	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	if (!JB_ROOT_IS_OBJECT(jb))
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

/*
 * Fetches an access token: a POST of form (or a GET when form is NULL) to
 * url.  Returns the token and sets *expires.
 */
static char *
fetch_token(const char *credential, const char *url, const char *form,
			bool metadata_header, TimestampTz *expires)
{
	CURL	   *volatile e = curl_easy_init();
	struct curl_slist *volatile hdrs = NULL;
	StringInfoData body;
	long		status = 0;
	volatile CURLcode rc = CURLE_OK;
	char		errbuf[CURL_ERROR_SIZE] = "";
	char	   *token;
	char	   *expires_in;

	if (e == NULL)
		elog(ERROR, "curl_easy_init failed");
	initStringInfo(&body);
	PG_TRY();
	{
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
		if (metadata_header)
			hdrs = curl_slist_append(hdrs, "Metadata: true");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		if (form)
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, form);
		rc = curl_easy_perform(e);
		if (rc == CURLE_OK)
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	}
	PG_FINALLY();
	{
		curl_slist_free_all(hdrs);
		curl_easy_cleanup(e);
	}
	PG_END_TRY();

	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not get an access token for storage credential \"%s\" from %s: %s",
						credential, url, errbuf[0] ? errbuf : curl_easy_strerror(rc)),
				 errhint("Check that the token endpoint is reachable from the database server.")));
	if (status != 200)
	{
		char	   *code = body.len > 0 && body.data[0] == '{' ? json_member(body.data, "error") : NULL;

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("token endpoint %s answered %ld for storage credential \"%s\"%s%s",
						url, status, credential, code ? ": " : "", code ? code : ""),
				 errhint("Check the tenant, client id and secret (or the identity) of the credential.")));
	}
	/* an answer that is not a JSON object is no token either */
	token = body.len > 0 && body.data[0] == '{' ? json_member(body.data, "access_token") : NULL;
	expires_in = token ? json_member(body.data, "expires_in") : NULL;
	if (token == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("token endpoint %s gave no access_token for storage credential \"%s\"",
						url, credential)));
	*expires = GetCurrentTimestamp() +
		(expires_in ? strtol(expires_in, NULL, 10) : 3600) * USECS_PER_SEC;
	return token;
}

static char *
form_escape(const char *s)
{
	char	   *e = curl_easy_escape(NULL, s, 0);
	char	   *r = pstrdup(e);

	curl_free(e);
	return r;
}

static char *
read_text_file(const char *path, const char *credential)
{
	FILE	   *f = AllocateFile(path, "r");
	StringInfoData b;
	char		buf[4096];
	size_t		n;

	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read the federated token file \"%s\" for storage credential \"%s\": %m",
						path, credential)));
	initStringInfo(&b);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		appendBinaryStringInfo(&b, buf, n);
	FreeFile(f);
	while (b.len > 0 && isspace((unsigned char) b.data[b.len - 1]))
		b.data[--b.len] = '\0';
	return b.data;
}

/* A token for service_principal or managed_identity, from the cache if fresh. */
static const char *
bearer_token(const char *name, const char *kind, const char *version,
			 Jsonb *opts, Jsonb *secret)
{
	char	   *key = psprintf("%s/%s", name, version);
	CachedToken *t;
	TimestampTz expires;
	char	   *token;
	char	   *optjson = JsonbToCString(NULL, &opts->root, VARSIZE(opts));
	char	   *secjson = JsonbToCString(NULL, &secret->root, VARSIZE(secret));
	char	   *client_id = json_member(optjson, "client_id");
	MemoryContext old;

	for (t = token_cache; t; t = t->next)
		if (strcmp(t->key, key) == 0 && t->expires - EXPIRY_MARGIN_US > GetCurrentTimestamp())
			return t->token;

	if (strcmp(kind, "service_principal") == 0)
	{
		char	   *authority = json_member(optjson, "authority_host");
		char	   *tenant = json_member(optjson, "tenant");
		char	   *secret_value = json_member(secjson, "client_secret");

		token = fetch_token(name,
							psprintf("%s/%s/oauth2/v2.0/token",
									 authority ? authority : DEFAULT_AUTHORITY, tenant),
							psprintf("grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s",
									 form_escape(client_id), form_escape(secret_value),
									 form_escape(STORAGE_SCOPE)),
							false, &expires);
	}
	else if (json_member(optjson, "federated_token_file") != NULL ||
			 getenv("AZURE_FEDERATED_TOKEN_FILE") != NULL)
	{
		/*
		 * workload identity (AKS): exchange the projected token; the
		 * credential's settings win over the environment AKS injects
		 */
		const char *authority = json_member(optjson, "authority_host");
		const char *file = json_member(optjson, "federated_token_file");
		const char *tenant = json_member(optjson, "tenant");
		const char *cid = client_id ? client_id : getenv("AZURE_CLIENT_ID");
		char	   *assertion;

		if (file == NULL)
			file = getenv("AZURE_FEDERATED_TOKEN_FILE");
		if (tenant == NULL)
			tenant = getenv("AZURE_TENANT_ID");
		assertion = read_text_file(file, name);

		if (authority == NULL)
			authority = getenv("AZURE_AUTHORITY_HOST") ? getenv("AZURE_AUTHORITY_HOST") : DEFAULT_AUTHORITY;
		if (tenant == NULL || cid == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("workload identity for storage credential \"%s\" needs a tenant and a client id", name),
					 errhint("Set AZURE_TENANT_ID and AZURE_CLIENT_ID in the server's environment, or give the credential tenant and client_id.")));
		token = fetch_token(name,
							psprintf("%s%s%s/oauth2/v2.0/token", authority,
									 authority[strlen(authority) - 1] == '/' ? "" : "/", tenant),
							psprintf("grant_type=client_credentials&client_id=%s&scope=%s"
									 "&client_assertion_type=%s&client_assertion=%s",
									 form_escape(cid), form_escape(STORAGE_SCOPE),
									 form_escape("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
									 form_escape(assertion)),
							false, &expires);
	}
	else
	{
		char	   *endpoint = json_member(optjson, "endpoint");

		token = fetch_token(name,
							psprintf("%s?api-version=2018-02-01&resource=%s%s%s",
									 endpoint ? endpoint : DEFAULT_IMDS,
									 form_escape(STORAGE_RESOURCE),
									 client_id ? "&client_id=" : "",
									 client_id ? form_escape(client_id) : ""),
							NULL, true, &expires);
	}

	/* one entry per credential: a newer version replaces the old one */
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (t = token_cache; t; t = t->next)
		if (strncmp(t->key, name, strlen(name)) == 0 && t->key[strlen(name)] == '/')
			break;
	if (t == NULL)
	{
		t = palloc0(sizeof(CachedToken));
		t->next = token_cache;
		token_cache = t;
	}
	else
	{
		pfree(t->key);
		pfree(t->token);
	}
	t->key = pstrdup(key);
	t->token = pstrdup(token);
	t->expires = expires;
	MemoryContextSwitchTo(old);
	return t->token;
}

/*
 * Fills auth for the credential name (NULL: anonymous requests, which
 * only public emulators accept) and the destination loc.
 */
void
AzureAuthLoad(const char *name, const BlobLocation *loc, BlobAuth *auth)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	char	   *kind;
	char	   *account;
	char	   *version;
	Jsonb	   *opts;
	Jsonb	   *secret;
	char	   *secjson;
	MemoryContext cxt = CurrentMemoryContext;

	memset(auth, 0, sizeof(BlobAuth));
	auth->kind = BLOB_AUTH_NONE;
	if (name == NULL)
		return;
	auth->credential = pstrdup(name);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(name);
	if (SPI_execute_with_args("SELECT c.kind, c.account, c.xmin::text || '.' || s.xmin::text,"
							  " c.options, s.secret"
							  " FROM iotstream.storage_credentials c"
							  " JOIN iotstream.storage_credential_secrets s USING (name)"
							  " WHERE c.name = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read storage credential");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("storage credential \"%s\" does not exist", name),
				 errhint("Create it with iotstream.create_storage_credential().")));

	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	td = SPI_tuptable->tupdesc;

		kind = SPI_getvalue(tup, td, 1);
		account = SPI_getvalue(tup, td, 2);
		version = SPI_getvalue(tup, td, 3);
		opts = DatumGetJsonbPCopy(SPI_getbinval(tup, td, 4, &isnull));
		secret = DatumGetJsonbPCopy(SPI_getbinval(tup, td, 5, &isnull));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	if (account && loc->account && strcmp(account, loc->account) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("storage credential \"%s\" is for account \"%s\", not \"%s\"",
						name, account, loc->account),
				 errhint("Use a credential of the destination's account.")));

	secjson = JsonbToCString(NULL, &secret->root, VARSIZE(secret));
	if (strcmp(kind, "shared_key") == 0)
	{
		char	   *key = json_member(secjson, "key");
		int			n = key ? EVP_DecodeBlock(auth->key, (unsigned char *) key, strlen(key)) : -1;

		if (n <= 0 || strlen(key) > 4 * sizeof(auth->key) / 3)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the key of storage credential \"%s\" is not valid base64", name),
					 errhint("Copy an access key of the storage account from the Azure portal.")));
		/* EVP_DecodeBlock counts padding as zero bytes */
		if (key[strlen(key) - 1] == '=')
			n--;
		if (strlen(key) > 1 && key[strlen(key) - 2] == '=')
			n--;
		auth->keylen = n;
		auth->kind = BLOB_AUTH_SHARED_KEY;
	}
	else if (strcmp(kind, "sas") == 0)
	{
		char	   *token = json_member(secjson, "token");

		auth->sas = token[0] == '?' ? token + 1 : token;
		auth->kind = BLOB_AUTH_SAS;
	}
	else
	{
		auth->bearer = bearer_token(name, kind, version, opts, secret);
		auth->kind = BLOB_AUTH_BEARER;
	}
}
