/* The `tls` field of a service or of lunet.connect's options. */
#ifndef LUNET_TLS_OPTIONS_H
#define LUNET_TLS_OPTIONS_H

#include <stddef.h>
#include <lua.h>

struct lunet_tls_config;

/* Checks the table on top of the stack (left there) and replaces *out
 * with what it says; relative paths are taken under dir. 0, or -1 with
 * err ("tls: ...") and *out untouched. */
int lunet__tls_options(lua_State *L, const char *dir, int client,
                       const char *service, struct lunet_tls_config **out,
                       char *err, size_t errcap);

#endif
