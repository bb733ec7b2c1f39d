/* Token buckets per peer address, in a fixed-size table so memory stays
 * bounded whatever the number of peers: a peer whose slot another peer
 * took starts again with a full bucket (a bounded, lossy approximation). */
#ifndef LUNET_RATELIMIT_H
#define LUNET_RATELIMIT_H

#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>
#include <lua.h>

struct lunet_ratelimit;

/* rate: tokens per second; burst: bucket size. NULL on ENOMEM. */
struct lunet_ratelimit *lunet_ratelimit_new(double rate, double burst);
void lunet_ratelimit_free(struct lunet_ratelimit *rl);

/* Takes a token for the peer's IP address (the port is ignored: a host
 * cannot dodge its limit by changing ports). 1 allowed, 0 over limit. */
int lunet_ratelimit_take(struct lunet_ratelimit *rl, const struct sockaddr *sa,
                         uint64_t now_ms);

/* The same for any key (a user id, a peer string...). */
int lunet_ratelimit_take_key(struct lunet_ratelimit *rl, const void *key,
                             size_t len, uint64_t now_ms);

/* Registers "lunet.ratelimit" and returns lunet.ratelimit{rate=, burst=}:
 * a limiter for scripts, rl:take(key) -> true or false. */
int lunet_ratelimit_new_lua(lua_State *L);
void lunet_ratelimit_open(lua_State *L);

/* Refusals since the last call (for a rate-limited log line). */
uint64_t lunet_ratelimit_refused(struct lunet_ratelimit *rl);

#endif
