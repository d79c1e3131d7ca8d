/* Placeholder until the command lands; replaced by its implementation. */
#include "cli.h"

int cmd_hash(int argc, char **argv)
{
	fprintf(stderr, "ctxpack: 'hash' is not implemented yet\n");
	return EXIT_FAIL;
}
