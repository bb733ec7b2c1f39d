/* Building SSL_CTXs from a service's or a client's tls settings. Runs in
 * the thread pool on reload (see tls.h): everything here reads files and
 * parses certificates, nothing touches the loop or Lua. */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"

#define TLS_FILE_MAX (1 << 20) /* a PEM file larger than this is not one */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
/* What a modern audit (testssl.sh, Mozilla's "intermediate") accepts:
 * forward secrecy and AEAD only. TLS 1.3's suites are OpenSSL's. */
#define DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!SHA1"
#define SELF_SIGNED_DAYS 30

struct lunet_tls_config *lunet_tls_config_new(void) {
  struct lunet_tls_config *cfg = calloc(1, sizeof *cfg);
  if (cfg == NULL) return NULL;
  cfg->min_version = TLS1_2_VERSION;
  cfg->handshake_timeout_ms = 10000;
  return cfg;
}

void lunet_tls_config_free(struct lunet_tls_config *cfg) {
  if (cfg == NULL) return;
  for (int i = 0; i < cfg->nsni; i++) {
    free(cfg->sni[i].name);
    free(cfg->sni[i].cert);
    free(cfg->sni[i].key);
  }
  free(cfg->sni);
  free(cfg->cert);
  free(cfg->key);
  free(cfg->ca);
  free(cfg->alpn);
  free(cfg->ciphers);
  free(cfg->ciphersuites);
  free(cfg->server_name);
  free(cfg->service);
  free(cfg);
}

static int dup_str(char **to, const char *from) {
  *to = from != NULL ? strdup(from) : NULL;
  return from == NULL || *to != NULL;
}

struct lunet_tls_config *lunet_tls_config_copy(
    const struct lunet_tls_config *c) {
  struct lunet_tls_config *d = calloc(1, sizeof *d);
  if (d == NULL) return NULL;
  *d = *c;
  d->sni = NULL, d->nsni = 0, d->alpn = NULL, d->alpn_len = 0;
  int ok = dup_str(&d->cert, c->cert) & dup_str(&d->key, c->key) &
           dup_str(&d->ca, c->ca) & dup_str(&d->ciphers, c->ciphers) &
           dup_str(&d->ciphersuites, c->ciphersuites) &
           dup_str(&d->server_name, c->server_name) &
           dup_str(&d->service, c->service);
  if (ok && c->alpn_len && (d->alpn = malloc(c->alpn_len)) != NULL) {
    memcpy(d->alpn, c->alpn, c->alpn_len);
    d->alpn_len = c->alpn_len;
  }
  ok = ok && d->alpn_len == c->alpn_len;
  if (ok && c->nsni && (d->sni = calloc((size_t)c->nsni, sizeof *d->sni)))
    for (; d->nsni < c->nsni; d->nsni++)
      ok = ok && dup_str(&d->sni[d->nsni].name, c->sni[d->nsni].name) &&
           dup_str(&d->sni[d->nsni].cert, c->sni[d->nsni].cert) &&
           dup_str(&d->sni[d->nsni].key, c->sni[d->nsni].key);
  if (ok && d->nsni == c->nsni) return d;
  lunet_tls_config_free(d);
  return NULL;
}

/* {==================================================================
 * Errors and files
 * =================================================================== */

/* OpenSSL's reason for the last failure, and the queue emptied. */
static const char *ossl_reason(char *buf, size_t cap) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(buf, cap, "%s", r != NULL ? r : "unknown OpenSSL error");
  ERR_clear_error();
  return buf;
}

static int fail(char *err, size_t errcap, const char *path,
                const char *why) {
  snprintf(err, errcap, "tls: %s: %s", path, why);
  return -1;
}

static int fail_ossl(char *err, size_t errcap, const char *path,
                     const char *what) {
  char reason[160], why[256];
  snprintf(why, sizeof why, "%s (%s)", what, ossl_reason(reason, sizeof reason));
  return fail(err, errcap, path, why);
}

struct blob {
  char *data;
  size_t len;
};

/* Reads a whole (small) file. 0, or -1 with err naming it. */
static int read_file(const char *path, struct blob *b, char *err,
                     size_t errcap) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  b->data = NULL, b->len = 0;
  if (f == NULL) return fail(err, errcap, path, strerror(errno));
  int r = fstat(fileno(f), &st) < 0 ? fail(err, errcap, path, strerror(errno))
          : st.st_size > TLS_FILE_MAX
              ? fail(err, errcap, path, "larger than 1 MiB, not a PEM file")
          : (b->data = malloc((size_t)st.st_size + 1)) == NULL
              ? fail(err, errcap, path, "out of memory")
              : 0;
  if (r == 0) b->len = fread(b->data, 1, (size_t)st.st_size, f);
  if (r == 0 && ferror(f)) r = fail(err, errcap, path, "cannot read");
  fclose(f);
  if (r < 0) free(b->data), b->data = NULL, b->len = 0;
  return r;
}

/* }================================================================== */

/* {==================================================================
 * The digest: settings and file contents, to tell a reload what changed
 * =================================================================== */

static void digest_str(EVP_MD_CTX *md, const char *s) {
  size_t n = s != NULL ? strlen(s) + 1 : 0;
  EVP_DigestUpdate(md, &n, sizeof n);
  if (n) EVP_DigestUpdate(md, s, n);
}

static void digest_settings(EVP_MD_CTX *md, const struct lunet_tls_config *c) {
  int ints[6] = {c->client, c->verify, c->min_version, c->self_signed,
                 (int)c->handshake_timeout_ms, c->nsni};
  EVP_DigestUpdate(md, ints, sizeof ints);
  digest_str(md, c->cert);
  digest_str(md, c->key);
  digest_str(md, c->ca);
  digest_str(md, c->ciphers);
  digest_str(md, c->ciphersuites);
  digest_str(md, c->server_name);
  EVP_DigestUpdate(md, &c->alpn_len, sizeof c->alpn_len);
  if (c->alpn_len) EVP_DigestUpdate(md, c->alpn, c->alpn_len);
  for (int i = 0; i < c->nsni; i++) {
    digest_str(md, c->sni[i].name);
    digest_str(md, c->sni[i].cert);
    digest_str(md, c->sni[i].key);
  }
}

static void settings_digest(const struct lunet_tls_config *c,
                            unsigned char out[32]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned int n = 32;
  memset(out, 0, 32);
  if (md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
    digest_settings(md, c);
    EVP_DigestFinal_ex(md, out, &n);
  }
  EVP_MD_CTX_free(md);
}

int lunet_tls_config_same(const struct lunet_tls_config *a,
                          const struct lunet_tls_config *b) {
  unsigned char da[32], db[32];
  settings_digest(a, da);
  settings_digest(b, db);
  return memcmp(da, db, sizeof da) == 0 &&
         strcmp(a->service ? a->service : "", b->service ? b->service : "") ==
             0;
}

/* The files of cfg in a fixed order, read; NULL entries are absent. */
struct tls_files {
  struct blob cert, key, ca;
  struct blob *sni_cert, *sni_key;
  int nsni;
};

static void files_free(struct tls_files *f) {
  free(f->cert.data);
  free(f->key.data);
  free(f->ca.data);
  for (int i = 0; i < f->nsni; i++) {
    free(f->sni_cert[i].data);
    free(f->sni_key[i].data);
  }
  free(f->sni_cert);
  free(f->sni_key);
}

static int read_opt(const char *path, struct blob *b, char *err,
                    size_t errcap) {
  b->data = NULL, b->len = 0;
  return path != NULL ? read_file(path, b, err, errcap) : 0;
}

static int files_read(const struct lunet_tls_config *c, struct tls_files *f,
                      char *err, size_t errcap) {
  memset(f, 0, sizeof *f);
  if (read_opt(c->cert, &f->cert, err, errcap) < 0 ||
      read_opt(c->key, &f->key, err, errcap) < 0 ||
      read_opt(c->ca, &f->ca, err, errcap) < 0)
    return -1;
  f->sni_cert = calloc((size_t)c->nsni + 1, sizeof *f->sni_cert);
  f->sni_key = calloc((size_t)c->nsni + 1, sizeof *f->sni_key);
  if (f->sni_cert == NULL || f->sni_key == NULL)
    return fail(err, errcap, "tls", "out of memory");
  for (; f->nsni < c->nsni; f->nsni++)
    if (read_file(c->sni[f->nsni].cert, &f->sni_cert[f->nsni], err,
                  errcap) < 0 ||
        read_file(c->sni[f->nsni].key, &f->sni_key[f->nsni], err, errcap) < 0)
      return f->nsni++, -1;
  return 0;
}

static void digest_blob(EVP_MD_CTX *md, const struct blob *b) {
  EVP_DigestUpdate(md, &b->len, sizeof b->len);
  if (b->len) EVP_DigestUpdate(md, b->data, b->len);
}

static void digest_all(const struct lunet_tls_config *c,
                       const struct tls_files *f, unsigned char out[32]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned int n = 32;
  memset(out, 0, 32);
  if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
    EVP_MD_CTX_free(md);
    return; /* all zero: never equal to a real digest, so it rebuilds */
  }
  digest_settings(md, c);
  digest_blob(md, &f->cert);
  digest_blob(md, &f->key);
  digest_blob(md, &f->ca);
  for (int i = 0; i < f->nsni; i++) {
    digest_blob(md, &f->sni_cert[i]);
    digest_blob(md, &f->sni_key[i]);
  }
  EVP_DigestFinal_ex(md, out, &n);
  EVP_MD_CTX_free(md);
}

/* }================================================================== */

/* {==================================================================
 * Certificates and keys
 * =================================================================== */

static void format_time(const ASN1_TIME *t, char *buf, size_t cap) {
  struct tm tm;
  buf[0] = '\0';
  if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) return;
  strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Refuses a certificate that is expired or not valid yet. */
static int check_dates(X509 *x, const char *path, char *err, size_t errcap) {
  char when[64], why[128];
  if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
    format_time(X509_get0_notAfter(x), when, sizeof when);
    snprintf(why, sizeof why, "certificate expired (not_after %s)", when);
    return fail(err, errcap, path, why);
  }
  if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
    format_time(X509_get0_notBefore(x), when, sizeof when);
    snprintf(why, sizeof why, "certificate not valid yet (not_before %s)",
             when);
    return fail(err, errcap, path, why);
  }
  return 0;
}

/* The leaf, then any chain certificates after it in the same file. */
static int use_cert_chain(SSL_CTX *ctx, const struct blob *b,
                          const char *path, char *err, size_t errcap) {
  BIO *bio = BIO_new_mem_buf(b->data, (int)b->len);
  X509 *leaf = bio ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
  int r = -1;
  if (leaf == NULL) {
    fail_ossl(err, errcap, path, "no PEM certificate");
  } else if (check_dates(leaf, path, err, errcap) == 0) {
    if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
      fail_ossl(err, errcap, path, "certificate refused");
    } else {
      X509 *extra;
      r = 0;
      while ((extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) X509_free(extra);
      ERR_clear_error(); /* the end of the file reads as an error */
    }
  }
  X509_free(leaf);
  BIO_free(bio);
  return r;
}

static int use_key(SSL_CTX *ctx, const struct blob *b, const char *path,
                   const char *cert_path, char *err, size_t errcap) {
  BIO *bio = BIO_new_mem_buf(b->data, (int)b->len);
  EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
  int r = -1;
  if (key == NULL) {
    fail_ossl(err, errcap, path, "no PEM private key (or it is encrypted)");
  } else if (SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
             SSL_CTX_check_private_key(ctx) != 1) {
    char why[512];
    ERR_clear_error();
    snprintf(why, sizeof why, "key does not match the certificate %s",
             cert_path);
    fail(err, errcap, path, why);
  } else {
    r = 0;
  }
  EVP_PKEY_free(key);
  BIO_free(bio);
  return r;
}

/* PEM certificates into store (and their names, for a server to ask its
 * clients with). */
static int load_ca(SSL_CTX *ctx, const struct blob *b, const char *path,
                   int names, char *err, size_t errcap) {
  BIO *bio = BIO_new_mem_buf(b->data, (int)b->len);
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  STACK_OF(X509_NAME) *list = names ? sk_X509_NAME_new_null() : NULL;
  X509 *x;
  int n = 0;
  while (bio != NULL && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
    X509_STORE_add_cert(store, x);
    if (list != NULL) {
      X509_NAME *name = X509_NAME_dup(X509_get_subject_name(x));
      if (name != NULL && !sk_X509_NAME_push(list, name)) X509_NAME_free(name);
    }
    X509_free(x);
    n++;
  }
  ERR_clear_error();
  BIO_free(bio);
  if (list != NULL) SSL_CTX_set_client_CA_list(ctx, list);
  return n > 0 ? 0 : fail(err, errcap, path, "no PEM certificate in it");
}

/* }================================================================== */

/* {==================================================================
 * A self-signed certificate for localhost, made in memory
 * =================================================================== */

static int add_ext(X509 *x, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  int ok = ext != NULL && X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

static X509 *self_signed_cert(EVP_PKEY *key) {
  X509 *x = X509_new();
  X509_NAME *name;
  unsigned char serial[16];
  BIGNUM *bn = NULL;
  int ok = x != NULL && RAND_bytes(serial, sizeof serial) == 1;
  serial[0] &= 0x7f; /* positive */
  ok = ok && (bn = BN_bin2bn(serial, sizeof serial, NULL)) != NULL &&
       BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL &&
       X509_set_version(x, 2) && X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
       X509_gmtime_adj(X509_getm_notAfter(x), 86400L * SELF_SIGNED_DAYS) &&
       X509_set_pubkey(x, key) && (name = X509_get_subject_name(x)) != NULL &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  (const unsigned char *)"localhost", -1, -1,
                                  0) &&
       X509_set_issuer_name(x, name) &&
       add_ext(x, NID_subject_alt_name,
               "DNS:localhost,IP:127.0.0.1,IP:::1") &&
       add_ext(x, NID_basic_constraints, "critical,CA:FALSE") &&
       X509_sign(x, key, EVP_sha256()) > 0;
  BN_free(bn);
  if (!ok) X509_free(x);
  return ok ? x : NULL;
}

static int use_self_signed(SSL_CTX *ctx, char *err, size_t errcap) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = key != NULL ? self_signed_cert(key) : NULL;
  int ok = x != NULL && SSL_CTX_use_certificate(ctx, x) == 1 &&
           SSL_CTX_use_PrivateKey(ctx, key) == 1;
  X509_free(x);
  EVP_PKEY_free(key);
  return ok ? 0 : fail_ossl(err, errcap, "self_signed", "cannot make one");
}

/* }================================================================== */

/* {==================================================================
 * Contexts
 * =================================================================== */

/* SNI: the certificate for the name the client asked for, or the
 * default. A name "*.example.org" matches one label under it. */
static SSL_CTX *sni_find(const struct lunet_tls_ctx *t, const char *name) {
  const char *dot = strchr(name, '.');
  for (int i = 0; i < t->nsni; i++) {
    const char *n = t->sni[i].name;
    if (strcasecmp(n, name) == 0) return t->sni[i].ssl_ctx;
    if (n[0] == '*' && n[1] == '.' && dot != NULL &&
        strcasecmp(n + 1, dot) == 0)
      return t->sni[i].ssl_ctx;
  }
  return NULL;
}

static int sni_cb(SSL *ssl, int *alert, void *arg) {
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  SSL_CTX *ctx = name != NULL ? sni_find(arg, name) : NULL;
  (void)alert;
  if (ctx != NULL) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

/* ALPN: the first of the server's names that the client offers. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  const struct lunet_tls_ctx *t = arg;
  (void)ssl;
  for (size_t i = 0; i < t->alpn_len; i += 1u + t->alpn[i])
    for (unsigned j = 0; j < inlen; j += 1u + in[j])
      if (in[j] == t->alpn[i] && j + 1u + in[j] <= inlen &&
          memcmp(in + j + 1, t->alpn + i + 1, in[j]) == 0) {
        *out = in + j + 1, *outlen = in[j];
        return SSL_TLSEXT_ERR_OK;
      }
  return SSL_TLSEXT_ERR_NOACK; /* no protocol in common: go on without */
}

static SSL_CTX *ctx_new(const struct lunet_tls_config *c, char *err,
                        size_t errcap) {
  SSL_CTX *ctx = SSL_CTX_new(c->client ? TLS_client_method()
                                       : TLS_server_method());
  const char *where = c->service != NULL ? c->service : "tls";
  if (ctx == NULL) return fail_ossl(err, errcap, where, "SSL_CTX_new"), NULL;
  SSL_CTX_set_min_proto_version(ctx, c->min_version);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  /* An idle conn holds no record buffers (~34 KiB otherwise). */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, c->ciphers ? c->ciphers
                                              : DEFAULT_CIPHERS) != 1 ||
      (c->ciphersuites != NULL &&
       SSL_CTX_set_ciphersuites(ctx, c->ciphersuites) != 1)) {
    SSL_CTX_free(ctx);
    fail_ossl(err, errcap, where, "ciphers or ciphersuites not understood");
    return NULL;
  }
  if (!c->client) {
    /* Stateless tickets only: no per-process session cache to share. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    lunet__tls_tickets_install(ctx);
  }
  return ctx;
}

/* A certificate and its key, or the generated one. */
static int use_pair(SSL_CTX *ctx, const struct blob *cert,
                    const char *cert_path, const struct blob *key,
                    const char *key_path, char *err, size_t errcap) {
  if (use_cert_chain(ctx, cert, cert_path, err, errcap) < 0) return -1;
  return use_key(ctx, key, key_path, cert_path, err, errcap);
}

static void describe_cert(struct lunet_tls_ctx *t) {
  X509 *x = SSL_CTX_get0_certificate(t->ssl_ctx);
  if (x == NULL) return;
  X509_NAME_oneline(X509_get_subject_name(x), t->subject, sizeof t->subject);
  format_time(X509_get0_notAfter(x), t->not_after, sizeof t->not_after);
  struct tm tm;
  if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm)) t->not_after_t = timegm(&tm);
}

static int server_setup(struct lunet_tls_ctx *t,
                        const struct lunet_tls_config *c,
                        const struct tls_files *f, char *err, size_t errcap) {
  SSL_CTX *ctx = t->ssl_ctx;
  int r = c->self_signed
              ? use_self_signed(ctx, err, errcap)
              : use_pair(ctx, &f->cert, c->cert, &f->key, c->key, err, errcap);
  if (r < 0) return -1;
  if (c->ca != NULL && load_ca(ctx, &f->ca, c->ca, 1, err, errcap) < 0)
    return -1;
  int mode = c->verify == LUNET_TLS_VERIFY_REQUIRE
                 ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
             : c->verify == LUNET_TLS_VERIFY_OPTIONAL ? SSL_VERIFY_PEER
                                                      : SSL_VERIFY_NONE;
  SSL_CTX_set_verify(ctx, mode, NULL);
  if (t->alpn_len) SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, t);
  if (c->nsni) SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
  if (c->nsni) SSL_CTX_set_tlsext_servername_arg(ctx, t);
  return 0;
}

static int sni_setup(struct lunet_tls_ctx *t, const struct lunet_tls_config *c,
                     const struct tls_files *f, char *err, size_t errcap) {
  t->sni = calloc((size_t)c->nsni, sizeof *t->sni);
  if (c->nsni && t->sni == NULL) return fail(err, errcap, "tls", "no memory");
  for (; t->nsni < c->nsni; t->nsni++) {
    struct lunet_tls_sni_ctx *s = &t->sni[t->nsni];
    if ((s->name = strdup(c->sni[t->nsni].name)) == NULL ||
        (s->ssl_ctx = ctx_new(c, err, errcap)) == NULL)
      return t->nsni++, -1;
    if (use_pair(s->ssl_ctx, &f->sni_cert[t->nsni], c->sni[t->nsni].cert,
                 &f->sni_key[t->nsni], c->sni[t->nsni].key, err, errcap) < 0)
      return t->nsni++, -1;
    SSL_CTX_set_verify(s->ssl_ctx, SSL_CTX_get_verify_mode(t->ssl_ctx), NULL);
    if (t->alpn_len) SSL_CTX_set_alpn_select_cb(s->ssl_ctx, alpn_cb, t);
  }
  return 0;
}

static int client_setup(struct lunet_tls_ctx *t,
                        const struct lunet_tls_config *c,
                        const struct tls_files *f, char *err, size_t errcap) {
  SSL_CTX *ctx = t->ssl_ctx;
  if (c->cert != NULL &&
      use_pair(ctx, &f->cert, c->cert, &f->key, c->key, err, errcap) < 0)
    return -1;
  if (c->ca != NULL) {
    if (load_ca(ctx, &f->ca, c->ca, 0, err, errcap) < 0) return -1;
  } else if (c->verify &&
             X509_STORE_load_file(SSL_CTX_get_cert_store(ctx),
                                  SYSTEM_CA_FILE) != 1) {
    return fail_ossl(err, errcap, SYSTEM_CA_FILE, "the system CA store");
  }
  SSL_CTX_set_verify(ctx, c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (t->alpn_len &&
      SSL_CTX_set_alpn_protos(ctx, t->alpn, (unsigned)t->alpn_len) != 0)
    return fail_ossl(err, errcap, "tls", "alpn");
  return 0;
}

static int ctx_fill(struct lunet_tls_ctx *t, const struct lunet_tls_config *c,
                    const struct tls_files *f, char *err, size_t errcap) {
  t->refs = 1;
  t->client = c->client;
  t->verify = c->verify;
  t->handshake_timeout_ms = c->handshake_timeout_ms;
  if (c->alpn_len) {
    if ((t->alpn = malloc(c->alpn_len)) == NULL)
      return fail(err, errcap, "tls", "out of memory");
    memcpy(t->alpn, c->alpn, c->alpn_len);
    t->alpn_len = c->alpn_len;
  }
  if (c->server_name != NULL && (t->server_name = strdup(c->server_name)) ==
                                    NULL)
    return fail(err, errcap, "tls", "out of memory");
  if ((t->ssl_ctx = ctx_new(c, err, errcap)) == NULL) return -1;
  if (c->client) return client_setup(t, c, f, err, errcap);
  if (server_setup(t, c, f, err, errcap) < 0) return -1;
  if (sni_setup(t, c, f, err, errcap) < 0) return -1;
  describe_cert(t);
  return 0;
}

struct lunet_tls_ctx *lunet_tls_build(const struct lunet_tls_config *cfg,
                                      const unsigned char *prev_digest,
                                      int *unchanged, char *err,
                                      size_t errcap) {
  struct tls_files f;
  unsigned char digest[32];
  struct lunet_tls_ctx *t = NULL;
  *unchanged = 0;
  if (files_read(cfg, &f, err, errcap) == 0) {
    digest_all(cfg, &f, digest);
    if (prev_digest != NULL &&
        memcmp(prev_digest, digest, sizeof digest) == 0) {
      *unchanged = 1;
    } else if ((t = calloc(1, sizeof *t)) == NULL) {
      fail(err, errcap, "tls", "out of memory");
    } else if (ctx_fill(t, cfg, &f, err, errcap) < 0) {
      t->refs = 1;
      lunet_tls_ctx_unref(t);
      t = NULL;
    } else {
      memcpy(t->digest, digest, sizeof digest);
    }
  }
  files_free(&f);
  ERR_clear_error(); /* this thread's queue, for the next build */
  return t;
}

struct lunet_tls_ctx *lunet_tls_ctx_ref(struct lunet_tls_ctx *t) {
  if (t != NULL) t->refs++;
  return t;
}

void lunet_tls_ctx_unref(struct lunet_tls_ctx *t) {
  if (t == NULL || --t->refs > 0) return;
  for (int i = 0; i < t->nsni; i++) {
    free(t->sni[i].name);
    SSL_CTX_free(t->sni[i].ssl_ctx);
  }
  free(t->sni);
  SSL_CTX_free(t->ssl_ctx);
  free(t->alpn);
  free(t->server_name);
  free(t);
}

/* }================================================================== */

/* {==================================================================
 * Log records
 * =================================================================== */

#define EXPIRY_WARN_S (14 * 86400)
#define EXPIRY_CHECK_MS (86400 * 1000ULL)

static void warn_if_expiring(const struct lunet_tls_ctx *t,
                             const char *service) {
  if (t->not_after_t == 0 || t->not_after_t - time(NULL) > EXPIRY_WARN_S)
    return;
  lunet_log(LUNET_LOG_WARN, "tls certificate expires within 14 days",
            "service", service, "subject", t->subject, "not_after",
            t->not_after, NULL);
}

static void fingerprint(const struct lunet_tls_ctx *t, char *out,
                        size_t cap) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509 *x = SSL_CTX_get0_certificate(t->ssl_ctx);
  out[0] = '\0';
  if (x == NULL || !X509_digest(x, EVP_sha256(), md, &n)) return;
  for (unsigned i = 0; i < n && 3 * i + 3 <= cap; i++)
    snprintf(out + 3 * i, cap - 3 * i, i + 1 < n ? "%02X:" : "%02X", md[i]);
}

void lunet_tls_log_loaded(const struct lunet_tls_ctx *t,
                          const char *service) {
  char sha256[3 * EVP_MAX_MD_SIZE + 1];
  if (t->client) return;
  fingerprint(t, sha256, sizeof sha256);
  lunet_log(LUNET_LOG_INFO, "tls certificate loaded", "service", service,
            "subject", t->subject, "not_after", t->not_after, "sha256", sha256,
            NULL);
  warn_if_expiring(t, service);
}

void lunet_tls_check_expiry(struct lunet_tls_ctx *t, const char *service,
                            uint64_t now_ms) {
  if (t->expiry_checked_ms == 0) t->expiry_checked_ms = now_ms;
  if (now_ms - t->expiry_checked_ms < EXPIRY_CHECK_MS) return;
  t->expiry_checked_ms = now_ms;
  warn_if_expiring(t, service);
}

/* }================================================================== */
