/*-------------------------------------------------------------------------
 * mqtt_source.c
 *		An MQTT subscriber for one source worker: the second implementation
 *		of the source interface (source.h), over mqtt_client.c.  What the
 *		broker sends is handled in mqtt_receiver.c (shared state: mqtt_int.h).
 *
 * The invariant kept here: nothing is acknowledged before the worker's
 * transaction commits.  PUBACK (QoS 1) and PUBREC (QoS 2) go out in ack(),
 * which the worker calls after the commit, in the order the messages came.
 * The session is persistent (clean session off, or a session expiry with
 * MQTT 5), so the broker redelivers, with DUP set, what was never
 * acknowledged: after a crash at QoS 1 that is a duplicate (a dedup key
 * removes it); at QoS 2 it is recognised.
 *
 * QoS 2 exactly once: the receiver's state, the packet ids stored and not
 * yet released by PUBREL, is stored with the rows through the positions
 * mechanism.  Each id stored in a batch takes a slot, a row of
 * iotstream.source_offsets with topic "$mqtt/<client id>/qos2", partition
 * the slot and next_offset (packet id << 32 | a 32-bit hash of topic and
 * payload).  A redelivered PUBLISH whose id and hash are in that state is
 * acknowledged again and not stored.  A slot is free again once PUBREL
 * released its id (PUBCOMP goes out at once), and is overwritten by the
 * next id that takes it; slots are reused most recent first, so a quiet
 * source has a few rows.  After a restart the stored ids are in doubt: the
 * broker resends what it still holds (PUBLISH or PUBREL) before any new
 * message, in the order it first sent it, so the first PUBLISH that is not
 * a resend of an id in doubt ends the resends: the ids still in doubt were
 * completed before the crash and their slots are free.
 *
 * A last position, "$mqtt/<client id>" partition 0, counts the messages
 * stored; it carries the batch's newest event time for detection.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/mqtt_int.h"

#include <unistd.h>

#include "postmaster/bgworker.h"

/* Connects when it is time to try again, with a growing backoff. */
static void
maybe_connect(MqttSource *ms)
{
	if (MqttClientOpen(ms->client) || MqttNowMs() < ms->next_attempt_ms)
		return;
	if (!MqttClientConnect(ms->client))
	{
		MqttNoteError(ms, MqttClientError(ms->client));
		ms->next_attempt_ms = MqttNowMs() + ms->backoff_ms;
		ms->backoff_ms = Min(ms->backoff_ms * 2, BACKOFF_MAX_MS);
	}
}

/* ------------------------------------------------------------ the interface */

static const char *
prop(const SourceProperty *props, int nprops, const char *name)
{
	const char *v = NULL;

	for (int i = 0; i < nprops; i++)
		if (strcmp(props[i].name, name) == 0)
			v = props[i].value;
	return v;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void mqtt_close(void *src);

static void *
mqtt_open(const SourceProperty *props, int nprops, const char *const *streams, int nstreams,
		  const SourceCallbacks *cb, bool headers, char *errbuf, size_t errlen)
{
	MqttSource *ms = calloc(1, sizeof(MqttSource));
	const char *url = prop(props, nprops, "bootstrap.servers");
	const char *group = prop(props, nprops, "group.id");
	const char *v;
	const char *hostpart;
	char	   *host;
	char	   *colon;
	int			workers = (v = prop(props, nprops, "workers")) ? atoi(v) : 1;
	int			index = 1;
	MqttHandler h = MqttReceiverHandler(ms);
	SourcePosition *pos;
	char		buf[256];

	ms->cb = *cb;
	ms->headers = headers;
	ms->backoff_ms = BACKOFF_MIN_MS;
	ms->shown_connected = -1;
	if (pipe(ms->idle_pipe) != 0)
	{
		snprintf(errbuf, errlen, "could not create a pipe: %m");
		free(ms);
		return NULL;
	}

	/* mqtt://host:port or mqtts://host:port (checked by create_mqtt_source) */
	if (url && strncmp(url, "mqtts://", 8) == 0)
	{
		ms->cfg.tls = true;
		hostpart = url + 8;
	}
	else if (url && strncmp(url, "mqtt://", 7) == 0)
		hostpart = url + 7;
	else
	{
		snprintf(errbuf, errlen, "the broker must be mqtt://host:port or mqtts://host:port");
		close(ms->idle_pipe[0]);
		close(ms->idle_pipe[1]);
		free(ms);
		return NULL;
	}
	host = strdup(hostpart);
	if ((colon = strrchr(host, '/')) != NULL && colon > host && colon[1] == '\0')
		*colon = '\0';
	ms->cfg.port = ms->cfg.tls ? 8883 : 1883;
	if (host[0] == '[' && (colon = strchr(host, ']')) != NULL)
	{
		*colon = '\0';
		if (colon[1] == ':')
			ms->cfg.port = atoi(colon + 2);
		memmove(host, host + 1, strlen(host));
	}
	else if ((colon = strrchr(host, ':')) != NULL)
	{
		*colon = '\0';
		ms->cfg.port = atoi(colon + 1);
	}
	ms->cfg.host = host;

	/* one session per worker: "iotstream source N worker I" says which */
	if (MyBgworkerEntry)
		(void) sscanf(MyBgworkerEntry->bgw_name, "iotstream source %*d worker %d", &index);
	v = prop(props, nprops, "client_id");
	if (workers > 1)
		snprintf(buf, sizeof(buf), "%s-%d", v ? v : group, index);
	else
		snprintf(buf, sizeof(buf), "%s", v ? v : group);
	ms->client_id = strdup(buf);
	ms->cfg.client_id = ms->client_id;
	ms->cfg.username = dup_or_null(prop(props, nprops, "username"));
	ms->cfg.password = dup_or_null(prop(props, nprops, "password"));
	ms->cfg.ca_file = dup_or_null(prop(props, nprops, "tls_ca"));
	ms->cfg.cert_file = dup_or_null(prop(props, nprops, "tls_cert"));
	ms->cfg.key_file = dup_or_null(prop(props, nprops, "tls_key"));
	ms->cfg.keepalive = (v = prop(props, nprops, "keepalive")) ? atoi(v) : 30;
	ms->cfg.version = (v = prop(props, nprops, "protocol")) && strcmp(v, "5") == 0 ? 5 : 4;
	ms->cfg.qos = (v = prop(props, nprops, "qos")) ? atoi(v) : 2;
	ms->cfg.session_expiry = 0xFFFFFFFF;	/* never expires */
	/*
	 * Receive Maximum: what the broker may send before acknowledgements.
	 * Well below the 65535 packet ids, so that a backlog never has the
	 * broker reuse an id we still hold; QoS 2 stores MQTT_SLOTS at a time.
	 */
	ms->cfg.receive_max = 16384;
	ms->store_retained = !((v = prop(props, nprops, "retained")) && strcmp(v, "skip") == 0);
	ms->cfg.retained = ms->store_retained;

	/* with several workers, an MQTT 5 shared subscription spreads the messages */
	ms->filters = calloc(nstreams, sizeof(char *));
	for (int i = 0; i < nstreams; i++)
	{
		if (workers > 1 && strncmp(streams[i], "$share/", 7) != 0)
			snprintf(buf, sizeof(buf), "$share/%s/%s", group, streams[i]);
		else
			snprintf(buf, sizeof(buf), "%s", streams[i]);
		ms->filters[i] = strdup(buf);
	}
	ms->cfg.filters = (const char *const *) ms->filters;
	ms->cfg.nfilters = nstreams;

	snprintf(buf, sizeof(buf), "$mqtt/%s", ms->client_id);
	ms->stream_topic = strdup(buf);
	snprintf(buf, sizeof(buf), "$mqtt/%s/qos2", ms->client_id);
	ms->slot_topic = strdup(buf);

	ms->state = calloc(65536, sizeof(uint8));
	ms->hash = calloc(65536, sizeof(uint32));
	ms->slot_of = malloc(65536 * sizeof(int16));
	ms->doubt = calloc(65536, sizeof(bool));
	ms->free_slots = malloc(MQTT_SLOTS * sizeof(int));
	ms->owed = malloc(65536 * sizeof(uint16));
	ms->owed_qos = malloc(65536);
	ms->released = malloc(RELEASED_RING * sizeof(uint16));
	for (int i = 0; i < 65536; i++)
		ms->slot_of[i] = -1;

	/* the state stored with the rows: the QoS 2 ids, and the count */
	pos = palloc(sizeof(SourcePosition) * (MQTT_SLOTS + 1));
	for (int s = 0; s < MQTT_SLOTS; s++)
	{
		pos[s].topic = ms->slot_topic;
		pos[s].partition = s;
		pos[s].offset = -1;
	}
	pos[MQTT_SLOTS].topic = ms->stream_topic;
	pos[MQTT_SLOTS].partition = 0;
	pos[MQTT_SLOTS].offset = -1;
	ms->cb.assigned(ms->cb.arg, pos, MQTT_SLOTS + 1);
	ms->stored = Max(pos[MQTT_SLOTS].offset, 0);
	/* free slots: the highest at the bottom, so the lowest are used first */
	for (int s = MQTT_SLOTS - 1; s >= 0; s--)
	{
		int64		o = pos[s].offset;

		if (o > 0 && (o >> 32) > 0 && (o >> 32) < 65536)
		{
			uint16		id = (uint16) (o >> 32);

			ms->state[id] = ID_RECEIVED;
			ms->hash[id] = (uint32) (o & 0xFFFFFFFF);
			ms->slot_of[id] = s;
			ms->doubt[id] = true;
		}
		else
			ms->free_slots[ms->nfree++] = s;
	}
	/*
	 * The assignment the worker keeps (it holds the watermark until each
	 * position is heard from, and matches each batch against them): the
	 * count alone, not thousands of slots.
	 */
	pos[0] = pos[MQTT_SLOTS];
	ms->cb.assigned(ms->cb.arg, pos, 1);
	pfree(pos);

	ms->client = MqttClientCreate(&ms->cfg, &h);
	maybe_connect(ms);
	return ms;
}

static int
mqtt_fd(void *src)
{
	MqttSource *ms = src;

	/* the worker waits on a descriptor: while disconnected, one that sleeps */
	return MqttClientOpen(ms->client) ? MqttClientFd(ms->client) : ms->idle_pipe[0];
}

/*
 * Reads what the broker sent and hands out queued messages, without
 * blocking.  A QoS 2 message needs a free slot: when none is, it waits in
 * the queue for PUBRELs to free some.
 */
static int
mqtt_poll(void *src, SourceMessage *out, int max)
{
	MqttSource *ms = src;
	int			n = 0;

	maybe_connect(ms);
	if (MqttClientOpen(ms->client))
		(void) MqttClientService(ms->client);
	/* source_status shows an outage */
	if (ms->shown_connected != (int) MqttClientConnected(ms->client))
	{
		ms->shown_connected = MqttClientConnected(ms->client);
		SourceSlotSetState(ms->shown_connected ? "running" : "disconnected");
	}
	while (n < max && ms->queue_head)
	{
		MqttMsg    *m = ms->queue_head;
		SourceMessage *o = &out[n];

		if (m->qos == 2)
		{
			if (ms->nfree == 0)
				break;
			ms->slot_of[m->id] = ms->free_slots[--ms->nfree];
		}
		if (m->qos > 0)
			ms->state[m->id] = ID_PENDING;
		ms->queue_head = m->next;
		if (ms->queue_head == NULL)
			ms->queue_tail = NULL;
		ms->queued--;
		m->next = NULL;
		if (ms->held_tail)
			ms->held_tail->next = m;
		else
			ms->held_head = m;
		ms->held_tail = m;

		memset(o, 0, sizeof(*o));
		o->payload = m->payload;
		o->payload_len = m->len;
		o->topic = m->topic;
		o->partition = 0;
		o->offset = m->id;
		o->timestamp_ms = m->arrived_ms;
		o->qos = m->qos;
		o->retain = m->retain;
		o->nheaders = m->nheaders;
		o->headers = m->headers;
		n++;
	}
	return n;
}

/*
 * A QoS 2 message waits and every slot is taken (by this batch, or by ids
 * awaiting PUBREL): commit now rather than idle until batch_ms.
 */
static bool
mqtt_batch_full(void *src)
{
	MqttSource *ms = src;

	return ms->nfree == 0 && ms->queue_head != NULL && ms->queue_head->qos == 2;
}

/*
 * What to store with the batch: the slot of each QoS 2 message, then the
 * count of messages stored (last: it takes the batch's event times).
 */
static int
mqtt_positions(void *src, const SourceMessage *msgs, int n, SourcePosition *out)
{
	MqttSource *ms = src;
	int			np = 0;

	for (int i = 0; i < n; i++)
	{
		uint16		id = (uint16) msgs[i].offset;

		if (msgs[i].qos != 2)
			continue;
		out[np].topic = ms->slot_topic;
		out[np].partition = ms->slot_of[id];
		out[np].offset = ((int64) id << 32) | ms->hash[id];
		np++;
	}
	out[np].topic = ms->stream_topic;
	out[np].partition = 0;
	out[np].offset = ms->stored + n;
	np++;
	return np;
}

static int64
mqtt_end_offset(void *src, const char *topic, int32 partition)
{
	return -1;
}

static bool
mqtt_drained(void *src, const char *topic, int32 partition)
{
	return true;				/* no partitions to wait for */
}

/* After the commit: PUBACK or PUBREC for each message, in order. */
static void
mqtt_ack(void *src, const SourcePosition *positions, int np)
{
	MqttSource *ms = src;
	bool		open = MqttClientConnected(ms->client);

	for (MqttMsg *m = ms->held_head; m; m = m->next)
	{
		ms->stored++;
		if (m->qos == 0 || ms->state[m->id] != ID_PENDING)
			continue;
		if (open)
		{
			MqttClientAck(ms->client, m->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK, m->id);
			if (m->qos == 2)
				ms->state[m->id] = ID_RECEIVED;
			else
				MqttReleaseId(ms, m->id);
		}
		else
		{
			/* sent when the connection is back */
			ms->state[m->id] = ID_OWED;
			ms->owed[ms->nowed] = m->id;
			ms->owed_qos[ms->nowed++] = m->qos;
		}
	}
	if (open)
		(void) MqttClientFlush(ms->client);
}

static void
mqtt_release(void *src)
{
	MqttSource *ms = src;
	MqttMsg    *m = ms->held_head;

	while (m)
	{
		MqttMsg    *next = m->next;

		/* dropped before its commit (the worker stops): the broker resends it */
		if (m->qos > 0 && ms->state[m->id] == ID_PENDING)
		{
			ms->state[m->id] = ID_NONE;
			if (m->qos == 2)
				MqttFreeSlot(ms, m->id);
		}
		MqttMsgFree(ms, m);
		m = next;
	}
	ms->held_head = ms->held_tail = NULL;
}

static const char *
mqtt_last_error(void *src, int64 *count)
{
	MqttSource *ms = src;

	if (count)
		*count = ms->error_count;
	return ms->last_error[0] ? ms->last_error : NULL;
}

static void
free_str(const char *s)
{
	if (s)
	{
		explicit_bzero((char *) s, strlen(s));
		free((char *) s);
	}
}

static void
mqtt_close(void *src)
{
	MqttSource *ms = src;

	if (ms == NULL)
		return;
	MqttClientDestroy(ms->client);
	mqtt_release(ms);
	for (MqttMsg *m = ms->queue_head, *next; m; m = next)
	{
		next = m->next;
		MqttMsgFree(ms, m);
	}
	free(ms->chunk);
	free(ms->spare);
	for (int i = 0; i < ms->cfg.nfilters; i++)
		free(ms->filters[i]);
	free(ms->filters);
	free((char *) ms->cfg.host);
	free_str(ms->cfg.username);
	free_str(ms->cfg.password);
	free_str(ms->cfg.ca_file);
	free_str(ms->cfg.cert_file);
	free_str(ms->cfg.key_file);
	free(ms->client_id);
	free(ms->stream_topic);
	free(ms->slot_topic);
	free(ms->state);
	free(ms->hash);
	free(ms->slot_of);
	free(ms->doubt);
	free(ms->free_slots);
	free(ms->owed);
	free(ms->owed_qos);
	free(ms->released);
	close(ms->idle_pipe[0]);
	close(ms->idle_pipe[1]);
	free(ms);
}

const SourceOps MqttSourceOps = {
	.kind = "mqtt",
	.open = mqtt_open,
	.fd = mqtt_fd,
	.poll = mqtt_poll,
	.batch_full = mqtt_batch_full,
	.positions = mqtt_positions,
	.end_offset = mqtt_end_offset,
	.drained = mqtt_drained,
	.ack = mqtt_ack,
	.release = mqtt_release,
	.last_error = mqtt_last_error,
	.close = mqtt_close,
};
