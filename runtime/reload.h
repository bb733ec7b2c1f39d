/* Hot reload: load the script again as a new version and switch every
 * service to it by name, under live connections. */
#ifndef LUNET_RELOAD_H
#define LUNET_RELOAD_H

#include <stddef.h>

struct lunet_runtime;

/* Loads, validates and binds everything the new version needs before
 * switching anything; on any failure the running version is untouched.
 * Writes a one-line outcome to msg ("version=3 ..." or the error with
 * file:line). Returns 0 or -1. `trigger` names who asked (for the log). */
int lunet_reload(struct lunet_runtime *rt, const char *trigger, char *msg,
                 size_t msgcap);

#endif
