/*-------------------------------------------------------------------------
 * sim_mqtt.c
 *		The MQTT output of iotstream-sim: a small MQTT 3.1.1 publisher
 *		over a plain TCP socket, QoS 0, 1 or 2.
 *
 * A load generator must not be the bottleneck, so PUBLISH packets are
 * gathered in a buffer and written in large writes, and up to --window
 * packet ids (QoS 1 and 2) are in flight at once; the acknowledgements
 * (PUBACK, or PUBREC answered by PUBREL, then PUBCOMP) are read whenever
 * the socket is readable.  The invariant: a message counts as delivered
 * only once the broker acknowledged it (QoS 1 and 2), or, at QoS 0, once
 * a PINGREQ written after it was answered (the broker reads a connection
 * in order).  A clean session: the publisher keeps no state across runs.
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "sim.h"

#define OUT_FLUSH	(64 * 1024)		/* write when this much is gathered */

enum
{
	ID_FREE = 0,
	ID_SENT,						/* PUBLISH sent: PUBACK or PUBREC due */
	ID_RELEASED						/* QoS 2: PUBREL sent, PUBCOMP due */
};

struct MqttPub
{
	int			fd;
	int			qos;
	int			window;
	uint8_t		state[65536];
	int			inflight;
	uint16_t	next_id;
	char	   *out;
	size_t		olen;
	size_t		ocap;
	unsigned char in[65536];
	size_t		ilen;
	int64_t		written;			/* messages written */
	int64_t		acked;				/* QoS 1, 2: acknowledged */
	int			pings;				/* PINGREQ without PINGRESP */
	char		err[256];
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
fail(MqttPub *p, const char *what, const char *detail)
{
	if (p->err[0] == '\0')
		snprintf(p->err, sizeof(p->err), "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
	return 0;
}

static void
out_reserve(MqttPub *p, size_t n)
{
	if (p->olen + n <= p->ocap)
		return;
	while (p->olen + n > p->ocap)
		p->ocap = p->ocap ? p->ocap * 2 : 256 * 1024;
	p->out = realloc(p->out, p->ocap);
	if (p->out == NULL)
		die("out of memory", NULL);
}

static void
put_byte(MqttPub *p, unsigned char b)
{
	out_reserve(p, 1);
	p->out[p->olen++] = (char) b;
}

static void
put_u16(MqttPub *p, unsigned v)
{
	put_byte(p, (v >> 8) & 0xFF);
	put_byte(p, v & 0xFF);
}

static void
put_bytes(MqttPub *p, const void *s, size_t n)
{
	out_reserve(p, n);
	memcpy(p->out + p->olen, s, n);
	p->olen += n;
}

/* the remaining length: 7 bits a byte, the high bit says more follow */
static void
put_length(MqttPub *p, size_t n)
{
	do
	{
		unsigned char b = n % 128;

		n /= 128;
		put_byte(p, n ? b | 0x80 : b);
	} while (n);
}

/* Reads what the broker sent: acknowledgements and PINGRESP. */
static int
read_acks(MqttPub *p)
{
	ssize_t		r = read(p->fd, p->in + p->ilen, sizeof(p->in) - p->ilen);
	size_t		pos = 0;

	if (r == 0)
		return fail(p, "the broker closed the connection", NULL);
	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 1 : fail(p, "read from the broker failed", strerror(errno));
	p->ilen += r;
	while (p->ilen - pos >= 2)
	{
		unsigned	type = p->in[pos] >> 4;
		size_t		len = 0;
		size_t		hdr = 1;
		unsigned	mult = 1;
		uint16_t	id;

		/* every packet a publisher receives here is short */
		do
		{
			if (pos + hdr >= p->ilen)
				goto partial;
			len += (p->in[pos + hdr] & 0x7F) * mult;
			mult *= 128;
		} while (p->in[pos + hdr++] & 0x80);
		if (pos + hdr + len > p->ilen)
			break;
		id = len >= 2 ? (uint16_t) (p->in[pos + hdr] << 8 | p->in[pos + hdr + 1]) : 0;
		switch (type)
		{
			case 4:				/* PUBACK */
			case 7:				/* PUBCOMP */
				if (p->state[id] != ID_FREE)
				{
					p->state[id] = ID_FREE;
					p->inflight--;
					p->acked++;
				}
				break;
			case 5:				/* PUBREC: release it */
				if (p->state[id] == ID_SENT)
					p->state[id] = ID_RELEASED;
				put_byte(p, 0x62);
				put_byte(p, 2);
				put_u16(p, id);
				break;
			case 13:			/* PINGRESP */
				p->pings--;
				break;
			default:
				return fail(p, "unexpected packet from the broker", NULL);
		}
		pos += hdr + len;
	}
partial:
	memmove(p->in, p->in + pos, p->ilen - pos);
	p->ilen -= pos;
	return 1;
}

/*
 * Writes everything gathered, reading what comes meanwhile; then returns
 * once something was read or timeout_ms passed (at once for 0 or -1).
 * Returns 0 on a broken connection.
 */
static int
service(MqttPub *p, int timeout_ms)
{
	size_t		done = 0;
	int64_t		until = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	for (;;)
	{
		int			pending = done < p->olen;
		struct pollfd pfd = {p->fd, POLLIN | (pending ? POLLOUT : 0), 0};
		int64_t		left = until - mono_ms();
		int			got = 0;

		if (poll(&pfd, 1, pending ? 1000 : left > 0 ? (int) left : 0) < 0 && errno != EINTR)
			return fail(p, "poll failed", strerror(errno));
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
		{
			/* PUBRELs it gathers go out in this same call */
			if (!read_acks(p))
				return 0;
			got = 1;
		}
		if ((pfd.revents & POLLOUT) && done < p->olen)
		{
			ssize_t		w = write(p->fd, p->out + done, p->olen - done);

			if (w < 0 && errno != EAGAIN && errno != EINTR)
				return fail(p, "write to the broker failed", strerror(errno));
			if (w > 0)
				done += w;
		}
		if (done == p->olen)
		{
			p->olen = done = 0;
			if (got || mono_ms() >= until)
				return 1;
		}
	}
}

MqttPub *
mqtt_pub_open(const char *url, const char *client_id, int qos, int window,
			  char *err, size_t errlen)
{
	MqttPub    *p = calloc(1, sizeof(MqttPub));
	char		host[256];
	const char *port = "1883";
	const char *hp;
	char	   *colon;
	struct addrinfo hints = {0}, *ai = NULL, *a;
	unsigned char ack[4];
	size_t		got = 0;
	int			one = 1;

	if (p == NULL)
		die("out of memory", NULL);
	if (strncmp(url, "mqtt://", 7) != 0)
	{
		snprintf(err, errlen, "--mqtt must be mqtt://host:port (no TLS)");
		free(p);
		return NULL;
	}
	hp = url + 7;
	snprintf(host, sizeof(host), "%s", hp);
	if ((colon = strrchr(host, '/')) != NULL)
		*colon = '\0';
	if ((colon = strrchr(host, ':')) != NULL)
	{
		*colon = '\0';
		port = hp + (colon - host) + 1;
	}
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
	{
		snprintf(err, errlen, "cannot resolve %s", host);
		free(p);
		return NULL;
	}
	p->fd = -1;
	for (a = ai; a && p->fd < 0; a = a->ai_next)
	{
		p->fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
		if (p->fd >= 0 && connect(p->fd, a->ai_addr, a->ai_addrlen) != 0)
		{
			close(p->fd);
			p->fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (p->fd < 0)
	{
		snprintf(err, errlen, "cannot connect to %s: %s", url, strerror(errno));
		free(p);
		return NULL;
	}
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	p->qos = qos;
	p->window = window < 1 ? 1 : window > 65535 ? 65535 : window;
	p->next_id = 1;

	/* CONNECT: MQTT 3.1.1, a clean session, keepalive off */
	put_byte(p, 0x10);
	put_length(p, 10 + 2 + strlen(client_id));
	put_u16(p, 4);
	put_bytes(p, "MQTT", 4);
	put_byte(p, 4);
	put_byte(p, 0x02);
	put_u16(p, 0);
	put_u16(p, strlen(client_id));
	put_bytes(p, client_id, strlen(client_id));
	if (write(p->fd, p->out, p->olen) != (ssize_t) p->olen)
	{
		snprintf(err, errlen, "cannot send CONNECT: %s", strerror(errno));
		mqtt_pub_close(p);
		return NULL;
	}
	p->olen = 0;
	while (got < 4)
	{
		ssize_t		r = read(p->fd, ack + got, 4 - got);

		if (r <= 0)
		{
			snprintf(err, errlen, "no CONNACK from %s", url);
			mqtt_pub_close(p);
			return NULL;
		}
		got += r;
	}
	if (ack[0] != 0x20 || ack[3] != 0)
	{
		snprintf(err, errlen, "the broker refused the connection (CONNACK code %d)", ack[3]);
		mqtt_pub_close(p);
		return NULL;
	}
	fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK);
	return p;
}

/* Gathers one PUBLISH; waits while the window of ids in flight is full. */
int
mqtt_pub_send(MqttPub *p, const char *topic, size_t tlen, const char *payload, size_t len)
{
	uint16_t	id = 0;

	if (p->err[0])
		return 0;
	if (p->qos > 0)
	{
		while (p->inflight >= p->window)
			if (!service(p, 100))
				return 0;
		while (p->state[p->next_id] != ID_FREE || p->next_id == 0)
			p->next_id++;
		id = p->next_id++;
		p->state[id] = ID_SENT;
		p->inflight++;
	}
	put_byte(p, 0x30 | (p->qos << 1));
	put_length(p, 2 + tlen + (p->qos > 0 ? 2 : 0) + len);
	put_u16(p, tlen);
	put_bytes(p, topic, tlen);
	if (p->qos > 0)
		put_u16(p, id);
	put_bytes(p, payload, len);
	p->written++;
	if (p->olen >= OUT_FLUSH)
		return service(p, 0);
	return 1;
}

/* Writes what is gathered and serves acknowledgements for up to wait_ms. */
int
mqtt_pub_wait(MqttPub *p, int wait_ms)
{
	if (p->err[0])
		return 0;
	return service(p, wait_ms);
}

/*
 * Waits until everything sent is acknowledged (QoS 0: until a PINGREQ
 * written last is answered), at most timeout_ms; returns the messages
 * delivered.
 */
int64_t
mqtt_pub_finish(MqttPub *p, int timeout_ms)
{
	int64_t		until = mono_ms() + timeout_ms;

	put_byte(p, 0xC0);
	put_byte(p, 0);
	p->pings++;
	while (!p->err[0] && (p->inflight > 0 || p->pings > 0) && mono_ms() < until)
		(void) service(p, 100);
	if (!p->err[0])
	{
		put_byte(p, 0xE0);		/* DISCONNECT */
		put_byte(p, 0);
		(void) service(p, -1);
	}
	if (p->qos > 0)
		return p->acked;
	return p->pings == 0 ? p->written : 0;
}

const char *
mqtt_pub_error(MqttPub *p)
{
	return p->err[0] ? p->err : NULL;
}

void
mqtt_pub_close(MqttPub *p)
{
	if (p == NULL)
		return;
	if (p->fd >= 0)
		close(p->fd);
	free(p->out);
	free(p);
}
