/* A cache of freed mid-size blocks of the Lua heap, by size class.
 *
 * Every message a script receives is a new Lua string, and the collector
 * frees the old ones in bursts. glibc's fast paths (tcache) stop at about
 * 1 KiB: a 4 KiB string cost ~500 instructions to malloc and free, a
 * seventh of a 4 KiB echo (callgrind). Blocks of LUNET_BLOCK_MIN+1 ..
 * LUNET_BLOCK_MAX bytes are kept here instead, up to LUNET_BLOCK_CACHE_MAX
 * bytes in all, and handed out again in O(1).
 *
 * The size a block is asked for picks its class; a class's blocks all
 * have room for its largest size, so any block freed with a size of the
 * class serves any request of the class. Lua frees with the size it
 * allocated, so no header is needed. Single-threaded: one per Lua state. */
#ifndef LUNET_BLOCK_CACHE_H
#define LUNET_BLOCK_CACHE_H

#include <stddef.h>

#define LUNET_BLOCK_MIN 1024            /* glibc's tcache serves these */
#define LUNET_BLOCK_MAX (64 * 1024)     /* the largest read is 64 KiB */
#define LUNET_BLOCK_CACHE_MAX (1 << 20) /* bytes held while free */
#define LUNET_BLOCK_CLASSES 48          /* 8 per power of two, 1-64 KiB */

struct lunet_block_cache {
  void *free[LUNET_BLOCK_CLASSES]; /* linked through their first word */
  size_t held;                     /* bytes in the lists */
};

/* 1 when blocks of n bytes go through the cache. */
static inline int lunet_block_cached(size_t n) {
  return n > LUNET_BLOCK_MIN && n <= LUNET_BLOCK_MAX;
}

/* The bytes a block asked for with n bytes really has (n cached). */
size_t lunet_block_capacity(size_t n);

/* A block for n bytes (n cached): from the cache, else malloc. */
void *lunet_block_get(struct lunet_block_cache *c, size_t n);

/* Takes back a block got for n bytes (n cached): kept, or freed when the
 * cache is full. */
void lunet_block_put(struct lunet_block_cache *c, void *p, size_t n);

/* Frees every block held (idle time, teardown). */
void lunet_block_flush(struct lunet_block_cache *c);

#endif
