/* Placeholder until the command lands; replaced by its implementation. */
#include "cli.h"

int cmd_pack(int argc, char **argv)
{
	fprintf(stderr, "ctxpack: 'pack' is not implemented yet\n");
	return EXIT_FAIL;
}
