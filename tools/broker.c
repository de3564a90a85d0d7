/*-------------------------------------------------------------------------
 * broker.c
 *		iotstream-broker: a local Kafka-protocol broker for tests and demos.
 *
 * It wraps librdkafka's mock cluster (rdkafka_mock.h): N brokers listening
 * on 127.0.0.1, topics created up front with a partition count, and brokers
 * that can be taken down and brought back up inside the process, so that
 * clients see an outage while the data survives it.  Everything lives in
 * memory: killing the process loses all messages and committed offsets, and
 * each partition keeps only about 5 MiB (older messages are dropped).
 *
 * Usage:
 *   iotstream-broker [--brokers N] [--replication R] [--topic NAME:PARTS]...
 *                    [--bootstrap-file PATH] [--no-stdin]
 *
 * On start it prints the bootstrap servers ("127.0.0.1:p1,127.0.0.1:p2,...")
 * as the first line of stdout.  Then it reads commands, one per line, on
 * stdin and answers each with exactly one line, "ok" or "error <reason>":
 *   down <broker_id>            take broker <broker_id> (1..N) down
 *   up <broker_id>              bring it back up
 *   create <topic> <parts> [r]  create a topic
 *   rtt <broker_id> <ms>        add <ms> of round-trip time to a broker
 *   leader <topic> <part> <id>  move a partition's leader
 *   ping                        just answer "ok"
 *   quit                        answer "ok" and exit
 * Blank lines and lines starting with '#' get no answer.  It exits on quit,
 * SIGTERM, SIGINT or end of stdin (unless --no-stdin, where it runs until a
 * signal).  The one invariant: exactly one answer line per command, flushed
 * before the next command is read, so a driver can match answers by count.
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop_requested = 0;

static void
handle_stop(int signo)
{
	(void) signo;
	stop_requested = 1;
}

static void
usage(FILE *out)
{
	fprintf(out,
			"usage: iotstream-broker [--brokers N] [--replication R]\n"
			"                        [--topic NAME:PARTITIONS]... [--bootstrap-file PATH]\n"
			"                        [--no-stdin]\n"
			"Prints the bootstrap servers on the first line of stdout, then reads\n"
			"commands on stdin: down ID | up ID | create TOPIC PARTS [REPL] |\n"
			"rtt ID MS | leader TOPIC PART ID | ping | quit.\n");
}

/* Parse a whole decimal number in [min, max]; false if it is not one. */
static int
parse_int(const char *s, long min, long max, long *out)
{
	char	   *end;
	long		v;

	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return 0;
	*out = v;
	return 1;
}

static void
answer(const char *fmt, const char *detail)
{
	if (detail)
		printf(fmt, detail);
	else
		fputs(fmt, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static void
answer_err(rd_kafka_resp_err_t err)
{
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		answer("ok", NULL);
	else
		answer("error %s", rd_kafka_err2str(err));
}

/* Run one command line; returns 1 when the broker should exit. */
static int
run_command(rd_kafka_mock_cluster_t *mc, int nbrokers, int replication,
			char *line)
{
	char	   *argv[8];
	int			argc = 0;
	char	   *save = NULL;
	char	   *tok;
	long		a,
				b;

	for (tok = strtok_r(line, " \t\r\n", &save); tok && argc < 8;
		 tok = strtok_r(NULL, " \t\r\n", &save))
		argv[argc++] = tok;
	if (argc == 0 || argv[0][0] == '#')
		return 0;

	if (strcmp(argv[0], "quit") == 0 && argc == 1)
	{
		answer("ok", NULL);
		return 1;
	}
	if (strcmp(argv[0], "ping") == 0 && argc == 1)
		answer("ok", NULL);
	else if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) && argc == 2)
	{
		if (!parse_int(argv[1], 1, nbrokers, &a))
			answer("error broker id must be between 1 and the number of brokers", NULL);
		else if (argv[0][0] == 'd')
			answer_err(rd_kafka_mock_broker_set_down(mc, (int32_t) a));
		else
			answer_err(rd_kafka_mock_broker_set_up(mc, (int32_t) a));
	}
	else if (strcmp(argv[0], "create") == 0 && (argc == 3 || argc == 4))
	{
		b = replication;
		if (!parse_int(argv[2], 1, 100000, &a))
			answer("error partition count must be a positive number", NULL);
		else if (argc == 4 && !parse_int(argv[3], 1, nbrokers, &b))
			answer("error replication must be between 1 and the number of brokers", NULL);
		else
			answer_err(rd_kafka_mock_topic_create(mc, argv[1], (int) a, (int) b));
	}
	else if (strcmp(argv[0], "rtt") == 0 && argc == 3)
	{
		if (!parse_int(argv[1], 1, nbrokers, &a) || !parse_int(argv[2], 0, 3600000, &b))
			answer("error usage: rtt BROKER_ID MILLISECONDS", NULL);
		else
			answer_err(rd_kafka_mock_broker_set_rtt(mc, (int32_t) a, (int) b));
	}
	else if (strcmp(argv[0], "leader") == 0 && argc == 4)
	{
		if (!parse_int(argv[2], 0, 100000, &a) || !parse_int(argv[3], 1, nbrokers, &b))
			answer("error usage: leader TOPIC PARTITION BROKER_ID", NULL);
		else
			answer_err(rd_kafka_mock_partition_set_leader(mc, argv[1], (int32_t) a, (int32_t) b));
	}
	else
		answer("error unknown command \"%s\"", argv[0]);
	return 0;
}

/*
 * Read commands until quit, a signal or end of input.  poll() with a timeout
 * lets a signal end the loop even while no command arrives; we buffer lines
 * ourselves because stdio's buffering would hide pending input from poll().
 */
static void
command_loop(rd_kafka_mock_cluster_t *mc, int nbrokers, int replication,
			 int use_stdin)
{
	char		buf[4096];
	size_t		len = 0;

	while (!stop_requested)
	{
		struct pollfd pfd = {.fd = STDIN_FILENO,.events = POLLIN};
		ssize_t		n;
		char	   *nl;

		if (!use_stdin)
		{
			poll(NULL, 0, 200);
			continue;
		}
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;				/* end of input: the driver is gone */
		len += n;
		buf[len] = '\0';
		while ((nl = memchr(buf, '\n', len)) != NULL)
		{
			size_t		linelen = nl - buf + 1;

			*nl = '\0';
			if (run_command(mc, nbrokers, replication, buf))
				return;
			memmove(buf, buf + linelen, len - linelen);
			len -= linelen;
		}
		if (len == sizeof(buf) - 1)
		{
			answer("error command line too long", NULL);
			len = 0;
		}
	}
}

int
main(int argc, char **argv)
{
	long		nbrokers = 3;
	long		replication = -1;
	const char *bootstrap_file = NULL;
	int			use_stdin = 1;
	const char *topics[256];
	int			ntopics = 0;
	char		errstr[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	const char *bootstraps;
	struct sigaction sa;
	int			i;

	for (i = 1; i < argc; i++)
	{
		const char *arg = argv[i];
		const char *val = (i + 1 < argc) ? argv[i + 1] : NULL;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
		{
			usage(stdout);
			return 0;
		}
		else if (strcmp(arg, "--no-stdin") == 0)
			use_stdin = 0;
		else if (val == NULL)
		{
			fprintf(stderr, "iotstream-broker: option %s needs a value\n", arg);
			return 2;
		}
		else if (strcmp(arg, "--brokers") == 0)
		{
			if (!parse_int(val, 1, 64, &nbrokers))
			{
				fprintf(stderr, "iotstream-broker: --brokers must be between 1 and 64\n");
				return 2;
			}
			i++;
		}
		else if (strcmp(arg, "--replication") == 0)
		{
			if (!parse_int(val, 1, 64, &replication))
			{
				fprintf(stderr, "iotstream-broker: --replication must be between 1 and 64\n");
				return 2;
			}
			i++;
		}
		else if (strcmp(arg, "--topic") == 0)
		{
			if (ntopics == 256)
			{
				fprintf(stderr, "iotstream-broker: at most 256 --topic options\n");
				return 2;
			}
			topics[ntopics++] = val;
			i++;
		}
		else if (strcmp(arg, "--bootstrap-file") == 0)
		{
			bootstrap_file = val;
			i++;
		}
		else
		{
			fprintf(stderr, "iotstream-broker: unknown option %s\n", arg);
			usage(stderr);
			return 2;
		}
	}
	if (replication < 0)
		replication = nbrokers < 3 ? nbrokers : 3;
	if (replication > nbrokers)
	{
		fprintf(stderr, "iotstream-broker: --replication %ld exceeds --brokers %ld\n",
				replication, nbrokers);
		return 2;
	}

	/* The mock cluster needs a client handle for its bookkeeping only. */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		fprintf(stderr, "iotstream-broker: cannot create a client handle: %s\n", errstr);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, (int) nbrokers);
	if (mc == NULL)
	{
		fprintf(stderr, "iotstream-broker: cannot create the mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}

	for (i = 0; i < ntopics; i++)
	{
		char		name[512];
		const char *colon = strrchr(topics[i], ':');
		long		parts = 1;
		rd_kafka_resp_err_t err;

		if (colon == NULL)
			snprintf(name, sizeof(name), "%s", topics[i]);
		else
		{
			snprintf(name, sizeof(name), "%.*s", (int) (colon - topics[i]), topics[i]);
			if (!parse_int(colon + 1, 1, 100000, &parts))
			{
				fprintf(stderr, "iotstream-broker: bad partition count in --topic %s\n", topics[i]);
				return 2;
			}
		}
		err = rd_kafka_mock_topic_create(mc, name, (int) parts, (int) replication);
		if (err)
		{
			fprintf(stderr, "iotstream-broker: cannot create topic %s: %s\n",
					name, rd_kafka_err2str(err));
			return 1;
		}
	}

	bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
	if (bootstrap_file)
	{
		/* write then rename, so a poller never reads half a line */
		char		tmp[4096];
		FILE	   *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", bootstrap_file);
		f = fopen(tmp, "w");
		if (f == NULL || fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) != 0 ||
			rename(tmp, bootstrap_file) != 0)
		{
			fprintf(stderr, "iotstream-broker: cannot write %s: %s\n",
					bootstrap_file, strerror(errno));
			return 1;
		}
	}
	printf("%s\n", bootstraps);
	fflush(stdout);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	command_loop(mc, (int) nbrokers, (int) replication, use_stdin);

	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
