/* The opening handshake of RFC 6455 (section 4): the key checks and the
 * accept value of the server's side, the key and the check of the
 * client's, and the choice of a subprotocol. Pure functions. */
#ifndef LUNET_WS_HANDSHAKE_H
#define LUNET_WS_HANDSHAKE_H

#include <stddef.h>

/* 1 if a Sec-WebSocket-Key value is base64 of exactly 16 bytes. */
int lunet_ws_key_valid(const char *key, size_t len);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + GUID)), 28 characters
 * and a NUL into out. */
void lunet_ws_accept(const char *key, size_t len, char out[29]);

/* A fresh client key (16 random bytes from the OS's CSPRNG, base64): 24
 * characters and a NUL. 0, or -1 when no random bytes could be had. */
int lunet_ws_client_key(char out[25]);

/* 1 if the server's Sec-WebSocket-Accept value matches our key. */
int lunet_ws_accept_check(const char *key, const char *accept,
                          size_t accept_len);

/* The first of our protocols (in our order) that the client's
 * Sec-WebSocket-Protocol list (comma separated, spaces ignored) names;
 * returns its index in ours, or -1 for none. */
int lunet_ws_pick_protocol(const char *offered, size_t len,
                           const char *const *ours, int n);

#endif
