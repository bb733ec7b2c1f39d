/* Unit tests for runtime/core/addr.c: lunet_addr_parse and lunet_addr_format.
 * Every input is placed against a guard page, and every prefix of every
 * valid address is fed too (picohttpparser style). The last section binds
 * real libuv handles to parsed addresses and ends with the loop closed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/un.h>
#include <uv.h>

#include "addr.h"
#include "check.h"

/* Parses text placed against a guard page. */
static int parse_guarded(const char *text, size_t n,
                         struct sockaddr_storage *out) {
  struct guard g;
  int r = lunet_addr_parse(guard_strndup(&g, text, n), out);
  guard_free(&g);
  return r;
}

static int parse(const char *text, struct sockaddr_storage *out) {
  return parse_guarded(text, strlen(text), out);
}

static int same_addr(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return 0;
}

/* {==================================================================
 * Valid addresses
 * =================================================================== */

struct valid_case {
  const char *text;
  int family;
  const char *host; /* as inet_pton spells it */
  int port;
  const char *formatted;
};

static const struct valid_case valid[] = {
    {"127.0.0.1:80", AF_INET, "127.0.0.1", 80, "127.0.0.1:80"},
    {"0.0.0.0:0", AF_INET, "0.0.0.0", 0, "0.0.0.0:0"},
    {"*:7000", AF_INET, "0.0.0.0", 7000, "0.0.0.0:7000"},
    {":7000", AF_INET, "0.0.0.0", 7000, "0.0.0.0:7000"},
    {"localhost:1", AF_INET, "127.0.0.1", 1, "127.0.0.1:1"},
    {"[::1]:8080", AF_INET6, "::1", 8080, "[::1]:8080"},
    {"[::]:0", AF_INET6, "::", 0, "[::]:0"},
    {"255.255.255.255:65535", AF_INET, "255.255.255.255", 65535,
     "255.255.255.255:65535"},
    {"10.0.0.1:00080", AF_INET, "10.0.0.1", 80, "10.0.0.1:80"},
    {"[fe80::1:2]:443", AF_INET6, "fe80::1:2", 443, "[fe80::1:2]:443"},
    {"[::ffff:1.2.3.4]:9", AF_INET6, "::ffff:1.2.3.4", 9, "[::ffff:1.2.3.4]:9"},
    {"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", AF_INET6,
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
};
#define NVALID (sizeof valid / sizeof valid[0])

static void check_valid(const struct valid_case *c) {
  struct sockaddr_storage ss, back;
  char text[LUNET_ADDR_STRLEN];
  CHECK_SCOPE();
  CHECK_INT(parse(c->text, &ss), 0);
  CHECK_INT(ss.ss_family, c->family);
  if (c->family == AF_INET) {
    const struct sockaddr_in *in = (const void *)&ss;
    struct in_addr want;
    CHECK_INT(inet_pton(AF_INET, c->host, &want), 1);
    CHECK(in->sin_addr.s_addr == want.s_addr);
    CHECK_INT(ntohs(in->sin_port), c->port);
  } else {
    const struct sockaddr_in6 *in6 = (const void *)&ss;
    struct in6_addr want;
    CHECK_INT(inet_pton(AF_INET6, c->host, &want), 1);
    CHECK(memcmp(&in6->sin6_addr, &want, sizeof want) == 0);
    CHECK_INT(ntohs(in6->sin6_port), c->port);
  }
  CHECK_INT(lunet_addr_format((struct sockaddr *)&ss, text, sizeof text), 0);
  CHECK_STR(text, c->formatted);
  /* The formatted text is itself valid input naming the same address. */
  CHECK_INT(parse(text, &back), 0);
  CHECK(same_addr(&ss, &back));
  CHECK_NOTE("valid address \"%s\"", c->text);
}

/* Every prefix must be handled safely. A prefix is valid exactly when it
 * keeps the whole host and at least one port digit, since each shorter run
 * of port digits is still a port <= 65535. */
static void check_prefixes(const char *text) {
  struct sockaddr_storage ss;
  size_t n = strlen(text);
  size_t sep = (size_t)(strrchr(text, ':') - text);
  size_t nvalid = 0;
  for (size_t len = 0; len <= n; len++) {
    CHECK_SCOPE();
    int r = parse_guarded(text, len, &ss);
    CHECK(r == 0 || r == UV_EINVAL);
    CHECK_INT(r == 0, len > sep + 1);
    nvalid += r == 0;
    CHECK_NOTE("prefix %zu of \"%s\"", len, text);
  }
  CHECK_INT(nvalid, n - sep - 1);
}

/* }================================================================== */

/* {==================================================================
 * Invalid addresses
 * =================================================================== */

static const char *const invalid[] = {
    "",
    "127.0.0.1",
    "127.0.0.1:",
    "127.0.0.1:65536",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    "127.0.0.1:+80",
    "127.0.0.1: 80",
    "127.0.0.1:80 ",
    " 127.0.0.1:80",
    "127.0.0.1:8x",
    "127.0.0.1:0x50",
    "127.1:80",
    "1.2.3.4.5:80",
    "1.2.3:80",
    "256.0.0.1:80",
    "::1:80",
    "::1",
    "[::1]80",
    "[::1]:",
    "[::1]",
    "[::1",
    "[::1]:80]",
    "[::1]:65536",
    "[::1]:8x",
    "[]:80",
    "[zz::1]:80",
    "[1.2.3.4]:80",
    "[::1::2]:80",
    "[*]:80",
    "[localhost]:80",
    "example.com:80",
    "localhost",
    "localhost:",
    "*",
    "*:",
    "1.2.3.4:123456",
    "1.2.3.4:00000080",
    ":",
    "[",
    "]",
    "[]",
    "]:80",
};
#define NINVALID (sizeof invalid / sizeof invalid[0])

/* Long inputs: must be rejected without reading past their end or
 * overflowing the parser's fixed host buffers. */
static void check_long_inputs(void) {
  enum { N = 4096 };
  static char s[N + 1];
  struct sockaddr_storage ss;
  uint32_t x = 0x2545f491u; /* xorshift: the same garbage every run */
  for (size_t i = 0; i < N; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = (char)(x % 255 + 1); /* any byte but NUL */
  }
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
  s[0] = '['; /* the same garbage through the IPv6 path */
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
  memset(s, ':', N);
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
  s[0] = '[';
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
  memcpy(s + N - 4, "]:80", 4); /* long bracketed host, valid port */
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
  memset(s, '1', N);
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
  s[N - 3] = ':'; /* long host, valid port */
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
  memcpy(s, "1.2.3.4:", 8); /* valid host, 4088-digit port */
  s[N - 3] = '1';
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
  memcpy(s, "[::1]:", 6);
  CHECK_INT(parse_guarded(s, N, &ss), UV_EINVAL);
}

/* }================================================================== */

/* {==================================================================
 * Formatting
 * =================================================================== */

/* The text must fit exactly: cap = strlen + 1 succeeds, one less fails and
 * neither writes past cap (the buffer ends at a guard page). */
static void check_format_caps(const char *text) {
  struct sockaddr_storage ss;
  struct guard g;
  size_t n = strlen(text);
  CHECK_INT(parse(text, &ss), 0);
  for (size_t cap = 0; cap <= n + 1; cap++) {
    CHECK_SCOPE();
    char *buf = guard_alloc(&g, cap);
    int r = lunet_addr_format((struct sockaddr *)&ss, buf, cap);
    CHECK_INT(r, cap == n + 1 ? 0 : UV_EINVAL);
    if (r == 0) CHECK_STR(buf, text);
    guard_free(&g);
    CHECK_NOTE("format \"%s\" with cap %zu", text, cap);
  }
}

static void check_format_unknown_family(void) {
  struct sockaddr_un un;
  struct sockaddr_storage ss;
  char buf[LUNET_ADDR_STRLEN];
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  CHECK_INT(lunet_addr_format((struct sockaddr *)&un, buf, sizeof buf),
            UV_EINVAL);
  memset(&ss, 0, sizeof ss); /* AF_UNSPEC, what a failed parse leaves */
  CHECK_INT(lunet_addr_format((struct sockaddr *)&ss, buf, sizeof buf),
            UV_EINVAL);
}

/* }================================================================== */

/* {==================================================================
 * With a real loop: bind to port 0, read the kernel's choice back with
 * getsockname, and check it formats and parses back to the same address.
 * =================================================================== */

static int close_cb_called;

static void close_cb(uv_handle_t *handle) {
  (void)handle;
  close_cb_called++;
}

/* Returns 1 if the handle was bound, 0 if the family is unavailable. */
static int bind_and_roundtrip(uv_loop_t *loop, uv_tcp_t *tcp, const char *text,
                              const char *host_prefix) {
  struct sockaddr_storage ss, bound, back;
  int len = sizeof bound;
  char buf[LUNET_ADDR_STRLEN];
  CHECK_SCOPE();
  CHECK_INT(uv_tcp_init(loop, tcp), 0);
  CHECK_INT(parse(text, &ss), 0);
  int r = uv_tcp_bind(tcp, (struct sockaddr *)&ss, 0);
  if (r == UV_EADDRNOTAVAIL || r == UV_EAFNOSUPPORT) {
    fprintf(stderr, "note: cannot bind %s (%s); skipped\n", text,
            uv_err_name(r));
    return 0;
  }
  CHECK_INT(r, 0);
  CHECK_INT(uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &len), 0);
  CHECK_INT(lunet_addr_format((struct sockaddr *)&bound, buf, sizeof buf), 0);
  CHECK(strncmp(buf, host_prefix, strlen(host_prefix)) == 0);
  CHECK(strcmp(buf + strlen(host_prefix), "0") != 0); /* a real port */
  CHECK_INT(parse(buf, &back), 0);
  CHECK(same_addr(&bound, &back));
  CHECK_NOTE("bind %s, got %s", text, buf);
  return 1;
}

static void check_with_loop(void) {
  uv_loop_t loop;
  uv_tcp_t tcp4, tcp6;
  CHECK_INT(uv_loop_init(&loop), 0);
  bind_and_roundtrip(&loop, &tcp4, "127.0.0.1:0", "127.0.0.1:");
  bind_and_roundtrip(&loop, &tcp6, "[::1]:0", "[::1]:");
  uv_close((uv_handle_t *)&tcp4, close_cb);
  uv_close((uv_handle_t *)&tcp6, close_cb);
  CHECK_INT(close_cb_called, 0); /* never from inside uv_close */
  CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
  CHECK_INT(close_cb_called, 2);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* }================================================================== */

/* lunet_addr_parse_n reads len bytes (a Lua string's), placed here against
 * a guard page with no NUL after them: a valid address parses to what
 * lunet_addr_parse gives, and a NUL put at any place inside it, or after
 * it, makes it invalid instead of ending it there. */
static void check_parse_n(const char *text) {
  struct sockaddr_storage want, got;
  struct guard g;
  size_t n = strlen(text);
  CHECK_SCOPE();
  CHECK(n + 2 <= LUNET_ADDR_STRLEN + 2);
  if (n + 2 > LUNET_ADDR_STRLEN + 2) return;
  CHECK_INT(lunet_addr_parse(text, &want), 0);
  char *p = guard_alloc(&g, n);
  memcpy(p, text, n);
  CHECK_INT(lunet_addr_parse_n(p, n, &got), 0);
  CHECK(same_addr(&want, &got));
  guard_free(&g);
  for (size_t at = 0; at <= n; at++) {
    char with_nul[LUNET_ADDR_STRLEN + 2];
    memcpy(with_nul, text, at);
    with_nul[at] = '\0';
    memcpy(with_nul + at + 1, text + at, n - at);
    CHECK_INT(lunet_addr_parse_n(with_nul, n + 1, &got), UV_EINVAL);
  }
  CHECK_INT(lunet_addr_parse_n(NULL, 0, &got), UV_EINVAL);
  CHECK_NOTE("lunet_addr_parse_n of \"%s\"", text);
}

/* IP keys (connection and rate limits): port ignored, IPv4 mapped. */
static void check_ip_key(void) {
  struct sockaddr_storage a, b, c;
  unsigned char ka[16], kb[16], kc[16];
  static const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0xff, 0xff, 127, 0, 0, 1};
  CHECK_INT(lunet_addr_parse("127.0.0.1:80", &a), 0);
  CHECK_INT(lunet_addr_parse("127.0.0.1:81", &b), 0);
  CHECK_INT(lunet_addr_parse("[::1]:80", &c), 0);
  lunet_addr_ip_key((struct sockaddr *)&a, ka);
  lunet_addr_ip_key((struct sockaddr *)&b, kb);
  lunet_addr_ip_key((struct sockaddr *)&c, kc);
  CHECK(memcmp(ka, mapped, 16) == 0);
  CHECK(memcmp(ka, kb, 16) == 0);
  CHECK(memcmp(ka, kc, 16) != 0);
  CHECK(kc[15] == 1 && kc[10] == 0);
}

int main(void) {
  check_ip_key();
  struct sockaddr_storage ss;
  size_t nrejected = 0;
  for (size_t i = 0; i < NVALID; i++) {
    check_valid(&valid[i]);
    check_parse_n(valid[i].text);
    check_prefixes(valid[i].text);
    check_format_caps(valid[i].formatted);
  }
  for (size_t i = 0; i < NINVALID; i++) {
    CHECK_SCOPE();
    int r = parse(invalid[i], &ss);
    CHECK_INT(r, UV_EINVAL);
    nrejected += r == UV_EINVAL;
    CHECK_NOTE("invalid address \"%s\"", invalid[i]);
  }
  CHECK_INT(nrejected, NINVALID);
  CHECK_INT(lunet_addr_parse(NULL, &ss), UV_EINVAL);
  check_long_inputs();
  check_format_unknown_family();
  check_with_loop();
  CHECK_DONE();
}
