/* manpage.h - houston(1) in roff, generated from the settings table
 * (core/config.c) and the command table (cli.c), so the man page cannot
 * disagree with --help. The build runs `houston manpage` (a hidden command)
 * to write build/houston.1. */
#ifndef HS_CLI_MANPAGE_H
#define HS_CLI_MANPAGE_H

#include <stdio.h>

void hs_cli_print_manpage(FILE *out);

#endif
