/* util/env.c: the environment, read once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctxpack/util.h"

/* Read once: a change after env_load is not seen until the next. */
static void test_read_once(void **state)
{
	(void)state;
	setenv("CTXPACK_STORE", "oci:/first", 1);
	env_load();
	assert_string_equal(env_get()->store, "oci:/first");
	setenv("CTXPACK_STORE", "oci:/second", 1);
	assert_string_equal(env_get()->store, "oci:/first");
	env_load();
	assert_string_equal(env_get()->store, "oci:/second");
	unsetenv("CTXPACK_STORE");
	env_load();
	assert_null(env_get()->store);
}

/* By name: the same field (builder.c asks for COMMAND's variables so). */
static void test_by_name(void **state)
{
	(void)state;
	setenv("DOCKER_HOST", "unix:///run/other.sock", 1);
	unsetenv("DOCKER_CONTEXT");
	env_load();
	assert_ptr_equal(env_value("DOCKER_HOST"), env_get()->docker_host);
	assert_string_equal(env_value("DOCKER_HOST"), "unix:///run/other.sock");
	assert_null(env_value("DOCKER_CONTEXT"));
	unsetenv("DOCKER_HOST");
	env_load();
	assert_null(env_value("DOCKER_HOST"));
}

/* Unset is NULL; set but empty is "" where empty means something of its
 * own (SOURCE_DATE_EPOCH= is refused, PATH= is the current directory,
 * DOCKER_CONTEXT= names none), else NULL too. */
static void test_empty_is_not_unset(void **state)
{
	char *path = getenv("PATH") ? xstrdup(getenv("PATH")) : NULL;

	(void)state;
	setenv("SOURCE_DATE_EPOCH", "", 1);
	setenv("PATH", "", 1);
	setenv("DOCKER_CONTEXT", "", 1);
	setenv("CTXPACK_STORE", "", 1);
	unsetenv("GITHUB_OUTPUT");
	env_load();
	assert_non_null(env_get()->source_date_epoch);
	assert_string_equal(env_get()->source_date_epoch, "");
	assert_non_null(env_get()->path);
	assert_string_equal(env_get()->path, "");
	assert_non_null(env_get()->docker_context);
	assert_string_equal(env_get()->docker_context, "");
	assert_null(env_get()->store);
	assert_null(env_get()->github_output);
	unsetenv("SOURCE_DATE_EPOCH");
	unsetenv("DOCKER_CONTEXT");
	unsetenv("CTXPACK_STORE");
	if (path)
		setenv("PATH", path, 1);
	free(path);
	env_load();
	assert_null(env_get()->source_date_epoch);
}

/* cache_home() takes what was read, not what the environment says now. */
static void test_cache_home_as_read(void **state)
{
	char *home;

	(void)state;
	setenv("XDG_CACHE_HOME", "/tmp/env-unit", 1);
	env_load();
	setenv("XDG_CACHE_HOME", "/elsewhere/with/a/longer/name", 1);
	home = cache_home();
	assert_string_equal(home, "/tmp/env-unit/ctxpack");
	free(home);
	unsetenv("XDG_CACHE_HOME");
	env_load();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_once),
		cmocka_unit_test(test_by_name),
		cmocka_unit_test(test_empty_is_not_unset),
		cmocka_unit_test(test_cache_home_as_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
