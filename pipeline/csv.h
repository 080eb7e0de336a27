/* csv.h - RFC 4180 CSV lines: quoted fields, "" for a quote, bounded sizes. */
#ifndef PIPELINE_CSV_H
#define PIPELINE_CSV_H

#include <stdio.h>

#define CSV_LINE_MAX   65536
#define CSV_FIELDS_MAX 64

/* Split LINE (modified in place, no trailing newline) into at most MAX
 * FIELDS. Returns the number of fields, or -1 for an unterminated quote, junk
 * after a closing quote or too many fields. */
int csv_split(char *line, char **fields, int max);

/* Index of column NAME among the N header FIELDS, or -1. A UTF-8 byte order mark before
 * the first field is not part of its name. */
int csv_column(char *const *fields, int n, const char *name);

/* Read one line of at most CSV_LINE_MAX - 1 bytes into BUF (CSV_LINE_MAX
 * bytes) without its newline. Returns 1 for a line, 2 for an over-long line
 * and 3 for a line holding a NUL byte (both skipped to their end, BUF empty),
 * 0 at the end, -1 on a read error. */
int csv_read_line(FILE *fp, char *buf);

#endif
