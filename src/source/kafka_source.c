/*-------------------------------------------------------------------------
 * kafka_source.c
 *		A Kafka consumer for one source: librdkafka behind a small API.
 *
 * The first implementation of the source interface (source.h): Kafka and
 * Event Hubs' Kafka endpoint.  This file knows librdkafka and nothing of
 * SQL.  The worker gives it two callbacks: on assignment it fills in the
 * offsets stored with the rows (exactly once rests on seeking there, never
 * on the group's offsets), and on revocation it drops whatever it had not
 * committed yet.
 *
 * The invariant kept here: a message is handed out only if its partition is
 * assigned to us now and its offset is at or past the position we expect, so
 * a message fetched before a rebalance or a seek can never be stored twice.
 *
 * Messages come from the consumer queue in batches, without blocking; the
 * queue writes a byte to a pipe when it becomes non-empty, so the worker can
 * wait on its latch and that pipe together.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source.h"

#include <fcntl.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

typedef struct KafkaSource KafkaSource;

static void KafkaSourceClose(KafkaSource *ks);
static void KafkaSourceRelease(KafkaSource *ks);

typedef struct AssignedPartition
{
	char	   *topic;
	int32		partition;
	int64		position;		/* next offset we accept; -1: any */
} AssignedPartition;

struct KafkaSource
{
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;
	int			pipefd[2];
	SourceCallbacks cb;

	/* current assignment */
	AssignedPartition *assigned;
	int			nassigned;
	int			maxassigned;
	int			last_found;		/* messages come in runs from one partition */

	/* messages handed out and not yet released */
	rd_kafka_message_t **held;
	int			nheld;
	int			maxheld;

	/* what one poll returns, kept across polls */
	rd_kafka_message_t **polled;
	int			maxpolled;
	bool		headers;		/* parse headers: a column takes $headers */

	char		last_error[256];
	int64		error_count;
};

static AssignedPartition *
find_assigned(KafkaSource *ks, const char *topic, int32 partition)
{
	int			l = ks->last_found;

	if (l < ks->nassigned && ks->assigned[l].partition == partition &&
		strcmp(ks->assigned[l].topic, topic) == 0)
		return &ks->assigned[l];
	for (int i = 0; i < ks->nassigned; i++)
		if (ks->assigned[i].partition == partition &&
			strcmp(ks->assigned[i].topic, topic) == 0)
		{
			ks->last_found = i;
			return &ks->assigned[i];
		}
	return NULL;
}

static void
forget_assignment(KafkaSource *ks, const rd_kafka_topic_partition_list_t *parts)
{
	int			j = 0;

	for (int i = 0; i < ks->nassigned; i++)
	{
		bool		revoked = (parts == NULL);

		for (int k = 0; parts && k < parts->cnt && !revoked; k++)
			revoked = parts->elems[k].partition == ks->assigned[i].partition &&
				strcmp(parts->elems[k].topic, ks->assigned[i].topic) == 0;
		if (revoked)
			free(ks->assigned[i].topic);
		else
			ks->assigned[j++] = ks->assigned[i];
	}
	ks->nassigned = j;
}

/* Broker and transport errors: kept for iotstream.source_status. */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	KafkaSource *ks = (KafkaSource *) opaque;

	snprintf(ks->last_error, sizeof(ks->last_error), "%s: %s",
			 rd_kafka_err2name(err), reason);
	ks->error_count++;
}

static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	KafkaSource *ks = (KafkaSource *) opaque;
	bool		cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		SourcePosition *kp = calloc(parts->cnt + 1, sizeof(SourcePosition));

		for (int i = 0; i < parts->cnt; i++)
		{
			kp[i].topic = parts->elems[i].topic;
			kp[i].partition = parts->elems[i].partition;
			kp[i].offset = -1;
		}
		/* the worker reads the offsets it stored with the rows */
		ks->cb.assigned(ks->cb.arg, kp, parts->cnt);

		if (ks->nassigned + parts->cnt > ks->maxassigned)
		{
			ks->maxassigned = (ks->nassigned + parts->cnt) * 2;
			ks->assigned = realloc(ks->assigned, ks->maxassigned * sizeof(AssignedPartition));
		}
		for (int i = 0; i < parts->cnt; i++)
		{
			AssignedPartition *ap = &ks->assigned[ks->nassigned++];

			ap->topic = strdup(parts->elems[i].topic);
			ap->partition = parts->elems[i].partition;
			ap->position = kp[i].offset;
			/* INVALID: the group's committed offset, else auto.offset.reset */
			parts->elems[i].offset = kp[i].offset >= 0 ? kp[i].offset : RD_KAFKA_OFFSET_INVALID;
		}
		free(kp);
		if (cooperative)
			rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
		else
			rd_kafka_assign(rk, parts);
	}
	else
	{
		/* uncommitted messages of revoked partitions are someone else's now */
		ks->cb.revoked(ks->cb.arg);
		forget_assignment(ks, cooperative ? parts : NULL);
		if (cooperative)
			rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
		else
			rd_kafka_assign(rk, NULL);
	}
}

static KafkaSource *
KafkaSourceOpen(const SourceProperty *props, int nprops,
				const char *const *topics, int ntopics,
				const SourceCallbacks *cb, bool headers,
				char *errbuf, size_t errlen)
{
	KafkaSource *ks = calloc(1, sizeof(KafkaSource));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *subs;
	rd_kafka_resp_err_t err;

	ks->cb = *cb;
	ks->headers = headers;
	ks->pipefd[0] = ks->pipefd[1] = -1;

	/* iotstream owns offset handling: never let librdkafka commit */
	if (rd_kafka_conf_set(conf, "enable.auto.commit", "false", errbuf, errlen) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errbuf, errlen) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "enable.partition.eof", "false", errbuf, errlen) != RD_KAFKA_CONF_OK ||
	/* latency: Kafka's 500 ms default is what a broker may hold an empty fetch */
		rd_kafka_conf_set(conf, "fetch.wait.max.ms", "20", errbuf, errlen) != RD_KAFKA_CONF_OK ||
	/*
	 * throughput: with librdkafka's 1 MiB fetches and 100k queued messages
	 * a worker storing ~500k narrow rows/s spends a third of its time
	 * waiting for the fetcher.  Prefetch up to queued.max.messages.kbytes
	 * (64 MiB) instead, which also bounds the memory this costs.
	 */
		rd_kafka_conf_set(conf, "fetch.message.max.bytes", "8388608", errbuf, errlen) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "queued.min.messages", "1000000", errbuf, errlen) != RD_KAFKA_CONF_OK)
		goto fail_conf;
	for (int i = 0; i < nprops; i++)
	{
		if (rd_kafka_conf_set(conf, props[i].name, props[i].value, errbuf, errlen) != RD_KAFKA_CONF_OK)
		{
			/* librdkafka quotes the value: never let it quote a secret */
			if (strstr(props[i].name, "password") || strstr(props[i].name, "secret") ||
				strstr(props[i].name, "jaas") || strstr(props[i].name, "oauthbearer") ||
				strstr(props[i].name, "key"))
				snprintf(errbuf, errlen, "invalid value for property \"%s\"", props[i].name);
			goto fail_conf;
		}
	}
	rd_kafka_conf_set_opaque(conf, ks);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);

	ks->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen);
	if (ks->rk == NULL)
		goto fail_conf;
	conf = NULL;				/* owned by rk now */
	rd_kafka_poll_set_consumer(ks->rk);
	ks->queue = rd_kafka_queue_get_consumer(ks->rk);

	if (pipe(ks->pipefd) != 0 ||
		fcntl(ks->pipefd[0], F_SETFL, O_NONBLOCK) != 0 ||
		fcntl(ks->pipefd[1], F_SETFL, O_NONBLOCK) != 0)
	{
		snprintf(errbuf, errlen, "could not create a pipe: %m");
		goto fail;
	}
	rd_kafka_queue_io_event_enable(ks->queue, ks->pipefd[1], "m", 1);

	subs = rd_kafka_topic_partition_list_new(ntopics);
	for (int i = 0; i < ntopics; i++)
		rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(ks->rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	if (err)
	{
		snprintf(errbuf, errlen, "could not subscribe: %s", rd_kafka_err2str(err));
		goto fail;
	}
	return ks;

fail_conf:
	if (conf)
		rd_kafka_conf_destroy(conf);
fail:
	KafkaSourceClose(ks);
	return NULL;
}

static int
KafkaSourceFd(KafkaSource *ks)
{
	return ks->pipefd[0];
}

/*
 * Up to max messages without blocking; each stays valid until
 * KafkaSourceRelease().  Errors the consumer reports (a broker down, say) are
 * kept as the last error, not handed out.
 */
static int
KafkaSourcePoll(KafkaSource *ks, SourceMessage *out, int max)
{
	rd_kafka_message_t **msgs;
	char		drain[64];
	ssize_t		got;
	int			n = 0;

	/* the pipe only signals empty -> non-empty: drain it, then the queue */
	while (read(ks->pipefd[0], drain, sizeof(drain)) > 0)
		;
	if (max > ks->maxpolled)
	{
		rd_kafka_message_t **p = realloc(ks->polled, sizeof(rd_kafka_message_t *) * max);

		if (p == NULL)
			elog(ERROR, "out of memory");
		ks->polled = p;
		ks->maxpolled = max;
	}
	msgs = ks->polled;
	got = rd_kafka_consume_batch_queue(ks->queue, 0, msgs, max);
	if (ks->nheld + got > ks->maxheld)
	{
		ks->maxheld = Max(ks->maxheld * 2, ks->nheld + (int) got + 1024);
		ks->held = realloc(ks->held, sizeof(rd_kafka_message_t *) * ks->maxheld);
	}
	for (ssize_t i = 0; i < got; i++)
	{
		rd_kafka_message_t *m = msgs[i];
		const char *topic;
		AssignedPartition *ap;
		rd_kafka_headers_t *hdrs;

		if (m->err)
		{
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			{
				snprintf(ks->last_error, sizeof(ks->last_error), "%s",
						 rd_kafka_message_errstr(m));
				ks->error_count++;
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		topic = rd_kafka_topic_name(m->rkt);
		ap = find_assigned(ks, topic, m->partition);
		if (ap == NULL || (ap->position >= 0 && m->offset < ap->position))
		{
			/* fetched before a rebalance or seek: not ours, or already stored */
			rd_kafka_message_destroy(m);
			continue;
		}
		ap->position = m->offset + 1;
		ks->held[ks->nheld++] = m;

		memset(&out[n], 0, sizeof(SourceMessage));
		out[n].payload = m->payload;
		out[n].payload_len = m->len;
		out[n].key = m->key;
		out[n].key_len = m->key_len;
		out[n].topic = topic;
		out[n].partition = m->partition;
		out[n].offset = m->offset;
		out[n].timestamp_ms = rd_kafka_message_timestamp(m, NULL);
		out[n].nheaders = 0;
		out[n].headers = NULL;
		out[n].qos = 0;
		out[n].retain = false;
		if (ks->headers && rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			size_t		cnt = rd_kafka_header_cnt(hdrs);
			SourceHeader *h = palloc(sizeof(SourceHeader) * cnt);

			for (size_t k = 0; k < cnt; k++)
			{
				const void *val;

				rd_kafka_header_get_all(hdrs, k, &h[k].name, &val, &h[k].len);
				h[k].value = val;
			}
			out[n].nheaders = (int) cnt;
			out[n].headers = h;
		}
		n++;
	}
	return n;
}

/* Frees the messages handed out since the last release. */
static void
KafkaSourceRelease(KafkaSource *ks)
{
	for (int i = 0; i < ks->nheld; i++)
		rd_kafka_message_destroy(ks->held[i]);
	ks->nheld = 0;
}

/* Tells the group what Postgres committed, so external lag tools work. */
static void
KafkaSourceCommit(KafkaSource *ks, const SourcePosition *parts, int n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);

	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, parts[i].topic, parts[i].partition)->offset = parts[i].offset;
	rd_kafka_commit(ks->rk, l, 1);
	rd_kafka_topic_partition_list_destroy(l);
}

/* The partition's low and high watermarks as last seen by the consumer. */
static bool
watermarks(KafkaSource *ks, const char *topic, int32 partition, int64_t *lo, int64_t *hi)
{
	return rd_kafka_get_watermark_offsets(ks->rk, topic, partition, lo, hi) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* The broker's high watermark as last seen by the consumer, or -1. */
static int64
KafkaSourceHighWatermark(KafkaSource *ks, const char *topic, int32 partition)
{
	int64_t		lo,
				hi;

	return watermarks(ks, topic, partition, &lo, &hi) ? hi : -1;
}

/* Whether the partition is known to hold no message (as last seen). */
static bool
KafkaSourcePartitionEmpty(KafkaSource *ks, const char *topic, int32 partition)
{
	int64_t		lo,
				hi;

	return watermarks(ks, topic, partition, &lo, &hi) && lo >= 0 && hi >= 0 && lo == hi;
}

static const char *
KafkaSourceLastError(KafkaSource *ks, int64 *count)
{
	if (count)
		*count = ks->error_count;
	return ks->last_error[0] ? ks->last_error : NULL;
}

/* Leaves the group and frees everything; safe on a half-opened source. */
static void
KafkaSourceClose(KafkaSource *ks)
{
	if (ks == NULL)
		return;
	KafkaSourceRelease(ks);
	if (ks->queue)
	{
		rd_kafka_queue_io_event_enable(ks->queue, -1, NULL, 0);
		rd_kafka_queue_destroy(ks->queue);
	}
	if (ks->rk)
	{
		rd_kafka_consumer_close(ks->rk);
		rd_kafka_destroy(ks->rk);
	}
	if (ks->pipefd[0] >= 0)
		close(ks->pipefd[0]);
	if (ks->pipefd[1] >= 0)
		close(ks->pipefd[1]);
	for (int i = 0; i < ks->nassigned; i++)
		free(ks->assigned[i].topic);
	free(ks->assigned);
	free(ks->held);
	free(ks->polled);
	free(ks);
}

/*
 * The next offset of every partition in the batch: what the worker stores
 * with the batch's rows, and acknowledges to the group after the commit.
 */
static int
KafkaSourcePositions(KafkaSource *ks, const SourceMessage *msgs, int n, SourcePosition *out)
{
	int			np = 0;
	int			j = 0;

	for (int i = 0; i < n; i++)
	{
		/* messages come in runs from one partition: try the last one first */
		if (j >= np || out[j].partition != msgs[i].partition ||
			strcmp(out[j].topic, msgs[i].topic) != 0)
			for (j = 0; j < np; j++)
				if (out[j].partition == msgs[i].partition && strcmp(out[j].topic, msgs[i].topic) == 0)
					break;
		if (j == np)
		{
			out[np].topic = msgs[i].topic;
			out[np].partition = msgs[i].partition;
			out[np].offset = -1;
			np++;
		}
		out[j].offset = Max(out[j].offset, msgs[i].offset + 1);
	}
	return np;
}

/* ---------------------------------------------------------------- the interface */

static void *
kafka_open(const SourceProperty *props, int nprops, const char *const *streams, int nstreams,
		   const SourceCallbacks *cb, bool headers, char *errbuf, size_t errlen)
{
	return KafkaSourceOpen(props, nprops, streams, nstreams, cb, headers, errbuf, errlen);
}

static int
kafka_fd(void *src)
{
	return KafkaSourceFd(src);
}

static int
kafka_poll(void *src, SourceMessage *out, int max)
{
	return KafkaSourcePoll(src, out, max);
}

static int
kafka_positions(void *src, const SourceMessage *msgs, int n, SourcePosition *out)
{
	return KafkaSourcePositions(src, msgs, n, out);
}

static int64
kafka_end_offset(void *src, const char *topic, int32 partition)
{
	return KafkaSourceHighWatermark(src, topic, partition);
}

static bool
kafka_drained(void *src, const char *topic, int32 partition)
{
	return KafkaSourcePartitionEmpty(src, topic, partition);
}

static void
kafka_ack(void *src, const SourcePosition *positions, int n)
{
	KafkaSourceCommit(src, positions, n);
}

static void
kafka_release(void *src)
{
	KafkaSourceRelease(src);
}

static const char *
kafka_last_error(void *src, int64 *count)
{
	return KafkaSourceLastError(src, count);
}

static void
kafka_close(void *src)
{
	KafkaSourceClose(src);
}

const SourceOps KafkaSourceOps = {
	.kind = "kafka",
	.open = kafka_open,
	.fd = kafka_fd,
	.poll = kafka_poll,
	.positions = kafka_positions,
	.end_offset = kafka_end_offset,
	.drained = kafka_drained,
	.ack = kafka_ack,
	.release = kafka_release,
	.last_error = kafka_last_error,
	.close = kafka_close,
};
