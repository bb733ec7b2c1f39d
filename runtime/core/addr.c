#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* Accepts 1 to 5 decimal digits up to 65535, nothing else. */
static int parse_port(const char *s, int *port) {
  int value = 0;
  size_t n = strlen(s);
  if (n == 0 || n > 5) return UV_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return UV_EINVAL;
    value = value * 10 + (s[i] - '0');
  }
  if (value > 65535) return UV_EINVAL;
  *port = value;
  return 0;
}

static int parse_ipv6(const char *text, struct sockaddr_storage *out) {
  char host[INET6_ADDRSTRLEN];
  const char *close = strchr(text, ']');
  int port;
  if (close == NULL || close[1] != ':') return UV_EINVAL;
  size_t hlen = (size_t)(close - text - 1);
  if (hlen == 0 || hlen >= sizeof host) return UV_EINVAL;
  memcpy(host, text + 1, hlen);
  host[hlen] = '\0';
  if (parse_port(close + 2, &port) < 0) return UV_EINVAL;
  return uv_ip6_addr(host, port, (struct sockaddr_in6 *)out);
}

static int parse_ipv4(const char *text, struct sockaddr_storage *out) {
  char host[INET_ADDRSTRLEN + 16];
  const char *colon = strrchr(text, ':');
  int port;
  if (colon == NULL) return UV_EINVAL;
  size_t hlen = (size_t)(colon - text);
  if (hlen >= sizeof host) return UV_EINVAL;
  memcpy(host, text, hlen);
  host[hlen] = '\0';
  if (parse_port(colon + 1, &port) < 0) return UV_EINVAL;
  if (hlen == 0 || strcmp(host, "*") == 0) strcpy(host, "0.0.0.0");
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  struct sockaddr_in *in = (struct sockaddr_in *)out;
  /* inet_pton rejects the shorthand forms ("127.1") inet_aton allows. */
  if (inet_pton(AF_INET, host, &in->sin_addr) != 1) return UV_EINVAL;
  in->sin_family = AF_INET;
  in->sin_port = htons((uint16_t)port);
  return 0;
}

int lunet_addr_parse(const char *text, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (text == NULL) return UV_EINVAL;
  if (text[0] == '[') return parse_ipv6(text, out) < 0 ? UV_EINVAL : 0;
  return parse_ipv4(text, out) < 0 ? UV_EINVAL : 0;
}

int lunet_addr_parse_n(const char *text, size_t len,
                       struct sockaddr_storage *out) {
  char copy[LUNET_ADDR_STRLEN + 16]; /* longer than any valid address */
  memset(out, 0, sizeof *out);
  if (text == NULL || len >= sizeof copy || memchr(text, '\0', len) != NULL)
    return UV_EINVAL;
  memcpy(copy, text, len);
  copy[len] = '\0';
  return lunet_addr_parse(copy, out);
}

static char *put_decimal(char *p, unsigned v) {
  char digits[8];
  int n = 0;
  do digits[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  while (n > 0) *p++ = digits[--n];
  return p;
}

/* UDP formats a peer for every datagram: IPv4 without printf. */
static int format_ipv4(const struct sockaddr_in *in, char *buf) {
  const unsigned char *a = (const unsigned char *)&in->sin_addr;
  char *p = buf;
  for (int i = 0; i < 4; i++) {
    p = put_decimal(p, a[i]);
    *p++ = i < 3 ? '.' : ':';
  }
  p = put_decimal(p, ntohs(in->sin_port));
  *p = '\0';
  return 0;
}

int lunet_addr_format(const struct sockaddr *sa, char *buf, size_t cap) {
  char host[INET6_ADDRSTRLEN];
  int n;
  if (sa->sa_family == AF_INET && cap >= sizeof "255.255.255.255:65535")
    return format_ipv4((const struct sockaddr_in *)sa, buf);
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, host, sizeof host);
    n = snprintf(buf, cap, "%s:%d", host, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, host, sizeof host);
    n = snprintf(buf, cap, "[%s]:%d", host, ntohs(in6->sin6_port));
  } else {
    return UV_EINVAL;
  }
  return n < 0 || (size_t)n >= cap ? UV_EINVAL : 0;
}

void lunet_addr_ip_key(const struct sockaddr *sa, unsigned char key[16]) {
  memset(key, 0, 16);
  if (sa->sa_family == AF_INET6) {
    memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  } else {
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  }
}
