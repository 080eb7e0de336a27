/* source.h - where photo events come from.
 *
 * A source hands out one item at a time. A bad row or event is not an error
 * of the source: it comes out as an item with ok = 0 and a reason, so that it
 * is recorded and counted like any failed photo. Not thread-safe: callers
 * serialise source_next(). */
#ifndef STAGES_SOURCE_H
#define STAGES_SOURCE_H

#include <signal.h>
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

/* An open window's end: 2100-01-01. */
#define SOURCE_TIME_MAX ((time_t)4102444800LL)

struct source;

/* Open the source CFG names, selecting events inside WIN. */
struct source *source_open(const struct config *cfg, const struct source_window *win,
                           struct err *err);

/* Fill IT with the next item: returns 1, 0 at the end, -1 on a source error
 * (the source itself cannot be read; ERR says whether to retry). */
int source_next(struct source *src, struct item *it, struct err *err);

/* Make source_next() return 0 (the end) soon after *STOP becomes non-zero,
 * even while it waits for a broker. STOP must outlive SRC. */
void source_set_stop(struct source *src, const volatile sig_atomic_t *stop);

/* IT (handed out by source_next) is durable in the database, or recorded as
 * failed there: the source may move its committed position past it. Safe to
 * call from another thread than source_next(). */
void source_ack(struct source *src, const struct item *it);

/* Commit the position of everything acknowledged so far, waiting for the
 * broker. Call once the rows of the acknowledged items are complete (grouped
 * too). A no-op for sources without a position. ERR_RETRY when the commit
 * was refused: the items will be read again by the next run. */
int source_commit(struct source *src, struct err *err);

/* Leave the group without committing and free SRC (NULL is fine). */
void source_close(struct source *src);

/* Parse "YYYY-MM-DD" strictly into the window covering that UTC day. */
int source_window_date(const char *date, struct source_window *win, struct err *err);

/* The window of a run: DATE (a UTC day), or [SINCE, UNTIL) where each is an
 * RFC 3339 timestamp or a YYYY-MM-DD day start (a missing end is open), or
 * everything when all are NULL. DATE with SINCE/UNTIL is an error. */
int source_window_parse(const char *date, const char *since, const char *until,
                        struct source_window *win, struct err *err);

/* Parse an RFC 3339 timestamp ("2026-11-30T09:29:22Z", fractional seconds and
 * numeric offsets accepted) into UTC seconds. */
int source_parse_time(const char *s, time_t *out);

#ifdef __cplusplus
}
#endif

#endif
