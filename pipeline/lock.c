/* lock.c - advisory locks that keep two runs of one scope apart. */
#include "lock.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "proc.h"
#include "store.h"

/* First key of the two-key advisory lock form: "pipe" in ASCII. Two-key locks
 * live apart from the single-bigint ones the store uses for migrations. */
#define LOCK_CLASS 0x70697065

struct run_lock {
	struct store *s;
	char scope[LOCK_SCOPE_MAX];
	char key1[16], key2[16], key2_oid[16];
	double last_check;
};

/* lock_check() asks the server at most this often */
#define LOCK_CHECK_EVERY_S 10.0

void lock_scope(const char *kind, const char *date, char out[LOCK_SCOPE_MAX])
{
	if (date && *date)
		snprintf(out, LOCK_SCOPE_MAX, "date:%s", date);
	else
		snprintf(out, LOCK_SCOPE_MAX, "%s", kind ? kind : "run");
}

/* FNV-1a: stable across servers and versions, unlike hashtext(). */
static uint32_t scope_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* 1 when the lock was taken now, 0 when someone else holds it. */
static int try_lock(struct run_lock *l, struct err *err)
{
	const char *params[2] = {l->key1, l->key2};
	struct store_rows rows;
	int got;

	if (store_query(l->s, "take run lock", "SELECT pg_try_advisory_lock($1::int, $2::int)", 2,
	                params, 1, &rows, err))
		return -1;
	got = store_rows_get(&rows, 0, 0) && !strcmp(store_rows_get(&rows, 0, 0), "t");
	store_rows_free(&rows);
	return got;
}

/* Name the process in pg_stat_activity so that a second run and
 * `pipeline-run status` can tell who holds the lock. */
static void label_session(struct run_lock *l)
{
	char name[64], host[64] = "";
	const char *params[1] = {name};
	struct err e = {0};

	gethostname(host, sizeof(host) - 1);
	snprintf(name, sizeof(name), "pipeline-run %s pid=%ld@%s", l->scope, (long)getpid(), host);
	if (store_query(l->s, "label lock session",
	                "SELECT set_config('application_name', $1, false)", 1, params, 1, NULL, &e))
		log_warn("lock", "could not label the lock's session", "error=\"%s\"", e.msg);
}

/* Describe the holder of L's lock into OUT ("pid=… app=… since=…"). */
static void describe_holder(struct run_lock *l, char *out, size_t cap)
{
	const char *params[2] = {l->key1, l->key2_oid};
	struct store_rows rows;
	struct err e = {0};

	snprintf(out, cap, "holder=unknown");
	if (store_query(
	        l->s, "find run lock holder",
	        "SELECT a.pid, a.application_name,"
	        " to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	        " FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid"
	        " WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2"
	        " AND k.classid = $1::oid AND k.objid = $2::oid",
	        2, params, 16, &rows, &e))
		return;
	if (rows.n > 0)
		snprintf(out, cap, "holder_pid=%s holder=\"%s\" holder_since=%s",
		         store_rows_get(&rows, 0, 0) ? store_rows_get(&rows, 0, 0) : "?",
		         store_rows_get(&rows, 0, 1) ? store_rows_get(&rows, 0, 1) : "",
		         store_rows_get(&rows, 0, 2) ? store_rows_get(&rows, 0, 2) : "?");
	store_rows_free(&rows);
}

/* Runs of KIND over DATE (may be NULL) still marked 'running' while the caller holds their
 * scope's lock belong to processes that died: mark them failed. */
static int close_abandoned(struct store *s, const char *kind, const char *date, struct err *err)
{
	const char *params[2] = {kind, date};
	struct store_rows rows;
	size_t i;

	if (store_query(
	        s, "close abandoned runs in pipeline_runs",
	        "UPDATE pipeline_runs SET status = 'failed',"
	        " finished_at = coalesce(finished_at, now()),"
	        " error = 'abandoned: the process ended without recording its end'"
	        " WHERE status = 'running' AND kind = $1 AND date IS NOT DISTINCT FROM $2::date"
	        " RETURNING id",
	        2, params, 100000, &rows, err))
		return -1;
	for (i = 0; i < rows.n; i++)
		log_warn("lock", "an earlier run of this scope died; marked failed",
		         "run_id=%s kind=%s", store_rows_get(&rows, i, 0), kind);
	store_rows_free(&rows);
	return 0;
}

int lock_take(struct store *s, const char *conninfo, const char *kind, const char *date, int wait_s,
              const volatile sig_atomic_t *stop, struct run_lock **out, struct err *err)
{
	struct run_lock *l = calloc(1, sizeof(*l));
	double t0 = proc_now_s(), waited = 0;
	int logged_wait = 0, got, rc = -1;
	char scope[LOCK_SCOPE_MAX], holder[256];
	uint32_t h;

	*out = NULL;
	if (!l)
		return err_set(err, ERR_FATAL, "out of memory");
	lock_scope(kind, date, scope);
	snprintf(l->scope, sizeof(l->scope), "%s", scope);
	h = scope_hash(scope);
	snprintf(l->key1, sizeof(l->key1), "%d", LOCK_CLASS);
	snprintf(l->key2, sizeof(l->key2), "%" PRId32, (int32_t)h);
	snprintf(l->key2_oid, sizeof(l->key2_oid), "%" PRIu32, h);
	l->s = store_open(conninfo, err);
	if (!l->s)
		goto out;

	while ((got = try_lock(l, err)) == 0) {
		waited = proc_now_s() - t0;
		if (waited >= wait_s || (stop && *stop)) {
			describe_holder(l, holder, sizeof(holder));
			log_warn("lock", "another run holds the lock",
			         "lock=busy scope=%s "
			         "waited_s=%.1f %s",
			         scope, waited, holder);
			err_set(err, ERR_RETRY, "another run of scope %s is running (%s)", scope,
			        holder);
			rc = 1;
			goto out;
		}
		if (!logged_wait) {
			describe_holder(l, holder, sizeof(holder));
			log_info("lock", "waiting for another run",
			         "lock=waiting scope=%s "
			         "wait_max_s=%d %s",
			         scope, wait_s, holder);
			logged_wait = 1;
		}
		/* keep systemd's start timeout from running out meanwhile */
		notify_extend_timeout(5000000);
		sleep(1);
	}
	if (got < 0)
		goto out;
	label_session(l);
	l->last_check = proc_now_s();
	log_info("lock", "run lock taken", "lock=acquired scope=%s waited_s=%.1f", scope,
	         proc_now_s() - t0);
	*out = l;
	l = NULL;
	rc = close_abandoned(s, kind, date, err);
out:
	if (l) {
		store_close(l->s);
		free(l);
	}
	return rc;
}

int lock_check(struct run_lock *l, struct err *err)
{
	const char *params[2] = {l->key1, l->key2_oid};
	struct store_rows rows;
	double now = proc_now_s();
	int held, got;

	if (now - l->last_check < LOCK_CHECK_EVERY_S)
		return 0;
	l->last_check = now;
	/* a reconnect inside store_query() ends the old session and its lock */
	if (store_query(l->s, "check run lock",
	                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
	                " AND objsubid = 2 AND pid = pg_backend_pid()"
	                " AND classid = $1::oid AND objid = $2::oid",
	                2, params, 1, &rows, err))
		return -1;
	held = store_rows_get(&rows, 0, 0) && strcmp(store_rows_get(&rows, 0, 0), "0") != 0;
	store_rows_free(&rows);
	if (held)
		return 0;
	got = try_lock(l, err);
	if (got < 0)
		return -1;
	if (!got) {
		log_error("lock", "lost the run lock to another run", "lock=lost scope=%s",
		          l->scope);
		err_set(err, ERR_FATAL, "lost the lock of scope %s to another run", l->scope);
		return 1;
	}
	label_session(l);
	log_warn("lock", "run lock taken again after a reconnect", "lock=reacquired scope=%s",
	         l->scope);
	return 0;
}

int lock_list(struct store *s, struct store_rows *out, struct err *err)
{
	char key1[16];
	const char *params[1] = {key1};

	snprintf(key1, sizeof(key1), "%d", LOCK_CLASS);
	return store_query(s, "list run locks",
	                   "SELECT a.application_name, a.pid,"
	                   " to_char(a.backend_start AT TIME ZONE 'UTC',"
	                   " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	                   " FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid"
	                   " WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2"
	                   " AND k.classid = $1::oid ORDER BY a.backend_start",
	                   1, params, 10000, out, err);
}

void lock_release(struct run_lock *l)
{
	const char *params[2];
	struct err e = {0};

	if (!l)
		return;
	params[0] = l->key1;
	params[1] = l->key2;
	if (store_query(l->s, "release run lock", "SELECT pg_advisory_unlock($1::int, $2::int)", 2,
	                params, 1, NULL, &e))
		log_warn("lock",
		         "could not release the run lock (the server drops it with the "
		         "connection)",
		         "scope=%s error=\"%s\"", l->scope, e.msg);
	else
		log_info("lock", "run lock released", "lock=released scope=%s", l->scope);
	store_close(l->s);
	free(l);
}
