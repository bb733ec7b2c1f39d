#include "service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "framing.h"
#include "protocol.h"
#include "loop.h"
#include "ipcount.h"
#include "log.h"
#include "ratelimit.h"
#include "tcp.h"
#include "tls.h"
#include "transport.h"
#include "udp.h"

const char *const lunet_handler_names[LUNET_HANDLER_COUNT] = {
    "on_connect", "on_data", "on_close", "on_drain", "on_message", "handler"};

static const struct lunet_service_options default_options = {
    .write_high_water = 1 << 20,
    .max_write_queue = 16 << 20,
    .drain_timeout_ms = 10000,
    .framing = LUNET_FRAMING_NONE,
    .protocol = &lunet_proto_raw,
    .max_message = 64 << 10,
    .connect_timeout_ms = 10000,
    .broadcast = -1,
    .ttl = -1,
    .multicast_ttl = -1,
    .multicast_loop = -1,
    .recv_buffer = -1,
    .send_buffer = -1,
    .max_header = 16 << 10,
    .max_url = 8 << 10,
    .max_body = 1 << 20,
    .header_timeout_ms = 10000,
    .keepalive_timeout_ms = 15000,
    .handler_timeout_ms = 30000,
    .max_requests = 10000,
    .write_timeout_ms = 60000,
};

struct lunet_service *lunet_service_new(struct lunet_runtime *rt,
                                        const char *name) {
  struct lunet_service *svc = calloc(1, sizeof *svc);
  if (svc == NULL) return NULL;
  svc->name = strdup(name);
  if (svc->name == NULL) {
    free(svc);
    return NULL;
  }
  svc->rt = rt;
  svc->opt = default_options;
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++) svc->handler_ref[h] = LUA_NOREF;
  lunet_list_init(&svc->node);
  lunet_list_init(&svc->conns);
  return svc;
}

/* Only for a service with no listener and no conns left. */
void lunet_service_free(struct lunet_service *svc) {
  int none[LUNET_HANDLER_COUNT];
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++) none[h] = LUA_NOREF;
  lunet_service_set_handlers(svc->rt->L, svc, none);
  lunet_list_remove(&svc->node);
  lunet_ratelimit_free(svc->ratelimit);
  lunet_ipcount_free(svc->per_ip);
  lunet_service_set_tls(svc, NULL);
  lunet_tls_config_free(svc->tls_config);
  free(svc->name);
  free(svc);
}

int lunet_service_listen(struct lunet_service *svc) {
  return svc->kind == LUNET_KIND_UDP ? lunet_udp_listen(svc)
                                     : lunet_tcp_listen(svc); /* tcp, http */
}

void lunet_service_unlisten(struct lunet_service *svc) {
  if (svc->kind == LUNET_KIND_UDP)
    lunet_udp_unlisten(svc);
  else
    lunet_tcp_unlisten(svc);
}

void lunet_service_take_socket(struct lunet_service *into,
                               struct lunet_service *svc) {
  lunet_service_unlisten(into);
  if (svc->listener != NULL) svc->listener->data = into;
  if (svc->udp != NULL) lunet__udp_set_service(svc->udp, into);
  into->listener = svc->listener;
  into->udp = svc->udp;
  svc->listener = NULL;
  svc->udp = NULL;
  into->addr = svc->addr;
  memcpy(into->addr_text, svc->addr_text, sizeof into->addr_text);
  memcpy(into->bound, svc->bound, sizeof into->bound);
}

struct lunet_service *lunet_service_find(struct lunet_runtime *rt,
                                         const char *name) {
  struct lunet_list *q;
  for (q = rt->services.next; q != &rt->services; q = q->next) {
    struct lunet_service *svc = lunet_container_of(q, struct lunet_service,
                                                   node);
    if (!svc->retired && !svc->internal && strcmp(svc->name, name) == 0)
      return svc;
  }
  return NULL;
}

int lunet_service_set_addr(struct lunet_service *svc, const char *text) {
  if (strlen(text) >= sizeof svc->addr_text) return UV_EINVAL;
  if (lunet_addr_parse(text, &svc->addr) < 0) return UV_EINVAL;
  strcpy(svc->addr_text, text);
  return 0;
}

int lunet_service_push_handler(lua_State *L, const struct lunet_service *svc,
                               enum lunet_handler h) {
  if (svc->handler_ref[h] == LUA_NOREF) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, svc->handler_ref[h]);
  return 1;
}

void lunet_service_set_handlers(lua_State *L, struct lunet_service *svc,
                                const int refs[LUNET_HANDLER_COUNT]) {
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++) {
    luaL_unref(L, LUA_REGISTRYINDEX, svc->handler_ref[h]);
    svc->handler_ref[h] = refs[h];
  }
}

void lunet_service_retire(struct lunet_service *svc) {
  lunet_service_unlisten(svc);
  svc->retired = 1;
  if (svc->nconns == 0) lunet_service_free(svc);
}

void lunet_service_set_framing(struct lunet_service *svc, int framing,
                               const struct lunet_protocol *p) {
  svc->opt.framing = framing;
  switch (framing) {
    case LUNET_FRAMING_NONE:
      p = &lunet_proto_raw;
      break;
    case LUNET_FRAMING_LINE:
      p = &lunet_proto_line;
      break;
    case LUNET_FRAMING_LENGTH:
      p = &lunet_proto_length;
      break;
  }
  svc->opt.protocol = p;
}

const struct lunet_protocol *lunet_service_protocol(
    const struct lunet_service *svc) {
  return svc->opt.protocol;
}

const struct lunet_transport *lunet_service_transport(
    const struct lunet_service *svc) {
  return svc->transport != NULL ? svc->transport : &lunet_transport_plain;
}

void lunet_service_take_transport(struct lunet_service *into,
                                  struct lunet_service *from) {
  lunet_tls_ctx_unref(into->transport_ctx);
  into->transport = from->transport;
  into->transport_ctx = from->transport_ctx;
  from->transport = NULL;
  from->transport_ctx = NULL;
}

void lunet_service_set_tls(struct lunet_service *svc, void *ctx) {
  lunet_tls_ctx_unref(svc->transport_ctx);
  svc->transport_ctx = ctx;
  svc->transport = ctx != NULL ? &lunet_transport_tls : NULL;
}

void lunet_service_conn_gone(struct lunet_service *svc) {
  if (--svc->nconns == 0 && (svc->retired || svc->client))
    lunet_service_free(svc);
}

void lunet_service_refused(struct lunet_service *svc, const char *why) {
  uint64_t now = uv_now(&svc->rt->loop);
  char n[24];
  svc->refusals++;
  svc->metrics.refused++;
  if (now - svc->refusal_logged_ms < 1000 && svc->refusal_logged_ms != 0)
    return;
  snprintf(n, sizeof n, "%" PRIu64, svc->refusals);
  lunet_log(LUNET_LOG_WARN, "connections refused", "service", svc->name,
            "reason", why, "refused", n, NULL);
  svc->refusals = 0;
  svc->refusal_logged_ms = now;
}

int lunet_service_rate_ok(struct lunet_service *svc,
                          const struct sockaddr *peer) {
  if (!(svc->opt.rate > 0)) return 1;
  if (svc->ratelimit == NULL &&
      (svc->ratelimit = lunet_ratelimit_new(svc->opt.rate,
                                            svc->opt.burst)) == NULL)
    return 1;
  uint64_t now = uv_now(&svc->rt->loop);
  if (lunet_ratelimit_take(svc->ratelimit, peer, now)) return 1;
  svc->metrics.refused++;
  if (now - svc->ratelimit_logged_ms >= 1000 || svc->ratelimit_logged_ms == 0) {
    char n[24];
    snprintf(n, sizeof n, "%" PRIu64, lunet_ratelimit_refused(svc->ratelimit));
    lunet_log(LUNET_LOG_WARN, "rate limited", "service", svc->name,
              "refused", n, NULL);
    svc->ratelimit_logged_ms = now;
  }
  return 0;
}
