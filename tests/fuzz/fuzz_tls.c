/* libFuzzer target: the TLS transport under an HTTP service, end to end
 * through a real conn. An in-process OpenSSL client (memory BIOs) makes
 * the handshake with the server conn over a socketpair (resuming the
 * session of the first input, so most inputs cost no full handshake),
 * then sends the input as application data: the HTTP path runs over TLS
 * records, cut wherever the client's records and the socket cut them.
 * An input whose first byte has the top bit set goes to the socket raw
 * instead, with no client: the server's record and handshake parsing
 * meet garbage, a truncated ClientHello, plain HTTP. ASan/UBSan watch
 * our BIO, the handshake and error paths, the close_notify and the
 * release of every SSL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conn.h"
#include "fuzz_runtime.h"
#include "log.h"
#include "runtime.h"
#include "service.h"

static const char script[] =
    "return { web = { http = '127.0.0.1:0', tls = { self_signed = true,\n"
    "    alpn = { 'http/1.1' }, handshake_timeout = 1 },\n"
    "  max_body = 4096, write_high_water = 1024, max_write_queue = 65536,\n"
    "  handler = function(req, res)\n"
    "    local t = req.tls or {}\n"
    "    res:send(200, (t.version or '-') .. (t.alpn or '-') .. req.path ..\n"
    "             #req.body)\n"
    "  end } }\n";

static struct lunet_runtime *rt;
static struct lunet_service *svc;
static SSL_CTX *client_ctx;
static SSL_SESSION *session; /* of the first handshake, resumed after */

static void setup(void) {
  svc = lunet_fuzz_runtime(script, sizeof script - 1, &rt);
  client_ctx = SSL_CTX_new(TLS_client_method());
  if (client_ctx == NULL) abort();
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_alpn_protos(client_ctx, (const unsigned char *)"\x08http/1.1",
                          9);
}

struct client {
  SSL *ssl;
  BIO *in, *out; /* what the server sent; what goes to it */
  int fd;
};

/* Client output to the socket, server output into the client. */
static void shuttle(struct client *k) {
  char buf[16384];
  int n;
  while ((n = BIO_read(k->out, buf, sizeof buf)) > 0)
    if (write(k->fd, buf, (size_t)n) < 0) break; /* the server closed */
  ssize_t got;
  while ((got = read(k->fd, buf, sizeof buf)) > 0)
    BIO_write(k->in, buf, (int)got);
}

/* The client's side of the turns: handshake, then it reads whatever
 * plaintext comes (and so keeps the server's output moving). */
static void client_turn(struct client *k) {
  char buf[16384];
  if (!SSL_is_init_finished(k->ssl)) SSL_do_handshake(k->ssl);
  while (SSL_read(k->ssl, buf, sizeof buf) > 0) {
  }
  ERR_clear_error();
  shuttle(k);
}

static int client_new(struct client *k, int fd) {
  k->fd = fd;
  k->ssl = SSL_new(client_ctx);
  k->in = BIO_new(BIO_s_mem());
  k->out = BIO_new(BIO_s_mem());
  if (k->ssl == NULL || k->in == NULL || k->out == NULL) abort();
  SSL_set_bio(k->ssl, k->in, k->out);
  SSL_set_connect_state(k->ssl);
  SSL_set_tlsext_host_name(k->ssl, "localhost");
  if (session != NULL) SSL_set_session(k->ssl, session);
  return 0;
}

static void run_turns(struct client *k, int turns) {
  for (int turn = 0; turn < turns && svc->nconns > 0; turn++) {
    uv_run(&rt->loop, UV_RUN_NOWAIT);
    if (k != NULL) client_turn(k);
  }
}

static void over_tls(int fd, const uint8_t *data, size_t size) {
  struct client k;
  client_new(&k, fd);
  for (int i = 0; i < 16 && !SSL_is_init_finished(k.ssl) && svc->nconns; i++)
    run_turns(&k, 1);
  if (SSL_is_init_finished(k.ssl)) {
    /* Odd first bytes end with a close_notify, even ones with a FIN. */
    if (size > 0) SSL_write(k.ssl, data, (int)size);
    if (size > 0 && (data[0] & 1)) SSL_shutdown(k.ssl);
    shuttle(&k);
  }
  shutdown(fd, SHUT_WR);
  run_turns(&k, 48);
  if (session == NULL && SSL_get0_session(k.ssl) != NULL &&
      SSL_SESSION_is_resumable(SSL_get0_session(k.ssl)))
    session = SSL_get1_session(k.ssl); /* its ticket came after the data */
  SSL_free(k.ssl);
  ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int sv[2];
  if (rt == NULL) setup();
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) abort();
  struct lunet_conn *c = lunet__conn_adopt(svc, sv[0]);
  if (c == NULL) abort();
  if (size > 0 && (data[0] & 0x80)) {
    if (write(sv[1], data + 1, size - 1) < 0) {
    }
    shutdown(sv[1], SHUT_WR);
    run_turns(NULL, 48);
  } else {
    over_tls(sv[1], data, size);
  }
  if (svc->nconns > 0) lunet_conn_close(c, "fuzz", 0);
  while (svc->nconns > 0) uv_run(&rt->loop, UV_RUN_NOWAIT);
  close(sv[1]);
  return 0;
}
