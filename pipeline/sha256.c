/* sha256.c - checksums through GLib's GChecksum. */
#include "sha256.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>

void sha256_hex(const void *buf, size_t len, char hex[SHA256_HEX_SIZE])
{
	gchar *s = g_compute_checksum_for_data(G_CHECKSUM_SHA256, buf, len);

	snprintf(hex, SHA256_HEX_SIZE, "%s", s ? s : "");
	g_free(s);
}

int sha256_file(const char *path, char hex[SHA256_HEX_SIZE], struct err *err)
{
	GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
	unsigned char buf[1 << 16];
	FILE *fp = fopen(path, "rb");
	size_t n;
	int bad;

	if (!fp) {
		g_checksum_free(ck);
		return err_set(err, ERR_FATAL, "%s: %s", path, strerror(errno));
	}
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		g_checksum_update(ck, buf, n);
	bad = ferror(fp);
	fclose(fp);
	snprintf(hex, SHA256_HEX_SIZE, "%s", g_checksum_get_string(ck));
	g_checksum_free(ck);
	return bad ? err_set(err, ERR_FATAL, "%s: read error", path) : 0;
}
