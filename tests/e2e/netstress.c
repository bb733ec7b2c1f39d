/* netstress: blocking loopback clients for the memory e2e tests
 * (tests/e2e/memory_spec.lua) and `scripts/bench churn`.
 *
 *   netstress churn ADDR N [MSG]  N times: connect, send MSG (default
 *                             "x"), read as many bytes back, close.
 *                             Prints "done N".
 *   netstress http ADDR N     N times: connect, GET / with Connection:
 *                             close, read to EOF, check for a 200.
 *   netstress abort ADDR N K  N times: connect, read K bytes, reset
 *                             (SO_LINGER 0). Prints "done N".
 *   netstress httpabort ADDR N K [PATH]  N times: connect, GET PATH
 *                             (default /big), read K bytes of the
 *                             response, check it is a 200, reset.
 *   netstress stall ADDR N K [PATH]  opens N conns, (with PATH: sends
 *                             GET PATH on each,) reads K bytes on each,
 *                             then reads nothing more: prints "stalled N"
 *                             and holds them until killed (at most 60 s).
 *
 * churn, http, abort and httpabort also print "at N" after every 10,000 conns, for
 * whoever samples the server meanwhile (scripts/bench churn).
 * ADDR is IPv4:PORT. Every socket has a 10 s timeout, so a run always ends.
 * Exit 0, or 1 with the failing step on stderr, 2 on bad usage. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in target;

static int die(const char *what, long i) {
  fprintf(stderr, "netstress: %s at %ld: %s\n", what, i, strerror(errno));
  exit(1);
}

static int parse_addr(const char *s) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (colon == NULL || (size_t)(colon - s) >= sizeof host) return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  target.sin_family = AF_INET;
  target.sin_port = htons((unsigned short)atoi(colon + 1));
  return inet_pton(AF_INET, host, &target.sin_addr) == 1 ? 0 : -1;
}

static void progress(long i) {
  if (i > 0 && i % 10000 == 0) printf("at %ld\n", i);
}

static int dial(long i) {
  progress(i);
  struct timeval tv = {10, 0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket", i);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0)
    die("connect", i);
  return fd;
}

static void read_exactly(int fd, size_t k, long i) {
  char buf[65536];
  while (k > 0) {
    ssize_t r = read(fd, buf, k < sizeof buf ? k : sizeof buf);
    if (r <= 0) die(r == 0 ? "early eof" : "read", i);
    k -= (size_t)r;
  }
}

static void churn(long n, const char *msg) {
  size_t len = strlen(msg);
  for (long i = 0; i < n; i++) {
    int fd = dial(i);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (write(fd, msg, len) != (ssize_t)len) die("write", i);
    read_exactly(fd, len, i);
    close(fd);
  }
  printf("done %ld\n", n);
}

/* One HTTP/1.1 request with Connection: close per conn, read to EOF. */
static void http_churn(long n) {
  static const char req[] =
      "GET / HTTP/1.1\r\nHost: netstress\r\n"
      "Connection: close\r\n\r\n";
  char buf[4096];
  for (long i = 0; i < n; i++) {
    int fd = dial(i);
    size_t got = 0;
    ssize_t r;
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
      die("write", i);
    while ((r = read(fd, buf + got, sizeof buf - got)) > 0)
      if ((got += (size_t)r) == sizeof buf) got = 12; /* keep the status */
    if (r < 0 || got < 12 || memcmp(buf, "HTTP/1.1 200", 12) != 0)
      die("not a 200 response", i);
    close(fd);
  }
  printf("done %ld\n", n);
}

static void abort_reads(long n, size_t k) {
  struct linger lg = {1, 0};
  for (long i = 0; i < n; i++) {
    int fd = dial(i);
    read_exactly(fd, k, i);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd); /* RST, the rest of the download unread */
  }
  printf("done %ld\n", n);
}

/* Sends GET path on fd and reads k bytes of the answer (status line and
 * headers count), checking it is a 200. */
static void get_start(int fd, const char *path, size_t k, long i) {
  char req[512], status[12];
  int len = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: netstress\r\n\r\n", path);
  if (len < 0 || (size_t)len >= sizeof req || k < sizeof status) {
    fprintf(stderr, "netstress: path too long or K < 12\n");
    exit(2);
  }
  if (write(fd, req, (size_t)len) != len) die("write", i);
  size_t got = 0;
  while (got < sizeof status) {
    ssize_t r = read(fd, status + got, sizeof status - got);
    if (r <= 0) die(r == 0 ? "early eof" : "read", i);
    got += (size_t)r;
  }
  if (memcmp(status, "HTTP/1.1 200", sizeof status) != 0)
    die("not a 200 response", i);
  read_exactly(fd, k - sizeof status, i);
}

/* An aborted HTTP download: the request, K bytes of the answer, then a
 * reset with the rest unread, so the server is left with a response it
 * can no longer send. */
static void http_abort_reads(long n, size_t k, const char *path) {
  struct linger lg = {1, 0};
  for (long i = 0; i < n; i++) {
    int fd = dial(i);
    get_start(fd, path, k, i);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
  }
  printf("done %ld\n", n);
}

static _Noreturn void stall(long n, size_t k, const char *path) {
  int *fds = calloc((size_t)n, sizeof *fds);
  if (fds == NULL) die("calloc", 0);
  for (long i = 0; i < n; i++) {
    fds[i] = dial(i);
    if (path != NULL)
      get_start(fds[i], path, k, i);
    else
      read_exactly(fds[i], k, i);
  }
  printf("stalled %ld\n", n);
  fflush(stdout);
  alarm(60); /* SIGALRM ends it if nobody does; the kernel closes */
  for (;;) pause();
}

int main(int argc, char **argv) {
  if (argc < 4 || parse_addr(argv[2]) < 0) {
    fprintf(stderr,
            "usage: netstress churn|http|abort|httpabort|stall IPV4:PORT N"
            " [K|MSG] [PATH]\n");
    return 2;
  }
  long n = atol(argv[3]);
  size_t k = argc > 4 ? (size_t)atol(argv[4]) : 1000;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(argv[1], "churn") == 0)
    churn(n, argc > 4 ? argv[4] : "x");
  else if (strcmp(argv[1], "http") == 0)
    http_churn(n);
  else if (strcmp(argv[1], "abort") == 0)
    abort_reads(n, k);
  else if (strcmp(argv[1], "httpabort") == 0)
    http_abort_reads(n, k, argc > 5 ? argv[5] : "/big");
  else if (strcmp(argv[1], "stall") == 0)
    stall(n, k, argc > 5 ? argv[5] : NULL);
  else
    return fprintf(stderr, "netstress: unknown mode %s\n", argv[1]), 2;
  return 0;
}
