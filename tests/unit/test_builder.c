/*
 * cli/builder.c: which builder COMMAND runs, for the words that name
 * buildah and podman (their global options before the subcommand).  The
 * docker cases ask the client and the daemon and are checked against the
 * real ones (tests/integ/t4100, t4120).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "../../src/cli/cli.h"
#include "ctxpack/walk.h"

/* builder_detect on the words of line ("word word ..."), with the docker
 * client's major version given (or 0); buf holds the words */
static void detect(struct builder *b, const char *line, int major, char buf[512])
{
	static char *argv[32];
	int argc = 0;

	assert_true(strlen(line) < 512);
	strcpy(buf, line);
	for (char *w = strtok(buf, " "); w && argc < 31; w = strtok(NULL, " "))
		argv[argc++] = w;
	argv[argc] = NULL;
	builder_detect(b, argc, argv, major);
}

/* kind_of("word word ..."): builder_detect's kind for those words */
static int kind_of(const char *line)
{
	char buf[512];
	int kind;
	struct builder b;

	detect(&b, line, 0, buf);
	kind = b.kind;
	builder_release(&b);
	return kind;
}

static void test_buildah_words(void **state)
{
	(void)state;
	assert_int_equal(kind_of("buildah build -t x -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("buildah bud -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("/usr/bin/buildah build-using-dockerfile -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("buildah --root /s --runroot /r --storage-driver vfs build -"),
			 BUILDER_BUILDAH);
	assert_int_equal(kind_of("buildah --debug --log-level=debug bud -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("env A=1 B=2 buildah build -"), BUILDER_BUILDAH);
	/* not a build */
	assert_int_equal(kind_of("buildah images"), BUILDER_OTHER);
	assert_int_equal(kind_of("buildah --root build"), BUILDER_OTHER); /* build is --root's value */
	assert_int_equal(kind_of("buildah"), BUILDER_OTHER);
}

static void test_podman_words(void **state)
{
	(void)state;
	assert_int_equal(kind_of("podman build -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman image build -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman buildx build -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman --remote build -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman -r --noout build -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman -c conn build -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman -cconn build -"), BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman --url unix:/run/p.sock --identity k image build -"),
			 BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman --storage-opt a=b --events-backend=file build -"),
			 BUILDER_BUILDAH);
	assert_int_equal(kind_of("podman -- build -"), BUILDER_BUILDAH);
	/* a boolean of podman >= 4.4 */
	assert_int_equal(kind_of("podman --transient-store build -"), BUILDER_BUILDAH);
	/* not a build */
	assert_int_equal(kind_of("podman image ls"), BUILDER_OTHER);
	assert_int_equal(kind_of("podman run build"), BUILDER_OTHER);
	assert_int_equal(kind_of("podman image"), BUILDER_OTHER);
	/* buildx is podman's alias, not buildah's */
	assert_int_equal(kind_of("buildah buildx build -"), BUILDER_OTHER);
}

static void test_other_words(void **state)
{
	(void)state;
	assert_int_equal(kind_of("cat"), BUILDER_OTHER);
	assert_int_equal(kind_of("sh -c build"), BUILDER_OTHER);
	assert_int_equal(kind_of("env"), BUILDER_OTHER);
}

/* buildah's and podman's -f, in each spelling */
static void test_buildah_file(void **state)
{
	static const struct {
		const char *line, *file;
	} cases[] = {
		{"buildah build -f sub/C -t a -", "sub/C"},
		{"buildah --root /r build --file=x.Containerfile -", "x.Containerfile"},
		{"podman build -fy -", "y"},
		{"podman build -f=z -", "z"},
		{"podman image build --file w -t t -", "w"},
		{"buildah bud -t t -", NULL},
		{"buildah build -t t - -- -f notme", NULL},
		{"buildah build --ignorefile ig -f k -", "k"},
	};
	char buf[512];
	struct builder b;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		detect(&b, cases[i].line, 0, buf);
		assert_int_equal(b.kind, BUILDER_BUILDAH);
		if (cases[i].file)
			assert_string_equal(b.file, cases[i].file);
		else
			assert_null(b.file);
		builder_release(&b);
	}
	detect(&b, "buildah build --ignorefile ig -", 0, buf);
	assert_string_equal(b.ignorefile, "ig");
	builder_release(&b);
	detect(&b, "podman build --ignorefile=/x/ig -t t -", 0, buf);
	assert_string_equal(b.ignorefile, "/x/ig");
	builder_release(&b);
}

/* --docker-client: the version given is the client's, docker is not asked
 * (DOCKER_BUILDKIT in COMMAND's words: nor is the daemon) */
static void test_client_given(void **state)
{
	char buf[512];
	struct builder b;
	unsigned flags;

	(void)state;
	detect(&b, "env DOCKER_BUILDKIT=0 docker build -t x -", 20, buf);
	assert_int_equal(b.kind, BUILDER_DOCKER);
	assert_int_equal(b.client_major, 20);
	assert_true(b.old_client);
	assert_false(b.buildkit);
	builder_release(&b);
	detect(&b, "env DOCKER_BUILDKIT=1 docker build -", 28, buf);
	assert_int_equal(b.client_major, 28);
	assert_false(b.old_client);
	assert_true(b.buildkit);
	builder_release(&b);
	detect(&b, "env DOCKER_BUILDKIT=1 docker build -", 22, buf);
	assert_true(b.old_client);
	builder_release(&b);

	/* the walk a client of that version makes */
	flags = 0;
	cli_docker_client_flags(&flags, 20);
	assert_int_equal(flags, WALK_OLD_MATCHER | WALK_FSUTIL2020);
	flags = WALK_CLASSIC;
	cli_docker_client_flags(&flags, 22);
	assert_int_equal(flags, WALK_CLASSIC | WALK_OLD_MATCHER);
	flags = WALK_CLASSIC;
	cli_docker_client_flags(&flags, 23);
	assert_int_equal(flags, WALK_CLASSIC);
	flags = 0;
	cli_docker_client_flags(&flags, 0);
	assert_int_equal(flags, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buildah_words),
		cmocka_unit_test(test_podman_words),
		cmocka_unit_test(test_other_words),
		cmocka_unit_test(test_client_given),
		cmocka_unit_test(test_buildah_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
