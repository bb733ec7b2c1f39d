#include "ratelimit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 4096 /* power of two */

struct slot {
  uint8_t ip[16];
  uint8_t used;
  double tokens;
  uint64_t last_ms;
};

struct lunet_ratelimit {
  double rate;
  double burst;
  uint64_t refused;
  struct slot slots[SLOTS];
};

struct lunet_ratelimit *lunet_ratelimit_new(double rate, double burst) {
  struct lunet_ratelimit *rl = calloc(1, sizeof *rl);
  if (rl == NULL) return NULL;
  rl->rate = rate;
  rl->burst = burst;
  return rl;
}

void lunet_ratelimit_free(struct lunet_ratelimit *rl) { free(rl); }

/* IPv4 is stored as an IPv4-mapped IPv6 address: one key shape. */
static void ip_key(const struct sockaddr *sa, uint8_t key[16]) {
  memset(key, 0, 16);
  if (sa->sa_family == AF_INET6) {
    memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  } else {
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  }
}

static uint32_t hash(const uint8_t key[16]) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 16777619u;
  return h;
}

int lunet_ratelimit_take(struct lunet_ratelimit *rl, const struct sockaddr *sa,
                         uint64_t now_ms) {
  uint8_t key[16];
  ip_key(sa, key);
  struct slot *s = &rl->slots[hash(key) & (SLOTS - 1)];
  if (!s->used || memcmp(s->ip, key, 16) != 0) {
    memcpy(s->ip, key, 16);
    s->used = 1;
    s->tokens = rl->burst;
    s->last_ms = now_ms;
  }
  s->tokens += (double)(now_ms - s->last_ms) * rl->rate / 1000.0;
  if (s->tokens > rl->burst) s->tokens = rl->burst;
  s->last_ms = now_ms;
  if (s->tokens < 1.0) {
    rl->refused++;
    return 0;
  }
  s->tokens -= 1.0;
  return 1;
}

uint64_t lunet_ratelimit_refused(struct lunet_ratelimit *rl) {
  uint64_t n = rl->refused;
  rl->refused = 0;
  return n;
}
