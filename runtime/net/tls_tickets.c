/* Session ticket keys, one set per process: tickets are encrypted with
 * the current key, and the previous one still opens them (its tickets
 * are renewed), so a rotation or a reload that rebuilds the contexts
 * never costs a client its session. Under --workers the supervisor makes
 * the keys and hands the same ones to every worker, so a client resumes
 * on whichever worker the kernel gives it. Loop thread only: OpenSSL
 * calls in here from SSL_do_handshake. */
#include "tls.h"

#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#define ROTATE_MS (12 * 3600 * 1000ULL)

struct ticket_key {
  unsigned char bytes[LUNET_TLS_TICKET_KEY_SIZE]; /* name, aes, hmac */
  int set;
};

static struct {
  struct ticket_key current, previous;
  uint64_t made_ms;  /* when the process made current; 0: not yet */
  int handed_over;   /* keys come from the supervisor, which rotates them */
} keys;

int lunet_tls_ticket_key_new(unsigned char key[LUNET_TLS_TICKET_KEY_SIZE]) {
  return RAND_bytes(key, LUNET_TLS_TICKET_KEY_SIZE) == 1 ? 0 : -1;
}

static void set_key(struct ticket_key *k, const unsigned char *bytes) {
  k->set = bytes != NULL;
  if (bytes != NULL) memcpy(k->bytes, bytes, sizeof k->bytes);
}

void lunet_tls_tickets_set(const unsigned char *current,
                           const unsigned char *previous) {
  set_key(&keys.current, current);
  set_key(&keys.previous, previous);
  keys.handed_over = 1;
}

static void rotate(uint64_t now_ms) {
  unsigned char fresh[LUNET_TLS_TICKET_KEY_SIZE];
  if (lunet_tls_ticket_key_new(fresh) < 0) return; /* keep the old one */
  keys.previous = keys.current;
  set_key(&keys.current, fresh);
  keys.made_ms = now_ms;
}

void lunet_tls_tickets_tick(uint64_t now_ms) {
  if (keys.handed_over) return;
  if (keys.current.set && keys.made_ms == 0) keys.made_ms = now_ms;
  if (!keys.current.set || now_ms - keys.made_ms >= ROTATE_MS) rotate(now_ms);
}

static int set_mac(EVP_MAC_CTX *mac, const struct ticket_key *k) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                        (void *)(k->bytes + 48), 32),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
      OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(mac, params);
}

static int encrypt_with(const struct ticket_key *k, unsigned char *name,
                        unsigned char *iv, EVP_CIPHER_CTX *cipher,
                        EVP_MAC_CTX *mac) {
  if (RAND_bytes(iv, 16) != 1) return -1;
  memcpy(name, k->bytes, 16);
  if (!EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, k->bytes + 16, iv))
    return -1;
  return set_mac(mac, k) ? 1 : -1;
}

/* 2: opened (OpenSSL then issues a fresh ticket: a TLS 1.3 client uses
 * each ticket once, so with 1 every other connection of a client that
 * always offers its newest ticket was a full handshake); 0: unknown key,
 * a full handshake follows. */
static int decrypt_with(const unsigned char *name, const unsigned char *iv,
                        EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac) {
  const struct ticket_key *k = NULL;
  if (keys.current.set && memcmp(name, keys.current.bytes, 16) == 0)
    k = &keys.current;
  else if (keys.previous.set && memcmp(name, keys.previous.bytes, 16) == 0)
    k = &keys.previous;
  if (k == NULL) return 0;
  if (!EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, k->bytes + 16, iv))
    return -1;
  return set_mac(mac, k) ? 2 : -1;
}

static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
                     EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc) {
  (void)ssl;
  if (!keys.current.set) rotate(0); /* a handshake before the first tick */
  if (!keys.current.set) return -1;
  return enc ? encrypt_with(&keys.current, name, iv, cipher, mac)
             : decrypt_with(name, iv, cipher, mac);
}

void lunet__tls_tickets_install(void *ssl_ctx) {
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ssl_ctx, ticket_cb);
}
