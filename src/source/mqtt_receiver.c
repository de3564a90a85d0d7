/*-------------------------------------------------------------------------
 * mqtt_receiver.c
 *		The receiving side of an MQTT source: what the broker sends
 *		(PUBLISH, PUBREL, connection events), tracked by packet id, and the
 *		memory of the messages held until their commit.
 *
 * A message received is queued with its id in state QUEUED; nothing is
 * acknowledged here that was not committed (the resends after a
 * reconnect are told from new messages as mqtt_source.c's header
 * describes).  Messages are carved from 1 MB chunks, a chunk going back
 * whole when its last message is released.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/mqtt_int.h"

#include <time.h>

#include "common/hashfn.h"

#define CHUNK_SIZE			(1024 * 1024)	/* messages are carved from chunks */

int64
MqttNowMs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
MqttNoteError(MqttSource *ms, const char *msg)
{
	snprintf(ms->last_error, sizeof(ms->last_error), "%s", msg);
	ms->error_count++;
}

static uint32
message_hash(const char *topic, size_t tlen, const char *payload, size_t len)
{
	uint64		seed = hash_bytes_extended((const unsigned char *) topic, tlen, 0);
	uint32		h = (uint32) hash_bytes_extended((const unsigned char *) payload, len, seed);

	return h ? h : 1;
}

void
MqttFreeSlot(MqttSource *ms, uint16 id)
{
	if (ms->slot_of[id] >= 0)
		ms->free_slots[ms->nfree++] = ms->slot_of[id];
	ms->slot_of[id] = -1;
}

/* Done with an id; remembered in case a restored broker resends it. */
void
MqttReleaseId(MqttSource *ms, uint16 id)
{
	ms->state[id] = ID_RELEASED;
	ms->released[ms->nreleased++ % RELEASED_RING] = id;
}

static void
send_owed(MqttSource *ms)
{
	for (int i = 0; i < ms->nowed; i++)
	{
		uint16		id = ms->owed[i];

		if (ms->state[id] != ID_OWED)
			continue;
		MqttClientAck(ms->client, ms->owed_qos[i] == 2 ? MQTT_PUBREC : MQTT_PUBACK, id);

		/*
		 * The broker resent it on connecting, before it read this ack: the
		 * resend is recognised until the first new message, at QoS 1 too.
		 */
		ms->state[id] = ID_RECEIVED;
		ms->doubt[id] = ms->doubting = true;
	}
	ms->nowed = 0;
}

static void
on_connected(void *arg, bool session_present)
{
	MqttSource *ms = arg;

	ms->backoff_ms = BACKOFF_MIN_MS;
	/* the broker resends what it holds first: until then, stored ids are in doubt */
	ms->doubting = false;
	for (int i = 0; i < Min(ms->nreleased, RELEASED_RING); i++)
		if (ms->state[ms->released[i]] == ID_RELEASED)
			ms->doubt[ms->released[i]] = true;
	for (int id = 1; id < 65536; id++)
	{
		if (ms->state[id] == ID_RELEASED && !ms->doubt[id])
			ms->state[id] = ID_NONE;	/* long done: not resent */
		else if (ms->state[id] == ID_RECEIVED || ms->state[id] == ID_RELEASED)
			ms->doubt[id] = ms->doubting = true;
	}
	ms->nreleased = 0;
	send_owed(ms);
	if (!session_present)
		elog(LOG, "iotstream MQTT source %s: connected, new session", ms->client_id);
	else
		elog(LOG, "iotstream MQTT source %s: connected, session resumed", ms->client_id);
}

/* The first new message after connecting: what is still in doubt was done. */
static void
end_doubt(MqttSource *ms)
{
	for (int id = 1; id < 65536; id++)
		if (ms->doubt[id])
		{
			ms->doubt[id] = false;
			if (ms->state[id] == ID_RECEIVED)
			{
				ms->state[id] = ID_NONE;
				MqttFreeSlot(ms, id);
			}
			else if (ms->state[id] == ID_RELEASED)
				ms->state[id] = ID_NONE;
		}
	ms->doubting = false;
}

#define CHUNK_HEADER	MAXALIGN(sizeof(MsgChunk))

/* Room for one message: from the current chunk, else the spare or a new one. */
static MqttMsg *
msg_alloc(MqttSource *ms, size_t size)
{
	MsgChunk   *c = ms->chunk;
	MqttMsg    *m;

	size = MAXALIGN(size);
	if (c == NULL || c->size - c->used < size)
	{
		if (ms->spare && size <= ms->spare->size)
		{
			c = ms->spare;
			ms->spare = NULL;
		}
		else
		{
			size_t		csize = Max(size, CHUNK_SIZE);

			c = malloc(CHUNK_HEADER + csize);
			if (c == NULL)
				elog(ERROR, "out of memory");
			c->size = csize;
		}
		c->used = 0;
		c->live = 0;
		/* the old current chunk goes back when its last message does */
		if (ms->chunk && ms->chunk->live == 0)
		{
			if (ms->spare == NULL && ms->chunk->size == CHUNK_SIZE)
				ms->spare = ms->chunk;
			else
				free(ms->chunk);
		}
		ms->chunk = c;
	}
	m = (MqttMsg *) ((char *) c + CHUNK_HEADER + c->used);
	c->used += size;
	c->live++;
	m->chunk = c;
	return m;
}

/* A message released: its chunk goes back with its last message. */
void
MqttMsgFree(MqttSource *ms, MqttMsg *m)
{
	MsgChunk   *c = m->chunk;

	if (--c->live > 0)
		return;
	if (c == ms->chunk)
		c->used = 0;			/* empty: carve from its start again */
	else if (ms->spare == NULL && c->size == CHUNK_SIZE)
		ms->spare = c;
	else
		free(c);
}

static void
enqueue(MqttSource *ms, const MqttPublish *p)
{
	size_t		size = MAXALIGN(sizeof(MqttMsg)) + p->topic_len + 1 + p->payload_len + 1;
	int			nh = ms->headers ? p->nprops : 0;
	MqttMsg    *m;
	char	   *d;

	size += MAXALIGN(sizeof(SourceHeader) * nh) + 8;
	for (int i = 0; i < nh; i++)
		size += p->props[i].name_len + p->props[i].value_len + 2;
	m = msg_alloc(ms, size);
	d = (char *) m + MAXALIGN(sizeof(MqttMsg));
	m->headers = (SourceHeader *) d;
	d += MAXALIGN(sizeof(SourceHeader) * nh);
	m->next = NULL;
	m->id = p->id;
	m->qos = p->qos;
	m->dup = p->dup;
	m->retain = p->retain;
	m->arrived_ms = wall_ms();
	m->topic = d;
	memcpy(d, p->topic, p->topic_len);
	d[p->topic_len] = '\0';
	d += p->topic_len + 1;
	m->payload = d;
	memcpy(d, p->payload, p->payload_len);
	d[p->payload_len] = '\0';
	d += p->payload_len + 1;
	m->len = p->payload_len;
	m->nheaders = nh;
	for (int i = 0; i < nh; i++)
	{
		SourceHeader *h = &m->headers[i];

		memcpy(d, p->props[i].name, p->props[i].name_len);
		d[p->props[i].name_len] = '\0';
		h->name = d;
		d += p->props[i].name_len + 1;
		memcpy(d, p->props[i].value, p->props[i].value_len);
		d[p->props[i].value_len] = '\0';
		h->value = d;
		h->len = p->props[i].value_len;
		d += p->props[i].value_len + 1;
	}
	if (ms->queue_tail)
		ms->queue_tail->next = m;
	else
		ms->queue_head = m;
	ms->queue_tail = m;
	ms->queued++;
}

static void
on_publish(void *arg, const MqttPublish *p)
{
	MqttSource *ms = arg;
	uint32		h;

	if (p->retain && !ms->store_retained)
	{
		/* acknowledged, not stored: nothing to lose */
		if (p->qos > 0)
			MqttClientAck(ms->client, p->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK, p->id);
		return;
	}
	if (p->qos == 0)
	{
		enqueue(ms, p);
		return;
	}
	h = message_hash(p->topic, p->topic_len, p->payload, p->payload_len);

	/*
	 * After connecting, the broker resends first what we had not
	 * acknowledged, in the order it sent it (which is the order we stored
	 * it in): the first PUBLISH that is not one of the ids in doubt ends the
	 * resends.  DUP cannot tell: a broker restored from its persistence
	 * file may resend with DUP clear.
	 */
	if (ms->doubting &&
		!((ms->state[p->id] == ID_RECEIVED || ms->state[p->id] == ID_RELEASED) &&
		  ms->doubt[p->id] && ms->hash[p->id] == h))
		end_doubt(ms);
	switch ((IdState) ms->state[p->id])
	{
		case ID_QUEUED:
		case ID_PENDING:
			/* a resend of what we hold: acknowledged after its commit */
			return;
		case ID_OWED:
			/* stored; acknowledge it now */
			MqttClientAck(ms->client, p->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK, p->id);
			if (p->qos == 2)
				ms->state[p->id] = ID_RECEIVED;
			else
				MqttReleaseId(ms, p->id);
			return;
		case ID_RECEIVED:
			if (ms->hash[p->id] == h)
			{
				/* stored before: acknowledge again, never store it twice */
				ms->doubt[p->id] = false;
				if (p->qos == 2)
					MqttClientAck(ms->client, MQTT_PUBREC, p->id);
				else
				{
					MqttClientAck(ms->client, MQTT_PUBACK, p->id);
					MqttReleaseId(ms, p->id);
				}
				return;
			}
			/* a new publication under an id whose exchange is over */
			ms->doubt[p->id] = false;
			MqttFreeSlot(ms, p->id);
			break;
		case ID_NONE:
			break;
		case ID_RELEASED:
			if (ms->doubt[p->id] && ms->hash[p->id] == h)
			{
				/*
				 * A broker restored from its persistence file may resend a
				 * message whose exchange was over (mosquitto 2.0 does): the
				 * resend phase tells it from a new publication.
				 */
				ms->doubt[p->id] = false;
				MqttClientAck(ms->client, p->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK, p->id);
				return;
			}
			break;
	}
	ms->state[p->id] = ID_QUEUED;
	ms->hash[p->id] = h;
	enqueue(ms, p);
}

static void
on_pubrel(void *arg, uint16 id)
{
	MqttSource *ms = arg;

	MqttClientAck(ms->client, MQTT_PUBCOMP, id);
	if (ms->state[id] == ID_RECEIVED)
	{
		ms->doubt[id] = false;
		MqttFreeSlot(ms, id);
		MqttReleaseId(ms, id);
	}
}

static void
on_lost(void *arg, const char *why)
{
	MqttSource *ms = arg;

	MqttNoteError(ms, why);
	elog(LOG, "iotstream MQTT source %s: connection lost: %s", ms->client_id, why);
	ms->next_attempt_ms = MqttNowMs() + ms->backoff_ms;
}

static void
on_error(void *arg, const char *why)
{
	MqttNoteError(arg, why);
}

/* The events of mqtt_client.c, for one subscriber. */
MqttHandler
MqttReceiverHandler(MqttSource *ms)
{
	MqttHandler h = {on_connected, on_publish, on_pubrel, on_lost, on_error, ms};

	return h;
}
