/* shared_data.h - where the tests find the read-only sample data: $SHARED, or ../shared
 * beside the repository (the tests run from its root). Header-only. */
#ifndef TESTS_LIB_SHARED_DATA_H
#define TESTS_LIB_SHARED_DATA_H

#include <stdio.h>
#include <stdlib.h>

static inline const char *shared_dir(void)
{
	const char *s = getenv("SHARED");

	return s && *s ? s : "../shared";
}

/* "SHARED/REL" into BUF (CAP bytes). */
static inline void shared_path(char *buf, size_t cap, const char *rel)
{
	snprintf(buf, cap, "%s/%s", shared_dir(), rel);
}

#endif
