/* source_dir.c - photos listed in a CSV (ad_id,image_id,image,created_at)
 * with the image paths relative to an images folder. */
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "source_impl.h"

enum { COL_AD, COL_IMAGE_ID, COL_IMAGE, COL_CREATED, NCOLS };
static const char *const col_names[NCOLS] = {"ad_id", "image_id", "image", "created_at"};

struct source_dir {
	struct source base;
	struct csv_file file;
	char csv[CONFIG_PATH_MAX];
	const char *csv_name; /* basename, for item sources */
	char root[CONFIG_PATH_MAX];
	struct source_window win;
	int col[NCOLS];
};

/* A relative path with no "..", no empty component and no control bytes. */
static const char *check_rel_path(const char *p)
{
	const char *c = p;

	if (!*p)
		return "empty image path";
	if (*p == '/')
		return "absolute image path not allowed";
	for (; *c; c++)
		if ((unsigned char)*c < 0x20)
			return "control character in image path";
	c = p;
	while (*c) {
		size_t len = strcspn(c, "/");

		if (len == 2 && c[0] == '.' && c[1] == '.')
			return "image path leaves the images folder ('..')";
		c += len;
		if (*c == '/')
			c++;
	}
	return NULL;
}

/* Append S to OUT (at *AT, CAP bytes) with the bytes a URL gives a meaning to escaped. */
static int url_append(char *out, size_t cap, size_t *at, const char *s)
{
	for (; *s; s++) {
		int special = *s == '%' || *s == '?' || *s == '#';

		if (*at + (special ? 3 : 1) >= cap)
			return -1;
		if (special)
			*at += (size_t)snprintf(out + *at, cap - *at, "%%%02X", (unsigned char)*s);
		else
			out[(*at)++] = *s;
	}
	out[*at] = '\0';
	return 0;
}

/* "file://ROOT/REL", escaped, so that a file named "50%.jpg" or "a#1.jpg" is read as that
 * name. */
static int file_url(const char *root, const char *rel, char *out, size_t cap)
{
	size_t at = 0;

	return url_append(out, cap, &at, "file:") || url_append(out, cap, &at, "//") ||
	               url_append(out, cap, &at, root) || url_append(out, cap, &at, "/") ||
	               url_append(out, cap, &at, rel)
	           ? -1
	           : 0;
}

static int set_field(char *dst, size_t cap, const char *value, const char *what, struct item *it)
{
	char reason[128];

	if (!*value) {
		snprintf(reason, sizeof(reason), "missing %s", what);
		item_fail(it, "source", reason);
		return -1;
	}
	if (strlen(value) >= cap) {
		snprintf(reason, sizeof(reason), "%s longer than %zu bytes", what, cap - 1);
		item_fail(it, "source", reason);
		return -1;
	}
	snprintf(dst, cap, "%s", value);
	return 0;
}

static int dir_next(struct source *src, struct item *it, struct err *err)
{
	struct source_dir *d = (struct source_dir *)src;
	char *f[CSV_FIELDS_MAX];
	const char *bad;
	time_t t;
	int n, r, c;

	for (;;) {
		memset(it, 0, sizeof(*it));
		r = csv_next(&d->file, err);
		if (r <= 0)
			return r;
		if (r == 1 && d->file.line[0] == '\0')
			continue; /* blank line */
		it->ok = 1;
		snprintf(it->source, sizeof(it->source), "%s:%ld", d->csv_name, d->file.lineno);
		if (r == 2) {
			item_fail(it, "source", "line longer than 65536 bytes");
			return 1;
		}
		if (r == 3) {
			item_fail(it, "source", "NUL byte in line");
			return 1;
		}
		/* The database stores UTF-8 text and refuses anything else, which would fail
		 * the whole batch: such a line is this line's failure. */
		if (!g_utf8_validate(d->file.line, -1, NULL)) {
			item_fail(it, "source", "line is not valid UTF-8");
			return 1;
		}
		n = csv_split(d->file.line, f, CSV_FIELDS_MAX);
		if (n < 0) {
			item_fail(it, "source", "malformed CSV line (quotes or too many fields)");
			return 1;
		}
		for (c = 0; c < NCOLS; c++)
			if (d->col[c] >= n) {
				item_fail(it, "source", "too few fields");
				return 1;
			}
		if (set_field(it->ad_id, sizeof(it->ad_id), f[d->col[COL_AD]], "ad_id", it) ||
		    set_field(it->image_id, sizeof(it->image_id), f[d->col[COL_IMAGE_ID]],
		              "image_id", it))
			return 1;
		it->has_identity = 1;
		if (set_field(it->created_at, sizeof(it->created_at), f[d->col[COL_CREATED]],
		              "created_at", it))
			return 1;
		if (source_parse_time(it->created_at, &t)) {
			/* not stored: the database would refuse some such values (2026-02-30),
			 * and with them the whole batch */
			it->created_at[0] = '\0';
			item_fail(it, "source", "created_at is not an RFC 3339 timestamp");
			return 1;
		}
		if ((d->win.since || d->win.until) && (t < d->win.since || t >= d->win.until))
			continue;
		bad = check_rel_path(f[d->col[COL_IMAGE]]);
		if (bad) {
			item_fail(it, "source", bad);
			return 1;
		}
		if (file_url(d->root, f[d->col[COL_IMAGE]], it->url, sizeof(it->url))) {
			item_fail(it, "source", "image path too long");
			return 1;
		}
		return 1;
	}
}

static void dir_close(struct source *src)
{
	struct source_dir *d = (struct source_dir *)src;

	csv_close(&d->file);
	free(d);
}

static const struct source_ops dir_ops = {dir_next, dir_close, NULL, NULL};

struct source *source_dir_open(const struct config *cfg, const struct source_window *win,
                               struct err *err)
{
	struct source_dir *d = calloc(1, sizeof(*d));
	char *real = NULL;

	if (!d) {
		err_set(err, ERR_FATAL, "out of memory");
		return NULL;
	}
	d->base.ops = &dir_ops;
	d->win = *win;
	snprintf(d->csv, sizeof(d->csv), "%s", cfg->source_csv);
	d->csv_name = strrchr(d->csv, '/') ? strrchr(d->csv, '/') + 1 : d->csv;
	real = realpath(cfg->images_root, NULL);
	if (!real) {
		err_set(err, ERR_FATAL, "source.images_root %s: %s", cfg->images_root,
		        strerror(errno));
		goto fail;
	}
	snprintf(d->root, sizeof(d->root), "%s", real);
	if (csv_open(&d->file, d->csv, col_names, NCOLS, d->col, err)) {
		err_prefix(err, "source.csv");
		goto fail;
	}
	free(real);
	return &d->base;
fail:
	free(real);
	dir_close(&d->base);
	return NULL;
}
