/* --watch: reload when the script or a module it required from its own
 * directory changes on disk. Directories are watched (not files) so
 * editors that save by writing a new file and renaming it are seen. */
#ifndef LUNET_WATCH_H
#define LUNET_WATCH_H

struct lunet_runtime;

/* Starts watching; logs and returns a UV error on failure. */
int lunet_watch_start(struct lunet_runtime *rt);

/* Stops watching and frees once the handles have closed. Idempotent. */
void lunet_watch_stop(struct lunet_runtime *rt);

#endif
