/* A service's (or lunet.connect's) `tls` table, checked like every other
 * field and turned into a struct lunet_tls_config: every key known, every
 * value of its type, paths resolved against the script's directory.
 * Nothing is read here; the files are read when the config is built. */
#include "tls_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <openssl/ssl.h>

#include "loop.h"
#include "tls.h"

struct tls_check {
  lua_State *L;
  const char *dir;
  struct lunet_tls_config *cfg;
  char *err;
  size_t errcap;
};

static int bad(struct tls_check *k, const char *fmt, const char *what) {
  char detail[200];
  snprintf(detail, sizeof detail, fmt, what);
  snprintf(k->err, k->errcap, "tls: %s", detail);
  return -1;
}

/* The string on top, without a NUL, or NULL. */
static const char *top_string(lua_State *L) {
  size_t n;
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n)
                                                 : NULL;
  return s != NULL && memchr(s, '\0', n) == NULL && n > 0 ? s : NULL;
}

static int take_string(struct tls_check *k, const char *key, char **out) {
  const char *s = top_string(k->L);
  if (s == NULL) return bad(k, "'%s' must be a non-empty string", key);
  free(*out);
  if ((*out = strdup(s)) == NULL) return bad(k, "out of memory%s", "");
  return 0;
}

/* A path as given, or under the script's directory when relative. */
static int take_path(struct tls_check *k, const char *key, char **out) {
  const char *s = top_string(k->L);
  if (s == NULL) return bad(k, "'%s' must be a file name", key);
  size_t n = strlen(k->dir) + strlen(s) + 2;
  free(*out);
  if ((*out = malloc(n)) == NULL) return bad(k, "out of memory%s", "");
  if (s[0] == '/')
    snprintf(*out, n, "%s", s);
  else
    snprintf(*out, n, "%s/%s", k->dir, s);
  return 0;
}

static int take_verify(struct tls_check *k) {
  lua_State *L = k->L;
  const char *s = top_string(L);
  if (k->cfg->client) {
    if (!lua_isboolean(L, -1))
      return bad(k, "'verify' of lunet.connect must be true or false%s", "");
    k->cfg->verify = lua_toboolean(L, -1) ? LUNET_TLS_VERIFY_REQUIRE
                                          : LUNET_TLS_VERIFY_NONE;
    return 0;
  }
  if (s != NULL && strcmp(s, "none") == 0)
    k->cfg->verify = LUNET_TLS_VERIFY_NONE;
  else if (s != NULL && strcmp(s, "optional") == 0)
    k->cfg->verify = LUNET_TLS_VERIFY_OPTIONAL;
  else if (s != NULL && strcmp(s, "require") == 0)
    k->cfg->verify = LUNET_TLS_VERIFY_REQUIRE;
  else
    return bad(k, "'verify' must be \"none\", \"optional\" or \"require\"%s",
               "");
  return 0;
}

static int take_min_version(struct tls_check *k) {
  const char *s = top_string(k->L);
  if (s != NULL && strcmp(s, "TLSv1.2") == 0)
    k->cfg->min_version = TLS1_2_VERSION;
  else if (s != NULL && strcmp(s, "TLSv1.3") == 0)
    k->cfg->min_version = TLS1_3_VERSION;
  else
    return bad(k, "'min_version' must be \"TLSv1.2\" or \"TLSv1.3\" (older "
                  "versions are refused)%s", "");
  return 0;
}

static int take_timeout(struct tls_check *k) {
  lua_State *L = k->L;
  lua_Number s = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(s > 0) || s > 3600)
    return bad(k, "'handshake_timeout' must be seconds, more than 0 and at "
                  "most 3600%s", "");
  k->cfg->handshake_timeout_ms = (unsigned)(s * 1000 + 0.5);
  if (k->cfg->handshake_timeout_ms == 0) k->cfg->handshake_timeout_ms = 1;
  return 0;
}

/* { "h2", "http/1.1" } into ALPN's wire format. */
static int take_alpn(struct tls_check *k) {
  lua_State *L = k->L;
  luaL_Buffer b;
  if (!lua_istable(L, -1) || luaL_len(L, -1) == 0)
    return bad(k, "'alpn' must be a list of protocol names%s", "");
  luaL_buffinit(L, &b); /* pushes nothing we pop before the end */
  lua_Integer n = luaL_len(L, -2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    size_t len;
    const char *s = top_string(L) ? lua_tolstring(L, -1, &len) : NULL;
    if (s == NULL || len > 255) {
      lua_pop(L, 2); /* the name and the buffer */
      return bad(k, "'alpn' names must be strings of 1 to 255 bytes%s", "");
    }
    lua_pop(L, 1);
    luaL_addchar(&b, (char)len);
    luaL_addlstring(&b, s, len);
  }
  luaL_pushresult(&b);
  size_t len;
  const char *wire = lua_tolstring(L, -1, &len);
  free(k->cfg->alpn);
  k->cfg->alpn = malloc(len);
  if (k->cfg->alpn != NULL) memcpy(k->cfg->alpn, wire, len);
  k->cfg->alpn_len = k->cfg->alpn != NULL ? len : 0;
  lua_pop(L, 1);
  return k->cfg->alpn != NULL ? 0 : bad(k, "out of memory%s", "");
}

/* sni = { ["name"] = { cert = ..., key = ... }, ... } */
static int take_sni_entry(struct tls_check *k, struct lunet_tls_sni *e) {
  lua_State *L = k->L;
  if (!lua_istable(L, -1))
    return bad(k, "each 'sni' entry must be { cert = ..., key = ... }%s", "");
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                     : "?";
    int r = strcmp(key, "cert") == 0  ? take_path(k, "sni cert", &e->cert)
            : strcmp(key, "key") == 0 ? take_path(k, "sni key", &e->key)
                                      : bad(k, "unknown field '%s' in an sni "
                                               "entry", key);
    lua_pop(L, 1);
    if (r < 0) return lua_pop(L, 1), -1;
  }
  if (e->cert == NULL || e->key == NULL)
    return bad(k, "sni entry '%s' needs cert and key", e->name);
  return 0;
}

static int take_sni(struct tls_check *k) {
  lua_State *L = k->L;
  struct lunet_tls_config *cfg = k->cfg;
  if (!lua_istable(L, -1) || cfg->client)
    return bad(k, cfg->client ? "'sni' is for services (a client sends "
                                "server_name)%s"
                              : "'sni' must be a table of name = { cert, "
                                "key }%s", "");
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    lua_pushvalue(L, -2);
    const char *name = top_string(L);
    struct lunet_tls_sni *more = name ? realloc(cfg->sni, (size_t)(cfg->nsni + 1)
                                                             * sizeof *more)
                                      : NULL;
    if (more == NULL) {
      lua_pop(L, 3);
      return bad(k, name ? "out of memory%s" : "'sni' keys must be server "
                                               "names%s", "");
    }
    cfg->sni = more;
    struct lunet_tls_sni *e = &cfg->sni[cfg->nsni++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    lua_pop(L, 1);
    if (e->name == NULL || take_sni_entry(k, e) < 0) return lua_pop(L, 2), -1;
    lua_pop(L, 1);
  }
  return 0;
}

static int take_self_signed(struct tls_check *k) {
  if (!lua_isboolean(k->L, -1) || k->cfg->client)
    return bad(k, k->cfg->client ? "'self_signed' is for services%s"
                                 : "'self_signed' must be true or false%s",
               "");
  k->cfg->self_signed = lua_toboolean(k->L, -1);
  return 0;
}

/* The field on top (its key below). */
static int take_field(struct tls_check *k) {
  lua_State *L = k->L;
  struct lunet_tls_config *cfg = k->cfg;
  const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
  if (strcmp(key, "cert") == 0) return take_path(k, key, &cfg->cert);
  if (strcmp(key, "key") == 0) return take_path(k, key, &cfg->key);
  if (strcmp(key, "ca") == 0) return take_path(k, key, &cfg->ca);
  if (strcmp(key, "verify") == 0) return take_verify(k);
  if (strcmp(key, "sni") == 0) return take_sni(k);
  if (strcmp(key, "alpn") == 0) return take_alpn(k);
  if (strcmp(key, "min_version") == 0) return take_min_version(k);
  if (strcmp(key, "ciphers") == 0) return take_string(k, key, &cfg->ciphers);
  if (strcmp(key, "ciphersuites") == 0)
    return take_string(k, key, &cfg->ciphersuites);
  if (strcmp(key, "handshake_timeout") == 0) return take_timeout(k);
  if (strcmp(key, "self_signed") == 0) return take_self_signed(k);
  if (strcmp(key, "server_name") == 0 && cfg->client)
    return take_string(k, key, &cfg->server_name);
  return bad(k, "unknown field '%s'", key);
}

/* What the fields say together. */
static int check_whole(struct tls_check *k) {
  const struct lunet_tls_config *c = k->cfg;
  if ((c->cert == NULL) != (c->key == NULL))
    return bad(k, "'cert' and 'key' go together%s", "");
  if (c->client) return 0;
  if (c->self_signed && c->cert != NULL)
    return bad(k, "'self_signed' or 'cert' and 'key', not both%s", "");
  if (!c->self_signed && c->cert == NULL)
    return bad(k, "a service needs 'cert' and 'key' (or self_signed = "
                  "true for development)%s", "");
  if (c->verify != LUNET_TLS_VERIFY_NONE && c->ca == NULL)
    return bad(k, "verify = \"optional\" or \"require\" needs 'ca', the "
                  "certificates client certificates must chain to%s", "");
  return 0;
}

int lunet__tls_options(lua_State *L, const char *dir, int client,
                       const char *service, struct lunet_tls_config **out,
                       char *err, size_t errcap) {
  struct tls_check k = {L, dir, lunet_tls_config_new(), err, errcap};
  if (k.cfg == NULL) return snprintf(err, errcap, "tls: out of memory"), -1;
  k.cfg->client = client;
  if (client) k.cfg->verify = LUNET_TLS_VERIFY_REQUIRE;
  int r = lua_istable(L, -1) ? 0 : bad(&k, "'tls' must be a table%s", "");
  if (r == 0) {
    lua_pushnil(L);
    while (r == 0 && lua_next(L, -2) != 0) {
      r = take_field(&k);
      lua_pop(L, r == 0 ? 1 : 2);
    }
  }
  if (r == 0) r = check_whole(&k);
  /* Clients with the same settings share one context, whatever address
   * they connect to. */
  if (r == 0 && (k.cfg->service = strdup(client ? "lunet.connect" : service))
                    == NULL)
    r = bad(&k, "out of memory%s", "");
  if (r < 0) {
    lunet_tls_config_free(k.cfg);
    return -1;
  }
  lunet_tls_config_free(*out);
  *out = k.cfg;
  return 0;
}
