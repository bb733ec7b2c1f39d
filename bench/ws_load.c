/* ws_load: a WebSocket (RFC 6455) load generator for loopback benchmarks.
 *
 * Every connection does the client's opening handshake (GET PATH with a
 * random Sec-WebSocket-Key, answered by 101 and the matching
 * Sec-WebSocket-Accept), at most CONNECT_PARALLEL of them under way at a
 * time, then what --mode says:
 *
 *   echo    --conns connections to --path (/echo) each keep one masked text
 *           message of --size bytes in flight: send it, wait for the whole
 *           echo (in any framing, fragmented or not), check it is
 *           byte-identical, record the round trip, send the next. Round
 *           trips after --warmup, for --duration, count.
 *   fanout  --conns subscribers on --sub-path (/sub) and one publisher on
 *           --pub-path (/pub). The publisher first sends "sync" messages
 *           every SYNC_EVERY_MS until every subscriber has got one (so the
 *           server has registered them all), then --messages messages of
 *           --size bytes "m<seq> <send time ns> xxx..": as fast as they
 *           are delivered with --rate 0 (at most --window not yet received
 *           by every subscriber), or at --rate messages/s. Every
 *           subscriber checks the messages arrive in order, without a gap,
 *           at the length sent, and takes the latency from the time in the
 *           message. The run ends once every subscriber has every message;
 *           STALL_MS without any delivery before that is an error.
 *   idle    --conns connections to --path open and held: prints
 *           "ready conns=N" once all are up and holds them, sending
 *           nothing, until SIGTERM or SIGINT (or --max-seconds).
 *
 * With more connections than one source address has ports for, the
 * connections are spread over 127.0.0.1 .. 127.0.0.K (--sources K; by
 * default one per SOURCE_CONNS connections), each bound before connect
 * with IP_BIND_ADDRESS_NO_PORT so the port is picked with the
 * destination known.
 *
 * Output, one line on stdout (key=value):
 *   echo:   mode conns size msgs secs msgs_per_s mb_per_s p50_us p99_us
 *           total_msgs errors        (total_msgs: warmup included, for
 *                                     whoever samples server CPU around it)
 *   fanout: mode subs size sent delivered secs deliveries_per_s sent_per_s
 *           p50_us p99_us missing errors   (secs: first message sent to
 *                                     last delivery; latency send->receipt)
 *   idle:   ready conns=N, then after the stop "held conns=N held_s=S
 *           errors=E"
 * Exit status 0; 1 after a failed connect or handshake, a server that
 * closes a connection (close frame or EOF), a wrong or missing message,
 * or a timeout (reason on stderr as "ws_load: REASON"); 2 for bad usage. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <uv.h>

#include "common.h"

#define MAX_CONNS 60000
#define MAX_SIZE (1024 * 1024)
#define MAX_FRAME (16 * 1024 * 1024) /* a server frame larger is an error */
#define MAX_SOURCES 250              /* 127.0.0.1 .. 127.0.0.250 */
#define SOURCE_CONNS 20000           /* connections per source by default */
#define CONNECT_PARALLEL 128         /* connects and handshakes at once */
#define CONNECT_GRACE_MS 60000       /* every connection up by then */
#define SYNC_TIMEOUT_MS 20000
#define SYNC_EVERY_MS 20
#define STALL_MS 5000 /* fanout: no delivery for this long is a failure */
#define ALARM_SLACK_S 10
#define MAX_WINDOW 1024
#define RING 4096 /* fanout messages tracked at once */
#define HEAD_MAX 8192
#define READ_BUF_SIZE (64 * 1024)
#define TICK_MS 1
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* {==================================================================
 * State
 * =================================================================== */

enum mode { MODE_ECHO, MODE_FANOUT, MODE_IDLE };
enum phase { PH_CONNECT, PH_SYNC, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_HOLD,
             PH_DONE };
enum cstate { CS_CONNECTING, CS_HANDSHAKE, CS_OPEN };

/* One connection. The handle comes first so stream callbacks can cast. */
struct conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  unsigned id;
  enum cstate state;
  char key[32];        /* Sec-WebSocket-Key, base64 of 16 random bytes */
  unsigned char *in;   /* bytes read but not yet parsed */
  size_t in_len, in_cap;
  unsigned char *frag; /* a fragmented message so far */
  size_t frag_len, frag_cap;
  int in_message;      /* a data frame without FIN came; continuations next */
  /* echo */
  unsigned char *msg;  /* the message in flight */
  uint64_t seq, sent_at;
  /* fanout subscriber */
  uint64_t last_seq;
  int synced;
};

struct options {
  enum mode mode;
  const char *addr_text;
  struct sockaddr_storage addr;
  const char *path, *sub_path, *pub_path;
  unsigned conns, size, window, sources;
  unsigned long messages;
  double rate, duration_s, warmup_s, max_seconds;
};

static struct options opt = {
    .mode = MODE_ECHO, .path = "/echo", .sub_path = "/sub",
    .pub_path = "/pub", .conns = 50, .size = 64, .window = 8,
    .messages = 10000, .duration_s = 5, .warmup_s = 1, .max_seconds = 120};

static uv_loop_t *loop;
static uv_timer_t phase_timer, tick_timer;
static uv_async_t signal_async; /* a SIGTERM or SIGINT came */
static volatile sig_atomic_t signal_seen, signals_closed;
static struct conn *conns;      /* subscribers or echo/idle conns */
static struct conn *publisher;  /* fanout: conns[opt.conns] */
static unsigned nconns;         /* handles in conns */
static enum phase phase = PH_CONNECT;
static unsigned started, opened, synced;
static char read_buf[READ_BUF_SIZE];
static uint32_t mask_state = 0x9e3779b9u;

static struct bench_hist latency;
static uint64_t phase_start, phase_end; /* measured window, ns */
static uint64_t total_msgs, measured_msgs;
static uint64_t pub_sent, pub_complete, delivered, first_sent_at, last_got_at;
static unsigned *got;           /* fanout: subscribers that got seq % RING */
static uint64_t *sent_at;       /* fanout: when seq % RING was sent */
static double rate_credit;

static void stop_all(void);
static void begin_phase_after_open(void);
static void phase_cb(uv_timer_t *timer);

/* }================================================================== */

/* {==================================================================
 * Frames
 * =================================================================== */

/* xorshift32: mask keys need not be secret here, only present. */
static uint32_t next_mask(void) {
  mask_state ^= mask_state << 13;
  mask_state ^= mask_state >> 17;
  mask_state ^= mask_state << 5;
  return mask_state;
}

/* Sends one masked frame (FIN set) of opcode with payload; the request
 * and the frame are one malloc, freed by bench_write_cb. */
static void send_frame(struct conn *c, int opcode, const void *payload,
                       size_t len) {
  size_t hdr = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + 4;
  uv_write_t *req = malloc(sizeof *req + hdr + len);
  if (req == NULL) {
    bench_fail("conn %u: out of memory", c->id);
    return;
  }
  unsigned char *f = (unsigned char *)(req + 1), *p = f + 2;
  f[0] = (unsigned char)(0x80 | opcode);
  if (len < 126) {
    f[1] = (unsigned char)(0x80 | len);
  } else if (len < 65536) {
    f[1] = 0x80 | 126;
    *p++ = (unsigned char)(len >> 8);
    *p++ = (unsigned char)len;
  } else {
    f[1] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) *p++ = (unsigned char)((uint64_t)len >> (8 * i));
  }
  uint32_t m = next_mask();
  unsigned char key[4] = {(unsigned char)(m >> 24), (unsigned char)(m >> 16),
                          (unsigned char)(m >> 8), (unsigned char)m};
  memcpy(p, key, 4);
  p += 4;
  const unsigned char *src = payload;
  for (size_t i = 0; i < len; i++) p[i] = src[i] ^ key[i & 3];
  uv_buf_t b = uv_buf_init((char *)f, (unsigned)(hdr + len));
  int r = uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, bench_write_cb);
  if (r < 0) {
    free(req);
    bench_fail("conn %u: write: %s", c->id, uv_strerror(r));
  }
}

struct frame {
  int fin, opcode;
  const unsigned char *payload;
  size_t len;
};

/* One server frame at p: bytes it takes, 0 if not all here yet, -1 if it
 * is not one a server may send (masked, reserved bits, too long). */
static long frame_parse(const unsigned char *p, size_t n, struct frame *f) {
  if (n < 2) return 0;
  if ((p[0] & 0x70) || (p[1] & 0x80)) return -1;
  uint64_t len = p[1] & 127;
  size_t hdr = 2;
  if (len == 126) {
    if (n < 4) return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    hdr = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
    hdr = 10;
  }
  if (len > MAX_FRAME) return -1;
  if (n - hdr < len) return 0;
  f->fin = p[0] >> 7;
  f->opcode = p[0] & 15;
  f->payload = p + hdr;
  f->len = (size_t)len;
  return (long)(hdr + len);
}

/* }================================================================== */

/* {==================================================================
 * Messages: what each mode does with one whole message
 * =================================================================== */

static void echo_send(struct conn *c) {
  int k = snprintf((char *)c->msg, opt.size, "e%u:%" PRIu64 " ", c->id,
                   ++c->seq);
  if (k < (int)opt.size) memset(c->msg + k, 'a' + c->seq % 26, opt.size - k);
  c->sent_at = uv_hrtime();
  send_frame(c, 1, c->msg, opt.size);
}

static void echo_got(struct conn *c, const unsigned char *p, size_t n) {
  if (n != opt.size || memcmp(p, c->msg, n) != 0) {
    bench_fail("conn %u: echo of message %" PRIu64 " differs (%zu bytes, "
               "want %u)", c->id, c->seq, n, opt.size);
    return;
  }
  total_msgs++;
  if (phase == PH_MEASURE) {
    measured_msgs++;
    bench_hist_add(&latency, uv_hrtime() - c->sent_at);
  }
  echo_send(c);
}

static void pub_send(uint64_t seq) {
  char buf[64];
  unsigned char *msg = malloc(opt.size);
  if (msg == NULL) {
    bench_fail("publisher: out of memory");
    return;
  }
  uint64_t now = uv_hrtime();
  int k = snprintf(buf, sizeof buf, "m%" PRIu64 " %" PRIu64 " ", seq, now);
  memset(msg, 'x', opt.size);
  memcpy(msg, buf, (size_t)k < opt.size ? (size_t)k : opt.size);
  sent_at[seq % RING] = now;
  got[seq % RING] = 0;
  if (first_sent_at == 0) first_sent_at = now;
  send_frame(publisher, 1, msg, opt.size);
  free(msg);
}

static int pub_can_send(void) {
  return pub_sent < opt.messages && pub_sent - pub_complete < RING - 1 &&
         phase == PH_MEASURE;
}

static void begin_drain(void);
static void rate_tick_cb(uv_timer_t *timer);

/* --rate 0: keep --window messages not yet delivered to everyone. */
static void fill_window(void) {
  while (pub_can_send() && pub_sent - pub_complete < opt.window)
    pub_send(++pub_sent);
  if (pub_sent == opt.messages && phase == PH_MEASURE) begin_drain();
}

static void sub_sync(struct conn *c) {
  if (c->synced) return;
  c->synced = 1;
  if (++synced == opt.conns && phase == PH_SYNC) {
    phase = PH_MEASURE;
    uv_timer_stop(&tick_timer);
    uv_timer_stop(&phase_timer);
    phase_start = uv_hrtime();
    uv_timer_start(&phase_timer, phase_cb, STALL_MS, STALL_MS);
    if (opt.rate == 0) fill_window();
    else uv_timer_start(&tick_timer, rate_tick_cb, 0, TICK_MS);
  }
}

static void maybe_done(void) {
  if (pub_complete == opt.messages && pub_sent == opt.messages) stop_all();
}

/* "m<seq> <ns> xx..": in order, complete, with its send time. */
static void sub_got(struct conn *c, const unsigned char *p, size_t n) {
  if (n == 4 && memcmp(p, "sync", 4) == 0) {
    sub_sync(c);
    return;
  }
  char text[48];
  size_t k = n < sizeof text - 1 ? n : sizeof text - 1;
  memcpy(text, p, k);
  text[k] = '\0';
  uint64_t seq, ts;
  if (n != opt.size || sscanf(text, "m%" SCNu64 " %" SCNu64, &seq, &ts) != 2) {
    bench_fail("subscriber %u: unexpected message (%zu bytes): %.40s", c->id,
               n, text);
    return;
  }
  if (seq != c->last_seq + 1 || seq > pub_sent) {
    bench_fail("subscriber %u: got m%" PRIu64 " after m%" PRIu64
               " (sent up to %" PRIu64 ")", c->id, seq, c->last_seq, pub_sent);
    return;
  }
  c->last_seq = seq;
  last_got_at = uv_hrtime();
  bench_hist_add(&latency, last_got_at - ts);
  delivered++;
  if (++got[seq % RING] == opt.conns) {
    while (pub_complete < pub_sent &&
           got[(pub_complete + 1) % RING] == opt.conns)
      pub_complete++;
    if (opt.rate == 0) fill_window();
  }
  maybe_done();
}

static void on_message(struct conn *c, const unsigned char *p, size_t n) {
  if (phase == PH_DONE) return;
  if (opt.mode == MODE_ECHO) {
    if (phase == PH_CONNECT) {
      bench_fail("conn %u: message before any was sent", c->id);
      return;
    }
    echo_got(c, p, n);
  } else if (opt.mode == MODE_FANOUT && c != publisher) {
    sub_got(c, p, n);
  } else {
    bench_fail("conn %u: unexpected message of %zu bytes", c->id, n);
  }
}

/* }================================================================== */

/* {==================================================================
 * Reading: the handshake's answer, then frames
 * =================================================================== */

static int buf_append(unsigned char **buf, size_t *len, size_t *cap,
                      const void *data, size_t n) {
  if (*len + n > *cap) {
    size_t want = *cap ? *cap : 4096;
    while (want < *len + n) want *= 2;
    unsigned char *nb = realloc(*buf, want);
    if (nb == NULL) return -1;
    *buf = nb;
    *cap = want;
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  return 0;
}

static void on_close_frame(struct conn *c, const struct frame *f) {
  unsigned code = f->len >= 2 ? (unsigned)f->payload[0] << 8 | f->payload[1]
                              : 1005;
  bench_fail("conn %u: server sent close (code %u%s%.*s)", c->id, code,
             f->len > 2 ? ": " : "", f->len > 2 ? (int)(f->len - 2) : 0,
             f->len > 2 ? (const char *)f->payload + 2 : "");
}

/* A data or control frame; fragments are joined in c->frag. */
static void on_frame(struct conn *c, const struct frame *f) {
  switch (f->opcode) {
    case 8: on_close_frame(c, f); return;
    case 9: send_frame(c, 10, f->payload, f->len); return;
    case 10: return;
    case 1:
    case 2:
      if (c->in_message) break;
      if (f->fin) {
        on_message(c, f->payload, f->len);
        return;
      }
      c->in_message = 1;
      c->frag_len = 0;
      /* fall through */
    case 0:
      if (!c->in_message) break;
      if (buf_append(&c->frag, &c->frag_len, &c->frag_cap, f->payload,
                     f->len) < 0) {
        bench_fail("conn %u: out of memory", c->id);
        return;
      }
      if (f->fin) {
        c->in_message = 0;
        on_message(c, c->frag, c->frag_len);
      }
      return;
  }
  bench_fail("conn %u: bad frame (opcode %d%s)", c->id, f->opcode,
             c->in_message ? " inside a fragmented message" : "");
}

/* Parses every whole frame in p; returns the bytes taken or -1. */
static long frames_feed(struct conn *c, const unsigned char *p, size_t n) {
  size_t used = 0;
  while (phase != PH_DONE) {
    struct frame f;
    long k = frame_parse(p + used, n - used, &f);
    if (k == 0) break;
    if (k < 0) {
      bench_fail("conn %u: malformed frame from the server", c->id);
      return -1;
    }
    used += (size_t)k;
    on_frame(c, &f);
  }
  return (long)used;
}

static void conn_open(struct conn *c);

/* The server's answer to the opening handshake: 101 and the accept value
 * that proves it read this connection's key. */
static int handshake_check(struct conn *c, const char *head) {
  unsigned char sha[SHA_DIGEST_LENGTH];
  char joined[96], want[64];
  if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
    bench_fail("conn %u: handshake answered '%.*s'", c->id,
               (int)strcspn(head, "\r\n"), head);
    return -1;
  }
  snprintf(joined, sizeof joined, "%s%s", c->key, WS_GUID);
  SHA1((const unsigned char *)joined, strlen(joined), sha);
  EVP_EncodeBlock((unsigned char *)want, sha, SHA_DIGEST_LENGTH);
  const char *h = strcasestr(head, "\r\nsec-websocket-accept:");
  if (h == NULL) {
    bench_fail("conn %u: 101 without Sec-WebSocket-Accept", c->id);
    return -1;
  }
  h += 23;
  h += strspn(h, " \t");
  if (strncmp(h, want, strlen(want)) != 0) {
    bench_fail("conn %u: wrong Sec-WebSocket-Accept '%.*s', want '%s'", c->id,
               (int)strcspn(h, "\r\n"), h, want);
    return -1;
  }
  return 0;
}

/* Collects the answer's head in c->in; what follows it is frames. */
static void handshake_read(struct conn *c, const char *data, size_t n) {
  if (buf_append(&c->in, &c->in_len, &c->in_cap, data, n) < 0 ||
      buf_append(&c->in, &c->in_len, &c->in_cap, "", 1) < 0) {
    bench_fail("conn %u: out of memory", c->id);
    return;
  }
  c->in_len--; /* the NUL is for the string functions only */
  char *end = strstr((char *)c->in, "\r\n\r\n");
  if (end == NULL) {
    if (c->in_len > HEAD_MAX)
      bench_fail("conn %u: handshake answer over %d bytes", c->id, HEAD_MAX);
    return;
  }
  size_t head_len = (size_t)(end + 4 - (char *)c->in);
  if (handshake_check(c, (char *)c->in) < 0) return;
  c->in_len -= head_len;
  memmove(c->in, c->in + head_len, c->in_len);
  conn_open(c);
  if (c->in_len > 0 && phase != PH_DONE) {
    long k = frames_feed(c, c->in, c->in_len);
    if (k < 0) return;
    c->in_len -= (size_t)k;
    memmove(c->in, c->in + k, c->in_len);
  }
}

/* Frames from the read buffer in place when nothing is left over from the
 * last read; the tail of a frame waits in c->in. */
static void frames_read(struct conn *c, const char *data, size_t n) {
  const unsigned char *p = (const unsigned char *)data;
  if (c->in_len > 0) {
    if (buf_append(&c->in, &c->in_len, &c->in_cap, data, n) < 0) {
      bench_fail("conn %u: out of memory", c->id);
      return;
    }
    p = c->in;
    n = c->in_len;
  }
  long k = frames_feed(c, p, n);
  if (k < 0 || phase == PH_DONE) return;
  size_t rest = n - (size_t)k;
  if (p == c->in) {
    memmove(c->in, c->in + k, rest);
    c->in_len = rest;
  } else if (rest > 0 &&
             buf_append(&c->in, &c->in_len, &c->in_cap, p + k, rest) < 0) {
    bench_fail("conn %u: out of memory", c->id);
  }
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = (struct conn *)stream;
  if (phase == PH_DONE || nread == 0) return;
  if (nread < 0) {
    bench_fail("conn %u: %s", c->id,
               nread == UV_EOF ? "server closed the connection"
                               : uv_strerror((int)nread));
    return;
  }
  if (c->state == CS_HANDSHAKE) handshake_read(c, buf->base, (size_t)nread);
  else frames_read(c, buf->base, (size_t)nread);
}

/* }================================================================== */

/* {==================================================================
 * Connections
 * =================================================================== */

static void connect_next(void);

static void send_handshake(struct conn *c) {
  const char *path = opt.mode == MODE_FANOUT
                         ? (c == publisher ? opt.pub_path : opt.sub_path)
                         : opt.path;
  char *req = malloc(sizeof(uv_write_t) + 512);
  if (req == NULL) {
    bench_fail("conn %u: out of memory", c->id);
    return;
  }
  char *text = req + sizeof(uv_write_t);
  int n = snprintf(text, 512,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   path, opt.addr_text, c->key);
  uv_buf_t b = uv_buf_init(text, (unsigned)n);
  int r = uv_write((uv_write_t *)req, (uv_stream_t *)&c->tcp, &b, 1,
                   bench_write_cb);
  if (r < 0) {
    free(req);
    bench_fail("conn %u: handshake write: %s", c->id, uv_strerror(r));
  }
}

static void connect_cb(uv_connect_t *req, int status) {
  struct conn *c = (struct conn *)req->handle;
  if (status == UV_ECANCELED || phase == PH_DONE) return;
  if (status < 0) {
    bench_fail("connect %s (conn %u of %u): %s", opt.addr_text, c->id + 1,
               nconns, uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (r < 0) {
    bench_fail("conn %u: read start: %s", c->id, uv_strerror(r));
    return;
  }
  c->state = CS_HANDSHAKE;
  send_handshake(c);
}

static void conn_open(struct conn *c) {
  c->state = CS_OPEN;
  opened++;
  if (opened == nconns) begin_phase_after_open();
  else connect_next();
}

/* 127.0.0.(1 + n % sources) with the port left to connect(), so that the
 * 4-tuple, not the source port alone, has to be unique. */
static int bind_source(struct conn *c) {
  struct sockaddr_in src;
  uv_os_fd_t fd;
  int one = 1;
  if (opt.addr.ss_family != AF_INET || opt.sources <= 1) return 0;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  memset(&src, 0, sizeof src);
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000001u + c->id % opt.sources);
  return uv_tcp_bind(&c->tcp, (struct sockaddr *)&src, 0);
}

static void connect_next(void) {
  while (started < nconns && started - opened < CONNECT_PARALLEL &&
         phase == PH_CONNECT) {
    struct conn *c = &conns[started++];
    int r = bind_source(c);
    if (r == 0)
      r = uv_tcp_connect(&c->connect_req, &c->tcp,
                         (const struct sockaddr *)&opt.addr, connect_cb);
    if (r < 0) {
      bench_fail("conn %u: connect: %s", c->id, uv_strerror(r));
      return;
    }
  }
}

static void make_key(struct conn *c) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1)
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)next_mask();
  EVP_EncodeBlock((unsigned char *)c->key, raw, sizeof raw);
}

/* Every handle is initialised before any can fail, so stop_all may close
 * the whole array whatever happened. */
static int conns_start(void) {
  nconns = opt.conns + (opt.mode == MODE_FANOUT);
  conns = calloc(nconns, sizeof *conns);
  if (conns == NULL) return UV_ENOMEM;
  int family = opt.addr.ss_family;
  for (unsigned i = 0; i < nconns; i++) {
    conns[i].id = i;
    make_key(&conns[i]);
    int r = uv_tcp_init_ex(loop, &conns[i].tcp, (unsigned)family);
    if (r < 0) {
      nconns = i;
      return r;
    }
    if (opt.mode == MODE_ECHO && (conns[i].msg = malloc(opt.size)) == NULL)
      return UV_ENOMEM;
  }
  if (opt.mode == MODE_FANOUT) publisher = &conns[opt.conns];
  connect_next();
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Phases
 * =================================================================== */

static void sync_tick_cb(uv_timer_t *timer) {
  (void)timer;
  if (phase == PH_SYNC) send_frame(publisher, 1, "sync", 4);
}

/* --rate R: the messages due since the last tick, within RING. */
static void rate_tick_cb(uv_timer_t *timer) {
  (void)timer;
  rate_credit += opt.rate * TICK_MS / 1000.0;
  while (rate_credit >= 1 && pub_can_send()) {
    rate_credit -= 1;
    pub_send(++pub_sent);
  }
  if (pub_sent == opt.messages && phase == PH_MEASURE) begin_drain();
}

/* Every message is sent: what is left is waiting for the deliveries,
 * still under the stall check. */
static void begin_drain(void) {
  phase = PH_DRAIN;
  uv_timer_stop(&tick_timer);
  maybe_done();
}

/* Fanout, every STALL_MS: a server that lost a message, or stopped
 * sending, would otherwise leave the publisher waiting for ever. */
static void check_stall(void) {
  static uint64_t delivered_before = UINT64_MAX;
  if (delivered == delivered_before) {
    bench_fail("stalled: no delivery for %d ms, %" PRIu64 " of %" PRIu64
               " delivered", STALL_MS, delivered, opt.messages * opt.conns);
    return;
  }
  delivered_before = delivered;
}

static void begin_fanout_sync(void) {
  phase = PH_SYNC;
  uv_timer_start(&phase_timer, phase_cb, SYNC_TIMEOUT_MS, 0);
  uv_timer_start(&tick_timer, sync_tick_cb, 0, SYNC_EVERY_MS);
}

static void begin_phase_after_open(void) {
  uv_timer_stop(&phase_timer);
  switch (opt.mode) {
    case MODE_ECHO:
      phase = PH_WARMUP;
      for (unsigned i = 0; i < nconns; i++) echo_send(&conns[i]);
      uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.warmup_s), 0);
      break;
    case MODE_FANOUT:
      begin_fanout_sync();
      break;
    case MODE_IDLE:
      phase = PH_HOLD;
      phase_start = uv_hrtime();
      printf("ready conns=%u\n", nconns);
      fflush(stdout);
      uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.max_seconds), 0);
      break;
  }
}

static void phase_cb(uv_timer_t *timer) {
  (void)timer;
  switch (phase) {
    case PH_CONNECT:
      bench_fail("connect timeout: %u of %u up after %d ms", opened, nconns,
                 CONNECT_GRACE_MS);
      break;
    case PH_SYNC:
      bench_fail("sync timeout: %u of %u subscribers got the sync message",
                 synced, opt.conns);
      break;
    case PH_WARMUP:
      phase = PH_MEASURE;
      phase_start = uv_hrtime();
      uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.duration_s), 0);
      break;
    case PH_MEASURE:
      if (opt.mode == MODE_FANOUT) check_stall();
      else stop_all();
      break;
    case PH_DRAIN:
      check_stall();
      break;
    case PH_HOLD:
      stop_all();
      break;
    case PH_DONE:
      break;
  }
}

/* Not uv_signal_t: `timeout` signals its child and then its whole group,
 * and a second SIGTERM racing the close of a uv_signal_t could leave the
 * loop waiting for ever (seen once in 20 runs). This handler stays
 * installed to the end, and a signal after the close is only noted. */
static void on_signal(int signum) {
  signal_seen = signum;
  if (!signals_closed) uv_async_send(&signal_async);
}

static void signal_cb(uv_async_t *handle) {
  (void)handle;
  if (phase == PH_HOLD) stop_all();
  else bench_fail("stopped by signal %d", (int)signal_seen);
}

/* Closing every handle empties the loop, which ends uv_run in main. */
static void stop_all(void) {
  if (phase == PH_DONE) return;
  phase_end = uv_hrtime();
  phase = PH_DONE;
  uv_close((uv_handle_t *)&phase_timer, NULL);
  uv_close((uv_handle_t *)&tick_timer, NULL);
  signals_closed = 1;
  uv_close((uv_handle_t *)&signal_async, NULL);
  for (unsigned i = 0; conns != NULL && i < nconns; i++)
    if (!uv_is_closing((uv_handle_t *)&conns[i].tcp))
      uv_close((uv_handle_t *)&conns[i].tcp, NULL);
}

/* }================================================================== */

/* {==================================================================
 * Options
 * =================================================================== */

static void usage(FILE *f) {
  fprintf(f,
          "usage: ws_load --addr IP:PORT|[::1]:PORT [--mode echo|fanout|idle]"
          "\n               [--conns N] [--size BYTES] [--duration S] "
          "[--warmup S]\n"
          "               [--path /echo] [--sub-path /sub] [--pub-path /pub]"
          "\n               [--messages M] [--rate MSGS_PER_S | --window N]\n"
          "               [--sources K] [--max-seconds S]\n"
          "Loopback only. Defaults: --mode echo --conns 50 --size 64 "
          "--duration 5\n"
          "--warmup 1; fanout --messages 10000 --rate 0 (as fast as "
          "delivered,\n"
          "--window 8); idle --max-seconds 120; --sources: 1 per %d conns."
          "\n", SOURCE_CONNS);
}

static int parse_mode(const char *v) {
  if (strcmp(v, "echo") == 0) opt.mode = MODE_ECHO;
  else if (strcmp(v, "fanout") == 0) opt.mode = MODE_FANOUT;
  else if (strcmp(v, "idle") == 0) opt.mode = MODE_IDLE;
  else return bench_bad_option("--mode", v, "want echo, fanout or idle");
  return 0;
}

static int parse_path(const char *name, const char *v, const char **out) {
  if (v[0] != '/' || strlen(v) > 200 || strpbrk(v, " \r\n") != NULL)
    return bench_bad_option(name, v, "want a path starting with /");
  *out = v;
  return 0;
}

static int parse_one(int ch, const char *v) {
  unsigned long n;
  switch (ch) {
    case 'a':
      opt.addr_text = v;
      return bench_parse_loopback(v, &opt.addr);
    case 'm': return parse_mode(v);
    case 'c': return bench_opt_count("--conns", v, 1, MAX_CONNS, &opt.conns);
    case 's': return bench_opt_count("--size", v, 1, MAX_SIZE, &opt.size);
    case 'd': return bench_parse_duration(v, &opt.duration_s);
    case 'w': return bench_parse_warmup(v, &opt.warmup_s);
    case 'p': return parse_path("--path", v, &opt.path);
    case 'S': return parse_path("--sub-path", v, &opt.sub_path);
    case 'P': return parse_path("--pub-path", v, &opt.pub_path);
    case 'W': return bench_opt_count("--window", v, 1, MAX_WINDOW, &opt.window);
    case 'o':
      return bench_opt_count("--sources", v, 1, MAX_SOURCES, &opt.sources);
    case 'M':
      if (bench_parse_count(v, 1, 100000000UL, &n) < 0)
        return bench_bad_option("--messages", v, "want an integer 1..1e8");
      opt.messages = n;
      return 0;
    case 'r':
      if (bench_parse_number(v, 0, 1e7, &opt.rate) < 0)
        return bench_bad_option("--rate", v, "want messages/s in [0, 1e7]");
      return 0;
    case 'x':
      if (bench_parse_number(v, 0.1, 3600, &opt.max_seconds) < 0)
        return bench_bad_option("--max-seconds", v, "want seconds (0, 3600]");
      return 0;
  }
  return -1;
}

static int parse_options(int argc, char **argv) {
  static const struct option longopts[] = {
      {"addr", required_argument, NULL, 'a'},
      {"mode", required_argument, NULL, 'm'},
      {"conns", required_argument, NULL, 'c'},
      {"size", required_argument, NULL, 's'},
      {"duration", required_argument, NULL, 'd'},
      {"warmup", required_argument, NULL, 'w'},
      {"path", required_argument, NULL, 'p'},
      {"sub-path", required_argument, NULL, 'S'},
      {"pub-path", required_argument, NULL, 'P'},
      {"messages", required_argument, NULL, 'M'},
      {"rate", required_argument, NULL, 'r'},
      {"window", required_argument, NULL, 'W'},
      {"sources", required_argument, NULL, 'o'},
      {"max-seconds", required_argument, NULL, 'x'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  if (bench_getopt(argc, argv, longopts, parse_one, usage) < 0) return -1;
  if (opt.addr_text == NULL) {
    fprintf(stderr, "ws_load: --addr is required\n");
    return -1;
  }
  if (opt.mode == MODE_FANOUT && opt.size < 48)
    return bench_bad_option("--size", "< 48", "fanout messages carry a time");
  if (opt.sources == 0)
    opt.sources = (opt.conns + SOURCE_CONNS - 1) / SOURCE_CONNS;
  return 0;
}

/* Each connection is a descriptor: take the hard limit, and say so if even
 * that is too low. */
static int raise_nofile(void) {
  struct rlimit rl;
  if (bench_raise_nofile(&rl) == -1) return 0;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < opt.conns + 64) {
    fprintf(stderr, "ws_load: open-file limit %llu is too low for %u conns\n",
            (unsigned long long)rl.rlim_cur, opt.conns);
    return -1;
  }
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Main
 * =================================================================== */

/* At 2,000 deliveries a second a fan-out is stalling in all but name. */
static double fanout_bound_s(void) {
  return 10 + (double)opt.messages * opt.conns / 2000.0;
}

static unsigned deadline_s(void) {
  double run = opt.mode == MODE_ECHO    ? opt.warmup_s + opt.duration_s
               : opt.mode == MODE_IDLE ? opt.max_seconds
                                       : SYNC_TIMEOUT_MS / 1000.0 +
                                             fanout_bound_s();
  return (unsigned)(CONNECT_GRACE_MS / 1000 + run + ALARM_SLACK_S);
}

static void report(void) {
  double secs = phase_start && phase_end > phase_start
                    ? (double)(phase_end - phase_start) / 1e9 : 0;
  double p50 = bench_hist_percentile(&latency, 0.50) / 1e3;
  double p99 = bench_hist_percentile(&latency, 0.99) / 1e3;
  if (opt.mode == MODE_ECHO) {
    printf("mode=echo conns=%u size=%u msgs=%" PRIu64 " secs=%.3f "
           "msgs_per_s=%.0f mb_per_s=%.2f p50_us=%.1f p99_us=%.1f "
           "total_msgs=%" PRIu64 " errors=%u\n",
           opt.conns, opt.size, measured_msgs, secs,
           secs > 0 ? measured_msgs / secs : 0,
           secs > 0 ? measured_msgs * (double)opt.size / secs / 1e6 : 0, p50,
           p99, total_msgs, bench_errors);
  } else if (opt.mode == MODE_FANOUT) {
    double fs = last_got_at > first_sent_at && first_sent_at
                    ? (double)(last_got_at - first_sent_at) / 1e9 : 0;
    printf("mode=fanout subs=%u size=%u sent=%" PRIu64 " delivered=%" PRIu64
           " secs=%.3f deliveries_per_s=%.0f sent_per_s=%.1f p50_us=%.1f "
           "p99_us=%.1f missing=%" PRIu64 " errors=%u\n",
           opt.conns, opt.size, pub_sent, delivered, fs,
           fs > 0 ? delivered / fs : 0, fs > 0 ? pub_sent / fs : 0, p50, p99,
           pub_sent * opt.conns - delivered, bench_errors);
  } else {
    printf("held conns=%u held_s=%.3f errors=%u\n", opened, secs,
           bench_errors);
  }
  fflush(stdout);
  if (bench_errors > 0) fprintf(stderr, "ws_load: %s\n", bench_reason);
}

/* A run that stopped without an error must still have done its work: a
 * server that never answers is not a fast one. */
static void check_complete(void) {
  if (opt.mode == MODE_FANOUT &&
      (pub_sent < opt.messages || delivered < pub_sent * opt.conns)) {
    bench_errors++;
    snprintf(bench_reason, sizeof bench_reason,
             "%" PRIu64 " deliveries missing at the end",
             opt.messages * opt.conns - delivered);
  } else if (opt.mode == MODE_ECHO && measured_msgs == 0) {
    bench_errors++;
    snprintf(bench_reason, sizeof bench_reason,
             "no echo came back in the %.3f s measured", opt.duration_s);
  }
}

static void free_all(void) {
  for (unsigned i = 0; conns != NULL && i < nconns; i++) {
    free(conns[i].in);
    free(conns[i].frag);
    free(conns[i].msg);
  }
  free(conns);
  free(got);
  free(sent_at);
}

static void loop_start(void) {
  loop = uv_default_loop();
  uv_timer_init(loop, &phase_timer);
  uv_timer_init(loop, &tick_timer);
  uv_async_init(loop, &signal_async, signal_cb);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  uv_timer_start(&phase_timer, phase_cb, CONNECT_GRACE_MS, 0);
}

int main(int argc, char **argv) {
  bench_prog = "ws_load";
  bench_on_fail(stop_all);
  if (parse_options(argc, argv) < 0) {
    usage(stderr);
    return 2;
  }
  if (raise_nofile() < 0) return 1;
  signal(SIGPIPE, SIG_IGN); /* a vanished server is an error code */
  bench_deadline(deadline_s());
  got = calloc(RING, sizeof *got);
  sent_at = calloc(RING, sizeof *sent_at);
  loop_start();
  int r = got && sent_at ? conns_start() : UV_ENOMEM;
  if (r < 0) bench_fail("setup: %s", uv_strerror(r));
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r < 0 && bench_errors == 0) bench_fail("loop close: %s", uv_strerror(r));
  if (bench_errors == 0) check_complete();
  report();
  free_all();
  return bench_errors > 0 ? 1 : 0;
}

/* }================================================================== */
