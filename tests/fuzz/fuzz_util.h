/* fuzz_util.h - for fuzz targets whose code under test reads a file by path: the input is
 * put in a memory file (memfd) and handed over as /proc/self/fd/N. Header-only, so that
 * every tests/fuzz/fuzz_*.c stays one translation unit. */
#ifndef TESTS_FUZZ_UTIL_H
#define TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Fill a memory file with DATA and put its path in PATH (CAP bytes). The file is reused
 * from call to call; aborts when the system refuses one, as no input can cause that. */
static inline void fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t cap)
{
	static int fd = -1;
	size_t at = 0;

	if (fd < 0)
		fd = memfd_create("fuzz-input", 0);
	if (fd < 0 || ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET))
		abort();
	while (at < size) {
		ssize_t n = write(fd, data + at, size - at);

		if (n <= 0)
			abort();
		at += (size_t)n;
	}
	snprintf(path, cap, "/proc/self/fd/%d", fd);
}

#endif
