/* `lunet run SCRIPT --workers N`: this process becomes a supervisor that
 * runs no Lua. It starts N workers (lunet again, with LUNET_WORKER=ID in
 * the environment and a channel on descriptor 3; see worker.h), replaces
 * one that crashes (with backoff), relays pub/sub between them, forwards
 * SIGTERM/SIGINT and reloads to all, and owns the control socket, so
 * `lunet reload` reports each worker's outcome.
 *
 * Processes, not threads: a crash, an abort or a runaway C module takes
 * one worker down while the others keep serving, and each worker is the
 * tested single-process runtime unchanged. */
#ifndef LUNET_SUPERVISOR_H
#define LUNET_SUPERVISOR_H

struct lunet_cli;

/* Runs until every worker has exited after a shutdown; returns the exit
 * code (1 when the first worker could not start). */
int lunet_supervisor_run(const struct lunet_cli *cli, char **argv);

#endif
