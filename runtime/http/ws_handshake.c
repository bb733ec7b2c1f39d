/* The opening handshake's pure parts (ws_handshake.h). SHA-1 is
 * OpenSSL's (already linked for TLS); base64 is ours, since the only
 * values ever coded are 16- and 20-byte strings. */
#include "ws_handshake.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>

/* RFC 6455 1.3: appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of n bytes into out, "=" padded, NUL terminated; returns the
 * length written. out must hold 4 * ((n + 2) / 3) + 1 bytes. */
static size_t b64_encode(const unsigned char *in, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
  }
  out[o] = '\0';
  return o;
}

static int b64_char(char c) {
  return c && strchr(b64_alphabet, c) != NULL;
}

/* 16 bytes are 22 base64 characters and "==". The two bits the last
 * character carries past the 128 are not required to be zero: any
 * decoder yields 16 bytes from it, and refusing would only break an odd
 * client without protecting anything. */
int lunet_ws_key_valid(const char *key, size_t len) {
  if (len != 24 || key[22] != '=' || key[23] != '=') return 0;
  for (size_t i = 0; i < 22; i++)
    if (!b64_char(key[i])) return 0;
  return 1;
}

void lunet_ws_accept(const char *key, size_t len, char out[29]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned md_len = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
           EVP_DigestUpdate(ctx, key, len) &&
           EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) &&
           EVP_DigestFinal_ex(ctx, md, &md_len) && md_len == 20;
  EVP_MD_CTX_free(ctx);
  if (!ok) memset(md, 0, 20); /* cannot match any real accept value */
  b64_encode(md, 20, out);
}

static int random_bytes(unsigned char *b, size_t n) {
  while (n > 0) {
    ssize_t r = getrandom(b, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    b += r;
    n -= (size_t)r;
  }
  return 0;
}

int lunet_ws_client_key(char out[25]) {
  unsigned char raw[16];
  if (random_bytes(raw, sizeof raw) < 0) return -1;
  b64_encode(raw, sizeof raw, out);
  return 0;
}

int lunet_ws_accept_check(const char *key, const char *accept,
                          size_t accept_len) {
  char want[29];
  lunet_ws_accept(key, strlen(key), want);
  return accept_len == 28 && memcmp(want, accept, 28) == 0;
}

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* 1 if the comma-separated list names tok exactly (blanks around each
 * element ignored, case kept: subprotocol names are tokens). */
static int list_has(const char *list, size_t len, const char *tok) {
  size_t tok_len = strlen(tok), i = 0;
  while (i <= len) {
    size_t start = i, end;
    while (i < len && list[i] != ',') i++;
    end = i++;
    while (start < end && is_blank(list[start])) start++;
    while (end > start && is_blank(list[end - 1])) end--;
    if (end - start == tok_len && tok_len > 0 &&
        memcmp(list + start, tok, tok_len) == 0)
      return 1;
  }
  return 0;
}

int lunet_ws_pick_protocol(const char *offered, size_t len,
                           const char *const *ours, int n) {
  for (int i = 0; i < n; i++)
    if (list_has(offered, len, ours[i])) return i;
  return -1;
}
