/* Placeholder until the command lands; replaced by its implementation. */
#include "cli.h"

int cmd_build(int argc, char **argv)
{
	fprintf(stderr, "ctxpack: 'build' is not implemented yet\n");
	return EXIT_FAIL;
}
