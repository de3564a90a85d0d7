/*-------------------------------------------------------------------------
 * file_list.c
 *		Lists the files of a local folder that match a file source's glob.
 *
 * A pattern is matched segment by segment against paths relative to the
 * folder: a segment is an fnmatch(3) pattern within one directory, and
 * "**" matches any number of directories, none included.  A file matches
 * with or without a trailing ".gz" (which file_read.c decompresses).
 * Invariant: the listing is sorted by path and names each regular file
 * once, with its size and modification time; directories a pattern cannot
 * match below are not opened, so a date-laid folder is walked only where
 * the pattern leads.  With a FileListResume (a pattern without "**"), the
 * folders of a group dated before its resume date are not opened either:
 * a pass with nothing new reads only the folders on the way to the newest
 * date, and those newer than it.  Nothing here knows SQL or the ledger.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/file_int.h"

#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include "lib/stringinfo.h"

#define FILE_LIST_MAX_DEPTH	32

typedef struct Lister
{
	const char *root;			/* the folder, without a trailing slash */
	char	  **segs;			/* the pattern's segments */
	int			nsegs;
	FileEntry  *entries;
	int			n;
	int			cap;
	const FileListResume *resume;	/* or NULL */
	int			group_depth;	/* folders before the date folders */
} Lister;

static void
add_entry(Lister *l, const char *rel, const struct stat *st)
{
	FileEntry  *e;

	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 64;
		l->entries = l->entries ? repalloc(l->entries, sizeof(FileEntry) * l->cap) :
			palloc(sizeof(FileEntry) * l->cap);
	}
	e = &l->entries[l->n++];
	e->path = pstrdup(rel);
	e->size = st->st_size;
	e->mtime_ns = (int64) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	snprintf(e->etag, sizeof(e->etag), INT64_FORMAT "-" INT64_FORMAT,
			 (int64) st->st_size, e->mtime_ns);
}

/* Whether name matches a segment, ".gz" stripped for the last one. */
bool
FileSegmentMatches(const char *seg, const char *name, bool last)
{
	size_t		len = strlen(name);

	if (fnmatch(seg, name, FNM_PERIOD) == 0)
		return true;
	if (last && len > 3 && strcmp(name + len - 3, ".gz") == 0)
	{
		char	   *bare = pnstrdup(name, len - 3);
		bool		ok = fnmatch(seg, bare, FNM_PERIOD) == 0;

		pfree(bare);
		return ok;
	}
	return false;
}

/*
 * Splits a relative path into its first group_depth folders (the group)
 * and the date_levels folders after them (the date, or as many as it has):
 * both palloc'd, "/"-joined.  Returns how many date folders it found.
 */
int
FilePathSplit(const char *path, int group_depth, int date_levels,
			  char **group, char **date)
{
	const char *p = path;
	const char *date_start;
	int			k;

	for (k = 0; k < group_depth && (p = strchr(p, '/')) != NULL; k++)
		p++;
	if (p == NULL)
		p = path + strlen(path);
	*group = pnstrdup(path, p > path && p[-1] == '/' ? p - 1 - path : p - path);
	date_start = p;
	for (k = 0; k < date_levels && *p; k++)
	{
		const char *slash = strchr(p, '/');

		p = slash ? slash + 1 : p + strlen(p);
	}
	*date = pnstrdup(date_start, p > date_start && p[-1] == '/' ? p - 1 - date_start : p - date_start);
	return k;
}

/*
 * Whether the folder child (at depth si, so its date has si - group_depth
 * + 1 folders) is dated before its group's resume date cut to as many.
 */
bool
FileListBeforeResume(const FileListResume *resume, int group_depth, const char *child, int si)
{
	char	   *group;
	char	   *date;
	int			nd = FilePathSplit(child, group_depth, si - group_depth + 1, &group, &date);
	bool		before = false;

	for (int i = 0; i < resume->n; i++)
	{
		char	   *rgroup;
		char	   *rdate;

		if (strcmp(resume->groups[i], group) != 0)
			continue;
		/* the resume date, cut to nd folders */
		(void) FilePathSplit(resume->dates[i], 0, nd, &rgroup, &rdate);
		before = strcmp(date, rdate) < 0;
		pfree(rgroup);
		pfree(rdate);
		break;
	}
	pfree(group);
	pfree(date);
	return before;
}

/*
 * Walks the directory rel (relative to the root, "" for the root itself)
 * where segment si of the pattern is to be matched.
 */
static void
walk(Lister *l, const char *rel, int si, int depth)
{
	char	   *dir = *rel ? psprintf("%s/%s", l->root, rel) : pstrdup(l->root);
	DIR		   *d;
	struct dirent *de;
	const char *seg = l->segs[si];
	bool		globstar = strcmp(seg, "**") == 0;
	bool		last = si == l->nsegs - 1;

	if (depth > FILE_LIST_MAX_DEPTH)
		return;
	/* "**" matches no directory at all too */
	if (globstar && !last)
		walk(l, rel, si + 1, depth);
	d = opendir(dir);
	if (d == NULL)
		return;					/* gone, or unreadable: nothing to list */
	while ((de = readdir(d)) != NULL)
	{
		char	   *child;
		char	   *full;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;			/* ".", "..", and hidden files being written */
		child = *rel ? psprintf("%s/%s", rel, de->d_name) : pstrdup(de->d_name);
		full = psprintf("%s/%s", l->root, child);
		if (stat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
		{
			if (l->resume && si >= l->group_depth && FileListBeforeResume(l->resume, l->group_depth, child, si))
			{
				/* dated before its group's resume: not listed */
			}
			else if (globstar)
				walk(l, child, si, depth + 1);
			else if (!last && FileSegmentMatches(seg, de->d_name, false))
				walk(l, child, si + 1, depth + 1);
		}
		else if (S_ISREG(st.st_mode))
		{
			/* a "**" not last has had its files matched by walk(si + 1) */
			if (last && FileSegmentMatches(seg, de->d_name, true))
				add_entry(l, child, &st);
		}
		pfree(full);
		pfree(child);
	}
	closedir(d);
	pfree(dir);
}

int
FileEntryCmp(const void *a, const void *b)
{
	return strcmp(((const FileEntry *) a)->path, ((const FileEntry *) b)->path);
}

/*
 * The files under root that match pattern, sorted by path; *n their
 * number.  In the current memory context.
 */
FileEntry *
FileListLocal(const char *root, const char *pattern, const FileListResume *resume,
			  int *n)
{
	Lister		l = {0};
	char	   *p = pstrdup(pattern);
	char	   *save = NULL;
	char	   *tok;
	int			k = 0;

	l.root = root;
	l.segs = palloc(sizeof(char *) * (strlen(pattern) / 2 + 2));
	for (tok = strtok_r(p, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
	{
		/* consecutive "**" are one */
		if (strcmp(tok, "**") == 0 && l.nsegs > 0 && strcmp(l.segs[l.nsegs - 1], "**") == 0)
			continue;
		l.segs[l.nsegs++] = tok;
	}
	if (l.nsegs == 0)
	{
		*n = 0;
		return NULL;
	}
	if (resume && resume->date_levels > 0 && resume->n > 0 && strstr(pattern, "**") == NULL)
	{
		l.resume = resume;
		l.group_depth = Max(l.nsegs - 1 - resume->date_levels, 0);
	}
	walk(&l, "", 0, 0);
	if (l.n > 1)
	{
		qsort(l.entries, l.n, sizeof(FileEntry), FileEntryCmp);
		/* a file reached through two "**" expansions is listed once */
		for (int i = 1; i < l.n; i++)
			if (strcmp(l.entries[i].path, l.entries[k].path) != 0)
				l.entries[++k] = l.entries[i];
		l.n = k + 1;
	}
	*n = l.n;
	return l.entries;
}

/* Whether the path segments p[0..np) match the pattern's s[0..ns). */
static bool
segments_match(char **s, int ns, char **p, int np)
{
	if (ns == 0)
		return np == 0;
	if (strcmp(s[0], "**") == 0)
	{
		for (int k = 0; k <= np; k++)
			if (segments_match(s + 1, ns - 1, p + k, np - k))
				return true;
		return false;
	}
	if (np == 0 || !FileSegmentMatches(s[0], p[0], ns == 1 && np == 1))
		return false;
	return segments_match(s + 1, ns - 1, p + 1, np - 1);
}

static char **
split_path(const char *path, int *n)
{
	char	   *copy = pstrdup(path);
	char	  **segs = palloc(sizeof(char *) * (strlen(path) / 2 + 2));
	char	   *save = NULL;

	*n = 0;
	for (char *tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
		segs[(*n)++] = tok;
	return segs;
}

/*
 * Whether path (relative, as a listing of a blob container gives it)
 * matches pattern, by the rules of FileListLocal; hidden names excluded.
 */
bool
FilePatternMatches(const char *pattern, const char *path)
{
	int			ns,
				np;
	char	  **s = split_path(pattern, &ns);
	char	  **p = split_path(path, &np);

	for (int i = 0; i < np; i++)
		if (p[i][0] == '.')
			return false;
	return segments_match(s, ns, p, np);
}

/* The folders a pattern starts with, before any glob: what to list under. */
char *
FilePatternPrefix(const char *pattern)
{
	int			ns;
	char	  **s = split_path(pattern, &ns);
	StringInfoData b;

	initStringInfo(&b);
	for (int i = 0; i < ns - 1 && strpbrk(s[i], "*?[\\") == NULL; i++)
		appendStringInfo(&b, "%s/", s[i]);
	return b.data;
}
