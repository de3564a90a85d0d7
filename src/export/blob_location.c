/*-------------------------------------------------------------------------
 * blob_location.c
 *		Export destinations: a local folder or a blob container and folder.
 *
 * file:///absolute/path, abfss://container@account.dfs.core.windows.net/
 * path, https://account.blob.core.windows.net/container/path, and emulator
 * endpoints (http://127.0.0.1:10000/devstoreaccount1/container/path) all
 * become one BlobLocation; nothing else is accepted.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "export/export_int.h"

static void
bad_destination(const char *url, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid export destination \"%s\"", url),
			 errdetail("%s", detail),
			 errhint("Use file:///absolute/path, abfss://container@account.dfs.core.windows.net/path, https://account.blob.core.windows.net/container/path, or an emulator endpoint such as http://127.0.0.1:10000/devstoreaccount1/container/path.")));
}

/* Splits "container/path/..." after the account into container and path. */
static void
split_container(const char *url, const char *rest, BlobLocation *loc)
{
	const char *slash;

	while (*rest == '/')
		rest++;
	slash = strchr(rest, '/');
	loc->container = slash ? pnstrdup(rest, slash - rest) : pstrdup(rest);
	loc->path = pstrdup(slash ? slash + 1 : "");
	if (loc->container[0] == '\0')
		bad_destination(url, "The destination names no container.");
}

/*
 * Parses an export destination.  abfss:// and *.dfs.* hosts are written
 * through the Blob endpoint of the same account (Put Block and Put Block
 * List work on hierarchical-namespace accounts too).  Any other http(s)
 * host is an emulator endpoint whose first path segment is the account.
 */
BlobLocation *
BlobParseLocation(const char *url)
{
	BlobLocation *loc = palloc0(sizeof(BlobLocation));
	size_t		n;

	if (strncmp(url, "file://", 7) == 0)
	{
		loc->local = true;
		loc->path = pstrdup(url + 7);
		if (loc->path[0] != '/')
			bad_destination(url, "A file:// destination needs an absolute path, as in file:///var/lib/lake.");
	}
	else if (strncmp(url, "abfss://", 8) == 0 || strncmp(url, "abfs://", 7) == 0)
	{
		const char *p = strstr(url, "://") + 3;
		const char *at = strchr(p, '@');
		const char *host;
		const char *slash;
		const char *dot;

		if (at == NULL)
			bad_destination(url, "An abfss:// destination reads abfss://container@account.dfs.core.windows.net/path.");
		loc->container = pnstrdup(p, at - p);
		host = at + 1;
		slash = strchr(host, '/');
		dot = strchr(host, '.');
		if (dot == NULL || (slash && dot > slash) || strncmp(dot, ".dfs.", 5) != 0)
			bad_destination(url, "An abfss:// destination reads abfss://container@account.dfs.core.windows.net/path.");
		loc->account = pnstrdup(host, dot - host);
		loc->base = psprintf("https://%s.blob.%.*s", loc->account,
							 (int) ((slash ? slash : host + strlen(host)) - (dot + 5)), dot + 5);
		loc->path_prefix = "";
		loc->path = pstrdup(slash ? slash + 1 : "");
		if (loc->container[0] == '\0')
			bad_destination(url, "The destination names no container.");
	}
	else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0)
	{
		const char *host = strstr(url, "://") + 3;
		const char *slash = strchr(host, '/');
		char	   *hostname = slash ? pnstrdup(host, slash - host) : pstrdup(host);
		char	   *dot = strchr(hostname, '.');

		if (slash == NULL)
			bad_destination(url, "The destination names no container.");
		if (dot && (strncmp(dot, ".blob.", 6) == 0 || strncmp(dot, ".dfs.", 5) == 0))
		{
			/* https://account.blob.core.windows.net/container/path */
			loc->account = pnstrdup(hostname, dot - hostname);
			loc->base = psprintf("%.*s%s.blob.%s", (int) (host - url), url, loc->account,
								 strchr(dot + 1, '.') + 1);
			loc->path_prefix = "";
			split_container(url, slash, loc);
		}
		else
		{
			/* http://127.0.0.1:10000/devstoreaccount1/container/path */
			const char *acc = slash + 1;
			const char *end = strchr(acc, '/');

			if (end == NULL || end == acc)
				bad_destination(url, "An emulator endpoint reads http://host:port/account/container/path.");
			loc->account = pnstrdup(acc, end - acc);
			loc->base = pnstrdup(url, slash - url);
			loc->path_prefix = psprintf("/%s", loc->account);
			split_container(url, end, loc);
		}
	}
	else
		bad_destination(url, "The scheme is not one of file, abfss, https or http.");

	/* no trailing slash: paths are joined with one */
	n = strlen(loc->path);
	while (n > 0 && loc->path[n - 1] == '/')
		loc->path[--n] = '\0';
	/* a "." or ".." segment would let what is written below leave the path */
	for (const char *p = loc->path; *p;)
	{
		size_t		len = strcspn(p, "/");

		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			bad_destination(url, "A destination path has no \".\" or \"..\" segments.");
		p += len;
		while (*p == '/')
			p++;
	}
	if (loc->container && (strcmp(loc->container, ".") == 0 || strcmp(loc->container, "..") == 0))
		bad_destination(url, "A container is not named \".\" or \"..\".");
	return loc;
}
