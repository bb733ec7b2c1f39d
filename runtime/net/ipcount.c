#include "ipcount.h"

#include <netinet/in.h>

#include "addr.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096 /* power of two */

struct entry {
  struct entry *next;
  uint8_t ip[16];
  unsigned count;
};

struct lunet_ipcount {
  struct entry *buckets[BUCKETS];
};

struct lunet_ipcount *lunet_ipcount_new(void) {
  return calloc(1, sizeof(struct lunet_ipcount));
}

void lunet_ipcount_free(struct lunet_ipcount *t) {
  if (t == NULL) return;
  for (int i = 0; i < BUCKETS; i++)
    for (struct entry *e = t->buckets[i], *next; e != NULL; e = next) {
      next = e->next;
      free(e);
    }
  free(t);
}


static struct entry **slot(struct lunet_ipcount *t, const uint8_t key[16]) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 16777619u;
  struct entry **p = &t->buckets[h & (BUCKETS - 1)];
  while (*p != NULL && memcmp((*p)->ip, key, 16) != 0) p = &(*p)->next;
  return p;
}

int lunet_ipcount_take(struct lunet_ipcount *t, const struct sockaddr *sa,
                       unsigned max) {
  uint8_t key[16];
  lunet_addr_ip_key(sa, key);
  struct entry **p = slot(t, key);
  if (*p == NULL) {
    if ((*p = calloc(1, sizeof **p)) == NULL) return -1;
    memcpy((*p)->ip, key, 16);
  }
  if ((*p)->count >= max) return 0;
  (*p)->count++;
  return 1;
}

void lunet_ipcount_release(struct lunet_ipcount *t,
                           const struct sockaddr *sa) {
  uint8_t key[16];
  lunet_addr_ip_key(sa, key);
  struct entry **p = slot(t, key);
  if (*p == NULL || --(*p)->count > 0) return;
  struct entry *gone = *p;
  *p = gone->next;
  free(gone);
}
