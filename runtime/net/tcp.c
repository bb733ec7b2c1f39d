#include "tcp.h"

#include <stdlib.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "service.h"

#define LISTEN_BACKLOG 511

static void tcp_connection_cb(uv_stream_t *server, int status) {
  struct lunet_service *svc = server->data;
  /* EMFILE and friends: libuv's reserve descriptor accepts and drops the
   * pending connection, so the loop does not spin; we count and log. */
  if (status < 0) return lunet_service_refused(svc, uv_err_name(status));
  lunet_conn_accept(svc, server);
}

static void tcp_listener_close_cb(uv_handle_t *h) { free(h); }

static int tcp_bind(struct lunet_service *svc, uv_tcp_t *tcp) {
  struct sockaddr_storage bound;
  int r, len = sizeof bound;
  if ((r = svc->rt->up->share_port(svc->rt, (uv_handle_t *)tcp)) < 0 ||
      (r = uv_tcp_bind(tcp, (struct sockaddr *)&svc->addr, 0)) < 0)
    return r;
  if ((r = uv_listen((uv_stream_t *)tcp, LISTEN_BACKLOG,
                     tcp_connection_cb)) < 0)
    return r;
  if ((r = uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &len)) < 0)
    return r;
  return lunet_addr_format((struct sockaddr *)&bound, svc->bound,
                           sizeof svc->bound);
}

int lunet_tcp_listen(struct lunet_service *svc) {
  uv_tcp_t *tcp = malloc(sizeof *tcp);
  int r;
  if (tcp == NULL) return UV_ENOMEM;
  /* Made with its socket, so that SO_REUSEPORT can be set before bind. */
  if ((r = uv_tcp_init_ex(&svc->rt->loop, tcp, svc->addr.ss_family)) < 0) {
    free(tcp);
    return r;
  }
  tcp->data = svc;
  if ((r = tcp_bind(svc, tcp)) < 0) {
    uv_close((uv_handle_t *)tcp, tcp_listener_close_cb);
    lunet_log(LUNET_LOG_ERROR, "listen failed", "service", svc->name, "proto",
              svc->kind == LUNET_KIND_HTTP ? "http" : "tcp", "addr",
              svc->addr_text, "error", uv_strerror(r), NULL);
    return r;
  }
  svc->listener = tcp;
  const char *proto = svc->kind == LUNET_KIND_HTTP ? "http" : "tcp";
  lunet_log(LUNET_LOG_INFO, "listening", "service", svc->name, "proto", proto,
            "addr", svc->bound, NULL);
  svc->rt->up->listening(svc, proto);
  return 0;
}

void lunet_tcp_unlisten(struct lunet_service *svc) {
  if (svc->listener == NULL) return;
  uv_close((uv_handle_t *)svc->listener, tcp_listener_close_cb);
  svc->listener = NULL;
  lunet_log(LUNET_LOG_INFO, "stopped listening", "service", svc->name,
            "addr", svc->bound, NULL);
}
