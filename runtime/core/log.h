/* Structured logging: one record per line on stderr, logfmt or JSON. */
#ifndef LUNET_LOG_H
#define LUNET_LOG_H

#include <stddef.h>
#include <lua.h>

enum lunet_log_level {
  LUNET_LOG_DEBUG,
  LUNET_LOG_INFO,
  LUNET_LOG_WARN,
  LUNET_LOG_ERROR
};

enum lunet_log_format { LUNET_LOG_TEXT, LUNET_LOG_JSON };

void lunet_log_configure(int level, int format);
int lunet_log_enabled(int level);
int lunet_log_parse_level(const char *name);

/* Ends every later record with key=value (a worker's id); the strings must
 * outlive the process's logging. NULL key: no such field. */
void lunet_log_set_process_field(const char *key, const char *value);
int lunet_log_parse_format(const char *name);

/* Logs msg with key/value string pairs; the list ends with a NULL key.
 * Example: lunet_log(LUNET_LOG_INFO, "listening", "service", "echo", NULL); */
void lunet_log(int level, const char *msg, ...);

/* Same with an array of 2*npairs strings. */
void lunet_log_pairs(int level, const char *msg, const char *const *kv,
                     int npairs);

/* Same with lengths: msg is msg_len bytes and kv[i] is lens[i] bytes (lens
 * NULL: every kv[i] is a C string), so the bytes of a Lua string are
 * logged whole, a NUL escaped, never taken for the end. */
void lunet_log_pairs_n(int level, const char *msg, size_t msg_len,
                       const char *const *kv, const size_t *lens, int npairs);

/* Formats one record (without the newline) into buf, truncating to cap-1
 * bytes; returns the length written. Exposed for unit tests. */
size_t lunet__log_format(char *buf, size_t cap, int format, int level,
                         const char *ts, const char *msg,
                         const char *const *kv, int npairs);

/* lunet__log_format with lengths, as lunet_log_pairs_n takes them. */
size_t lunet__log_format_n(char *buf, size_t cap, int format, int level,
                           const char *ts, const char *msg, size_t msg_len,
                           const char *const *kv, const size_t *lens,
                           int npairs);

/* One whole record: timestamp, msg, pairs, the process field and the
 * newline, cut to fit cap (> 1). Returns its length. */
size_t lunet__log_record(char *buf, size_t cap, int level, const char *msg,
                         const char *const *kv, int npairs);

/* Pushes the Lua table lunet.log = {debug, info, warn, error}. */
int lunet_log_open(lua_State *L);

#endif
