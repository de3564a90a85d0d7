/*-------------------------------------------------------------------------
 * source/source.h
 *		What other stages may use of the source stage.
 *
 * The source-neutral message the decoder reads, the source interface the
 * worker loop drives, the producer alerts use, and the shared memory the
 * launcher sets up.
 *-------------------------------------------------------------------------
 */
#ifndef SOURCE_SOURCE_H
#define SOURCE_SOURCE_H

#include "iotstream.h"

/* A header of a message (Kafka headers, MQTT 5 user properties). */
typedef struct SourceHeader
{
	const char *name;
	const char *value;			/* NULL for a null header value */
	size_t		len;
} SourceHeader;

/*
 * The names of a record's fields (a CSV header or columns option), the
 * same for every record of a file.  A new id means new names: the decoder
 * matches names to columns once per id, not per record.
 */
typedef struct SourceFields
{
	uint64		id;
	int			nnames;
	char	  **names;
} SourceFields;

/*
 * One message as the decoder sees it, whatever its source: the mapping
 * reads these fields as $payload, $key, $topic, $partition, $offset,
 * $timestamp and $headers (and MQTT's $qos and $retain).  No client
 * library's types here.
 */
typedef struct SourceMessage
{
	const char *payload;		/* NULL for a tombstone */
	size_t		payload_len;
	const char *key;			/* NULL if the message has no key */
	size_t		key_len;
	const char *topic;
	int32		partition;
	int64		offset;
	int64		timestamp_ms;	/* -1 if the message has no timestamp */
	int			nheaders;
	const SourceHeader *headers;
	uint8		qos;			/* MQTT: $qos; 0 elsewhere */
	bool		retain;			/* MQTT: $retain; false elsewhere */
	/*
	 * A record already split into fields (CSV): the decoder reads field i
	 * (fields[i], field_lens[i] bytes, NULL for a null) for the name
	 * fieldset->names[i], and payload is the record's text, for a dead
	 * letter.  NULL: the payload is the message.
	 */
	const SourceFields *fieldset;
	char	  **fields;
	const int  *field_lens;
	const char *error;			/* not NULL: a dead letter, for this reason */
} SourceMessage;

typedef struct SourceProperty
{
	const char *name;
	const char *value;
} SourceProperty;

/*
 * A position in a source: a stream (a topic), a partition of it, and the
 * next offset to read, or -1 for none known.  Stored in
 * iotstream.source_offsets in the transaction of the rows read before it.
 */
typedef struct SourcePosition
{
	const char *topic;
	int32		partition;
	int64		offset;
} SourcePosition;

/*
 * What a source worker gives a source: called on (re)assignment with the
 * positions the source will read, whose offsets the worker fills in with
 * the stored ones (the seek), and on revocation, after which nothing read
 * and not committed may be acknowledged.
 */
typedef struct SourceCallbacks
{
	void		(*assigned) (void *arg, SourcePosition *positions, int n);
	void		(*revoked) (void *arg);
	void	   *arg;
} SourceCallbacks;

/*
 * A source: the one interface the worker loop (source_worker.c) drives.
 * The loop polls a batch, decodes and ingests it, stores the batch's
 * positions in the same transaction as its rows, commits, and only then
 * acknowledges; it knows no protocol.  Kafka and Event Hubs are the first
 * implementation (kafka_source.c), MQTT the second (mqtt_source.c), files
 * the third (file_source.c).
 */
typedef struct SourceOps
{
	const char *kind;
	/* NULL, with the reason in errbuf, if it cannot start */
	void	   *(*open) (const SourceProperty *props, int nprops,
						 const char *const *streams, int nstreams,
						 const SourceCallbacks *cb, bool headers,
						 char *errbuf, size_t errlen);
	int			(*fd) (void *src);	/* readable when messages wait; -1: none */
	/*
	 * Without a descriptor: how long an idle worker may wait before its
	 * next poll, in milliseconds (the file source's next listing).  NULL:
	 * a second.
	 */
	long		(*idle_ms) (void *src);
	/* up to max messages, valid until release */
	int			(*poll) (void *src, SourceMessage *out, int max);
	/*
	 * Whether poll can hand out nothing more until the batch it gave
	 * commits (MQTT QoS 2: every receiver slot is taken), so the worker
	 * commits now rather than at batch_ms.  NULL: never.
	 */
	bool		(*batch_full) (void *src);
	/*
	 * the next position of every stream partition in msgs: what to store;
	 * out has room for n + 1
	 */
	int			(*positions) (void *src, const SourceMessage *msgs, int n,
							  SourcePosition *out);
	/* the end of a partition as last seen (high watermark), -1 if unknown */
	int64		(*end_offset) (void *src, const char *topic, int32 partition);
	/* whether a partition is known to hold nothing to read */
	bool		(*drained) (void *src, const char *topic, int32 partition);
	/*
	 * In the batch's transaction, before its rows are stored: what else
	 * the source keeps with its positions (the file source's ledger).
	 * NULL for nothing.
	 */
	void		(*in_batch) (void *src, const SourcePosition *positions, int n);
	/* after the commit: tell the source the positions are stored */
	void		(*ack) (void *src, const SourcePosition *positions, int n);
	void		(*release) (void *src);	/* drop the polled messages */
	/* the last error and how many there were; NULL if none */
	const char *(*last_error) (void *src, int64 *count);
	void		(*close) (void *src);
	/* what it holds in memory of what it read (the file ledger); NULL: none */
	int64		(*cached) (void *src);
} SourceOps;

/* in kafka_source.c */
extern const SourceOps KafkaSourceOps;

/* in file_source.c: files of a folder (file_*.c) */
extern const SourceOps FileSourceOps;

/* in mqtt_source.c */
extern const SourceOps MqttSourceOps;

/* in kafka_sink.c: a producer, for alert topics (detect/alerts.c) */
typedef struct KafkaSink KafkaSink;

extern KafkaSink *KafkaSinkOpen(const SourceProperty *props, int nprops,
								char *errbuf, size_t errlen);
extern bool KafkaSinkProduce(KafkaSink *ks, const char *topic, const char *key,
							 size_t keylen, const char *payload, size_t len);
extern int	KafkaSinkFlush(KafkaSink *ks, int timeout_ms);
extern void KafkaSinkClose(KafkaSink *ks);

/* in source_config.c */
extern KafkaSink *SourceOpenAlertSink(int source_id, char *errbuf, size_t errlen);

/* in source_status.c: the workers' slots, set up by the launcher */
extern Size SourceSlotsShmemSize(void);
extern void SourceSlotsShmemInit(void);

#endif							/* SOURCE_SOURCE_H */
