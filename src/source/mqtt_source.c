/*-------------------------------------------------------------------------
 * mqtt_source.c
 *		An MQTT subscriber for one source worker: the second implementation
 *		of the source interface (source.h), over mqtt_client.c.
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
#include "source/source_int.h"

#include <time.h>
#include <unistd.h>

#include "common/hashfn.h"
#include "postmaster/bgworker.h"

#define MQTT_SLOTS			2048	/* QoS 2 ids stored and not yet released */
#define BACKOFF_MIN_MS		250
#define BACKOFF_MAX_MS		5000
#define CHUNK_SIZE			(1024 * 1024)	/* messages are carved from chunks */

/* what we know of a packet id */
typedef enum IdState
{
	ID_NONE = 0,
	ID_QUEUED,					/* received, not handed to the worker yet */
	ID_PENDING,					/* in the worker's batch, not committed */
	ID_OWED,					/* committed; the ack could not be sent yet */
	ID_RECEIVED,				/* QoS 2: committed, PUBREC sent, PUBREL awaited */
	ID_RELEASED					/* done (PUBCOMP or PUBACK sent) lately */
} IdState;

/* released ids remembered for the resends after the next reconnect */
#define RELEASED_RING	4096

/*
 * A chunk of message memory.  Messages are carved from the current chunk
 * one after the other; a chunk goes back whole (kept as the spare, or
 * freed) when the last of its messages is released after its commit.
 */
typedef struct MsgChunk
{
	size_t		size;			/* bytes after the header */
	size_t		used;
	int64		live;			/* messages carved and not released */
} MsgChunk;

typedef struct MqttMsg
{
	struct MqttMsg *next;
	MsgChunk   *chunk;
	uint16		id;
	uint8		qos;
	bool		dup;
	bool		retain;
	int64		arrived_ms;
	char	   *topic;
	char	   *payload;
	size_t		len;
	int			nheaders;
	SourceHeader *headers;
} MqttMsg;

typedef struct MqttSource
{
	MqttClient *client;
	MqttClientConfig cfg;
	SourceCallbacks cb;
	bool		headers;		/* copy user properties: a column takes $headers */
	bool		store_retained;
	char	   *client_id;
	char	   *stream_topic;	/* "$mqtt/<client id>" */
	char	   *slot_topic;		/* "$mqtt/<client id>/qos2" */
	char	  **filters;

	/* packet ids */
	uint8	   *state;			/* IdState by id */
	uint32	   *hash;			/* of the message stored under the id */
	int16	   *slot_of;		/* QoS 2: its slot, or -1 */
	bool	   *doubt;			/* RECEIVED before a reconnect: maybe done */
	bool		doubting;		/* until the first new message after connecting */
	uint16	   *released;		/* ring of the ids released last */
	int			nreleased;

	/* QoS 2 slots: a stack of free ones */
	int		   *free_slots;
	int			nfree;

	/* messages: queued (not handed out) and held (in the worker's batch) */
	MqttMsg    *queue_head;
	MqttMsg    *queue_tail;
	int64		queued;
	MqttMsg    *held_head;
	MqttMsg    *held_tail;
	int64		stored;			/* messages stored by this session */
	MsgChunk   *chunk;			/* messages are carved from this one */
	MsgChunk   *spare;			/* an empty chunk kept for the next */
	uint16	   *owed;			/* committed ids whose ack is not sent */
	uint8	   *owed_qos;
	int			nowed;

	/* connection */
	int			idle_pipe[2];	/* never readable: the fd while disconnected */
	int64		next_attempt_ms;
	int			shown_connected;	/* in source_status; -1: not yet */
	int			backoff_ms;
	char		last_error[256];
	int64		error_count;
} MqttSource;

static int64
now_ms(void)
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

static void
note_error(MqttSource *ms, const char *msg)
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

static void
free_slot(MqttSource *ms, uint16 id)
{
	if (ms->slot_of[id] >= 0)
		ms->free_slots[ms->nfree++] = ms->slot_of[id];
	ms->slot_of[id] = -1;
}

/* Done with an id; remembered in case a restored broker resends it. */
static void
release_id(MqttSource *ms, uint16 id)
{
	ms->state[id] = ID_RELEASED;
	ms->released[ms->nreleased++ % RELEASED_RING] = id;
}

/* ------------------------------------------------------------ client events */

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
				free_slot(ms, id);
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
static void
msg_free(MqttSource *ms, MqttMsg *m)
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
				release_id(ms, p->id);
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
					release_id(ms, p->id);
				}
				return;
			}
			/* a new publication under an id whose exchange is over */
			ms->doubt[p->id] = false;
			free_slot(ms, p->id);
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
		free_slot(ms, id);
		release_id(ms, id);
	}
}

static void
on_lost(void *arg, const char *why)
{
	MqttSource *ms = arg;

	note_error(ms, why);
	elog(LOG, "iotstream MQTT source %s: connection lost: %s", ms->client_id, why);
	ms->next_attempt_ms = now_ms() + ms->backoff_ms;
}

static void
on_error(void *arg, const char *why)
{
	note_error(arg, why);
}

/* Connects when it is time to try again, with a growing backoff. */
static void
maybe_connect(MqttSource *ms)
{
	if (MqttClientOpen(ms->client) || now_ms() < ms->next_attempt_ms)
		return;
	if (!MqttClientConnect(ms->client))
	{
		note_error(ms, MqttClientError(ms->client));
		ms->next_attempt_ms = now_ms() + ms->backoff_ms;
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
	MqttHandler h = {on_connected, on_publish, on_pubrel, on_lost, on_error, ms};
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
				release_id(ms, m->id);
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
				free_slot(ms, m->id);
		}
		msg_free(ms, m);
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
		msg_free(ms, m);
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
