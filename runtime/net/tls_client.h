/* The contexts of lunet.connect's TLS conns: built in the thread pool
 * (the system CA store alone is ~140 certificates to parse), once per
 * distinct settings, and kept for the next connect with the same ones. */
#ifndef LUNET_TLS_CLIENT_H
#define LUNET_TLS_CLIENT_H

#include <stddef.h>
#include <uv.h>

struct lunet_tls_config;
struct lunet_tls_ctx;

/* Called on the loop: ctx (a reference for the caller) or NULL with err
 * ("tls: <file>: <reason>"). */
typedef void (*lunet_tls_client_cb)(void *ud, struct lunet_tls_ctx *ctx,
                                    const char *err);

/* 1 with *ctx (a reference) when one with these settings is built
 * already; 0 when a build started and cb(ud, ...) follows; a negative
 * UV error when it could not start. */
int lunet_tls_client_get(uv_loop_t *loop, const struct lunet_tls_config *cfg,
                         lunet_tls_client_cb cb, void *ud,
                         struct lunet_tls_ctx **ctx);

/* Drops the kept contexts (runtime teardown). */
void lunet_tls_client_forget(void);

#endif
