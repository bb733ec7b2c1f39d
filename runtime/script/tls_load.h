/* Building the certificates a version's services name, before that
 * version takes over: on reload in libuv's thread pool (the loop goes on
 * serving), at start on the main thread before the loop runs. A missing
 * file, a key that does not match, an expired certificate: the version
 * is refused with the file and the reason, and the running one (with
 * its certificates) stays. */
#ifndef LUNET_TLS_LOAD_H
#define LUNET_TLS_LOAD_H

#include <stddef.h>

struct lunet_list;
struct lunet_runtime;

/* Gives every service in services that has tls settings its built
 * context, from the builds this load has made so far. 0: all attached;
 * 1: some still need building (lunet__tls_build_*); -1: a build failed,
 * err says which file and why. */
int lunet__tls_attach(struct lunet_runtime *rt, struct lunet_list *services,
                      char *err, size_t errcap);

/* 1 while builds asked for by lunet__tls_attach have not run. */
int lunet__tls_wanted(const struct lunet_runtime *rt);

/* Runs the wanted builds in the thread pool and then cb(ud) on the loop.
 * 0, or a UV error (cb will not run). */
int lunet__tls_build_async(struct lunet_runtime *rt, void (*cb)(void *ud),
                           void *ud);

/* Runs the wanted builds now, on this thread (start, lunet check). */
void lunet__tls_build_now(struct lunet_runtime *rt);

/* Forgets this load's builds (the version took over or was refused). */
void lunet__tls_jobs_clear(struct lunet_runtime *rt);

#endif
