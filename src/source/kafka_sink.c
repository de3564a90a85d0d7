/*-------------------------------------------------------------------------
 * kafka_sink.c
 *		A Kafka producer: librdkafka behind a small API, for alert topics.
 *
 * This file knows librdkafka and nothing of SQL.  The caller produces a
 * batch of keyed messages and then flushes: the flush reports how many
 * were not delivered, so the caller marks messages as sent only once the
 * broker has acknowledged all of them (at least once, never silently lost).
 * The producer is idempotent, so its own retries add no duplicates.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source.h"

#include <librdkafka/rdkafka.h>

#include "utils/memutils.h"

struct KafkaSink
{
	rd_kafka_t *rk;
	int			failed;			/* deliveries that failed since the last flush */
	int			pending;		/* produced and not yet reported */
	char		last_error[256];
};

static void
delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	KafkaSink  *ks = opaque;

	ks->pending--;
	if (msg->err)
	{
		ks->failed++;
		strlcpy(ks->last_error, rd_kafka_err2str(msg->err), sizeof(ks->last_error));
	}
}

KafkaSink *
KafkaSinkOpen(const SourceProperty *props, int nprops, char *errbuf, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	KafkaSink  *ks = MemoryContextAllocZero(TopMemoryContext, sizeof(KafkaSink));

	if (rd_kafka_conf_set(conf, "enable.idempotence", "true", errbuf, errlen) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "linger.ms", "5", errbuf, errlen) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "message.timeout.ms", "30000", errbuf, errlen) != RD_KAFKA_CONF_OK)
		goto fail;
	for (int i = 0; i < nprops; i++)
		if (rd_kafka_conf_set(conf, props[i].name, props[i].value, errbuf, errlen) != RD_KAFKA_CONF_OK)
			goto fail;
	rd_kafka_conf_set_opaque(conf, ks);
	rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
	ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
	if (ks->rk == NULL)
		goto fail;
	return ks;

fail:
	if (conf && ks->rk == NULL)
		rd_kafka_conf_destroy(conf);
	pfree(ks);
	return NULL;
}

/* Queues one message; false (with the reason) if it cannot be queued. */
bool
KafkaSinkProduce(KafkaSink *ks, const char *topic, const char *key, size_t keylen,
				 const char *payload, size_t len)
{
	rd_kafka_resp_err_t err;

	err = rd_kafka_producev(ks->rk,
							RD_KAFKA_V_TOPIC(topic),
							RD_KAFKA_V_KEY(key, keylen),
							RD_KAFKA_V_VALUE((void *) payload, len),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							RD_KAFKA_V_END);
	if (err)
	{
		strlcpy(ks->last_error, rd_kafka_err2str(err), sizeof(ks->last_error));
		return false;
	}
	ks->pending++;
	return true;
}

/*
 * Waits up to timeout_ms for every queued message to be acknowledged;
 * returns the number not delivered (failed or still pending).
 */
int
KafkaSinkFlush(KafkaSink *ks, int timeout_ms)
{
	int			failed;

	rd_kafka_flush(ks->rk, timeout_ms);
	rd_kafka_poll(ks->rk, 0);
	failed = ks->failed + Max(ks->pending, 0);
	ks->failed = 0;
	return failed;
}


void
KafkaSinkClose(KafkaSink *ks)
{
	if (ks == NULL)
		return;
	if (ks->rk)
	{
		rd_kafka_flush(ks->rk, 1000);
		rd_kafka_destroy(ks->rk);
	}
	pfree(ks);
}
