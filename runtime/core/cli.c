#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "log.h"

const char lunet_cli_usage[] =
    "usage: lunet run SCRIPT [options] [-- ARGS...]\n"
    "       lunet check SCRIPT\n"
    "       lunet reload [--pid N | --pidfile FILE | --control PATH]\n"
    "       lunet stats [--json] [--pid N | --pidfile FILE | --control PATH]\n"
    "       lunet top [--pid N | --pidfile FILE | --control PATH]\n"
    "       lunet --version | --help\n"
    "\n"
    "options for run:\n"
    "  --listen NAME=ADDR      listen on ADDR for service NAME (port 0: any)\n"
    "  --pidfile FILE          write the process id to FILE\n"
    "  --log-level LEVEL       debug, info (default), warn or error\n"
    "  --log-format FORMAT     text (logfmt, default) or json\n"
    "  --shutdown-timeout SEC  graceful shutdown limit (default 10)\n"
    "  --budget MS             time a handler call may run (default 1000,\n"
    "                          0: unlimited)\n"
    "  --memory-limit MB       Lua heap limit for scripts (default 1024,\n"
    "                          0: unlimited)\n"
    "  --max-queued MB         bytes queued for writing on all connections\n"
    "                          together; past it the slowest consumers are\n"
    "                          dropped (default: the --memory-limit value,\n"
    "                          0: unlimited)\n"
    "  --workers N|auto        N worker processes sharing the listeners\n"
    "                          (auto: one per core)\n"
    "  --worker-timeout SEC    kill and replace a worker whose loop has not\n"
    "                          answered for SEC seconds (default 30, 0: off;\n"
    "                          a handler within its --budget is not silence)\n"
    "  --watch                 reload when the script or its modules change\n"
    "  --metrics ADDR          serve GET /metrics (Prometheus) on ADDR\n"
    "  --control PATH          control socket for `lunet reload` (default:\n"
    "                          $XDG_RUNTIME_DIR/lunet/PID.sock or\n"
    "                          /tmp/lunet-UID/PID.sock)\n"
    "\n"
    "reload, stats and top with no option find the one instance started\n"
    "from the current directory. SIGHUP reloads too. top exits on q.\n"
    "\n"
    "ADDR is IPv4:PORT, [IPv6]:PORT or *:PORT. SIGTERM or SIGINT shut down\n"
    "gracefully; a second signal forces the exit.\n";

struct parser {
  int argc;
  char **argv;
  int i;
  char *err;
  size_t errcap;
  int max_queued_given; /* else --max-queued follows --memory-limit */
};

static int fail(struct parser *p, const char *fmt, const char *what) {
  snprintf(p->err, p->errcap, fmt, what);
  return -1;
}

/* Returns the value of an option given as "--opt VALUE" or "--opt=VALUE". */
static const char *option_value(struct parser *p, const char *arg,
                                 const char *name) {
  size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0) return NULL;
  if (arg[n] == '=') return arg + n + 1;
  if (arg[n] != '\0') return NULL;
  if (p->i + 1 >= p->argc) return "";
  return p->argv[++p->i];
}

static int parse_listen(struct parser *p, struct lunet_cli *cli,
                        const char *value) {
  const char *eq = strchr(value, '=');
  if (eq == NULL || eq == value || eq[1] == '\0')
    return fail(p, "--listen expects NAME=ADDR, got '%s'", value);
  if (cli->nlisten == LUNET_MAX_LISTEN)
    return fail(p, "too many --listen options%s", "");
  size_t n = (size_t)(eq - value);
  if (n >= LUNET_SERVICE_NAME_MAX)
    return fail(p, "--listen: service name too long in '%s'", value);
  memcpy(cli->listen[cli->nlisten].service, value, n);
  cli->listen[cli->nlisten].service[n] = '\0';
  cli->listen[cli->nlisten].addr = eq + 1;
  cli->nlisten++;
  return 0;
}

static int parse_seconds(struct parser *p, const char *value, unsigned *ms) {
  char *end;
  double s = strtod(value, &end);
  double rounded = s * 1000 + 0.5; /* to the nearest millisecond */
  if (*value == '\0' || *end != '\0' || !(rounded >= 1) || s > 3600)
    return fail(p, "--shutdown-timeout expects seconds (0.001 to 3600), "
                   "got '%s'", value);
  *ms = (unsigned)rounded;
  return 0;
}

/* 0 turns the check off; below a second it would be shorter than the
 * heartbeat period (worker.c), and every worker would look silent. */
static int parse_worker_timeout(struct parser *p, const char *value,
                                unsigned *ms) {
  char *end;
  double s = strtod(value, &end);
  if (*value == '\0' || *end != '\0' || !(s == 0 || (s >= 1 && s <= 86400)))
    return fail(p, "--worker-timeout expects seconds (1 to 86400, 0: off), "
                   "got '%s'", value);
  *ms = (unsigned)(s * 1000 + 0.5);
  return 0;
}

static int parse_pid(struct parser *p, struct lunet_cli *cli,
                     const char *value) {
  char *end;
  long pid = strtol(value, &end, 10);
  if (*value == '\0' || *end != '\0' || pid <= 0)
    return fail(p, "--pid expects a process id, got '%s'", value);
  cli->pid = pid;
  return 0;
}

static int is_instance_command(const struct lunet_cli *cli) {
  return cli->command == LUNET_CMD_RELOAD || cli->command == LUNET_CMD_STATS ||
         cli->command == LUNET_CMD_TOP;
}

/* reload, stats and top take the options that say which instance to
 * reach (and stats --json). */
static int parse_instance_option(struct parser *p, struct lunet_cli *cli,
                                 const char *arg) {
  const char *v;
  if (strcmp(arg, "--json") == 0 && cli->command == LUNET_CMD_STATS)
    return cli->json = 1, 0;
  if ((v = option_value(p, arg, "--pid")) != NULL)
    return parse_pid(p, cli, v);
  if ((v = option_value(p, arg, "--pidfile")) != NULL) {
    cli->pidfile = v;
    return *v ? 0 : fail(p, "%s needs a value", arg);
  }
  if ((v = option_value(p, arg, "--control")) != NULL) {
    cli->control = v;
    return *v ? 0 : fail(p, "%s needs a value", arg);
  }
  return fail(p, "unknown option '%s' for this command", arg);
}

static int parse_count(struct parser *p, const char *opt, const char *value,
                       unsigned long max, unsigned *out) {
  char *end;
  unsigned long n = strtoul(value, &end, 10);
  if (*value == '\0' || *value == '-' || *end != '\0' || n > max) {
    char what[64];
    snprintf(what, sizeof what, "%s expects 0 to %lu", opt, max);
    return fail(p, "%s", what);
  }
  *out = (unsigned)n;
  return 0;
}

static int parse_workers(struct parser *p, struct lunet_cli *cli,
                         const char *value) {
  char *end;
  unsigned long n = strtoul(value, &end, 10);
  if (strcmp(value, "auto") == 0)
    n = uv_available_parallelism();
  else if (*value == '\0' || *value == '-' || *end != '\0' || n < 1 ||
           n > LUNET_WORKERS_MAX)
    return fail(p, "--workers expects 1 to 256 or auto, got '%s'", value);
  cli->workers = (int)(n > LUNET_WORKERS_MAX ? LUNET_WORKERS_MAX : n);
  return 0;
}

static int parse_option(struct parser *p, struct lunet_cli *cli,
                        const char *arg) {
  const char *v;
  if (is_instance_command(cli)) return parse_instance_option(p, cli, arg);
  if ((v = option_value(p, arg, "--workers")) != NULL)
    return *v ? parse_workers(p, cli, v) : fail(p, "%s needs a value", arg);
  if ((v = option_value(p, arg, "--worker-timeout")) != NULL)
    return parse_worker_timeout(p, v, &cli->worker_timeout_ms);
  if (strcmp(arg, "--watch") == 0) return cli->watch = 1, 0;
  if ((v = option_value(p, arg, "--metrics")) != NULL) {
    cli->metrics = v;
    return *v ? 0 : fail(p, "%s needs a value", arg);
  }
  if ((v = option_value(p, arg, "--control")) != NULL) {
    cli->control = v;
    return *v ? 0 : fail(p, "%s needs a value", arg);
  }
  if ((v = option_value(p, arg, "--listen")) != NULL)
    return *v ? parse_listen(p, cli, v) : fail(p, "%s needs a value", arg);
  if ((v = option_value(p, arg, "--pidfile")) != NULL) {
    cli->pidfile = v;
    return *v ? 0 : fail(p, "%s needs a value", arg);
  }
  if ((v = option_value(p, arg, "--log-level")) != NULL) {
    cli->log_level = lunet_log_parse_level(v);
    return cli->log_level >= 0 ? 0 : fail(p, "unknown log level '%s'", v);
  }
  if ((v = option_value(p, arg, "--log-format")) != NULL) {
    cli->log_format = lunet_log_parse_format(v);
    return cli->log_format >= 0 ? 0 : fail(p, "unknown log format '%s'", v);
  }
  if ((v = option_value(p, arg, "--shutdown-timeout")) != NULL)
    return parse_seconds(p, v, &cli->shutdown_timeout_ms);
  if ((v = option_value(p, arg, "--budget")) != NULL)
    return parse_count(p, arg, v, 3600000, &cli->budget_ms);
  if ((v = option_value(p, arg, "--memory-limit")) != NULL)
    return parse_count(p, arg, v, 1 << 20, &cli->memory_limit_mb);
  if ((v = option_value(p, arg, "--max-queued")) != NULL) {
    p->max_queued_given = 1;
    return parse_count(p, arg, v, 1 << 20, &cli->max_queued_mb);
  }
  return fail(p, "unknown option '%s'", arg);
}

static int parse_command(struct parser *p, struct lunet_cli *cli) {
  const char *cmd = p->argv[p->i];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
      strcmp(cmd, "help") == 0) {
    cli->command = LUNET_CMD_HELP;
  } else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-v") == 0) {
    cli->command = LUNET_CMD_VERSION;
  } else if (strcmp(cmd, "run") == 0) {
    cli->command = LUNET_CMD_RUN;
  } else if (strcmp(cmd, "check") == 0) {
    cli->command = LUNET_CMD_CHECK;
  } else if (strcmp(cmd, "reload") == 0) {
    cli->command = LUNET_CMD_RELOAD;
  } else if (strcmp(cmd, "stats") == 0) {
    cli->command = LUNET_CMD_STATS;
  } else if (strcmp(cmd, "top") == 0) {
    cli->command = LUNET_CMD_TOP;
  } else {
    return fail(p, "unknown command '%s'", cmd);
  }
  p->i++;
  return 0;
}

static int parse_arguments(struct parser *p, struct lunet_cli *cli) {
  for (; p->i < p->argc; p->i++) {
    const char *arg = p->argv[p->i];
    if (strcmp(arg, "--") == 0) {
      cli->script_argc = p->argc - p->i - 1;
      cli->script_argv = p->argv + p->i + 1;
      return 0;
    }
    if (arg[0] == '-' && arg[1] != '\0') {
      if (cli->command == LUNET_CMD_CHECK)
        return fail(p, "check takes no option ('%s')", arg);
      if (parse_option(p, cli, arg) < 0) return -1;
    } else if (is_instance_command(cli)) {
      return fail(p, "unexpected argument '%s'", arg);
    } else if (cli->script == NULL) {
      cli->script = arg;
    } else {
      return fail(p, "unexpected argument '%s' (script arguments go after "
                     "--)", arg);
    }
  }
  return 0;
}

int lunet_cli_parse(int argc, char **argv, struct lunet_cli *cli, char *err,
                    size_t errcap) {
  struct parser p = {argc, argv, 1, err, errcap, 0};
  memset(cli, 0, sizeof *cli);
  cli->log_level = LUNET_LOG_INFO;
  cli->log_format = LUNET_LOG_TEXT;
  cli->shutdown_timeout_ms = 10000;
  cli->budget_ms = 1000;
  cli->memory_limit_mb = 1024;
  cli->worker_timeout_ms = 30000;
  if (argc < 2) return fail(&p, "missing command%s", "");
  if (parse_command(&p, cli) < 0) return -1;
  if (cli->command == LUNET_CMD_HELP || cli->command == LUNET_CMD_VERSION)
    return p.i < argc ? fail(&p, "unexpected argument '%s'", argv[p.i]) : 0;
  if (parse_arguments(&p, cli) < 0) return -1;
  if (is_instance_command(cli)) {
    int n = (cli->pid != 0) + (cli->pidfile != NULL) + (cli->control != NULL);
    return n > 1 ? fail(&p, "give one of --pid, --pidfile, --control%s", "")
                 : 0;
  }
  if (cli->script == NULL) return fail(&p, "missing SCRIPT%s", "");
  if (!p.max_queued_given) cli->max_queued_mb = cli->memory_limit_mb;
  return 0;
}
