/* The logger: one event is one line, whatever its message and values carry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Run one log_emit() with stderr sent to a temp file; return what it wrote. */
static char *captured(const char *msg, const char *value)
{
	static char out[8192];
	FILE *tmp = tmpfile();
	int saved = dup(2);
	size_t n;

	assert_non_null(tmp);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fileno(tmp), 2), 2);
	log_emit(LOGL_WARN, "test", msg, "image_id=%s reason=\"%s\"", value, value);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, sizeof(out) - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

static void test_input_cannot_forge_a_line(void **state)
{
	const char *forged = "x\nlevel=info stage=run msg=\"run finished\" status=ok\r\t";
	char *line = captured("photo\nfailed", forged);

	print_message("  %s", line);
	assert_non_null(strchr(line, '\n'));
	assert_null(strchr(strchr(line, '\n') + 1, '\n'));
	assert_null(strchr(line, '\r'));
	assert_null(strchr(line, '\t'));
	assert_non_null(strstr(line, "msg=\"photo failed\""));
	assert_non_null(strstr(line, "image_id=x level=info"));
}

static void test_long_values_are_cut_to_one_line(void **state)
{
	static char big[10000];
	char *line;

	memset(big, 'a', sizeof(big) - 1);
	line = captured("long", big);
	assert_true(strlen(line) < 4096);
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_input_cannot_forge_a_line),
	    cmocka_unit_test(test_long_values_are_cut_to_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
