/* csv.h - RFC 4180 CSV: quoted fields, "" for a quote, bounded sizes; files whose first
 * line names the columns. */
#ifndef PIPELINE_CSV_H
#define PIPELINE_CSV_H

#include <stdio.h>

#include "err.h"

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

/* A CSV file read line by line, its columns found by name in its header. */
struct csv_file {
	const char *path; /* as given to csv_open(), for messages */
	FILE *fp;
	char *line;  /* the line last read, CSV_LINE_MAX bytes; split it with csv_split() */
	long lineno; /* that line's number in the file (the header is line 1) */
};

/* Open PATH, read its header and find the N columns named in NAMES: COLS (N ints) receives
 * their indices. Returns 0, or -1 with ERR_FATAL ("PATH: why", or "PATH:1: no column 'X'
 * (needs a, b)"). Call csv_close() in both cases. */
int csv_open(struct csv_file *c, const char *path, const char *const *names, int n, int *cols,
             struct err *err);

/* Read the next line into C->line: 1 for a line, 2 for an over-long one and 3 for one
 * holding a NUL byte (C->line empty), 0 at the end, -1 on a read error (ERR_FATAL). */
int csv_next(struct csv_file *c, struct err *err);

void csv_close(struct csv_file *c);

#endif
