/* sha256.h - SHA-256 checksums as lowercase hex, of bytes in memory or of a file (GLib's
 * implementation). Any thread. */
#ifndef PIPELINE_SHA256_H
#define PIPELINE_SHA256_H

#include <stddef.h>

#include "err.h"

#define SHA256_HEX_SIZE 65 /* 64 hex digits and a NUL */

/* The checksum of LEN bytes at BUF into HEX. */
void sha256_hex(const void *buf, size_t len, char hex[SHA256_HEX_SIZE]);

/* The checksum of the file PATH into HEX, read in pieces (ERR_FATAL when it cannot be read). */
int sha256_file(const char *path, char hex[SHA256_HEX_SIZE], struct err *err);

#endif
