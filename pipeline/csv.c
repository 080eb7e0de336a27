/* csv.c - splitting CSV lines. */
#include "csv.h"

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
