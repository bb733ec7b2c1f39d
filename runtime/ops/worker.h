/* The worker side of `--workers N`: a lunet process started by the
 * supervisor (supervisor.c) with LUNET_WORKER=ID in its environment and the
 * channel to the supervisor on descriptor 3. It serves like a single
 * process, except that its listeners share their ports (SO_REUSEPORT),
 * what it publishes reaches the other workers, and reload and stats
 * requests come over the channel. */
#ifndef LUNET_WORKER_H
#define LUNET_WORKER_H

#include <stddef.h>
#include <uv.h>

struct lunet_runtime;
struct lunet_service;
struct lunet_cli;

#define LUNET_WORKER_CHANNEL_FD 3
#define LUNET_WORKER_BUSY_FD 4 /* a worker's busy reports (worker_busy.h) */

/* Reads the worker identity from the environment into cli (worker_id and
 * workers; both stay 0 outside a worker). -1 with err set when the
 * environment is malformed. */
int lunet_worker_identify(struct lunet_cli *cli, char *err, size_t errcap);

/* Opens the channel, starts the heartbeat (a frame once a second from the
 * loop) and the busy reports; call before the services listen. 0 or UV
 * error. */
int lunet_worker_attach(struct lunet_runtime *rt);

/* Tells the supervisor the worker serves (and where metrics are asked
 * to be served). */
void lunet_worker_ready(struct lunet_runtime *rt, const char *metrics_addr);

/* A service began listening: the supervisor keeps the first real address
 * of each name, so that workers started later share port-0 listeners. */
void lunet_worker_listening(struct lunet_service *svc, const char *proto);

/* Port 0 in a worker means the port the first worker got for the same
 * service name, if it reported one. Applies that to svc. */
void lunet_worker_resolve_port(struct lunet_service *svc);

/* Sets SO_REUSEPORT on a socket handle when this process is a worker.
 * 0 or UV error. */
int lunet_worker_share_port(struct lunet_runtime *rt, uv_handle_t *h);

/* Sends a publish to the other workers; 0 or UV error (logged). */
int lunet_worker_publish(struct lunet_runtime *rt, const char *topic,
                         size_t tlen, const char *msg, size_t mlen);

/* Closes the channel (runtime teardown, before its loop runs empty).
 * Idempotent. */
void lunet_worker_detach(struct lunet_runtime *rt);

/* Frees what attach made, once the loop has run empty. */
void lunet_worker_free(struct lunet_runtime *rt);

#endif
