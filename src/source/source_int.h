/*-------------------------------------------------------------------------
 * source/source_int.h
 *		The source stage's own declarations.
 *
 * Nothing outside src/source/ includes it.
 *-------------------------------------------------------------------------
 */
#ifndef SOURCE_SOURCE_INT_H
#define SOURCE_SOURCE_INT_H

#include "source/source.h"

/* in source_config.c */
typedef struct SourceConfig
{
	int			source_id;
	char	   *name;
	char	   *kind;			/* iotstream.sources.kind: which SourceOps */
	Oid			target;
	Jsonb	   *mapping;
	Jsonb	   *options;
	int			batch_size;
	int			batch_ms;
	char	  **topics;
	int			ntopics;
	SourceProperty *props;
	int			nprops;
} SourceConfig;

extern SourceConfig *SourceConfigLoad(int source_id, bool running, MemoryContext cxt);
extern const SourceOps *SourceOpsFor(const char *kind);

/* in source_status.c: a worker's own slot */
extern void SourceSlotClaim(int source_id);
extern void SourceSlotSetTarget(Oid target);
extern void SourceSlotSetState(const char *state);
extern void SourceSlotSetError(const char *msg);
extern void SourceSlotCountBatch(int64 messages, int64 rows, int64 dead, int64 duplicates);
extern void SourceSlotRelease(void);

/* A worker's memory, as source_status shows it. */
typedef struct SourceMemory
{
	int64		rss_anon;		/* bytes of private memory */
	int64		dedup_bytes;	/* what dedup holds */
	int64		dedup_keys;		/* keys it holds exactly */
	int64		dedup_filtered_keys;	/* keys behind its filters */
	int64		cached;			/* what the source holds (SourceOps.cached), -1 */
} SourceMemory;

extern void SourceSlotSetMemory(const SourceMemory *m);
extern int64 SourceRssAnon(void);

/* in mqtt_client.c: the client side of MQTT 3.1.1 and 5 (no SQL here) */
#define MQTT_MAX_USER_PROPERTIES 32

typedef struct MqttClient MqttClient;

typedef struct MqttClientConfig
{
	const char *host;
	int			port;
	bool		tls;
	const char *client_id;
	const char *username;		/* NULL: none */
	const char *password;		/* NULL: none; a secret */
	const char *ca_file;		/* NULL: the system's CAs */
	const char *cert_file;
	const char *key_file;
	int			keepalive;		/* seconds; 0: off */
	int			version;		/* 4 (3.1.1) or 5 */
	uint32		session_expiry; /* MQTT 5, seconds */
	uint16		receive_max;	/* MQTT 5 */
	const char *const *filters;
	int			nfilters;
	int			qos;			/* 1 or 2 */
	bool		retained;		/* subscribe for retained messages */
} MqttClientConfig;

typedef struct MqttUserProperty
{
	const char *name;
	size_t		name_len;
	const char *value;
	size_t		value_len;
} MqttUserProperty;

/* A PUBLISH as received: valid only during the publish callback. */
typedef struct MqttPublish
{
	const char *topic;
	size_t		topic_len;
	const char *payload;
	size_t		payload_len;
	uint16		id;				/* 0 for QoS 0 */
	uint8		qos;
	bool		dup;
	bool		retain;
	int			nprops;
	MqttUserProperty *props;	/* MQTT 5 user properties */
} MqttPublish;

typedef struct MqttHandler
{
	void		(*connected) (void *arg, bool session_present);
	void		(*publish) (void *arg, const MqttPublish *pub);
	void		(*pubrel) (void *arg, uint16 id);
	void		(*lost) (void *arg, const char *why);
	void		(*error) (void *arg, const char *why);	/* not fatal */
	void	   *arg;
} MqttHandler;

typedef enum MqttAck
{
	MQTT_PUBACK,
	MQTT_PUBREC,
	MQTT_PUBCOMP
} MqttAck;

extern MqttClient *MqttClientCreate(const MqttClientConfig *cfg, const MqttHandler *h);
extern bool MqttClientConnect(MqttClient *c);
extern bool MqttClientConnected(MqttClient *c);
extern bool MqttClientOpen(MqttClient *c);
extern int	MqttClientFd(MqttClient *c);
extern bool MqttClientService(MqttClient *c);
extern void MqttClientAck(MqttClient *c, MqttAck kind, uint16 id);
extern bool MqttClientFlush(MqttClient *c);
extern const char *MqttClientError(MqttClient *c);
extern void MqttClientDestroy(MqttClient *c);

#endif							/* SOURCE_SOURCE_INT_H */
