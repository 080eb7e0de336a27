/* file.h - whole files and folders: paths joined within bounds, folders made with their
 * parents, small text files read whole and replaced atomically. Any thread. */
#ifndef PIPELINE_FILE_H
#define PIPELINE_FILE_H

#include <stddef.h>

#include "err.h"

/* "DIR/NAME" into OUT (CAP bytes); ERR_FATAL when it does not fit. */
int file_join(char *out, size_t cap, const char *dir, const char *name, struct err *err);

/* Make DIR and every missing folder above it (mode 0755); existing ones are fine. */
int file_mkdirs(const char *dir, struct err *err);

/* The whole of PATH as a NUL-terminated string; files over MAX bytes are refused. Free the
 * result with free(). NULL with ERR_FATAL on failure. */
char *file_read_text(const char *path, size_t max, struct err *err);

/* Replace PATH with TEXT and a newline: written and synced to PATH.tmp first, then renamed
 * over PATH, so that a reader sees the old file or the new one, never a part. */
int file_write_atomic(const char *path, const char *text, struct err *err);

#endif
