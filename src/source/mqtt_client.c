/*-------------------------------------------------------------------------
 * mqtt_client.c
 *		The client side of MQTT 3.1.1 and 5, for the MQTT source.
 *
 * Why our own client: the source acknowledges a message only after the
 * Postgres transaction that stored it commits (PUBACK for QoS 1, PUBREC for
 * QoS 2), and neither Debian's libmosquitto nor libpaho-mqtt lets the
 * application hold the acknowledgement back: both send it when the PUBLISH
 * arrives (eclipse-mosquitto/mosquitto#118).  The subset a subscriber needs
 * is small: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH, PUBACK, PUBREC,
 * PUBREL, PUBCOMP, PINGREQ/PINGRESP and DISCONNECT, over TCP or TLS
 * (OpenSSL).
 *
 * The invariant kept here: this file never acknowledges a PUBLISH by
 * itself.  It hands each PUBLISH and PUBREL to its owner (mqtt_source.c),
 * which decides when to send PUBACK, PUBREC and PUBCOMP.  It knows nothing
 * of SQL.
 *
 * The socket is non-blocking once connected; the worker waits on its
 * descriptor and calls MqttClientService(), which reads whole packets,
 * flushes what is queued, keeps the connection alive with PINGREQ and
 * reports a lost connection.  Connecting (TCP and the TLS handshake) blocks
 * for at most a few seconds.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define CONNECT_TIMEOUT_MS	5000
#define MAX_PACKET_BYTES	(256 * 1024 * 1024)

/* packet types (the high nibble of the first byte) */
#define PT_CONNECT		1
#define PT_CONNACK		2
#define PT_PUBLISH		3
#define PT_PUBACK		4
#define PT_PUBREC		5
#define PT_PUBREL		6
#define PT_PUBCOMP		7
#define PT_SUBSCRIBE	8
#define PT_SUBACK		9
#define PT_PINGREQ		12
#define PT_PINGRESP		13
#define PT_DISCONNECT	14

typedef struct Buf
{
	unsigned char *data;
	size_t		len;
	size_t		cap;
} Buf;

struct MqttClient
{
	MqttClientConfig cfg;
	MqttHandler h;
	int			sock;
	SSL_CTX    *ssl_ctx;
	SSL		   *ssl;
	bool		connected;		/* CONNACK accepted */
	Buf			in;
	Buf			out;
	int64		last_sent_ms;
	int64		ping_sent_ms;	/* 0: no PINGREQ outstanding */
	uint16		next_id;		/* for SUBSCRIBE */
	char		error[256];
};

static int64
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
buf_reserve(Buf *b, size_t more)
{
	if (b->len + more > b->cap)
	{
		size_t		cap = Max(b->cap * 2, b->len + more + 4096);
		unsigned char *d = realloc(b->data, cap);

		if (d == NULL)
			elog(ERROR, "out of memory");
		b->data = d;
		b->cap = cap;
	}
}

static void
put_byte(Buf *b, unsigned char c)
{
	buf_reserve(b, 1);
	b->data[b->len++] = c;
}

static void
put_u16(Buf *b, unsigned v)
{
	put_byte(b, (v >> 8) & 0xff);
	put_byte(b, v & 0xff);
}

static void
put_u32(Buf *b, uint32 v)
{
	put_u16(b, v >> 16);
	put_u16(b, v & 0xffff);
}

static void
put_bytes(Buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void
put_str(Buf *b, const char *s)
{
	size_t		n = strlen(s);

	put_u16(b, n);
	put_bytes(b, s, n);
}

static void
put_varint(Buf *b, size_t v)
{
	do
	{
		unsigned char c = v % 128;

		v /= 128;
		put_byte(b, v > 0 ? c | 0x80 : c);
	} while (v > 0);
}

/* Appends a packet: the fixed header, then body. */
static void
put_packet(MqttClient *c, unsigned char first, const Buf *body)
{
	put_byte(&c->out, first);
	put_varint(&c->out, body ? body->len : 0);
	if (body)
		put_bytes(&c->out, body->data, body->len);
}

/* ------------------------------------------------------------ the transport */

static void
set_error(MqttClient *c, const char *fmt, const char *detail)
{
	snprintf(c->error, sizeof(c->error), fmt, detail);
}

static void
drop_connection(MqttClient *c)
{
	if (c->ssl)
	{
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
	c->connected = false;
	c->in.len = 0;
	c->out.len = 0;
	c->ping_sent_ms = 0;
}

static void
lost(MqttClient *c, const char *why)
{
	bool		was = c->sock >= 0;

	if (why)
		snprintf(c->error, sizeof(c->error), "%s", why);
	drop_connection(c);
	if (was && c->h.lost)
		c->h.lost(c->h.arg, c->error);
}

/* Waits until the socket is ready for events, at most until deadline. */
static bool
wait_socket(int sock, short events, int64 deadline)
{
	for (;;)
	{
		struct pollfd p = {sock, events, 0};
		int64		left = deadline - now_ms();
		int			r;

		if (left <= 0)
			return false;
		r = poll(&p, 1, (int) left);
		if (r > 0)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
	}
}

static SSL_CTX *
make_ssl_ctx(MqttClient *c)
{
	SSL_CTX    *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((c->cfg.ca_file ? SSL_CTX_load_verify_locations(ctx, c->cfg.ca_file, NULL)
		 : SSL_CTX_set_default_verify_paths(ctx)) != 1)
	{
		set_error(c, "could not load the CA file \"%s\"", c->cfg.ca_file ? c->cfg.ca_file : "(default)");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (c->cfg.cert_file &&
		SSL_CTX_use_certificate_chain_file(ctx, c->cfg.cert_file) != 1)
	{
		set_error(c, "could not load the client certificate \"%s\"", c->cfg.cert_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (c->cfg.key_file &&
		SSL_CTX_use_PrivateKey_file(ctx, c->cfg.key_file, SSL_FILETYPE_PEM) != 1)
	{
		/* the file name only: never its content */
		set_error(c, "could not load the client key \"%s\"", c->cfg.key_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* TCP connect and TLS handshake, blocking at most CONNECT_TIMEOUT_MS. */
static bool
open_socket(MqttClient *c)
{
	struct addrinfo hints = {0};
	struct addrinfo *res,
			   *ai;
	char		port[16];
	int64		deadline = now_ms() + CONNECT_TIMEOUT_MS;
	int			r;

	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", c->cfg.port);
	r = getaddrinfo(c->cfg.host, port, &hints, &res);
	if (r != 0)
	{
		set_error(c, "could not resolve the broker's host: %s", gai_strerror(r));
		return false;
	}
	for (ai = res; ai; ai = ai->ai_next)
	{
		int			s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		int			one = 1;
		int			err = 0;
		socklen_t	errlen = sizeof(err);

		if (s < 0)
			continue;
		fcntl(s, F_SETFL, O_NONBLOCK);
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0 &&
			(errno != EINPROGRESS || !wait_socket(s, POLLOUT, deadline) ||
			 getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0 || err != 0))
		{
			if (err == 0)
				err = errno;
			set_error(c, "could not connect to the broker: %s", strerror(err ? err : ETIMEDOUT));
			close(s);
			continue;
		}
		c->sock = s;
		break;
	}
	freeaddrinfo(res);
	if (c->sock < 0)
		return false;

	if (c->cfg.tls)
	{
		if (c->ssl_ctx == NULL && (c->ssl_ctx = make_ssl_ctx(c)) == NULL)
		{
			drop_connection(c);
			return false;
		}
		c->ssl = SSL_new(c->ssl_ctx);
		SSL_set_fd(c->ssl, c->sock);
		SSL_set_tlsext_host_name(c->ssl, c->cfg.host);
		SSL_set1_host(c->ssl, c->cfg.host);
		for (;;)
		{
			int			ret = SSL_connect(c->ssl);
			int			e;

			if (ret == 1)
				break;
			e = SSL_get_error(c->ssl, ret);
			if ((e == SSL_ERROR_WANT_READ && wait_socket(c->sock, POLLIN, deadline)) ||
				(e == SSL_ERROR_WANT_WRITE && wait_socket(c->sock, POLLOUT, deadline)))
				continue;
			{
				char		msg[200];
				long		v = SSL_get_verify_result(c->ssl);

				if (v != X509_V_OK)
					snprintf(msg, sizeof(msg), "certificate verify failed: %s",
							 X509_verify_cert_error_string(v));
				else
					ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
				set_error(c, "TLS handshake with the broker failed: %s", msg);
			}
			ERR_clear_error();
			drop_connection(c);
			return false;
		}
	}
	return true;
}

/* Reads what is there; -1 on a lost connection, else the bytes read. */
static ssize_t
transport_read(MqttClient *c, void *p, size_t n)
{
	if (c->ssl)
	{
		int			r = SSL_read(c->ssl, p, (int) Min(n, INT_MAX));

		if (r > 0)
			return r;
		switch (SSL_get_error(c->ssl, r))
		{
			case SSL_ERROR_WANT_READ:
			case SSL_ERROR_WANT_WRITE:
				return 0;
			default:
				ERR_clear_error();
				set_error(c, "%s", "the broker closed the TLS connection");
				return -1;
		}
	}
	else
	{
		ssize_t		r = recv(c->sock, p, n, 0);

		if (r > 0)
			return r;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		set_error(c, "the broker closed the connection%s", r == 0 ? "" : ": read failed");
		return -1;
	}
}

static ssize_t
transport_write(MqttClient *c, const void *p, size_t n)
{
	if (c->ssl)
	{
		int			r = SSL_write(c->ssl, p, (int) Min(n, INT_MAX));

		if (r > 0)
			return r;
		switch (SSL_get_error(c->ssl, r))
		{
			case SSL_ERROR_WANT_READ:
			case SSL_ERROR_WANT_WRITE:
				return 0;
			default:
				ERR_clear_error();
				set_error(c, "%s", "could not write to the broker over TLS");
				return -1;
		}
	}
	else
	{
		ssize_t		r = send(c->sock, p, n, MSG_NOSIGNAL);

		if (r >= 0)
			return r;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		set_error(c, "could not write to the broker: %s", strerror(errno));
		return -1;
	}
}

/* Writes what is queued, as far as the socket takes it. */
static bool
flush_out(MqttClient *c, bool wait)
{
	size_t		done = 0;
	int64		deadline = now_ms() + CONNECT_TIMEOUT_MS;

	while (done < c->out.len)
	{
		ssize_t		w = transport_write(c, c->out.data + done, c->out.len - done);

		if (w < 0)
			return false;
		if (w == 0)
		{
			if (!wait)
				break;
			if (!wait_socket(c->sock, POLLOUT, deadline))
			{
				set_error(c, "%s", "timed out writing to the broker");
				return false;
			}
		}
		done += w;
	}
	if (done > 0)
	{
		memmove(c->out.data, c->out.data + done, c->out.len - done);
		c->out.len -= done;
		c->last_sent_ms = now_ms();
	}
	return true;
}

/* ------------------------------------------------------------ packets out */

static void
send_connect(MqttClient *c)
{
	Buf			b = {0};
	unsigned char flags = 0x00;	/* clean session / clean start: 0, always */

	put_str(&b, "MQTT");
	put_byte(&b, c->cfg.version);
	if (c->cfg.username)
		flags |= 0x80;
	if (c->cfg.password)
		flags |= 0x40;
	put_byte(&b, flags);
	put_u16(&b, c->cfg.keepalive);
	if (c->cfg.version == 5)
	{
		Buf			p = {0};

		/* session expiry: the broker keeps the session across reconnects */
		put_byte(&p, 0x11);
		put_u32(&p, c->cfg.session_expiry);
		/* receive maximum: unacknowledged QoS 1 and 2 messages we accept */
		put_byte(&p, 0x21);
		put_u16(&p, c->cfg.receive_max);
		put_varint(&b, p.len);
		put_bytes(&b, p.data, p.len);
		free(p.data);
	}
	put_str(&b, c->cfg.client_id);
	if (c->cfg.username)
		put_str(&b, c->cfg.username);
	if (c->cfg.password)
		put_str(&b, c->cfg.password);
	put_packet(c, PT_CONNECT << 4, &b);
	/* the password was in b: do not leave it in freed memory */
	explicit_bzero(b.data, b.len);
	free(b.data);
}

static void
send_subscribe(MqttClient *c)
{
	Buf			b = {0};

	if (++c->next_id == 0)
		c->next_id = 1;
	put_u16(&b, c->next_id);
	if (c->cfg.version == 5)
		put_varint(&b, 0);		/* no properties */
	for (int i = 0; i < c->cfg.nfilters; i++)
	{
		unsigned char opts = c->cfg.qos;

		put_str(&b, c->cfg.filters[i]);
		if (c->cfg.version == 5 && !c->cfg.retained)
			opts |= 2 << 4;		/* retain handling: no retained messages */
		else if (c->cfg.version == 5)
			opts |= 1 << 4;		/* only when the subscription is new */
		put_byte(&b, opts);
	}
	put_packet(c, (PT_SUBSCRIBE << 4) | 0x02, &b);
	free(b.data);
}

/* PUBACK, PUBREC or PUBCOMP (success: no reason code) */
static void
send_ack(MqttClient *c, int type, uint16 id)
{
	put_byte(&c->out, type << 4);
	put_byte(&c->out, 2);
	put_u16(&c->out, id);
}

/* ------------------------------------------------------------ packets in */

typedef struct Reader
{
	const unsigned char *p;
	const unsigned char *end;
	bool		bad;
} Reader;

static unsigned
get_byte(Reader *r)
{
	if (r->p >= r->end)
	{
		r->bad = true;
		return 0;
	}
	return *r->p++;
}

static unsigned
get_u16(Reader *r)
{
	unsigned	hi = get_byte(r);

	return (hi << 8) | get_byte(r);
}

static size_t
get_varint(Reader *r)
{
	size_t		v = 0;

	for (int i = 0, shift = 0; i < 4; i++, shift += 7)
	{
		unsigned	c = get_byte(r);

		v |= (size_t) (c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

static const unsigned char *
get_span(Reader *r, size_t n)
{
	const unsigned char *s = r->p;

	if ((size_t) (r->end - r->p) < n)
	{
		r->bad = true;
		return NULL;
	}
	r->p += n;
	return s;
}

/*
 * MQTT 5 properties: the user properties as headers (if headers is not
 * NULL), the others skipped by their type.
 */
static void
read_properties(Reader *r, MqttPublish *pub)
{
	size_t		len = get_varint(r);
	Reader		pr;

	if (r->bad || (size_t) (r->end - r->p) < len)
	{
		r->bad = true;
		return;
	}
	pr.p = r->p;
	pr.end = r->p + len;
	pr.bad = false;
	r->p += len;
	while (pr.p < pr.end && !pr.bad)
	{
		unsigned	id = get_byte(&pr);

		switch (id)
		{
			case 0x01: case 0x17: case 0x19: case 0x24: case 0x25:
			case 0x28: case 0x29: case 0x2A:
				get_byte(&pr);
				break;
			case 0x13: case 0x21: case 0x22: case 0x23:
				get_u16(&pr);
				break;
			case 0x02: case 0x11: case 0x18: case 0x27:
				get_span(&pr, 4);
				break;
			case 0x0B:
				get_varint(&pr);
				break;
			case 0x03: case 0x08: case 0x09: case 0x12: case 0x15:
			case 0x16: case 0x1A: case 0x1C: case 0x1F:
				get_span(&pr, get_u16(&pr));
				break;
			case 0x26:
				{
					unsigned	nl = get_u16(&pr);
					const unsigned char *n = get_span(&pr, nl);
					unsigned	vl = get_u16(&pr);
					const unsigned char *v = get_span(&pr, vl);

					if (pub && !pr.bad && pub->nprops < MQTT_MAX_USER_PROPERTIES)
					{
						MqttUserProperty *up = &pub->props[pub->nprops++];

						up->name = (const char *) n;
						up->name_len = nl;
						up->value = (const char *) v;
						up->value_len = vl;
					}
					break;
				}
			default:
				pr.bad = true;
		}
	}
	if (pr.bad)
		r->bad = true;
}

/* One whole packet: false if the connection must be dropped. */
static bool
handle_packet(MqttClient *c, unsigned first, const unsigned char *body, size_t len)
{
	Reader		r = {body, body + len, false};
	unsigned	type = first >> 4;

	switch (type)
	{
		case PT_CONNACK:
			{
				bool		session_present = get_byte(&r) & 0x01;
				unsigned	code = get_byte(&r);

				if (r.bad)
					break;
				if (code != 0)
				{
					char		msg[64];

					snprintf(msg, sizeof(msg), "%u", code);
					set_error(c, "the broker refused the connection (CONNACK code %s)", msg);
					if (code == 4 || code == 5 || code == 0x86 || code == 0x87)
						strlcat(c->error, ": bad user name or password, or not authorized",
								sizeof(c->error));
					else if (code == 2 || code == 0x85)
						strlcat(c->error, ": client identifier not valid", sizeof(c->error));
					return false;
				}
				c->connected = true;
				/* a kept session keeps its subscriptions */
				if (!session_present || c->cfg.version == 5)
					send_subscribe(c);
				if (c->h.connected)
					c->h.connected(c->h.arg, session_present);
				return true;
			}
		case PT_SUBACK:
			get_u16(&r);
			if (c->cfg.version == 5)
				read_properties(&r, NULL);
			while (!r.bad && r.p < r.end)
			{
				unsigned	code = get_byte(&r);

				if (code >= 0x80)
				{
					char		msg[16];

					snprintf(msg, sizeof(msg), "0x%02x", code);
					set_error(c, "the broker refused a subscription (SUBACK %s)", msg);
					if (c->h.error)
						c->h.error(c->h.arg, c->error);
				}
			}
			break;
		case PT_PUBLISH:
			{
				MqttPublish pub;
				MqttUserProperty props[MQTT_MAX_USER_PROPERTIES];
				unsigned	tlen = get_u16(&r);

				memset(&pub, 0, sizeof(pub));
				pub.props = props;
				pub.topic = (const char *) get_span(&r, tlen);
				pub.topic_len = tlen;
				pub.qos = (first >> 1) & 0x03;
				pub.dup = (first & 0x08) != 0;
				pub.retain = (first & 0x01) != 0;
				if (pub.qos > 0)
					pub.id = get_u16(&r);
				if (c->cfg.version == 5)
					read_properties(&r, &pub);
				if (r.bad || pub.qos == 3 || (pub.qos > 0 && pub.id == 0))
					break;
				pub.payload = (const char *) r.p;
				pub.payload_len = r.end - r.p;
				c->h.publish(c->h.arg, &pub);
				return true;
			}
		case PT_PUBREL:
			{
				uint16		id = get_u16(&r);

				if (r.bad)
					break;
				c->h.pubrel(c->h.arg, id);
				return true;
			}
		case PT_PINGRESP:
			c->ping_sent_ms = 0;
			return true;
		case PT_DISCONNECT:
			{
				char		msg[16];

				snprintf(msg, sizeof(msg), "0x%02x", len > 0 ? body[0] : 0);
				set_error(c, "the broker disconnected (reason %s)", msg);
				return false;
			}
		case PT_PUBACK:
		case PT_PUBREC:
		case PT_PUBCOMP:
			return true;		/* we publish nothing */
		default:
			break;
	}
	if (r.bad)
		set_error(c, "%s", "the broker sent a malformed packet");
	else
		return true;
	return false;
}

/* Parses the whole packets in c->in; false if the connection must go. */
static bool
parse_in(MqttClient *c)
{
	size_t		pos = 0;

	while (c->sock >= 0 && c->in.len - pos >= 2)
	{
		Reader		r = {c->in.data + pos + 1, c->in.data + c->in.len, false};
		size_t		len = 0;
		bool		complete = false;

		/* the remaining length: up to 4 bytes, maybe not all here yet */
		for (int i = 0, shift = 0; i < 4; i++, shift += 7)
		{
			unsigned	b;

			if (r.p >= r.end)
				break;
			b = *r.p++;
			len |= (size_t) (b & 0x7f) << shift;
			if (!(b & 0x80))
			{
				complete = true;
				break;
			}
			if (i == 3)
			{
				set_error(c, "%s", "the broker sent a malformed packet length");
				return false;
			}
		}
		if (!complete)
			break;
		if (len > MAX_PACKET_BYTES)
		{
			set_error(c, "%s", "the broker sent a packet larger than 256 MB");
			return false;
		}
		if ((size_t) (r.end - r.p) < len)
		{
			buf_reserve(&c->in, len - (r.end - r.p));
			break;
		}
		if (!handle_packet(c, c->in.data[pos], r.p, len))
			return false;
		pos = (r.p - c->in.data) + len;
	}
	if (pos > 0)
	{
		memmove(c->in.data, c->in.data + pos, c->in.len - pos);
		c->in.len -= pos;
	}
	return true;
}

/* ------------------------------------------------------------ the API */

MqttClient *
MqttClientCreate(const MqttClientConfig *cfg, const MqttHandler *h)
{
	MqttClient *c = calloc(1, sizeof(MqttClient));

	c->cfg = *cfg;
	c->h = *h;
	c->sock = -1;
	return c;
}

/*
 * Connects, sends CONNECT (clean session off) and returns; CONNACK comes
 * through MqttClientService(), which then subscribes.  false (the reason in
 * MqttClientError) if the broker cannot be reached.
 */
bool
MqttClientConnect(MqttClient *c)
{
	drop_connection(c);
	if (!open_socket(c))
		return false;
	send_connect(c);
	if (!flush_out(c, true))
	{
		drop_connection(c);
		return false;
	}
	return true;
}

bool
MqttClientConnected(MqttClient *c)
{
	return c->sock >= 0 && c->connected;
}

bool
MqttClientOpen(MqttClient *c)
{
	return c->sock >= 0;
}

int
MqttClientFd(MqttClient *c)
{
	return c->sock;
}

/*
 * Reads and handles what the broker sent, writes what is queued, and keeps
 * the connection alive.  false if the connection was lost (the handler's
 * lost callback has run).
 */
bool
MqttClientService(MqttClient *c)
{
	int64		now;

	if (c->sock < 0)
		return false;
	for (;;)
	{
		ssize_t		r;

		buf_reserve(&c->in, 65536);
		r = transport_read(c, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (r < 0)
		{
			lost(c, NULL);
			return false;
		}
		if (r == 0)
			break;
		c->in.len += r;
		if (!parse_in(c))
		{
			lost(c, NULL);
			return false;
		}
	}
	now = now_ms();
	if (c->cfg.keepalive > 0)
	{
		if (c->ping_sent_ms > 0 && now - c->ping_sent_ms > c->cfg.keepalive * 1000)
		{
			lost(c, "the broker did not answer PINGREQ within the keepalive");
			return false;
		}
		if (c->ping_sent_ms == 0 && now - c->last_sent_ms >= c->cfg.keepalive * 500)
		{
			put_byte(&c->out, PT_PINGREQ << 4);
			put_byte(&c->out, 0);
			c->ping_sent_ms = now;
		}
	}
	if (!flush_out(c, false))
	{
		lost(c, NULL);
		return false;
	}
	return true;
}

/* Queues PUBACK (QoS 1), PUBREC (QoS 2, received) or PUBCOMP (released). */
void
MqttClientAck(MqttClient *c, MqttAck kind, uint16 id)
{
	if (c->sock < 0)
		return;
	send_ack(c, kind == MQTT_PUBACK ? PT_PUBACK : kind == MQTT_PUBREC ? PT_PUBREC : PT_PUBCOMP, id);
}

/* Writes what was queued, waiting a little if the socket is full. */
bool
MqttClientFlush(MqttClient *c)
{
	if (c->sock < 0)
		return false;
	if (!flush_out(c, true))
	{
		lost(c, NULL);
		return false;
	}
	return true;
}

const char *
MqttClientError(MqttClient *c)
{
	return c->error[0] ? c->error : NULL;
}

void
MqttClientDestroy(MqttClient *c)
{
	if (c == NULL)
		return;
	if (c->sock >= 0 && c->connected)
	{
		/* a normal DISCONNECT: the session stays (clean session off) */
		c->out.len = 0;
		put_byte(&c->out, PT_DISCONNECT << 4);
		put_byte(&c->out, 0);
		(void) flush_out(c, false);
	}
	drop_connection(c);
	if (c->ssl_ctx)
		SSL_CTX_free(c->ssl_ctx);
	free(c->in.data);
	free(c->out.data);
	free(c);
}
