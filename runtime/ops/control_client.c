/* Runs in its own short-lived process, not on a loop: blocking calls are
 * fine here and every one of them is bounded. */
#include "control_client.h"

#include <dirent.h>
#include <poll.h>
#include <termios.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"

#define RELOAD_TIMEOUT_MS 30000
#define CANDIDATES_MAX 16

static int read_pidfile(const char *path, long *pid) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  int ok = fscanf(f, "%ld", pid) == 1 && *pid > 0;
  fclose(f);
  return ok ? 0 : -1;
}

static int socket_of(long pid, char *path, size_t cap) {
  char dir[PATH_MAX];
  if (lunet_control_dir(dir, sizeof dir, 0) < 0) return -1;
  int n = snprintf(path, cap, "%s/%ld.sock", dir, pid);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* An instance counts when it is alive and was started from `cwd`. */
static int started_here(long pid, const char *cwd) {
  char link[64], target[PATH_MAX];
  if (kill((pid_t)pid, 0) < 0 && errno != EPERM) return 0;
  snprintf(link, sizeof link, "/proc/%ld/cwd", pid);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = '\0';
  return strcmp(target, cwd) == 0;
}

static int find_candidates(long *pids, int max) {
  char dir[PATH_MAX], cwd[PATH_MAX];
  int n = 0;
  if (lunet_control_dir(dir, sizeof dir, 0) < 0 ||
      getcwd(cwd, sizeof cwd) == NULL)
    return 0;
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  for (struct dirent *e; (e = readdir(d)) != NULL && n < max;) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (pid > 0 && strcmp(end, ".sock") == 0 && started_here(pid, cwd))
      pids[n++] = pid;
  }
  closedir(d);
  return n;
}

static int find_instance(char *path, size_t cap) {
  long pids[CANDIDATES_MAX];
  int n = find_candidates(pids, CANDIDATES_MAX);
  if (n == 1) return socket_of(pids[0], path, cap);
  if (n == 0) {
    fprintf(stderr, "lunet: no running lunet was started from this "
            "directory; name one with --pid N, --pidfile FILE or "
            "--control PATH\n");
    return -1;
  }
  fprintf(stderr, "lunet: %d instances run from this directory (pids", n);
  for (int i = 0; i < n; i++) fprintf(stderr, " %ld", pids[i]);
  fprintf(stderr, "); choose one with --pid N\n");
  return -1;
}

static int resolve_path(const struct lunet_cli *cli, char *path,
                        size_t cap) {
  long pid = cli->pid;
  if (cli->control != NULL) {
    if (strlen(cli->control) >= cap) return -1;
    strcpy(path, cli->control);
    return 0;
  }
  if (cli->pidfile != NULL && read_pidfile(cli->pidfile, &pid) < 0) {
    fprintf(stderr, "lunet: cannot read a pid from '%s'\n", cli->pidfile);
    return -1;
  }
  if (pid != 0) return socket_of(pid, path, cap);
  return find_instance(path, cap);
}

#define REPLY_CAP (1 << 20)

static int reload_command(const char *path) {
  static char reply[REPLY_CAP];
  int r = lunet_control_request(path, "reload", reply, sizeof reply,
                                RELOAD_TIMEOUT_MS);
  if (r < 0) {
    fprintf(stderr, "lunet: cannot reach the instance at %s: %s\n", path,
            strerror(-r));
    return 1;
  }
  if (strncmp(reply, "ok ", 3) == 0) {
    printf("reloaded: %s\n", reply + 3);
    return 0;
  }
  fprintf(stderr, "reload failed: %s\n",
          strncmp(reply, "error ", 6) == 0 ? reply + 6 : reply);
  return 1;
}

/* {==================================================================
 * stats and top
 * =================================================================== */

static int fetch(const char *path, const char *what, char *reply) {
  int r = lunet_control_request(path, what, reply, REPLY_CAP,
                                RELOAD_TIMEOUT_MS);
  if (r < 0) {
    fprintf(stderr, "lunet: cannot reach the instance at %s: %s\n", path,
            strerror(-r));
    return -1;
  }
  if (strncmp(reply, "ok ", 3) != 0) {
    fprintf(stderr, "lunet: %s\n", reply);
    return -1;
  }
  return 0;
}

static int stats_command(const char *path, int json) {
  static char reply[REPLY_CAP];
  if (fetch(path, json ? "stats" : "stats text", reply) < 0) return 1;
  printf("%s\n", reply + 3);
  return 0;
}

static volatile sig_atomic_t top_interrupted;
static void top_on_signal(int sig) {
  (void)sig;
  top_interrupted = 1;
}

/* Waits up to a second for a key; 1 when it was q (or Ctrl-C came). */
static int top_wait_for_quit(void) {
  static int stdin_gone;
  struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
  if (poll(&pfd, stdin_gone ? 0 : 1, 1000) > 0) {
    char ch;
    if (read(STDIN_FILENO, &ch, 1) <= 0) {
      stdin_gone = 1; /* no keyboard: only signals end it */
      return top_interrupted;
    }
    if (ch == 'q' || ch == 'Q' || ch == 3) return 1;
  }
  return top_interrupted;
}

/* Redraws the stats table every second until q, Ctrl-C or SIGTERM. */
static int top_command(const char *path) {
  static char reply[REPLY_CAP];
  struct termios saved, raw;
  int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  int code = 0;
  signal(SIGINT, top_on_signal);
  signal(SIGTERM, top_on_signal);
  if (tty) {
    raw = saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0, raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  for (;;) {
    if (fetch(path, "stats text", reply) < 0) {
      code = 1;
      break;
    }
    printf("\033[H\033[2J%s\n(q to quit)\n", reply + 3);
    fflush(stdout);
    if (top_wait_for_quit()) break;
  }
  if (tty) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  return code;
}

int lunet_control_command(const struct lunet_cli *cli) {
  char path[PATH_MAX];
  if (resolve_path(cli, path, sizeof path) < 0) return 1;
  if (cli->command == LUNET_CMD_STATS) return stats_command(path, cli->json);
  if (cli->command == LUNET_CMD_TOP) return top_command(path);
  return reload_command(path);
}

/* }================================================================== */
