/* fetch.h - read a photo's bytes from its URL.
 *
 * file:// URLs are read only inside the configured root folders (after
 * resolving "..", symlinks and absolute paths). http:// and https:// URLs are
 * fetched with libcurl: bounded time, bytes (counted while streaming) and
 * redirects, redirects only to http(s), and by default no connection to
 * loopback, private or link-local addresses (the URLs come from outside).
 * Every failure is ERR_INPUT with a specific reason, except running out of
 * memory (ERR_FATAL). */
#ifndef STAGES_FETCH_H
#define STAGES_FETCH_H

#include <stddef.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FETCH_MAX_ROOTS 16

struct fetch {
	char *roots[FETCH_MAX_ROOTS]; /* resolved absolute folders */
	size_t nroots;
	size_t max_bytes;
	/* http(s) bounds; 0 takes the built-in default */
	int timeout_s, connect_timeout_s, max_redirects;
	long long low_speed_bytes;
	int low_speed_s;
	int allow_private;      /* http(s) may reach loopback/private addresses */
	const char *user_agent; /* may be NULL */
};

/* Set up libcurl once per process, before any thread fetches. */
int fetch_global_init(struct err *err);

/* Resolve and remember ROOT as an allowed folder for file:// URLs. */
int fetch_add_root(struct fetch *f, const char *root, struct err *err);

/* Read URL into a newly malloc'd *BUF of *LEN bytes (free() it). Files over
 * max_bytes are refused before reading. Thread-safe. */
int fetch_url(const struct fetch *f, const char *url, void **buf, size_t *len, struct err *err);

void fetch_free(struct fetch *f);

#ifdef __cplusplus
}
#endif

#endif
