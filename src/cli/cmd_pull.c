/* Placeholder until the command lands; replaced by its implementation. */
#include "cli.h"

int cmd_pull(int argc, char **argv)
{
	fprintf(stderr, "ctxpack: 'pull' is not implemented yet\n");
	return EXIT_FAIL;
}
