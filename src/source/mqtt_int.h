/*-------------------------------------------------------------------------
 * mqtt_int.h
 *		What the two files of the MQTT source share: the state of one
 *		subscriber (MqttSource), the messages it holds, and what each
 *		packet id is known to be in.
 *
 * mqtt_source.c implements the source interface (source.h) over it;
 * mqtt_receiver.c handles what the broker sends (mqtt_client.c's events).
 * The design, and the invariant both keep, is described at the top of
 * mqtt_source.c.
 *-------------------------------------------------------------------------
 */
#ifndef IOTSTREAM_MQTT_INT_H
#define IOTSTREAM_MQTT_INT_H

#include "source/source_int.h"

#define MQTT_SLOTS			2048	/* QoS 2 ids stored and not yet released */
#define BACKOFF_MIN_MS		250
#define BACKOFF_MAX_MS		5000

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

/* in mqtt_receiver.c */
extern MqttHandler MqttReceiverHandler(MqttSource *ms);
extern int64 MqttNowMs(void);
extern void MqttNoteError(MqttSource *ms, const char *msg);
extern void MqttFreeSlot(MqttSource *ms, uint16 id);
extern void MqttReleaseId(MqttSource *ms, uint16 id);
extern void MqttMsgFree(MqttSource *ms, MqttMsg *m);

#endif							/* IOTSTREAM_MQTT_INT_H */
