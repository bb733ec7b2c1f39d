/* Command line: `lunet run|check SCRIPT [options] [-- args]`. */
#ifndef LUNET_CLI_H
#define LUNET_CLI_H

#include <stddef.h>

#define LUNET_MAX_LISTEN 64

enum lunet_command { LUNET_CMD_RUN, LUNET_CMD_CHECK, LUNET_CMD_RELOAD,
                     LUNET_CMD_STATS, LUNET_CMD_TOP, LUNET_CMD_HELP,
                     LUNET_CMD_VERSION };

#define LUNET_SERVICE_NAME_MAX 64
#define LUNET_WORKERS_MAX 256

struct lunet_listen_override {
  char service[LUNET_SERVICE_NAME_MAX]; /* copied: argv stays as given */
  const char *addr;                     /* points into argv */
};

struct lunet_cli {
  enum lunet_command command;
  const char *script;
  struct lunet_listen_override listen[LUNET_MAX_LISTEN];
  int nlisten;
  int log_level;
  int log_format;
  const char *pidfile;
  const char *control; /* control socket path (run: where; reload: whom) */
  long pid;            /* reload: the instance's process id */
  int watch;
  int json;            /* stats --json */
  const char *metrics; /* run --metrics ADDR */
  unsigned shutdown_timeout_ms;
  unsigned budget_ms;       /* per handler call; 0: none */
  unsigned memory_limit_mb; /* Lua heap; 0: none */
  unsigned max_queued_mb;   /* unsent bytes of all conns; 0: none; by
                               default --memory-limit's value */
  int workers;   /* run --workers N: a supervisor and N workers; 0: none */
  unsigned worker_timeout_ms; /* a worker's loop silent this long is
                                 killed and replaced; 0: never */
  int worker_id; /* in a worker process, its id (1..workers); else 0 */
  int script_argc; /* arguments after "--", handed to the script */
  char **script_argv;
};

/* Fills cli from argv, which it leaves untouched (ps and pkill -f see the
 * command line as typed). On a usage error returns -1 with a one-line
 * message in err. */
int lunet_cli_parse(int argc, char **argv, struct lunet_cli *cli, char *err,
                    size_t errcap);

extern const char lunet_cli_usage[];

#endif
