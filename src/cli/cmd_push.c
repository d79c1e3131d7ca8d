/* Placeholder until the command lands; replaced by its implementation. */
#include "cli.h"

int cmd_push(int argc, char **argv)
{
	fprintf(stderr, "ctxpack: 'push' is not implemented yet\n");
	return EXIT_FAIL;
}
