/* A service: a named listener plus the handlers and options that its
 * connections dispatch to. Handlers are looked up at event time through the
 * service, never cached per connection, so a reload reaches live conns. */
#ifndef LUNET_SERVICE_H
#define LUNET_SERVICE_H

#include <stddef.h>
#include <sys/socket.h>
#include <lua.h>
#include <uv.h>

#include "addr.h"
#include "list.h"
#include "counters.h"

struct lunet_protocol;
struct lunet_transport;
struct lunet_runtime;
struct lunet_tls_config;

enum lunet_handler {
  LUNET_ON_CONNECT,
  LUNET_ON_DATA,
  LUNET_ON_CLOSE,
  LUNET_ON_DRAIN,
  LUNET_ON_MESSAGE,
  LUNET_ON_REQUEST, /* http: "handler", a function or a callable (router) */
  LUNET_HANDLER_COUNT
};

extern const char *const lunet_handler_names[LUNET_HANDLER_COUNT];

enum lunet_service_kind { LUNET_KIND_TCP, LUNET_KIND_UDP, LUNET_KIND_HTTP };

struct lunet_service_options {
  size_t write_high_water; /* queued bytes that pause reading */
  size_t max_write_queue;  /* queued bytes that drop a slow consumer */
  unsigned drain_timeout_ms; /* bound on flushing a closing conn */
  int framing;               /* enum lunet_framing */
  /* What new conns speak; set with framing (lunet_service_set_framing) */
  const struct lunet_protocol *protocol;
  size_t max_message;        /* line or message size limit with framing */
  unsigned connect_timeout_ms; /* clients only */
  /* udp: socket options (-1: leave the system default) and a per-peer
   * token bucket (rate 0: none) */
  int broadcast, ttl, multicast_ttl, multicast_loop;
  int recv_buffer, send_buffer;
  double rate, burst;
  /* http limits */
  size_t max_header;  /* request line and headers (431) */
  size_t max_url;     /* request target (414) */
  size_t max_body;    /* request body (413) */
  unsigned header_timeout_ms;    /* a request must arrive within (408) */
  unsigned keepalive_timeout_ms; /* idle keep-alive conns close after */
  unsigned handler_timeout_ms;   /* unanswered requests get 504 after */
  unsigned max_requests;         /* per connection, then Connection: close */
  /* tcp and http */
  unsigned max_connections;      /* open conns; 0: no limit */
  unsigned max_connections_per_ip;
  unsigned idle_timeout_ms;      /* tcp: close after no input; 0: never */
  unsigned write_timeout_ms;     /* queued output that does not move */
};

struct lunet_service {
  struct lunet_list node; /* in runtime->services */
  struct lunet_runtime *rt;
  char *name;
  char addr_text[LUNET_ADDR_STRLEN]; /* configured address */
  struct sockaddr_storage addr;
  char bound[LUNET_ADDR_STRLEN]; /* real address once listening */
  int handler_ref[LUNET_HANDLER_COUNT]; /* registry refs or LUA_NOREF */
  struct lunet_service_options opt;
  int kind;           /* enum lunet_service_kind */
  uv_tcp_t *listener; /* NULL while not listening; freed in its close_cb */
  struct lunet_udp *udp; /* a udp service's socket while bound */
  struct lunet_ratelimit *ratelimit; /* udp, with rate set */
  uint64_t ratelimit_logged_ms;
  struct lunet_ipcount *per_ip; /* with max_connections_per_ip */
  uint64_t refusals;            /* since the last refusal log record */
  uint64_t refusal_logged_ms;
  int internal;                 /* made by the runtime (metrics endpoint) */
  struct lunet_metrics metrics;
  /* per-second rates, from the sweep's snapshots */
  struct lunet_metrics last;
  double rate_messages, rate_bytes_in, rate_bytes_out, rate_errors;
  struct lunet_list conns; /* open conns, struct lunet_conn.node */
  size_t nconns;           /* open and draining conns */
  unsigned version;        /* last script version that declared it */
  int retired;             /* removed by a reload; freed with its last conn */
  int client;              /* made by lunet.connect: freed with its conn */
  /* What new conns run over (NULL: plain TCP) and what they share: for
   * TLS (tls.h) the built certificates, one reference held here. */
  const struct lunet_transport *transport;
  void *transport_ctx;
  struct lunet_tls_config *tls_config; /* the script's tls, until built */
};

struct lunet_service *lunet_service_new(struct lunet_runtime *rt,
                                        const char *name);
void lunet_service_free(struct lunet_service *svc);
/* Finds a live (not retired) service by name. */
struct lunet_service *lunet_service_find(struct lunet_runtime *rt,
                                         const char *name);

/* Binds (tcp listener or udp socket) and logs the "listening" line. */
int lunet_service_listen(struct lunet_service *svc);

/* Stops accepting or receiving. Idempotent. */
void lunet_service_unlisten(struct lunet_service *svc);

/* Takes svc's bound socket over into `into` (a reload moving an address). */
void lunet_service_take_socket(struct lunet_service *into,
                               struct lunet_service *svc);

/* Counts a connection refused (a limit) or not accepted (EMFILE...) and
 * logs at most one record a second with the count and the last reason. */
void lunet_service_refused(struct lunet_service *svc, const char *why);

/* The per-peer token bucket of rate_limit: 1 if the peer may go on (or
 * there is no limit), 0 if it is over; refusals are logged once a second. */
int lunet_service_rate_ok(struct lunet_service *svc,
                          const struct sockaddr *peer);

/* Stops accepting; the service is freed once its last conn is gone. */
void lunet_service_retire(struct lunet_service *svc);

/* Sets the framing and the protocol new conns of svc speak: raw, line or
 * length for LUNET_FRAMING_NONE, _LINE and _LENGTH; p (not NULL) for the
 * others, whose protocol lives in a layer above this one (HTTP's
 * lunet_proto_http1). */
void lunet_service_set_framing(struct lunet_service *svc, int framing,
                               const struct lunet_protocol *p);

/* The protocol a new conn of svc speaks (lunet_service_set_framing). */
const struct lunet_protocol *lunet_service_protocol(
    const struct lunet_service *svc);

/* The transport a new conn of svc runs over: plain TCP, or TLS once
 * lunet_service_set_tls gave it built certificates. */
const struct lunet_transport *lunet_service_transport(
    const struct lunet_service *svc);

/* Makes svc's new conns run TLS over ctx (a struct lunet_tls_ctx,
 * whose reference svc takes), or plain TCP when ctx is NULL; the
 * previous context's reference is dropped (its conns hold their own). */
void lunet_service_set_tls(struct lunet_service *svc, void *ctx);

/* A reload: into's new conns run over what from's would (its transport
 * and context, whose reference moves). */
void lunet_service_take_transport(struct lunet_service *into,
                                  struct lunet_service *from);

/* Called when a conn of svc is freed. */
void lunet_service_conn_gone(struct lunet_service *svc);

/* Sets the address from text; 0 or UV_EINVAL. */
int lunet_service_set_addr(struct lunet_service *svc, const char *text);

/* Pushes the handler, or nothing and returns 0 when the script has none. */
int lunet_service_push_handler(lua_State *L, const struct lunet_service *svc,
                               enum lunet_handler h);

/* Replaces the handler refs, releasing the old ones. */
void lunet_service_set_handlers(lua_State *L, struct lunet_service *svc,
                                const int refs[LUNET_HANDLER_COUNT]);

#endif
