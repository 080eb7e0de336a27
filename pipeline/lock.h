/* lock.h - one run per scope at a time, through a PostgreSQL advisory lock.
 *
 * A scope names what two runs must not do at once: "date:2026-11-30" for a
 * backfill, "nightly", "retrain". The lock lives on a connection of its own
 * for the whole run: the run's store connection reconnects after errors, and
 * a session lock would silently go with it. When the process dies the
 * server drops the connection and the lock with it. */
#ifndef PIPELINE_LOCK_H
#define PIPELINE_LOCK_H

#include "err.h"
#include "store.h"

#define LOCK_SCOPE_MAX 64

struct run_lock;

/* Write the scope of a run of KIND ("nightly", "backfill", "retrain") over
 * DATE (may be NULL) into OUT. */
void lock_scope(const char *kind, const char *date, char out[LOCK_SCOPE_MAX]);

/* Called about once a second while lock_take() waits; a non-zero return
 * abandons the wait (lock_take() then returns 1). */
typedef int (*lock_wait_fn)(void *arg, double waited_s);

/* Take the lock for SCOPE on a new connection made with CONNINFO, waiting up
 * to WAIT_S seconds for another holder to let go (0: try once). Returns 0
 * with *OUT set (release with lock_release()), 1 when another process holds
 * it (ERR says who, kind ERR_RETRY), or -1 on a database error. Logs one
 * lock=... line either way. WAIT_FN may be NULL. */
int lock_take(const char *conninfo, const char *scope, int wait_s, lock_wait_fn wait_fn, void *arg,
              struct run_lock **out, struct err *err);

/* Make sure the lock is still held (asking the server at most every 10 s);
 * after a reconnect of its connection it is taken again. Returns 0 when held, 1 when another
 * process took it meanwhile (ERR_FATAL), -1 when the database cannot be reached (ERR_RETRY). */
int lock_check(struct run_lock *l, struct err *err);

/* Runs of KIND over DATE (may be NULL) still marked 'running' while the
 * caller holds their scope's lock belong to processes that died: mark them
 * failed, with the reason in pipeline_runs.error. *N receives how many. */
int lock_close_abandoned(struct store *s, const char *kind, const char *date, long *n,
                         struct err *err);

/* The run locks held now, one row each: (application_name, pid, since as
 * RFC 3339 UTC). The application name reads "pipeline-run SCOPE pid=P@HOST".
 * Free OUT with store_rows_free(). */
int lock_list(struct store *s, struct store_rows *out, struct err *err);

/* Let go and close the connection. L may be NULL. */
void lock_release(struct run_lock *l);

#endif
