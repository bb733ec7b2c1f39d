/* A minimal test harness for the C unit tests: no framework, one executable
 * per unit. A failed CHECK prints file:line and the expression and the test
 * goes on, so one run lists every failure; CHECK_DONE() makes main return 1
 * if any check failed. */
#ifndef LUNET_TEST_CHECK_H
#define LUNET_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int check_total;
static int check_failed;

#define CHECK(expr)                                                            \
  do {                                                                         \
    check_total++;                                                             \
    if (!(expr)) {                                                             \
      check_failed++;                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
    }                                                                          \
  } while (0)

/* Like CHECK, and also shows both strings, since "got" is usually the
 * whole point of the report. NULL prints as (null). */
#define CHECK_STR(got, want)                                                   \
  do {                                                                         \
    const char *check_g_ = (got), *check_w_ = (want);                          \
    check_total++;                                                             \
    if (check_g_ == NULL || check_w_ == NULL ||                                \
        strcmp(check_g_, check_w_) != 0) {                                     \
      check_failed++;                                                          \
      fprintf(stderr,                                                          \
              "%s:%d: CHECK failed: %s == %s\n  got:  %s\n  want: %s\n",       \
              __FILE__, __LINE__, #got, #want, check_g_ ? check_g_ : "(null)", \
              check_w_ ? check_w_ : "(null)");                                 \
    }                                                                          \
  } while (0)

#define CHECK_INT(got, want)                                             \
  do {                                                                   \
    long long check_g_ = (long long)(got), check_w_ = (long long)(want); \
    check_total++;                                                       \
    if (check_g_ != check_w_) {                                          \
      check_failed++;                                                    \
      fprintf(stderr,                                                    \
              "%s:%d: CHECK failed: %s == %s (got %lld, want "           \
              "%lld)\n",                                                 \
              __FILE__, __LINE__, #got, #want, check_g_, check_w_);      \
    }                                                                    \
  } while (0)

/* CHECK_SCOPE() opens a unit of work (a table row, a loop pass);
 * CHECK_NOTE(...) at its end names it, printed only if a check inside it
 * failed. */
static int check_note_mark;
#define CHECK_SCOPE() (check_note_mark = check_failed)
#define CHECK_NOTE(...)                      \
  do {                                       \
    if (check_failed != check_note_mark) {   \
      fprintf(stderr, "  ^ while testing "); \
      fprintf(stderr, __VA_ARGS__);          \
      fputc('\n', stderr);                   \
      check_note_mark = check_failed;        \
    }                                        \
  } while (0)

#define CHECK_DONE()                                                     \
  do {                                                                   \
    fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, check_total, \
            check_failed);                                               \
    return check_failed == 0 && check_total > 0 ? 0 : 1;                 \
  } while (0)

/* {==================================================================
 * Guard pages (picohttpparser's trick): place n bytes so the last one sits
 * right before a PROT_NONE page, so reading or writing one byte too far
 * faults in every build, not only under ASan.
 * =================================================================== */

struct guard {
  char *map;
  size_t len;
};

static inline char *guard_alloc(struct guard *g, size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t body = (n + page - 1) / page * page;
  g->len = body + page;
  g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (g->map == MAP_FAILED) {
    perror("mmap");
    abort();
  }
  if (mprotect(g->map + body, page, PROT_NONE) != 0) {
    perror("mprotect");
    abort();
  }
  return g->map + body - n;
}

/* A copy of the first n bytes of s plus its NUL, ending at the guard. */
static inline char *guard_strndup(struct guard *g, const char *s, size_t n) {
  char *p = guard_alloc(g, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

static inline void guard_free(struct guard *g) {
  munmap(g->map, g->len);
  g->map = NULL;
}

/* }================================================================== */

#endif
