#include "block_cache.h"

#include <stdlib.h>

/* The class of n bytes, LUNET_BLOCK_MIN < n <= LUNET_BLOCK_MAX: 8 classes
 * per power of two, so a block has at most 1/8 more room than asked. */
static unsigned class_of(size_t n) {
  size_t m = n - 1;
  unsigned top = (unsigned)(8 * sizeof(unsigned long long) - 1) -
                 (unsigned)__builtin_clzll((unsigned long long)m);
  unsigned eighth = (unsigned)(m >> (top - 3)) & 7;
  return (top - 10) * 8 + eighth;
}

static size_t capacity_of(unsigned cls) {
  unsigned top = cls / 8 + 10, eighth = cls % 8;
  return (size_t)(8 + eighth + 1) << (top - 3);
}

size_t lunet_block_capacity(size_t n) {
  return capacity_of(class_of(n));
}

void *lunet_block_get(struct lunet_block_cache *c, size_t n) {
  unsigned cls = class_of(n);
  void *p = c->free[cls];
  if (p == NULL) return malloc(capacity_of(cls));
  c->free[cls] = *(void **)p;
  c->held -= capacity_of(cls);
  return p;
}

void lunet_block_put(struct lunet_block_cache *c, void *p, size_t n) {
  unsigned cls = class_of(n);
  size_t cap = capacity_of(cls);
  if (c->held + cap > LUNET_BLOCK_CACHE_MAX) {
    free(p);
    return;
  }
  *(void **)p = c->free[cls];
  c->free[cls] = p;
  c->held += cap;
}

void lunet_block_flush(struct lunet_block_cache *c) {
  for (unsigned cls = 0; cls < LUNET_BLOCK_CLASSES; cls++) {
    while (c->free[cls] != NULL) {
      void *p = c->free[cls];
      c->free[cls] = *(void **)p;
      free(p);
    }
  }
  c->held = 0;
}
