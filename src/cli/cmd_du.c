/* Placeholder until the command lands; replaced by its implementation. */
#include "cli.h"

int cmd_du(int argc, char **argv)
{
	fprintf(stderr, "ctxpack: 'du' is not implemented yet\n");
	return EXIT_FAIL;
}
