/* Socket address text forms: "IPv4:port", "[IPv6]:port", "*:port". */
#ifndef LUNET_ADDR_H
#define LUNET_ADDR_H

#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* A peer's address as accept and getpeername give it: IPv4 or IPv6. */
union lunet_sockaddr {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
};

/* Longest text lunet_addr_format writes: "[" IPv6 "]:" port, NUL. */
#define LUNET_ADDR_STRLEN 56

/* Parses numeric addresses only, so no DNS lookup can block the loop.
 * "*" and an empty host mean 0.0.0.0; "localhost" means 127.0.0.1.
 * Returns 0 or UV_EINVAL. */
int lunet_addr_parse(const char *text, struct sockaddr_storage *out);

/* The same for len bytes that need not end in a NUL (a Lua string): a NUL
 * among them makes the text invalid, never its end. */
int lunet_addr_parse_n(const char *text, size_t len,
                       struct sockaddr_storage *out);

/* Writes "1.2.3.4:80" or "[::1]:80"; returns 0 or UV_EINVAL. */
int lunet_addr_format(const struct sockaddr *sa, char *buf, size_t cap);

/* The 16-byte key of sa's IP address (port ignored), IPv4 as an
 * IPv4-mapped IPv6 address so both families share one key shape. */
void lunet_addr_ip_key(const struct sockaddr *sa, unsigned char key[16]);

#endif
