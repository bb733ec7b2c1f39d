/* TLS settings and the OpenSSL contexts built from them (tls_context.c);
 * the transport that runs a conn over one is transport_tls.c.
 *
 * A service's `tls` table becomes a struct lunet_tls_config (script/
 * parses it). Building a config into a struct lunet_tls_ctx reads the
 * certificate files and makes the SSL_CTXs; it touches no loop and no
 * Lua, so a reload runs it in libuv's thread pool and the loop never
 * waits on a disk or on certificate parsing. A built context is shared:
 * the service holds one reference and every TLS conn one more, so a
 * reload that swaps certificates leaves the open conns on the context
 * they started with until they close. */
#ifndef LUNET_TLS_H
#define LUNET_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <lua.h>

struct lunet_conn;
struct lunet_service;

enum lunet_tls_verify {
  LUNET_TLS_VERIFY_NONE,     /* server: no client certificate asked */
  LUNET_TLS_VERIFY_OPTIONAL, /* asked; one that is sent must verify */
  LUNET_TLS_VERIFY_REQUIRE   /* server: no certificate, no handshake;
                                client: the default, chain and name */
};

struct lunet_tls_sni {
  char *name, *cert, *key;
};

struct lunet_tls_config {
  int client;           /* lunet.connect's tls, not a service's */
  char *cert, *key;     /* paths, resolved against the script's dir */
  char *ca;             /* PEM bundle; a client without one uses the system
                           store */
  int verify;           /* enum lunet_tls_verify */
  struct lunet_tls_sni *sni;
  int nsni;
  unsigned char *alpn; /* wire format: length-prefixed names, in order */
  size_t alpn_len;
  int min_version;      /* TLS1_2_VERSION or TLS1_3_VERSION */
  char *ciphers, *ciphersuites; /* NULL: our defaults */
  unsigned handshake_timeout_ms;
  int self_signed;
  char *server_name;    /* client: SNI and the name verified */
  char *service;        /* for log records */
};

/* A built configuration: what a TLS conn needs, shared by reference. */
struct lunet_tls_ctx {
  int refs;
  void *ssl_ctx; /* SSL_CTX *, the default certificate */
  struct lunet_tls_sni_ctx {
    char *name;
    void *ssl_ctx;
  } *sni;
  int nsni;
  unsigned char *alpn;
  size_t alpn_len;
  int client, verify;
  unsigned handshake_timeout_ms;
  char *server_name;
  unsigned char digest[32]; /* of the settings and the files' bytes */
  char subject[256];        /* of the default certificate */
  char not_after[64];
  time_t not_after_t;
  uint64_t expiry_checked_ms; /* the daily warning */
};

struct lunet_tls_config *lunet_tls_config_new(void);
void lunet_tls_config_free(struct lunet_tls_config *cfg);
/* A deep copy, or NULL (no memory). */
struct lunet_tls_config *lunet_tls_config_copy(
    const struct lunet_tls_config *cfg);
/* 1 when a and b say the same (the files' contents aside). */
int lunet_tls_config_same(const struct lunet_tls_config *a,
                          const struct lunet_tls_config *b);

/* Builds cfg (any thread; reads files). When prev_digest is given and the
 * settings and files are unchanged, returns NULL with *unchanged set.
 * Otherwise the context (one reference) or NULL with err naming the file
 * and the reason. */
struct lunet_tls_ctx *lunet_tls_build(const struct lunet_tls_config *cfg,
                                      const unsigned char *prev_digest,
                                      int *unchanged, char *err,
                                      size_t errcap);

struct lunet_tls_ctx *lunet_tls_ctx_ref(struct lunet_tls_ctx *t);
void lunet_tls_ctx_unref(struct lunet_tls_ctx *t);

/* One record for a context made from files (or generated): service,
 * subject, not_after, and the fingerprint of a self-signed one; a warning
 * when it expires within 14 days. Loop thread. */
void lunet_tls_log_loaded(const struct lunet_tls_ctx *t, const char *service);

/* The daily expiry warning, from the service's once-a-second tick. */
void lunet_tls_check_expiry(struct lunet_tls_ctx *t, const char *service,
                            uint64_t now_ms);

/* Session ticket keys (tls_tickets.c): every context encrypts tickets
 * with the process's current key and accepts the previous one, so a
 * rebuilt context (reload) and, with keys handed over by the supervisor,
 * every worker resume each other's sessions. */
#define LUNET_TLS_TICKET_KEY_SIZE 80 /* name 16, AES-256 32, HMAC 32 */
void lunet_tls_tickets_set(const unsigned char *current,
                           const unsigned char *previous);
/* Makes a fresh key (RAND_bytes) into key; 0 or -1. */
int lunet_tls_ticket_key_new(unsigned char key[LUNET_TLS_TICKET_KEY_SIZE]);
/* Rotates the process's own keys once they are older than the period;
 * keys set by lunet_tls_tickets_set are rotated by whoever set them. */
void lunet_tls_tickets_tick(uint64_t now_ms);
void lunet__tls_tickets_install(void *ssl_ctx);

/* The TLS transport (transport_tls.c) for a service holding ctx. */
extern const struct lunet_transport lunet_transport_tls;

#endif
