/*-------------------------------------------------------------------------
 * source/file_int.h
 *		The file source's own declarations: listing, reading, the ledger.
 *
 * file_source.c implements the source interface with these; nothing
 * outside src/source/ includes this header.
 *-------------------------------------------------------------------------
 */
#ifndef SOURCE_FILE_INT_H
#define SOURCE_FILE_INT_H

#include "source/source.h"

#define FILE_ETAG_LEN	48

/* A file a listing found. */
typedef struct FileEntry
{
	char	   *path;			/* relative to the source's folder */
	int64		size;
	int64		mtime_ns;
	char		etag[FILE_ETAG_LEN];	/* size and mtime: a rewrite changes it */
} FileEntry;

/*
 * Where a listing of date-laid folders goes on from: the last date_levels
 * folders before a file are its date, those before them its group (say, a
 * Capture partition); a group's folders dated before its date are not
 * listed.  groups[i] has dates[i].
 */
typedef struct FileListResume
{
	int			date_levels;
	int			n;
	char	  **groups;
	char	  **dates;
} FileListResume;

/* in file_list.c */
extern FileEntry *FileListLocal(const char *root, const char *pattern,
								const FileListResume *resume, int *n);
extern int	FilePathSplit(const char *path, int group_depth, int date_levels,
						  char **group, char **date);
extern bool FileListBeforeResume(const FileListResume *resume, int group_depth,
								 const char *child, int si);
extern bool FileSegmentMatches(const char *seg, const char *name, bool last);
extern int	FileEntryCmp(const void *a, const void *b);
extern bool FilePatternMatches(const char *pattern, const char *path);
extern char *FilePatternPrefix(const char *pattern);

/* in file_blob.c: a container of Azure Blob Storage or ADLS Gen2 */
typedef struct FileBlob FileBlob;

extern FileBlob *FileBlobOpen(const char *location, const char *credential,
							  int page_size, MemoryContext cxt);
extern FileEntry *FileBlobList(FileBlob *b, const char *pattern,
							   const FileListResume *resume, int *n,
							   char *errbuf, size_t errlen);
extern bool FileBlobFetch(FileBlob *b, const FileEntry *f, const char *dest,
						  char *errbuf, size_t errlen);
extern void FileBlobClose(FileBlob *b);

/* in file_read.c: the records of a file, plain or gzip-compressed */
typedef struct FileFormat
{
	bool		jsonl;			/* else CSV, unless avro */
	bool		avro;			/* Avro object container files */
	bool		header;			/* CSV: the first record names the columns */
	char		delimiter;
	char		quote;
	char	  **columns;		/* CSV: names by position, or NULL */
	int			ncolumns;
	bool		headers;		/* Avro Capture: the mapping reads $headers */
} FileFormat;

typedef struct FileRecord
{
	char	   *payload;		/* JSON; CSV: the record's raw text */
	size_t		len;
	const SourceFields *fieldset;	/* CSV: the names of fields */
	char	  **fields;			/* CSV: the values, NULL for a null */
	int		   *field_lens;
	const char *error;			/* a bad record: why, for its dead letter */
	int64		line;			/* line number of its first line, from 1 */
	int64		end;			/* position after it: where to resume */
	int64		lines_after;	/* lines read up to end */
	const SourceHeader *headers;	/* Avro Capture: the record's metadata */
	int			nheaders;
	int64		timestamp_ms;	/* -1: the file's modification time */
} FileRecord;

typedef struct FileReader FileReader;

extern FileReader *FileReaderOpen(const char *fullpath, const FileFormat *fmt,
								  int64 position, int64 lines, int64 records,
								  char *errbuf, size_t errlen);
extern int	FileReaderNext(FileReader *r, FileRecord *rec, MemoryContext cxt);
extern const char *FileReaderError(FileReader *r);
extern void FileReaderClose(FileReader *r);

/* in file_avro.c: the records of an Avro file (a block's offset is a position) */
typedef struct FileAvro FileAvro;

extern FileAvro *FileAvroOpen(const char *path, int64 position, int64 in_block,
							  int64 records, bool headers,
							  char *errbuf, size_t errlen);
extern int	FileAvroNext(FileAvro *a, FileRecord *rec, MemoryContext cxt);
extern const char *FileAvroError(FileAvro *a);
extern void FileAvroClose(FileAvro *a);

/* in file_ledger.c: what each file's state is, in iotstream.source_files */
typedef enum FileState
{
	FILE_SEEN,
	FILE_IN_PROGRESS,
	FILE_DONE,
	FILE_FAILED,
	FILE_REWRITTEN
} FileState;

/* A file still to read (seen, or read in part). */
static inline bool
FileStateOpen(FileState state)
{
	return state == FILE_SEEN || state == FILE_IN_PROGRESS;
}

typedef struct FileLedgerEntry
{
	char	   *path;			/* hash key, in the ledger's memory */
	char		etag[FILE_ETAG_LEN];	/* of the version its rows are of */
	int64		position;
	int64		lines;
	int64		rows;			/* records read of the version */
	FileState	state;
	uint32		pass;			/* the last lookup that found it listed */
} FileLedgerEntry;

/* One file's part of a batch, or a change of state outside batches. */
typedef struct FileProgress
{
	const FileEntry *file;
	int64		position;
	int64		lines;
	int64		rows;			/* records read in this batch */
	FileState	state;
	const char *error;
	bool		reingest;		/* first write of a rewritten file's new version */
} FileProgress;

typedef struct FileLedger FileLedger;

extern FileLedger *FileLedgerLoad(const char *group_id, const char *path_column,
								  MemoryContext cxt);
extern void FileLedgerLookup(FileLedger *l, const FileEntry *files, int n);
extern void FileLedgerForgetListed(FileLedger *l);
extern FileLedgerEntry *FileLedgerGet(FileLedger *l, const char *path);
extern void FileLedgerScan(FileLedger *l,
						   void (*fn) (void *arg, const char *path, FileState state),
						   void *arg);
extern int64 FileLedgerCached(FileLedger *l);
extern void FileLedgerWrite(FileLedger *l, const FileProgress *p, int n, bool own_xact);
extern void FileLedgerRemember(FileLedger *l, const FileProgress *p, int n);

#endif							/* SOURCE_FILE_INT_H */
