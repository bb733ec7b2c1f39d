#include "tls_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

#define KEPT_MAX 16 /* distinct client settings kept; the oldest goes */

static struct kept {
  struct lunet_tls_config *cfg;
  struct lunet_tls_ctx *ctx;
} kept[KEPT_MAX];
static int nkept;

struct client_build {
  uv_work_t work;
  struct lunet_tls_config *cfg;
  struct lunet_tls_ctx *ctx;
  lunet_tls_client_cb cb;
  void *ud;
  char err[512];
};

static struct lunet_tls_ctx *find(const struct lunet_tls_config *cfg) {
  for (int i = 0; i < nkept; i++)
    if (lunet_tls_config_same(kept[i].cfg, cfg)) return kept[i].ctx;
  return NULL;
}

static void forget(int i) {
  lunet_tls_config_free(kept[i].cfg);
  lunet_tls_ctx_unref(kept[i].ctx);
  memmove(&kept[i], &kept[i + 1], (size_t)(nkept - i - 1) * sizeof kept[0]);
  nkept--;
}

/* Keeps b's context unless one with the same settings was kept while it
 * was being built; returns the one to use. */
static struct lunet_tls_ctx *keep(struct client_build *b) {
  struct lunet_tls_ctx *have = find(b->cfg);
  if (have != NULL) {
    lunet_tls_ctx_unref(b->ctx);
    lunet_tls_config_free(b->cfg);
    return have;
  }
  if (nkept == KEPT_MAX) forget(0);
  kept[nkept].cfg = b->cfg;
  kept[nkept].ctx = b->ctx;
  nkept++;
  return b->ctx;
}

static void build_cb(uv_work_t *w) {
  struct client_build *b = w->data;
  int unchanged;
  b->ctx = lunet_tls_build(b->cfg, NULL, &unchanged, b->err, sizeof b->err);
}

static void built_cb(uv_work_t *w, int status) {
  struct client_build *b = w->data;
  if (status < 0 && b->ctx == NULL)
    snprintf(b->err, sizeof b->err, "tls: %s", uv_strerror(status));
  if (b->ctx == NULL) {
    lunet_tls_config_free(b->cfg);
    b->cb(b->ud, NULL, b->err);
  } else {
    b->cb(b->ud, lunet_tls_ctx_ref(keep(b)), NULL);
  }
  free(b);
}

int lunet_tls_client_get(uv_loop_t *loop, const struct lunet_tls_config *cfg,
                         lunet_tls_client_cb cb, void *ud,
                         struct lunet_tls_ctx **ctx) {
  struct lunet_tls_ctx *have = find(cfg);
  if (have != NULL) {
    *ctx = lunet_tls_ctx_ref(have);
    return 1;
  }
  struct client_build *b = calloc(1, sizeof *b);
  if (b == NULL || (b->cfg = lunet_tls_config_copy(cfg)) == NULL) {
    free(b);
    return UV_ENOMEM;
  }
  b->cb = cb, b->ud = ud;
  b->work.data = b;
  int r = uv_queue_work(loop, &b->work, build_cb, built_cb);
  if (r < 0) {
    lunet_tls_config_free(b->cfg);
    free(b);
  }
  return r < 0 ? r : 0;
}

void lunet_tls_client_forget(void) {
  while (nkept > 0) forget(nkept - 1);
}
