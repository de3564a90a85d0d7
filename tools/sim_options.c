/*-------------------------------------------------------------------------
 * sim_options.c
 *		iotstream-sim: the command line.
 *
 * Every option is checked here, so that the producing code can trust the
 * Options it gets (devices >= 1, fractions in [0, 1], bursts on devices
 * that exist).
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

/* --------------------------------------------------------------- options */

static void
usage(FILE *out)
{
	fprintf(out,
			"usage: iotstream-sim --brokers HOST:PORT[,...] --topic TOPIC [options]\n"
			"       iotstream-sim --mqtt mqtt://HOST:PORT --topic 'a/{device}/{metric}' [options]\n"
			"  --format event|telemetry   seed-002 events (default) or seed-004 telemetry\n"
			"  --count N                  good messages to produce (default 1000)\n"
			"  --rate R                   messages/s, 0 = as fast as possible (default 0)\n"
			"  --duration S               with --rate: --count = rate * S\n"
			"  --devices D                devices (default 10)\n"
			"  --start-time T             event time of the first message, ISO 8601\n"
			"                             (default: now, floored to the minute), or now:\n"
			"                             the moment producing starts, to the ms\n"
			"  --time-step DUR            time between two messages of a device:\n"
			"                             250ms, 1s, 2m, 1h (default 1s)\n"
			"  --time-format iso|epoch_s|epoch_ms   (default iso)\n"
			"  --seed N                   PRNG seed (default 1)\n"
			"  --duplicates F             fraction re-sent (e.g. 0.001)\n"
			"  --bad F                    fraction of extra malformed messages\n"
			"  --bad-kinds K,K,...        of: not_json,truncated,wrong_type,missing_field,\n"
			"                             bad_time,invalid_utf8,nul_byte,oversize, or all\n"
			"                             (default: all but oversize)\n"
			"  --oversize-bytes N         padding of oversize messages (default 65536)\n"
			"  --shuffle W                send good messages in random order within\n"
			"                             blocks of W (out-of-order event times)\n"
			"  --metrics M,M,...          telemetry metric types, rotated per device\n"
			"                             (default temperature,pressure,vibration)\n"
			"  --burst DEV,TIME[,N]       telemetry: N (default 6) extra temperature\n"
			"                             readings > 100 for device DEV (index or name)\n"
			"                             in the minute holding TIME; repeatable\n"
			"  --spike DEV,TIME[,VALUE]   the first message of DEV at or after TIME (its\n"
			"                             first temperature reading for telemetry) gets\n"
			"                             VALUE (default 500 event, 250 telemetry)\n"
			"  --level-shift DEV,TIME,D   add D to DEV's values from TIME on (telemetry:\n"
			"                             temperature only; event: D in whole units)\n"
			"  --no-per-device            leave per-device figures out of the summary\n"
			"  -X prop=value              librdkafka producer property; repeatable\n"
			"  --output-file PATH         write \"key<TAB>payload\" lines to PATH instead\n"
			"                             of producing (kcat -P -K'\\t' -l PATH reads them)\n"
			"  --flush-timeout S          wait at most S s for deliveries (default 300)\n"
			"MQTT (--mqtt instead of --brokers):\n"
			"  --topic T                  {device} and {metric} are replaced per message\n"
			"  --qos 0|1|2                (default 1)\n"
			"  --window N                 QoS 1, 2: packet ids in flight (default 20)\n"
			"  --client-id ID             (default iotstream-sim-<pid>)\n"
			"  --payload json|value       the message, or (telemetry) its bare value\n");
}

static int64_t
parse_iso(const char *s)
{
	int			y,
				mo,
				d,
				h = 0,
				mi = 0,
				se = 0,
				n = 0;
	int64_t		ms = 0;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return INT64_MIN;
	p = s + n;
	if (*p == 'T' || *p == ' ')
	{
		if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &n) != 3)
			return INT64_MIN;
		p += 1 + n;
		if (*p == '.')
		{
			int			scale = 100;

			for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
				ms += (*p - '0') * scale;
		}
	}
	if (*p == 'Z')
		p++;
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return INT64_MIN;
	return days_from_civil(y, mo, d) * 86400000 + (h * 3600 + mi * 60 + se) * 1000LL + ms;
}

static int64_t
parse_duration_ms(const char *s)
{
	char	   *end;
	double		v = strtod(s, &end);

	if (end == s || v < 0)
		return -1;
	if (strcmp(end, "ms") == 0 || *end == '\0')
		return (int64_t) v;
	if (strcmp(end, "s") == 0)
		return (int64_t) (v * 1000);
	if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		return (int64_t) (v * 60000);
	if (strcmp(end, "h") == 0)
		return (int64_t) (v * 3600000);
	return -1;
}

static int
split_list(char *s, const char **out, int max)
{
	int			n = 0;
	char	   *save = NULL;

	for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save))
	{
		if (n == max)
			return -1;
		out[n++] = t;
	}
	return n;
}

/* "3", "sensor-0003" or "contoso-device-id-000003" -> 3; -1 if none */
static int
parse_device(const char *s)
{
	const char *dash = strrchr(s, '-');
	char	   *end;
	long		v;

	if (dash)
		s = dash + 1;
	v = strtol(s, &end, 10);
	return (*s == '\0' || *end != '\0' || v < 0 || v > 10000000) ? -1 : (int) v;
}

/* --spike DEV,TIME[,VALUE] or --level-shift DEV,TIME,DELTA */
static int
parse_shift(Options *o, char *spec, int spike)
{
	const char *parts[3];
	int			n = split_list(spec, parts, 3);
	Shift	   *s;
	char	   *end;
	double		v;

	if (n < (spike ? 2 : 3) || (spike ? o->nspikes : o->nshifts) == MAX_BURSTS)
		return 0;
	s = spike ? &o->spikes[o->nspikes] : &o->shifts[o->nshifts];
	s->dev = parse_device(parts[0]);
	s->time_ms = parse_iso(parts[1]);
	if (s->dev < 0 || s->time_ms == INT64_MIN)
		return 0;
	if (n == 3)
	{
		v = strtod(parts[2], &end);
		if (*end != '\0' || end == parts[2] || v > 1e9 || v < -1e9)
			return 0;
		s->value_x100 = (int64_t) llround(v * 100);
	}
	else
		s->value_x100 = INT64_MIN;	/* the format's default spike */
	if (spike)
		o->nspikes++;
	else
		o->nshifts++;
	return 1;
}

/*
 * The message a spike replaces: device dev's first message at or after the
 * spike's time (for telemetry, its first temperature reading).
 */
static void
place_spike(Options *o, Shift *s)
{
	int64_t		offset = (int64_t) s->dev * o->step_ms / o->devices;
	int64_t		rel = s->time_ms - o->start_ms - offset;
	int64_t		tick = 0;
	int			temp = -1;

	if (rel > 0)
		tick = o->step_ms > 0 ? (rel + o->step_ms - 1) / o->step_ms : 0;
	if (o->telemetry)
	{
		for (int k = 0; k < o->nmetrics; k++)
			if (strcmp(o->metrics[k], "temperature") == 0)
				temp = k;
		if (temp < 0)
			die("--spike on telemetry needs temperature in --metrics", NULL);
		while ((tick + s->dev) % o->nmetrics != temp)
			tick++;
	}
	s->target = tick * o->devices + s->dev;
	s->time_ms = o->start_ms + tick * o->step_ms + offset;
	if (s->target >= o->count)
		die("a --spike falls after the last message", NULL);
	if (s->value_x100 == INT64_MIN)
		s->value_x100 = o->telemetry ? 25000 : 50000;
}

static int
parse_burst(Options *o, char *spec)
{
	const char *parts[3];
	int			n = split_list(spec, parts, 3);
	Burst	   *b;
	int64_t		t;

	if (n < 2 || o->nbursts == MAX_BURSTS)
		return 0;
	b = &o->bursts[o->nbursts];
	b->dev = parse_device(parts[0]);
	t = parse_iso(parts[1]);
	if (t == INT64_MIN)
		return 0;
	b->minute_ms = t - ((t % 60000) + 60000) % 60000;
	b->count = n == 3 ? atoi(parts[2]) : 6;
	if (b->count < 1 || b->count > 500 || b->dev < 0)
		return 0;
	o->nbursts++;
	return 1;
}

void
die(const char *msg, const char *arg)
{
	fprintf(stderr, "iotstream-sim: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	exit(2);
}

void
parse_options(Options *o, int argc, char **argv)
{
	static char default_metrics[] = "temperature,pressure,vibration";
	int			i,
				k;

	memset(o, 0, sizeof(*o));
	o->count = 1000;
	o->devices = 10;
	o->step_ms = 1000;
	o->seed = 1;
	o->oversize_bytes = 65536;
	o->flush_timeout_ms = 300000;
	o->per_device = 1;
	o->start_ms = INT64_MIN;
	o->qos = 1;
	o->window = 20;
	for (k = 0; k < BAD_NKINDS; k++)
		o->bad_enabled[k] = k != BAD_OVERSIZE;
	o->nmetrics = split_list(default_metrics, o->metrics, MAX_METRICS);

	for (i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		char	   *v = i + 1 < argc ? argv[i + 1] : NULL;
		char	   *end;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
		{
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--no-per-device") == 0)
		{
			o->per_device = 0;
			continue;
		}
		if (v == NULL)
			die("option needs a value", a);
		i++;
		errno = 0;
		if (strcmp(a, "--brokers") == 0)
			o->brokers = v;
		else if (strcmp(a, "--mqtt") == 0)
			o->mqtt = v;
		else if (strcmp(a, "--qos") == 0)
		{
			if (strcmp(v, "0") && strcmp(v, "1") && strcmp(v, "2"))
				die("--qos must be 0, 1 or 2", v);
			o->qos = atoi(v);
		}
		else if (strcmp(a, "--window") == 0)
		{
			o->window = (int) strtol(v, &end, 10);
			if (*end || o->window < 1 || o->window > 65535)
				die("--window must be from 1 to 65535", v);
		}
		else if (strcmp(a, "--client-id") == 0)
			o->client_id = v;
		else if (strcmp(a, "--payload") == 0)
		{
			if (strcmp(v, "json") && strcmp(v, "value"))
				die("--payload must be json or value", v);
			o->payload_value = strcmp(v, "value") == 0;
		}
		else if (strcmp(a, "--output-file") == 0)
			o->output_file = v;
		else if (strcmp(a, "--topic") == 0)
			o->topic = v;
		else if (strcmp(a, "--format") == 0)
		{
			if (strcmp(v, "event") && strcmp(v, "telemetry"))
				die("--format must be event or telemetry", v);
			o->telemetry = strcmp(v, "telemetry") == 0;
		}
		else if (strcmp(a, "--count") == 0)
		{
			o->count = strtoll(v, &end, 10);
			if (*end || o->count < 0 || errno)
				die("bad --count", v);
		}
		else if (strcmp(a, "--rate") == 0 || strcmp(a, "--duration") == 0 ||
				 strcmp(a, "--duplicates") == 0 || strcmp(a, "--bad") == 0 ||
				 strcmp(a, "--flush-timeout") == 0)
		{
			double		d = strtod(v, &end);

			if (*end || d < 0 || errno)
				die("bad number", v);
			if (strcmp(a, "--rate") == 0)
				o->rate = d;
			else if (strcmp(a, "--duration") == 0)
				o->duration = d;
			else if (strcmp(a, "--duplicates") == 0)
				o->dup_fraction = d;
			else if (strcmp(a, "--bad") == 0)
				o->bad_fraction = d;
			else
				o->flush_timeout_ms = (int) (d * 1000);
			if (d > 1 && (strcmp(a, "--duplicates") == 0 || strcmp(a, "--bad") == 0))
				die("a fraction must be between 0 and 1", v);
		}
		else if (strcmp(a, "--devices") == 0)
		{
			o->devices = (int) strtol(v, &end, 10);
			if (*end || o->devices < 1 || o->devices > 10000000)
				die("bad --devices", v);
		}
		else if (strcmp(a, "--start-time") == 0 && strcmp(v, "now") == 0)
			o->start_now = 1;
		else if (strcmp(a, "--start-time") == 0)
		{
			if ((o->start_ms = parse_iso(v)) == INT64_MIN)
				die("--start-time must look like 2026-01-01T00:00:00Z", v);
		}
		else if (strcmp(a, "--time-step") == 0)
		{
			if ((o->step_ms = parse_duration_ms(v)) < 0)
				die("--time-step must look like 250ms, 1s, 2m or 1h", v);
		}
		else if (strcmp(a, "--time-format") == 0)
		{
			if (strcmp(v, "iso") == 0)
				o->time_format = TIME_ISO;
			else if (strcmp(v, "epoch_s") == 0)
				o->time_format = TIME_EPOCH_S;
			else if (strcmp(v, "epoch_ms") == 0)
				o->time_format = TIME_EPOCH_MS;
			else
				die("--time-format must be iso, epoch_s or epoch_ms", v);
		}
		else if (strcmp(a, "--seed") == 0)
		{
			o->seed = strtoull(v, &end, 10);
			if (*end || errno)
				die("bad --seed", v);
		}
		else if (strcmp(a, "--bad-kinds") == 0)
		{
			const char *kinds[BAD_NKINDS + 1];
			int			n = split_list(v, kinds, BAD_NKINDS + 1);

			memset(o->bad_enabled, 0, sizeof(o->bad_enabled));
			for (int j = 0; j < n; j++)
			{
				for (k = 0; k < BAD_NKINDS; k++)
					if (strcmp(kinds[j], bad_names[k]) == 0 || strcmp(kinds[j], "all") == 0)
						o->bad_enabled[k] = 1;
				if (strcmp(kinds[j], "all") != 0)
				{
					for (k = 0; k < BAD_NKINDS && strcmp(kinds[j], bad_names[k]); k++)
						;
					if (k == BAD_NKINDS)
						die("unknown bad kind", kinds[j]);
				}
			}
		}
		else if (strcmp(a, "--oversize-bytes") == 0)
		{
			o->oversize_bytes = (int) strtol(v, &end, 10);
			if (*end || o->oversize_bytes < 0 || o->oversize_bytes > 64 << 20)
				die("bad --oversize-bytes", v);
		}
		else if (strcmp(a, "--shuffle") == 0)
		{
			o->shuffle = (int) strtol(v, &end, 10);
			if (*end || o->shuffle < 0 || o->shuffle > 10000000)
				die("bad --shuffle", v);
		}
		else if (strcmp(a, "--metrics") == 0)
		{
			if ((o->nmetrics = split_list(v, o->metrics, MAX_METRICS)) < 1)
				die("bad --metrics", v);
		}
		else if (strcmp(a, "--burst") == 0)
		{
			if (!parse_burst(o, v))
				die("--burst must look like DEVICE,TIME[,N] with 1 <= N <= 500", argv[i]);
		}
		else if (strcmp(a, "--spike") == 0 || strcmp(a, "--level-shift") == 0)
		{
			if (!parse_shift(o, v, a[2] == 's'))
				die("--spike needs DEVICE,TIME[,VALUE] and --level-shift DEVICE,TIME,DELTA", argv[i]);
		}
		else if (strcmp(a, "-X") == 0)
		{
			if (o->nprops == MAX_PROPS || strchr(v, '=') == NULL)
				die("-X needs prop=value", v);
			o->props[o->nprops++] = v;
		}
		else
			die("unknown option", a);
	}
	if (!o->topic)
		o->topic = o->output_file ? "-" : NULL;
	if ((!o->brokers && !o->output_file && !o->mqtt) || !o->topic)
	{
		usage(stderr);
		exit(2);
	}
	if (o->duration > 0 && o->rate > 0)
		o->count = (int64_t) (o->rate * o->duration);
	if (o->mqtt && (o->brokers || o->output_file))
		die("--mqtt goes without --brokers and --output-file", NULL);
	if (o->payload_value && (!o->mqtt || !o->telemetry || o->bad_fraction > 0))
		die("--payload value needs --mqtt and --format telemetry, without --bad", NULL);
	if (o->start_now)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		o->start_ms = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	if (o->start_ms == INT64_MIN)
	{
		o->start_ms = (int64_t) time(NULL) * 1000;
		o->start_ms -= o->start_ms % 60000;
	}
	for (k = 0; k < o->nspikes; k++)
	{
		if (o->spikes[k].dev >= o->devices)
			die("a --spike device is not below --devices", NULL);
		place_spike(o, &o->spikes[k]);
	}
	for (k = 0; k < o->nshifts; k++)
		if (o->shifts[k].dev >= o->devices)
			die("a --level-shift device is not below --devices", NULL);
	for (k = 0; k < o->nbursts; k++)
	{
		if (!o->telemetry)
			die("--burst needs --format telemetry", NULL);
		if (o->bursts[k].dev >= o->devices)
			die("a --burst device is not below --devices", NULL);
	}
}

