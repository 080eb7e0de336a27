/* source.h - where photo events come from.
 *
 * A source hands out one item at a time. A bad row or event is not an error
 * of the source: it comes out as an item with ok = 0 and a reason, so that it
 * is recorded and counted like any failed photo. Not thread-safe: callers
 * serialise source_next(). */
#ifndef STAGES_SOURCE_H
#define STAGES_SOURCE_H

#include <time.h>

#include "config.h"
#include "err.h"
#include "item.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A half-open time window [since, until) in UTC seconds; since == until == 0
 * means everything. */
struct source_window {
	time_t since, until;
};

struct source;

/* Open the source CFG names, selecting events inside WIN. */
struct source *source_open(const struct config *cfg, const struct source_window *win,
			   struct err *err);

/* Fill IT with the next item: returns 1, 0 at the end, -1 on a source error
 * (the source itself cannot be read; ERR says whether to retry). */
int source_next(struct source *src, struct item *it, struct err *err);

void source_close(struct source *src);

/* Parse "YYYY-MM-DD" strictly into the window covering that UTC day. */
int source_window_date(const char *date, struct source_window *win, struct err *err);

/* Parse an RFC 3339 timestamp ("2026-11-30T09:29:22Z", fractional seconds and
 * numeric offsets accepted) into UTC seconds. */
int source_parse_time(const char *s, time_t *out);

#ifdef __cplusplus
}
#endif

#endif
