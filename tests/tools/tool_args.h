/* tool_args.h - command-line numbers for the measuring tools in tests/tools. Header-only,
 * so that every tool stays one translation unit. */
#ifndef TESTS_TOOL_ARGS_H
#define TESTS_TOOL_ARGS_H

#include <errno.h>
#include <stdlib.h>

/* S as a whole number in [LO, HI] into *V. Returns 0, or -1 (V untouched) for anything
 * else. */
static inline int tool_parse_int(const char *s, int lo, int hi, int *v)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(s, &end, 10);
	if (errno || end == s || *end || x < lo || x > hi)
		return -1;
	*v = (int)x;
	return 0;
}

#endif
