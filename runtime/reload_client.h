/* `lunet reload`: finds a running instance and asks it to reload. */
#ifndef LUNET_RELOAD_CLIENT_H
#define LUNET_RELOAD_CLIENT_H

#include "cli.h"

/* Prints the outcome; returns the process exit code (0 reloaded, 1 not). */
int lunet_reload_command(const struct lunet_cli *cli);

#endif
