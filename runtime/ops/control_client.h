/* `lunet reload`, `lunet stats` and `lunet top`: find a running instance
 * and talk to it through its control socket. */
#ifndef LUNET_CONTROL_CLIENT_H
#define LUNET_CONTROL_CLIENT_H

#include "cli.h"

/* Runs cli->command; returns the process exit code. */
int lunet_control_command(const struct lunet_cli *cli);

#endif
