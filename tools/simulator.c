/*-------------------------------------------------------------------------
 * simulator.c
 *		iotstream-sim: a device simulator and load generator for Kafka
 *		and MQTT.
 *
 * It produces seed-002 events (--format event) or seed-004 telemetry
 * (--format telemetry) with librdkafka, keyed by device id, or publishes
 * them to an MQTT broker (sim_mqtt.c) on per-device, per-measurement
 * topics such as arduino/{device}/{metric}, and prints a
 * one-line JSON summary of what it produced so that a test can verify the
 * ingested rows exactly.  See tools/README.md for every option and for the
 * SQL that recomputes the checksum.
 *
 * The invariant that makes tests possible: good message number i (0-based)
 * is a pure function of (--seed, i, options that shape messages).  Device
 * i % devices sends it as its (i / devices)-th message, at event time
 * start + (i / devices) * step + (i % devices) * step / devices.  Everything
 * else (duplicates, bad messages, the shuffle order, bursts) comes from a
 * second random stream and is added around the good messages, so the set of
 * good messages does not change when those options do.
 *
 * This file produces and summarises; sim_message.c writes the messages,
 * sim_options.c reads the command line and sim_mqtt.c publishes to MQTT
 * (shared declarations in sim.h).
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "sim.h"


/* What was produced, for the summary. */
typedef struct Stats
{
	int64_t		produced;
	int64_t		good;
	int64_t		duplicates;
	int64_t		burst_msgs;
	int64_t		bad[BAD_NKINDS];
	int64_t		sum_seq;
	int64_t		sum_value_x100;
	int64_t		sum_time_ms;
	int64_t		min_time_ms;
	int64_t		max_time_ms;
	int64_t    *dev_count;
	int64_t    *dev_checksum;
} Stats;

static volatile sig_atomic_t interrupted = 0;
static int64_t delivered = 0;
static int64_t failed = 0;
static char first_error[256] = "";

/* ------------------------------------------------------------- producing */

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void) rk;
	(void) opaque;
	if (m->err)
	{
		if (failed++ == 0)
			snprintf(first_error, sizeof(first_error), "%s", rd_kafka_err2str(m->err));
	}
	else
		delivered++;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct Producer
{
	rd_kafka_t *rk;
	Options    *o;
	Stats	   *st;
	double		t0;
	FILE	   *out;			/* --output-file instead of Kafka, or NULL */
	MqttPub    *mqtt;			/* --mqtt instead of Kafka, or NULL */
} Producer;

/* The MQTT topic of a message: --topic with {device} and {metric} filled. */
static size_t
mqtt_topic(const Options *o, const char *key, const MsgFacts *f, char *buf, size_t size)
{
	const char *t = o->topic;
	size_t		n = 0;

	while (*t && n + 1 < size)
	{
		const char *v = NULL;

		if (strncmp(t, "{device}", 8) == 0)
			v = key, t += 8;
		else if (strncmp(t, "{metric}", 8) == 0)
			v = f->metric ? f->metric : (f->dev % 2 ? "TEMP" : "CO2"), t += 8;
		if (v)
			while (*v && n + 1 < size)
				buf[n++] = *v++;
		else
			buf[n++] = *t++;
	}
	buf[n] = '\0';
	return n;
}

static int
publish(Producer *pr, const char *key, const MsgFacts *f, const char *payload, size_t len)
{
	char		topic[512];
	char		value[32];
	size_t		tlen = mqtt_topic(pr->o, key, f, topic, sizeof(topic));

	if (pr->o->payload_value)
	{
		/* the bare value, as many sensors send it: 63.25 */
		int64_t		c = f->value_x100;

		len = snprintf(value, sizeof(value), "%s%lld.%02lld", c < 0 ? "-" : "",
					   (long long) (c < 0 ? -c : c) / 100, (long long) (c < 0 ? -c : c) % 100);
		payload = value;
	}
	if (!mqtt_pub_send(pr->mqtt, topic, tlen, payload, len))
	{
		fprintf(stderr, "iotstream-sim: publish failed: %s\n", mqtt_pub_error(pr->mqtt));
		return 0;
	}
	pr->st->produced++;
	return 1;
}

static int
produce(Producer *pr, const char *key, const MsgFacts *f, const char *payload, size_t len)
{
	rd_kafka_resp_err_t err;

	/* pace to --rate; wait by serving delivery reports, not by sleeping */
	if (pr->o->rate > 0)
	{
		double		due = pr->t0 + pr->st->produced / pr->o->rate;
		double		ahead;

		while ((ahead = due - now_s()) > 0.001 && !interrupted)
		{
			if (pr->rk)
				rd_kafka_poll(pr->rk, (int) (ahead * 1000));
			else if (pr->mqtt)
			{
				/* what is gathered goes out now: the time is due */
				if (!mqtt_pub_wait(pr->mqtt, (int) (ahead * 1000)))
					break;
			}
			else
			{
				struct timespec ts = {0, (long) (ahead * 1e9)};

				nanosleep(&ts, NULL);
			}
		}
	}
	if (pr->mqtt)
		return publish(pr, key, f, payload, len);
	if (pr->out)
	{
		/* one "key<TAB>payload" line per message, as kcat -P -K'\t' reads */
		fputs(key, pr->out);
		fputc('\t', pr->out);
		fwrite(payload, 1, len, pr->out);
		fputc('\n', pr->out);
		pr->st->produced++;
		delivered++;
		return 1;
	}
	for (;;)
	{
		err = rd_kafka_producev(pr->rk,
								RD_KAFKA_V_TOPIC(pr->o->topic),
								RD_KAFKA_V_KEY(key, strlen(key)),
								RD_KAFKA_V_VALUE((void *) payload, len),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(pr->rk, 10);
	}
	if (err)
	{
		fprintf(stderr, "iotstream-sim: produce failed: %s\n", rd_kafka_err2str(err));
		return 0;
	}
	if (++pr->st->produced % 1024 == 0)
		rd_kafka_poll(pr->rk, 0);
	return 1;
}

static void
count_good(const Options *o, Stats *st, const MsgFacts *f)
{
	int64_t		rel = f->time_ms - o->start_ms;

	st->good++;
	st->sum_seq += f->seq;
	st->sum_value_x100 += f->value_x100;
	st->sum_time_ms += rel;
	st->dev_count[f->dev]++;
	st->dev_checksum[f->dev] += f->seq + f->value_x100 + rel;
	if (f->time_ms < st->min_time_ms)
		st->min_time_ms = f->time_ms;
	if (f->time_ms > st->max_time_ms)
		st->max_time_ms = f->time_ms;
}

/* Produce everything; returns 0 on a local produce error. */
static int
run(Producer *pr, char *buf)
{
	Options    *o = pr->o;
	Stats	   *st = pr->st;
	uint64_t	rng = o->seed ^ 0x5EEDF00DULL;
	int64_t    *order = malloc(sizeof(int64_t) * (o->shuffle > 1 ? o->shuffle : 1));
	int64_t		ring[DUP_RING];
	int			nring = 0;
	int			bad_kinds[BAD_NKINDS];
	int			nbad = 0;
	int64_t		bad_rr = 0;
	int64_t		base;
	char		key[64];
	MsgFacts	f;
	size_t		len;
	int			k;

	for (k = 0; k < BAD_NKINDS; k++)
		if (o->bad_enabled[k])
			bad_kinds[nbad++] = k;
	rng_next(&rng);

	for (base = 0; base < o->count && !interrupted; base += (o->shuffle > 1 ? o->shuffle : 1))
	{
		int64_t		n = o->shuffle > 1 ? o->shuffle : 1;
		int64_t		j;

		if (base + n > o->count)
			n = o->count - base;
		for (j = 0; j < n; j++)
			order[j] = base + j;
		for (j = n - 1; j > 0; j--)
		{
			int64_t		r = rng_below(&rng, j + 1),
						t = order[j];

			order[j] = order[r];
			order[r] = t;
		}
		for (j = 0; j < n && !interrupted; j++)
		{
			int64_t		i = order[j];
			int			b;

			len = build_message(o, i, GOOD, 0, NULL, 0, buf, &f);

			/* bursts go out when the stream reaches their minute */
			for (b = 0; b < o->nbursts; b++)
			{
				Burst	   *bu = &o->bursts[b];
				MsgFacts	bf;
				char		bbuf[512];
				size_t		blen;

				if (bu->emitted || f.time_ms < bu->minute_ms)
					continue;
				for (k = 0; k < bu->count; k++)
				{
					blen = build_message(o, -1, GOOD, 0, bu, k, bbuf, &bf);
					device_name(o, bf.dev, key, sizeof(key));
					if (!produce(pr, key, &bf, bbuf, blen))
						return 0;
					count_good(o, st, &bf);
					st->burst_msgs++;
				}
				bu->emitted = 1;
			}

			device_name(o, f.dev, key, sizeof(key));
			if (!produce(pr, key, &f, buf, len))
				return 0;
			count_good(o, st, &f);
			ring[nring++ % DUP_RING] = i;

			if (o->dup_fraction > 0 && rng_unit(&rng) < o->dup_fraction)
			{
				int64_t		d = ring[rng_below(&rng, nring < DUP_RING ? nring : DUP_RING)];

				len = build_message(o, d, GOOD, 0, NULL, 0, buf, &f);
				device_name(o, f.dev, key, sizeof(key));
				if (!produce(pr, key, &f, buf, len))
					return 0;
				st->duplicates++;
			}
			if (nbad > 0 && o->bad_fraction > 0 && rng_unit(&rng) < o->bad_fraction)
			{
				MsgKind		kind = bad_kinds[bad_rr++ % nbad];

				len = build_message(o, i, kind, st->bad[kind], NULL, 0, buf, &f);
				device_name(o, f.dev, key, sizeof(key));
				if (!produce(pr, key, &f, buf, len))
					return 0;
				st->bad[kind]++;
			}
		}
	}
	/* bursts after the last message's time still go out */
	for (k = 0; k < o->nbursts && !interrupted; k++)
	{
		Burst	   *bu = &o->bursts[k];
		int			m;

		for (m = 0; m < bu->count && !bu->emitted; m++)
		{
			len = build_message(o, -1, GOOD, 0, bu, m, buf, &f);
			device_name(o, f.dev, key, sizeof(key));
			if (!produce(pr, key, &f, buf, len))
				return 0;
			count_good(o, st, &f);
			st->burst_msgs++;
		}
		bu->emitted = 1;
	}
	free(order);
	return 1;
}

/* ------------------------------------------------------------ the summary */

static void
print_summary(const Options *o, const Stats *st, double elapsed)
{
	char		t1[40],
				t2[40],
				t0[40],
				name[64];
	int			k;

	*put_iso(t0, o->start_ms) = '\0';
	*put_iso(t1, st->good ? st->min_time_ms : o->start_ms) = '\0';
	*put_iso(t2, st->good ? st->max_time_ms : o->start_ms) = '\0';
	printf("{\"format\":\"%s\",\"topic\":\"%s\",", o->telemetry ? "telemetry" : "event", o->topic);
	if (o->mqtt)
		printf("\"qos\":%d,", o->qos);
	printf("\"seed\":%llu,\"devices\":%d,"
		   "\"start_time\":\"%s\",\"start_ms\":%lld,\"step_ms\":%lld,",
		   (unsigned long long) o->seed, o->devices, t0,
		   (long long) o->start_ms, (long long) o->step_ms);
	printf("\"produced\":%lld,\"delivered\":%lld,\"failed\":%lld,",
		   (long long) st->produced, (long long) delivered, (long long) failed);
	if (failed)
		printf("\"first_error\":\"%s\",", first_error);
	printf("\"good\":%lld,\"duplicates\":%lld,\"burst_messages\":%lld,",
		   (long long) st->good, (long long) st->duplicates,
		   (long long) st->burst_msgs);
	{
		int64_t		total_bad = 0;

		for (k = 0; k < BAD_NKINDS; k++)
			total_bad += st->bad[k];
		printf("\"bad\":%lld,\"bad_kinds\":{", (long long) total_bad);
	}
	for (k = 0; k < BAD_NKINDS; k++)
		printf("%s\"%s\":%lld", k ? "," : "", bad_names[k], (long long) st->bad[k]);
	printf("},\"bursts\":[");
	for (k = 0; k < o->nbursts; k++)
	{
		char		m[40];

		*put_iso(m, o->bursts[k].minute_ms) = '\0';
		device_name(o, o->bursts[k].dev, name, sizeof(name));
		printf("%s{\"device\":\"%s\",\"minute\":\"%s\",\"count\":%d}",
			   k ? "," : "", name, m, o->bursts[k].count);
	}
	printf("],\"spikes\":[");
	for (k = 0; k < o->nspikes; k++)
	{
		char		m[40];

		*put_iso(m, o->spikes[k].time_ms) = '\0';
		device_name(o, o->spikes[k].dev, name, sizeof(name));
		printf("%s{\"device\":\"%s\",\"time\":\"%s\",\"value\":%.2f}",
			   k ? "," : "", name, m, o->spikes[k].value_x100 / 100.0);
	}
	printf("],\"level_shifts\":[");
	for (k = 0; k < o->nshifts; k++)
	{
		char		m[40];

		*put_iso(m, o->shifts[k].time_ms) = '\0';
		device_name(o, o->shifts[k].dev, name, sizeof(name));
		printf("%s{\"device\":\"%s\",\"from\":\"%s\",\"delta\":%.2f}",
			   k ? "," : "", name, m,
			   o->telemetry ? o->shifts[k].value_x100 / 100.0 :
			   (double) (o->shifts[k].value_x100 / 100));
	}
	printf("],\"min_time\":\"%s\",\"max_time\":\"%s\","
		   "\"sum_seq\":%lld,\"sum_value_x100\":%lld,\"sum_time_ms\":%lld,"
		   "\"checksum\":%lld,\"elapsed_s\":%.3f,\"msg_per_s\":%.0f",
		   t1, t2, (long long) st->sum_seq, (long long) st->sum_value_x100,
		   (long long) st->sum_time_ms,
		   (long long) (st->sum_seq + st->sum_value_x100 + st->sum_time_ms),
		   elapsed, elapsed > 0 ? st->produced / elapsed : 0.0);
	if (o->per_device)
	{
		int			first = 1;

		printf(",\"per_device\":{");
		for (k = 0; k < o->devices; k++)
		{
			if (st->dev_count[k] == 0)
				continue;
			device_name(o, k, name, sizeof(name));
			printf("%s\"%s\":[%lld,%lld]", first ? "" : ",", name,
				   (long long) st->dev_count[k], (long long) st->dev_checksum[k]);
			first = 0;
		}
		printf("}");
	}
	printf("}\n");
	fflush(stdout);
}

static void
handle_int(int signo)
{
	(void) signo;
	interrupted = 1;
}

int
main(int argc, char **argv)
{
	Options		o;
	Stats		st;
	Producer	pr;
	rd_kafka_conf_t *conf;
	char		errstr[512];
	char	   *buf;
	double		elapsed;
	int			ok,
				k;
	static const char *const defaults[][2] = {
		{"enable.idempotence", "true"},
		{"linger.ms", "5"},
		{"batch.num.messages", "10000"},
		{"queue.buffering.max.messages", "500000"},
		{"queue.buffering.max.kbytes", "1048576"},
		{"log_level", "4"},
	};

	parse_options(&o, argc, argv);
	memset(&st, 0, sizeof(st));
	st.min_time_ms = INT64_MAX;
	st.max_time_ms = INT64_MIN;
	st.dev_count = calloc(o.devices, sizeof(int64_t));
	st.dev_checksum = calloc(o.devices, sizeof(int64_t));
	buf = malloc(16384 + (size_t) o.oversize_bytes);
	if (!st.dev_count || !st.dev_checksum || !buf)
		die("out of memory", NULL);

	memset(&pr, 0, sizeof(pr));
	if (o.output_file)
	{
		pr.out = fopen(o.output_file, "w");
		if (pr.out == NULL)
			die("cannot open --output-file", o.output_file);
		goto start;
	}
	if (o.mqtt)
	{
		char		id[64];

		snprintf(id, sizeof(id), "iotstream-sim-%d", (int) getpid());
		pr.mqtt = mqtt_pub_open(o.mqtt, o.client_id ? o.client_id : id, o.qos, o.window,
								errstr, sizeof(errstr));
		if (pr.mqtt == NULL)
			die(errstr, NULL);
		goto start;
	}
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", o.brokers, errstr, sizeof(errstr)))
		die(errstr, NULL);
	for (k = 0; k < (int) (sizeof(defaults) / sizeof(defaults[0])); k++)
		if (rd_kafka_conf_set(conf, defaults[k][0], defaults[k][1], errstr, sizeof(errstr)))
			die(errstr, NULL);
	for (k = 0; k < o.nprops; k++)
	{
		char		prop[512];
		char	   *eq;

		snprintf(prop, sizeof(prop), "%s", o.props[k]);
		eq = strchr(prop, '=');
		*eq = '\0';
		if (rd_kafka_conf_set(conf, prop, eq + 1, errstr, sizeof(errstr)))
			die(errstr, NULL);
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	pr.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!pr.rk)
		die(errstr, NULL);
start:
	signal(SIGINT, handle_int);
	signal(SIGTERM, handle_int);

	pr.o = &o;
	pr.st = &st;
	pr.t0 = now_s();
	ok = run(&pr, buf);
	if (pr.out && fclose(pr.out) != 0)
	{
		snprintf(first_error, sizeof(first_error), "cannot write --output-file");
		failed = 1;
	}
	if (pr.rk)
		rd_kafka_flush(pr.rk, o.flush_timeout_ms);
	if (pr.mqtt)
	{
		delivered = mqtt_pub_finish(pr.mqtt, o.flush_timeout_ms);
		if (delivered < st.produced)
		{
			failed = st.produced - delivered;
			snprintf(first_error, sizeof(first_error), "%s",
					 mqtt_pub_error(pr.mqtt) ? mqtt_pub_error(pr.mqtt) : "not acknowledged within --flush-timeout");
		}
		mqtt_pub_close(pr.mqtt);
	}
	if (pr.rk && rd_kafka_outq_len(pr.rk) > 0)
	{
		int			left = rd_kafka_outq_len(pr.rk);

		fprintf(stderr, "iotstream-sim: %d messages not delivered within --flush-timeout\n", left);
		if (failed == 0)
			snprintf(first_error, sizeof(first_error), "flush timed out");
		failed += left;
	}
	elapsed = now_s() - pr.t0;
	print_summary(&o, &st, elapsed);
	if (failed)
		fprintf(stderr, "iotstream-sim: %lld deliveries failed, first: %s\n",
				(long long) failed, first_error);
	if (pr.rk)
		rd_kafka_destroy(pr.rk);
	free(buf);
	free(st.dev_count);
	free(st.dev_checksum);
	return (ok && !failed && !interrupted && delivered == st.produced) ? 0 : 1;
}
