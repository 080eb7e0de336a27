/* lock.h - one run per scope at a time, through a PostgreSQL advisory lock.
 *
 * A scope names what two runs must not do at once: "date:2026-11-30" for a
 * backfill, "nightly", "retrain". The lock lives on a connection of its own
 * for the whole run: the run's store connection reconnects after errors, and
 * a session lock would silently go with it. When the process dies the
 * server drops the connection and the lock with it. */
#ifndef PIPELINE_LOCK_H
#define PIPELINE_LOCK_H

#include <signal.h>

#include "err.h"
#include "store.h"

#define LOCK_SCOPE_MAX 64

struct run_lock;

/* Write the scope of a run of KIND ("nightly", "backfill", "retrain") over
 * DATE (may be NULL) into OUT. */
void lock_scope(const char *kind, const char *date, char out[LOCK_SCOPE_MAX]);

/* Take the lock of a run of KIND over DATE (may be NULL) on a new connection made with
 * CONNINFO, waiting up to WAIT_S seconds for another holder to let go (0: try once). While
 * it waits, systemd's start timeout is extended, and *STOP (may be NULL) turning non-zero
 * ends the wait. Once it is held, runs of the scope that S still shows 'running' belong to
 * processes that died: they are marked failed, with the reason in pipeline_runs.error.
 * Returns 0 with *OUT set (release with lock_release()), 1 when another process holds it
 * (ERR says who, kind ERR_RETRY), or -1 on a database error (*OUT may then be set, and is
 * the caller's to release). Logs one lock=... line either way. */
int lock_take(struct store *s, const char *conninfo, const char *kind, const char *date, int wait_s,
              const volatile sig_atomic_t *stop, struct run_lock **out, struct err *err);

/* Make sure the lock is still held (asking the server at most every 10 s);
 * after a reconnect of its connection it is taken again. Returns 0 when held, 1 when another
 * process took it meanwhile (ERR_FATAL), -1 when the database cannot be reached (ERR_RETRY). */
int lock_check(struct run_lock *l, struct err *err);

/* The run locks held now, one row each: (application_name, pid, since as
 * RFC 3339 UTC). The application name reads "pipeline-run SCOPE pid=P@HOST".
 * Free OUT with store_rows_free(). */
int lock_list(struct store *s, struct store_rows *out, struct err *err);

/* Let go and close the connection. L may be NULL. */
void lock_release(struct run_lock *l);

#endif
