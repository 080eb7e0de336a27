/* file.c - paths, folders and whole small files. */
#include "file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_join(char *out, size_t cap, const char *dir, const char *name, struct err *err)
{
	if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
		return err_set(err, ERR_FATAL, "path too long: %s/%s", dir, name);
	return 0;
}

int file_mkdirs(const char *dir, struct err *err)
{
	char *buf = strdup(dir);
	char *p;
	int ret = -1;

	if (!buf)
		return err_set(err, ERR_FATAL, "out of memory");
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST) {
			err_set(err, ERR_FATAL, "cannot create %s: %s", buf, strerror(errno));
			goto out;
		}
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST) {
		err_set(err, ERR_FATAL, "cannot create %s: %s", buf, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

char *file_read_text(const char *path, size_t max, struct err *err)
{
	struct stat st;
	char *buf = NULL;
	FILE *f = fopen(path, "rb");

	if (!f) {
		err_set(err, ERR_FATAL, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		err_set(err, ERR_FATAL, "%s is not a regular file of at most %zu bytes", path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err_set(err, ERR_FATAL, "out of memory reading %s", path);
		goto out;
	}
	if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		err_set(err, ERR_FATAL, "short read from %s", path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[st.st_size] = '\0';
out:
	fclose(f);
	return buf;
}

int file_write_atomic(const char *path, const char *text, struct err *err)
{
	size_t cap = strlen(path) + sizeof(".tmp");
	char *tmp = malloc(cap);
	FILE *fp = NULL;
	int bad, ret = -1;

	if (!tmp)
		return err_set(err, ERR_FATAL, "out of memory");
	snprintf(tmp, cap, "%s.tmp", path);
	fp = fopen(tmp, "w");
	if (!fp) {
		err_set(err, ERR_FATAL, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	bad = fputs(text, fp) < 0 || fputc('\n', fp) < 0 || fflush(fp) || fsync(fileno(fp));
	bad |= fclose(fp) != 0;
	if (bad || rename(tmp, path)) {
		err_set(err, ERR_FATAL, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	ret = 0;
out:
	free(tmp);
	return ret;
}
