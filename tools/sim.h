/*-------------------------------------------------------------------------
 * sim.h
 *		What the three files of iotstream-sim share: the options, the
 *		message kinds and the message builder.
 *
 * simulator.c produces and summarises, sim_message.c writes messages,
 * sim_options.c reads the command line.
 *-------------------------------------------------------------------------
 */
#ifndef IOTSTREAM_SIM_H
#define IOTSTREAM_SIM_H

#include <stddef.h>
#include <stdint.h>

#define MAX_BURSTS 256
#define MAX_METRICS 16
#define MAX_PROPS 64
#define DUP_RING 64

typedef enum
{
	BAD_NOT_JSON,
	BAD_TRUNCATED,
	BAD_WRONG_TYPE,
	BAD_MISSING_FIELD,
	BAD_TIME,
	BAD_INVALID_UTF8,
	BAD_NUL_BYTE,
	BAD_OVERSIZE,
	BAD_NKINDS,
	GOOD = -1
} MsgKind;

extern const char *const bad_names[BAD_NKINDS];

typedef enum
{
	TIME_ISO, TIME_EPOCH_S, TIME_EPOCH_MS
} TimeFormat;

typedef struct Burst
{
	int			dev;
	int64_t		minute_ms;		/* start of the minute */
	int			count;
	int			emitted;
} Burst;

/* --spike and --level-shift: changes to the values of good messages */
typedef struct Shift
{
	int			dev;
	int64_t		time_ms;		/* spike: event time of the spiked message;
								 * level shift: first time it applies */
	int64_t		target;			/* spike: index of the spiked message */
	int64_t		value_x100;		/* spike: the value; level shift: the delta */
} Shift;

/* Everything the command line decides. */
typedef struct Options
{
	const char *brokers;
	const char *topic;
	int			telemetry;		/* 0: seed-002 events, 1: seed-004 telemetry */
	int64_t		count;
	double		rate;
	double		duration;
	int			devices;
	int64_t		start_ms;
	int64_t		step_ms;
	uint64_t	seed;
	double		dup_fraction;
	double		bad_fraction;
	int			bad_enabled[BAD_NKINDS];
	int			oversize_bytes;
	int			shuffle;
	TimeFormat	time_format;
	const char *metrics[MAX_METRICS];
	int			nmetrics;
	Burst		bursts[MAX_BURSTS];
	int			nbursts;
	Shift		spikes[MAX_BURSTS];
	int			nspikes;
	Shift		shifts[MAX_BURSTS];
	int			nshifts;
	const char *props[MAX_PROPS];
	int			nprops;
	int			flush_timeout_ms;
	int			per_device;
	const char *output_file;	/* write lines instead of producing */
	const char *mqtt;			/* mqtt://host:port: publish there, not Kafka */
	int			qos;			/* MQTT QoS 0, 1, 2 */
	int			window;			/* MQTT packet ids in flight */
	const char *client_id;
	int			payload_value;	/* MQTT: the bare value, not the JSON */
	int			start_now;		/* --start-time now: when producing starts */
} Options;

/* What one message contributes to the checksum. */
typedef struct MsgFacts
{
	int			dev;
	int64_t		seq;
	int64_t		value_x100;
	int64_t		time_ms;
	const char *metric;			/* telemetry: its metric type */
} MsgFacts;

typedef struct MqttPub MqttPub;

/* in sim_message.c */
extern uint64_t rng_next(uint64_t *state);
extern uint64_t rng_below(uint64_t *state, uint64_t n);
extern double rng_unit(uint64_t *state);
extern int64_t days_from_civil(int64_t y, int m, int d);
extern char *put_iso(char *p, int64_t ms);
extern void device_name(const Options *o, int dev, char *buf, size_t size);
extern size_t build_message(const Options *o, int64_t i, MsgKind kind,
							int64_t bad_n, const Burst *b, int burst,
							char *buf, MsgFacts *f);

/* in sim_mqtt.c */
extern MqttPub *mqtt_pub_open(const char *url, const char *client_id, int qos,
							  int window, char *err, size_t errlen);
extern int	mqtt_pub_send(MqttPub *p, const char *topic, size_t tlen,
						  const char *payload, size_t len);
extern int	mqtt_pub_wait(MqttPub *p, int wait_ms);
extern int64_t mqtt_pub_finish(MqttPub *p, int timeout_ms);
extern const char *mqtt_pub_error(MqttPub *p);
extern void mqtt_pub_close(MqttPub *p);

/* in sim_options.c */
extern void parse_options(Options *o, int argc, char **argv);
extern void die(const char *msg, const char *arg);

#endif							/* IOTSTREAM_SIM_H */
