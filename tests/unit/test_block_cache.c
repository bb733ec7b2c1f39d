/* block_cache and the Lua allocator around it: every block has room for
 * what was asked, a freed block serves the next request of its class,
 * the cache holds no more than its bound, and the allocator keeps a
 * block's bytes across every kind of resize. */
#include <string.h>

#include "block_cache.h"
#include "budget.h"
#include "check.h"

static void check_classes(void) {
  size_t prev = 0;
  for (size_t n = LUNET_BLOCK_MIN + 1; n <= LUNET_BLOCK_MAX; n++) {
    size_t cap = lunet_block_capacity(n);
    CHECK_SCOPE();
    CHECK(cap >= n);
    CHECK(cap <= n + n / 8); /* at most an eighth more */
    CHECK(cap >= prev);      /* a larger size never gets a smaller class */
    CHECK_NOTE("n %zu capacity %zu", n, cap);
    prev = cap;
  }
  CHECK_INT((int)lunet_block_capacity(LUNET_BLOCK_MAX), LUNET_BLOCK_MAX);
  CHECK(!lunet_block_cached(LUNET_BLOCK_MIN));
  CHECK(lunet_block_cached(LUNET_BLOCK_MIN + 1));
  CHECK(!lunet_block_cached(LUNET_BLOCK_MAX + 1));
}

static void check_reuse(void) {
  struct lunet_block_cache c = {0};
  void *p = lunet_block_get(&c, 4100);
  memset(p, 1, lunet_block_capacity(4100)); /* all its room is usable */
  lunet_block_put(&c, p, 4100);
  CHECK_INT((int)c.held, (int)lunet_block_capacity(4100));
  CHECK(lunet_block_capacity(4200) == lunet_block_capacity(4100));
  CHECK(lunet_block_get(&c, 4200) == p); /* same class: the same block */
  CHECK_INT((int)c.held, 0);
  void *q = lunet_block_get(&c, 9000); /* another class: a new block */
  CHECK(q != p);
  lunet_block_put(&c, p, 4200);
  lunet_block_put(&c, q, 9000);
  lunet_block_flush(&c);
  CHECK_INT((int)c.held, 0);
  for (int i = 0; i < LUNET_BLOCK_CLASSES; i++) CHECK(c.free[i] == NULL);
}

static void check_bound(void) {
  enum { N = 2 * LUNET_BLOCK_CACHE_MAX / LUNET_BLOCK_MAX };
  struct lunet_block_cache c = {0};
  void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = lunet_block_get(&c, LUNET_BLOCK_MAX);
  for (int i = 0; i < N; i++) {
    lunet_block_put(&c, blocks[i], LUNET_BLOCK_MAX);
    CHECK(c.held <= LUNET_BLOCK_CACHE_MAX); /* the rest were freed */
  }
  CHECK_INT((int)c.held, LUNET_BLOCK_CACHE_MAX);
  lunet_block_flush(&c);
}

/* Resizes through lunet_budget_alloc, checking the bytes survive. */
static void *resize(struct lunet_budget *b, void *p, size_t old, size_t n) {
  void *q = lunet_budget_alloc(b, p, old, n);
  CHECK(q != NULL);
  size_t keep = old < n ? old : n;
  for (size_t i = 0; i < keep; i++)
    if (((unsigned char *)q)[i] != (unsigned char)(i * 7)) {
      CHECK_SCOPE();
      CHECK(0);
      CHECK_NOTE("resize %zu -> %zu lost byte %zu", old, n, i);
      break;
    }
  for (size_t i = keep; i < n; i++)
    ((unsigned char *)q)[i] = (unsigned char)(i * 7);
  return q;
}

static void check_allocator(void) {
  struct lunet_budget b;
  memset(&b, 0, sizeof b);
  /* through each kind of resize: plain, into the cache, within a class,
   * across classes, out to plain, and up past the cache */
  size_t sizes[] = {500, 2000, 2040, 5000, 3000, 100, 70000, 40000, 600};
  void *p = lunet_budget_alloc(&b, NULL, LUA_TSTRING, sizes[0]);
  for (size_t i = 0; i < sizes[0]; i++)
    ((unsigned char *)p)[i] = (unsigned char)(i * 7);
  for (size_t k = 1; k < sizeof sizes / sizeof sizes[0]; k++) {
    void *q = resize(&b, p, sizes[k - 1], sizes[k]);
    if (k == 2) CHECK(q == p); /* 2000 -> 2040: the same class */
    p = q;
  }
  CHECK_INT((int)b.mem_used, 600);
  CHECK(lunet_budget_alloc(&b, p, 600, 0) == NULL);
  CHECK_INT((int)b.mem_used, 0);
  /* a freed string's block serves the next string of its class */
  p = lunet_budget_alloc(&b, NULL, LUA_TSTRING, 4121);
  CHECK(lunet_budget_alloc(&b, p, 4121, 0) == NULL);
  CHECK(lunet_budget_alloc(&b, NULL, LUA_TSTRING, 4100) == p);
  lunet_budget_alloc(&b, p, 4100, 0);
  lunet_block_flush(&b.blocks);
}

int main(void) {
  check_classes();
  check_reuse();
  check_bound();
  check_allocator();
  CHECK_DONE();
}
