/* fetch.c - photo bytes from file:// URLs confined to root folders. */
#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fetch_add_root(struct fetch *f, const char *root, struct err *err)
{
	char *real;

	if (f->nroots == FETCH_MAX_ROOTS)
		return err_set(err, ERR_FATAL, "more than %d root folders", FETCH_MAX_ROOTS);
	real = realpath(root, NULL);
	if (!real)
		return err_set(err, ERR_FATAL, "root folder %s: %s", root, strerror(errno));
	f->roots[f->nroots++] = real;
	return 0;
}

void fetch_free(struct fetch *f)
{
	size_t i;

	for (i = 0; i < f->nroots; i++)
		free(f->roots[i]);
	f->nroots = 0;
}

static int inside_root(const struct fetch *f, const char *real)
{
	size_t i;

	for (i = 0; i < f->nroots; i++) {
		size_t n = strlen(f->roots[i]);

		if (!strncmp(real, f->roots[i], n) && (real[n] == '/' || real[n] == '\0'))
			return 1;
	}
	return 0;
}

/* Decode %XX escapes of a file URL's path into OUT. */
static int url_unescape(const char *in, char *out, size_t cap)
{
	size_t at = 0;

	for (; *in; in++) {
		unsigned v;

		if (at + 1 >= cap)
			return -1;
		if (*in == '%' && sscanf(in + 1, "%2x", &v) == 1 && in[1] && in[2]) {
			if (v == 0)
				return -1;
			out[at++] = (char)v;
			in += 2;
		} else {
			out[at++] = *in;
		}
	}
	out[at] = '\0';
	return 0;
}

static int read_file(const struct fetch *f, const char *url, void **buf, size_t *len,
		     struct err *err)
{
	char path[4096];
	char *real = NULL;
	char *data = NULL;
	struct stat st;
	size_t got = 0;
	int fd = -1;
	int ret = -1;

	if (url_unescape(url + strlen("file://"), path, sizeof(path)))
		return err_set(err, ERR_INPUT, "bad file url");
	if (path[0] != '/')
		return err_set(err, ERR_INPUT, "file url must hold an absolute path");
	real = realpath(path, NULL);
	if (!real) {
		err_set(err, ERR_INPUT, "cannot open photo: %s", strerror(errno));
		goto out;
	}
	if (!inside_root(f, real)) {
		err_set(err, ERR_INPUT, "file url outside the allowed folders");
		goto out;
	}
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st)) {
		err_set(err, ERR_INPUT, "cannot open photo: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, ERR_INPUT, "not a regular file");
		goto out;
	}
	if ((unsigned long long)st.st_size > f->max_bytes) {
		err_set(err, ERR_INPUT, "too large: %lld bytes, limit %zu", (long long)st.st_size,
			f->max_bytes);
		goto out;
	}
	data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data) {
		err_set(err, ERR_FATAL, "out of memory reading %lld bytes", (long long)st.st_size);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err_set(err, ERR_INPUT, "read failed: %s", r < 0 ? strerror(errno) :
				"file shrank while reading");
			goto out;
		}
		got += (size_t)r;
	}
	*buf = data;
	*len = got;
	data = NULL;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(data);
	free(real);
	return ret;
}

int fetch_url(const struct fetch *f, const char *url, void **buf, size_t *len, struct err *err)
{
	*buf = NULL;
	*len = 0;
	if (!strncmp(url, "file://", 7))
		return read_file(f, url, buf, len, err);
	/* LIMIT: http(s) URLs are not fetched yet; they are recorded as failures. */
	return err_set(err, ERR_INPUT, "url scheme not supported: %.16s", url);
}

void fetch_sha256(const void *buf, size_t len, char hex[65])
{
	gchar *s = g_compute_checksum_for_data(G_CHECKSUM_SHA256, buf, len);

	snprintf(hex, 65, "%s", s ? s : "");
	g_free(s);
}
