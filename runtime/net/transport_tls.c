/* TLS over a conn's socket, with OpenSSL driven through a BIO of our own:
 * its reads take the socket bytes the loop just read (no copy into a
 * memory BIO), its writes go straight to lunet_conn_sock_write, so the
 * ciphertext is counted, bounded and backpressured by the conn's write
 * queue like any other bytes. Nothing is buffered here between reads:
 * every read is decrypted at once and its plaintext handed to the conn,
 * which keeps what the protocol cannot take yet; OpenSSL holds at most
 * the incomplete record, and with SSL_MODE_RELEASE_BUFFERS an idle conn
 * holds no record buffers at all. */
#include "tls.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <lauxlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "service.h"
#include "transport.h"

#define TLS_RECORD_HANDSHAKE 0x16
#define WRITE_CHUNK (64 << 10) /* SSL_write's input per call */

struct tls_conn {
  SSL *ssl;
  struct lunet_tls_ctx *ctx; /* one reference, until the conn is freed */
  const char *in;            /* socket bytes being read by OpenSSL */
  size_t in_len;
  uint64_t started_ms;       /* handshake_timeout */
  uint64_t started_ns;       /* the handshake histogram */
  int write_err;             /* the UV error a BIO write met */
  int info_ref;              /* conn.tls, made on the first read */
  unsigned char established, shut, first_read_done;
  unsigned char counted; /* its handshake is in the metrics */
  char *reason; /* a client's close reason naming OpenSSL's, made then */
};

#define REASON_SIZE 200

static struct tls_conn *tls_of(const struct lunet_conn *c) {
  return c->transport_state;
}

/* {==================================================================
 * The BIO: socket bytes in, the conn's write path out
 * =================================================================== */

static int bio_read(BIO *b, char *buf, size_t len, size_t *got) {
  struct lunet_conn *c = BIO_get_data(b);
  struct tls_conn *t = tls_of(c);
  BIO_clear_retry_flags(b);
  if (t->in_len == 0) {
    BIO_set_retry_read(b);
    return 0;
  }
  size_t n = len < t->in_len ? len : t->in_len;
  memcpy(buf, t->in, n);
  t->in += n, t->in_len -= n;
  *got = n;
  return 1;
}

static int bio_write(BIO *b, const char *buf, size_t len, size_t *done) {
  struct lunet_conn *c = BIO_get_data(b);
  struct tls_conn *t = tls_of(c);
  BIO_clear_retry_flags(b);
  int r = c->state <= CONN_DRAINING
              ? lunet_conn_sock_write(c, buf, len, c->svc->rt->L, 0)
              : UV_EPIPE;
  if (r < 0) {
    t->write_err = r;
    return 0;
  }
  *done = len;
  return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *bio_method(void) {
  static BIO_METHOD *m;
  if (m != NULL) return m;
  m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lunet conn");
  if (m == NULL) return NULL;
  BIO_meth_set_read_ex(m, bio_read);
  BIO_meth_set_write_ex(m, bio_write);
  BIO_meth_set_ctrl(m, bio_ctrl);
  return m;
}

/* }================================================================== */

/* {==================================================================
 * Failures
 * =================================================================== */

static const char *ossl_reason(void) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  return r != NULL ? r : "connection closed during the handshake";
}

static void tls_log(struct lunet_conn *c, int level, const char *what,
                    const char *reason) {
  char id[24], peer[LUNET_ADDR_STRLEN] = "";
  if (!lunet_log_enabled(level)) return;
  snprintf(id, sizeof id, "%" PRIu64, c->id);
  lunet_addr_format(&c->peer.sa, peer, sizeof peer);
  lunet_log(level, what, "service", c->svc->name, "conn", id, "peer", peer,
            "reason", reason, NULL);
}

/* A client learns why its server was refused: on_close gets the reason. */
static const char *client_reason(struct tls_conn *t) {
  long v = SSL_get_verify_result(t->ssl);
  if (t->reason == NULL && (t->reason = malloc(REASON_SIZE)) == NULL)
    return "tls: handshake failed";
  if (v != X509_V_OK)
    snprintf(t->reason, REASON_SIZE, "tls: certificate verify failed: %s",
             X509_verify_cert_error_string(v));
  else
    snprintf(t->reason, REASON_SIZE, "tls: handshake failed: %s",
             ossl_reason());
  return t->reason;
}

/* The handshake failed: a client's mistake (debug) on a server conn,
 * which Lua never saw; the remote server's or our settings' (warn) on a
 * lunet.connect conn, whose on_close says why. */
static void handshake_failed(struct lunet_conn *c, struct tls_conn *t) {
  c->svc->metrics.tls_handshakes[TLS_FAILED]++;
  t->counted = 1;
  if (t->write_err < 0) {
    ERR_clear_error();
    return lunet_conn_close(c, uv_err_name(t->write_err), 0);
  }
  if (t->ctx->client) {
    const char *why = client_reason(t);
    tls_log(c, LUNET_LOG_WARN, "tls handshake failed", why);
    ERR_clear_error();
    return lunet_conn_close(c, why, 1);
  }
  tls_log(c, LUNET_LOG_DEBUG, "tls handshake failed", ossl_reason());
  ERR_clear_error();
  lunet_conn_close(c, "tls_handshake_failed", 1); /* the alert goes out */
}

/* After the handshake: a bad record, a peer's fatal alert. */
static void session_failed(struct lunet_conn *c, struct tls_conn *t) {
  if (t->write_err < 0) {
    ERR_clear_error();
    return lunet_conn_close(c, uv_err_name(t->write_err), 0);
  }
  tls_log(c, LUNET_LOG_DEBUG, "tls error", ossl_reason());
  ERR_clear_error();
  lunet_conn_close(c, "tls_error", 0);
}

/* A first record that is not a handshake: not TLS at all. An http
 * service says so in plain text, so whoever typed http:// learns why. */
static void not_tls(struct lunet_conn *c, const char *buf, size_t n) {
  static const char answer[] =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
      "Content-Length: 32\r\nConnection: close\r\n\r\n"
      "This port speaks HTTPS, not HTTP";
  c->svc->metrics.tls_handshakes[TLS_FAILED]++;
  tls_of(c)->counted = 1;
  tls_log(c, LUNET_LOG_DEBUG, "tls handshake failed", "not a TLS record");
  if (c->svc->kind == LUNET_KIND_HTTP && n > 0 && buf[0] >= 'A' &&
      buf[0] <= 'Z')
    lunet_conn_sock_write(c, answer, sizeof answer - 1, c->svc->rt->L, 0);
  lunet_conn_close(c, "tls_not_tls", 1);
}

/* }================================================================== */

/* {==================================================================
 * Handshake and records
 * =================================================================== */

static void handshake_done(struct lunet_conn *c, struct tls_conn *t) {
  struct lunet_metrics *m = &c->svc->metrics;
  t->established = 1;
  t->counted = 1;
  m->tls_handshakes[TLS_OK]++;
  if (SSL_session_reused(t->ssl)) m->tls_resumed++;
  lunet_histogram_observe(&m->tls_handshake,
                          (double)(uv_hrtime() - t->started_ns) / 1e9);
  lunet_conn_ready(c);
}

/* 1 once established (and the conn still open), 0 while it goes on or
 * after a failure closed the conn. */
static int handshake(struct lunet_conn *c, struct tls_conn *t) {
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    handshake_done(c, t);
    return c->state == CONN_OPEN;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e != SSL_ERROR_WANT_READ) handshake_failed(c, t);
  return 0;
}

/* Decrypts everything the read brought and hands it to the conn in one
 * piece where it fits (one delivery per socket read, as plain TCP). */
static void pump(struct lunet_conn *c, struct tls_conn *t) {
  static char plain[LUNET_READ_BUF_SIZE];
  size_t have = 0, got;
  for (;;) {
    if (SSL_read_ex(t->ssl, plain + have, sizeof plain - have, &got) == 1) {
      have += got;
      if (have < sizeof plain) continue;
      lunet_conn_plaintext(c, plain, have);
      have = 0;
      if (c->state != CONN_OPEN) return;
      continue;
    }
    int e = SSL_get_error(t->ssl, 0); /* before Lua writes on this SSL */
    if (have > 0) lunet_conn_plaintext(c, plain, have);
    if (c->state != CONN_OPEN || e == SSL_ERROR_WANT_READ) return;
    if (e == SSL_ERROR_ZERO_RETURN) return lunet_conn_input_end(c);
    return session_failed(c, t);
  }
}

static void tls_read(struct lunet_conn *c, const char *buf, size_t n) {
  struct tls_conn *t = tls_of(c);
  if (t == NULL) return;
  if (!t->first_read_done && !t->ctx->client) {
    t->first_read_done = 1;
    if ((unsigned char)buf[0] != TLS_RECORD_HANDSHAKE)
      return not_tls(c, buf, n);
  }
  ERR_clear_error();
  t->in = buf, t->in_len = n;
  if (t->established || handshake(c, t)) pump(c, t);
  t->in = NULL, t->in_len = 0;
}

static int tls_write(struct lunet_conn *c, const char *p, size_t n,
                     lua_State *L, int pin_idx) {
  struct tls_conn *t = tls_of(c);
  size_t done;
  (void)L, (void)pin_idx; /* ciphertext is new bytes: nothing to pin */
  if (t == NULL || !t->established || t->shut) return UV_ENOTCONN;
  ERR_clear_error();
  t->write_err = 0;
  while (n > 0) {
    size_t chunk = n < WRITE_CHUNK ? n : WRITE_CHUNK;
    if (SSL_write_ex(t->ssl, p, chunk, &done) != 1) {
      ERR_clear_error();
      return t->write_err < 0 ? t->write_err : UV_EPROTO;
    }
    p += done, n -= done;
  }
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Life of a TLS conn
 * =================================================================== */

static int is_ip_literal(const char *name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name, buf) == 1 ||
         inet_pton(AF_INET6, name, buf) == 1;
}

/* A client names the server it wants (SNI, not for an address) and,
 * verifying, checks the certificate is for that name or address. */
static int client_setup(SSL *ssl, const struct lunet_tls_ctx *ctx) {
  const char *name = ctx->server_name;
  if (name == NULL) return 1;
  if (!is_ip_literal(name) && !SSL_set_tlsext_host_name(ssl, name)) return 0;
  if (!ctx->verify) return 1;
  if (is_ip_literal(name))
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
  return SSL_set1_host(ssl, name);
}

static struct tls_conn *tls_new(struct lunet_conn *c) {
  struct lunet_tls_ctx *ctx = c->svc->transport_ctx;
  struct tls_conn *t = calloc(1, sizeof *t);
  BIO_METHOD *m = bio_method();
  BIO *bio = m != NULL ? BIO_new(m) : NULL;
  if (t == NULL || bio == NULL || (t->ssl = SSL_new(ctx->ssl_ctx)) == NULL ||
      (ctx->client && !client_setup(t->ssl, ctx))) {
    if (t != NULL) SSL_free(t->ssl);
    BIO_free(bio);
    free(t);
    ERR_clear_error();
    return NULL;
  }
  BIO_set_data(bio, c);
  BIO_set_init(bio, 1);
  SSL_set_bio(t->ssl, bio, bio); /* the same BIO twice takes one ref */
  t->ctx = lunet_tls_ctx_ref(ctx);
  t->info_ref = LUA_NOREF;
  return t;
}

static int tls_start(struct lunet_conn *c) {
  struct tls_conn *t = tls_new(c);
  if (t == NULL) {
    lunet_conn_close(c, "ENOMEM", 0);
    return 1;
  }
  c->transport_state = t;
  t->started_ms = uv_now(c->tcp.loop);
  t->started_ns = uv_hrtime();
  if (t->ctx->client) {
    SSL_set_connect_state(t->ssl);
    ERR_clear_error();
    handshake(c, t); /* the ClientHello goes out */
  } else {
    SSL_set_accept_state(t->ssl);
  }
  return 1;
}

static void tls_shutdown(struct lunet_conn *c) {
  struct tls_conn *t = tls_of(c);
  if (t == NULL || !t->established || t->shut) return;
  t->shut = 1;
  ERR_clear_error();
  SSL_shutdown(t->ssl); /* our close_notify; the peer's is not awaited */
  ERR_clear_error();
}

static int tls_timeouts(struct lunet_conn *c, uint64_t now) {
  struct tls_conn *t = tls_of(c);
  if (t == NULL || t->established ||
      now - t->started_ms < t->ctx->handshake_timeout_ms)
    return 0;
  c->svc->metrics.tls_handshakes[TLS_TIMEOUT]++;
  t->counted = 1;
  tls_log(c, LUNET_LOG_DEBUG, "tls handshake timeout", "handshake_timeout");
  if (t->ctx->client) {
    lunet_conn_close(c, "tls: handshake timeout", 0);
  } else {
    lunet_conn_close(c, "tls_handshake_timeout", 0);
  }
  return 1;
}

static void tls_tick(struct lunet_service *svc, uint64_t now) {
  lunet_tls_tickets_tick(now);
  if (svc->transport_ctx != NULL)
    lunet_tls_check_expiry(svc->transport_ctx, svc->name, now);
}

static void set_str(lua_State *L, const char *key, const char *v) {
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, key);
}

static void set_peer_subject(lua_State *L, SSL *ssl) {
  char subject[256];
  X509 *peer = SSL_get0_peer_certificate(ssl);
  if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK) return;
  X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
  set_str(L, "peer_subject", subject);
}

/* Made once: nothing in it changes after the handshake, and every
 * request of the conn (req.tls) shares it. */
static int tls_push_info(lua_State *L, const struct lunet_conn *c) {
  struct tls_conn *t = tls_of(c);
  const unsigned char *alpn;
  unsigned alpn_len;
  if (t == NULL || !t->established) return 0;
  if (t->info_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->info_ref);
    return 1;
  }
  lua_createtable(L, 0, 6);
  set_str(L, "version", SSL_get_version(t->ssl));
  set_str(L, "cipher", SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl)));
  set_str(L, "server_name",
          SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name));
  SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
  if (alpn_len > 0) {
    lua_pushlstring(L, (const char *)alpn, alpn_len);
    lua_setfield(L, -2, "alpn");
  }
  lua_pushboolean(L, SSL_session_reused(t->ssl));
  lua_setfield(L, -2, "resumed");
  set_peer_subject(L, t->ssl);
  lua_pushvalue(L, -1);
  t->info_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static void tls_detach(struct lunet_conn *c) {
  struct tls_conn *t = tls_of(c);
  if (t == NULL) return;
  if (!t->counted) { /* the peer left (EOF, reset) before it was done */
    c->svc->metrics.tls_handshakes[TLS_FAILED]++;
    tls_log(c, LUNET_LOG_DEBUG, "tls handshake failed",
            "closed during the handshake");
  }
  luaL_unref(c->svc->rt->L, LUA_REGISTRYINDEX, t->info_ref);
  SSL_free(t->ssl); /* and the BIO */
  lunet_tls_ctx_unref(t->ctx);
  free(t->reason); /* after on_close, which was given it */
  free(t);
  c->transport_state = NULL;
}

/* }================================================================== */

const struct lunet_transport lunet_transport_tls = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .start = tls_start,
    .shutdown = tls_shutdown,
    .timeouts = tls_timeouts,
    .tick = tls_tick,
    .push_info = tls_push_info,
    .detach = tls_detach,
};
