/* csv.c - splitting CSV lines, reading CSV files with a header. */
#include "csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int csv_split(char *line, char **fields, int max)
{
	char *r = line, *w = line;
	int n = 0;

	for (;;) {
		if (n == max)
			return -1;
		fields[n++] = w;
		if (*r == '"') {
			r++;
			for (;;) {
				if (*r == '\0')
					return -1;
				if (*r == '"' && r[1] == '"') {
					*w++ = '"';
					r += 2;
				} else if (*r == '"') {
					r++;
					break;
				} else {
					*w++ = *r++;
				}
			}
			if (*r != ',' && *r != '\0')
				return -1;
		} else {
			while (*r && *r != ',')
				*w++ = *r++;
		}
		if (*r == '\0') {
			*w = '\0';
			return n;
		}
		*w++ = '\0';
		r++;
	}
}

int csv_column(char *const *fields, int n, const char *name)
{
	int i;

	for (i = 0; i < n; i++) {
		const char *f = fields[i];

		/* spreadsheets start their UTF-8 exports with a byte order mark */
		if (i == 0 && !strncmp(f, "\xef\xbb\xbf", 3))
			f += 3;
		if (!strcmp(f, name))
			return i;
	}
	return -1;
}

int csv_read_line(FILE *fp, char *buf)
{
	size_t len = 0;
	int c, nul = 0;

	/* Byte by byte rather than fgets(): a NUL inside the line would cut it short unseen. */
	while ((c = getc(fp)) != EOF && c != '\n') {
		if (c == '\0')
			nul = 1;
		if (len < CSV_LINE_MAX - 1)
			buf[len] = (char)c;
		len++;
	}
	if (c == EOF && ferror(fp))
		return -1;
	if (c == EOF && len == 0)
		return 0;
	if (len > CSV_LINE_MAX - 1 || nul) {
		buf[0] = '\0';
		return len > CSV_LINE_MAX - 1 ? 2 : 3;
	}
	while (len && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return 1;
}

int csv_open(struct csv_file *c, const char *path, const char *const *names, int n, int *cols,
             struct err *err)
{
	char *f[CSV_FIELDS_MAX], want[256];
	int nf, i, at = 0;

	memset(c, 0, sizeof(*c));
	c->path = path;
	c->fp = fopen(path, "r");
	if (!c->fp)
		return err_set(err, ERR_FATAL, "%s: %s", path, strerror(errno));
	c->line = malloc(CSV_LINE_MAX);
	if (!c->line)
		return err_set(err, ERR_FATAL, "%s: out of memory", path);
	if (csv_next(c, err) != 1 || (nf = csv_split(c->line, f, CSV_FIELDS_MAX)) < 0)
		return err_set(err, ERR_FATAL, "%s: empty file or unreadable header", path);
	for (i = 0; i < n; i++)
		if ((cols[i] = csv_column(f, nf, names[i])) < 0)
			break;
	if (i == n)
		return 0;
	want[0] = '\0';
	for (int k = 0; k < n && at < (int)sizeof(want); k++)
		at +=
		    snprintf(want + at, sizeof(want) - (size_t)at, "%s%s", k ? ", " : "", names[k]);
	return err_set(err, ERR_FATAL, "%s:1: no column '%s' (needs %s)", path, names[i], want);
}

int csv_next(struct csv_file *c, struct err *err)
{
	int r = csv_read_line(c->fp, c->line);

	if (r < 0)
		return err_set(err, ERR_FATAL, "%s: read error: %s", c->path, strerror(errno));
	if (r > 0)
		c->lineno++;
	return r;
}

void csv_close(struct csv_file *c)
{
	if (c->fp)
		fclose(c->fp);
	free(c->line);
	memset(c, 0, sizeof(*c));
}
