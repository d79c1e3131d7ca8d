/* Placeholder until the command lands; replaced by its implementation. */
#include "cli.h"

int cmd_ls(int argc, char **argv)
{
	fprintf(stderr, "ctxpack: 'ls' is not implemented yet\n");
	return EXIT_FAIL;
}
