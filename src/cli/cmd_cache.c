/* Placeholder until the command lands; replaced by its implementation. */
#include "cli.h"

int cmd_cache(int argc, char **argv)
{
	fprintf(stderr, "ctxpack: 'cache' is not implemented yet\n");
	return EXIT_FAIL;
}
