/* status.c - a plain-text picture of the pipeline from its tables and views. */
#include "status.h"

#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "log.h"
#include "run.h"
#include "store.h"

#define STATUS_REASONS 8

static const char *cell(const struct store_rows *r, size_t row, int col)
{
	const char *v = store_rows_get(r, row, col);

	return v ? v : "-";
}

static int print_runs(struct store *s, int limit, FILE *out, struct err *err)
{
	char lim[16];
	const char *params[1] = {lim};
	struct store_rows r;
	size_t i;

	snprintf(lim, sizeof(lim), "%d", limit);
	if (store_query(s, "read run_history",
	                "SELECT run_id, kind, date, status,"
	                " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
	                " round(duration_s::numeric, 1), photos_in, photos_embedded, photos_failed,"
	                " ads_grouped, model_id, error"
	                " FROM run_history ORDER BY run_id DESC LIMIT $1::int",
	                1, params, (size_t)limit, &r, err))
		return -1;
	fprintf(out, "runs (newest first):\n");
	fprintf(out, "  %6s  %-8s  %-10s  %-8s  %-19s  %9s  %7s  %8s  %6s  %6s  %5s\n", "id",
	        "kind", "date", "status", "started (UTC)", "duration", "photos", "embedded",
	        "failed", "ads", "model");
	for (i = 0; i < r.n; i++) {
		char dur[32];

		snprintf(dur, sizeof(dur), "%ss", cell(&r, i, 5));
		fprintf(out, "  %6s  %-8s  %-10s  %-8s  %-19s  %9s  %7s  %8s  %6s  %6s  %5s\n",
		        cell(&r, i, 0), cell(&r, i, 1), cell(&r, i, 2), cell(&r, i, 3),
		        cell(&r, i, 4), dur, cell(&r, i, 6), cell(&r, i, 7), cell(&r, i, 8),
		        cell(&r, i, 9), cell(&r, i, 10));
		if (store_rows_get(&r, i, 11))
			fprintf(out, "  %6s  why: %s\n", "", cell(&r, i, 11));
	}
	if (r.n == 0)
		fprintf(out, "  (none yet)\n");
	store_rows_free(&r);
	return 0;
}

static int print_model(struct store *s, FILE *out, struct err *err)
{
	struct store_rows r;

	if (store_query(s, "read model_history",
	                "SELECT model_id, backbone, coalesce(threshold::text, 'none tuned'),"
	                " embedding_dim, image_width, image_height,"
	                " to_char(promoted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
	                " weights_path, runs,"
	                /* the scalar metrics only, 4 digits: the per-epoch history is in SQL */
	                " coalesce((SELECT string_agg(key || '=' || CASE jsonb_typeof(value)"
	                " WHEN 'number' THEN trim_scale(round(value::text::numeric, 4))::text"
	                " ELSE value #>> '{}' END, ' ' ORDER BY key)"
	                " FROM jsonb_each(CASE jsonb_typeof(metrics) WHEN 'object' THEN metrics"
	                " ELSE '{}' END)"
	                " WHERE jsonb_typeof(value) IN ('number', 'string', 'boolean')), '-')"
	                " FROM model_history WHERE status = 'active'",
	                0, NULL, 1, &r, err))
		return -1;
	if (r.n == 0)
		fprintf(out, "active model: none (the first run registers one)\n");
	else
		fprintf(out,
		        "active model: id=%s backbone=%s threshold=%s dim=%s input=%sx%s "
		        "promoted=%s runs=%s\n  weights: %s\n  metrics: %s\n",
		        cell(&r, 0, 0), cell(&r, 0, 1), cell(&r, 0, 2), cell(&r, 0, 3),
		        cell(&r, 0, 4), cell(&r, 0, 5), cell(&r, 0, 6), cell(&r, 0, 8),
		        cell(&r, 0, 7), cell(&r, 0, 9));
	store_rows_free(&r);
	return 0;
}

static int print_failures(struct store *s, FILE *out, struct err *err)
{
	char lim[16];
	const char *params[1] = {lim};
	struct store_rows stages, reasons;
	size_t i;
	long total = 0;

	snprintf(lim, sizeof(lim), "%d", STATUS_REASONS);
	if (store_query(s, "count failures by stage",
	                "SELECT stage, count(*) FROM failures GROUP BY stage ORDER BY 2 DESC, 1", 0,
	                NULL, 1000, &stages, err))
		return -1;
	if (store_query(s, "read top failure reasons",
	                "SELECT stage, reason, count(*), max(run_id) FROM failures"
	                " GROUP BY stage, reason ORDER BY 3 DESC, 1, 2 LIMIT $1::int",
	                1, params, STATUS_REASONS, &reasons, err)) {
		store_rows_free(&stages);
		return -1;
	}
	for (i = 0; i < stages.n; i++)
		total += strtol(cell(&stages, i, 1), NULL, 10);
	fprintf(out, "pending failures: %ld", total);
	for (i = 0; i < stages.n; i++)
		fprintf(out, "%s%s=%s", i ? " " : " (", cell(&stages, i, 0), cell(&stages, i, 1));
	fprintf(out, "%s\n", stages.n ? ")" : "");
	for (i = 0; i < reasons.n; i++)
		fprintf(out, "  %6s x %s: %s (last recorded by run %s)\n", cell(&reasons, i, 2),
		        cell(&reasons, i, 0), cell(&reasons, i, 1), cell(&reasons, i, 3));
	store_rows_free(&stages);
	store_rows_free(&reasons);
	return 0;
}

/* Runs marked running, each with the lock that proves its process lives. */
static int print_running(struct store *s, FILE *out, struct err *err)
{
	struct store_rows runs, locks;
	size_t i, j;

	if (lock_list(s, &locks, err))
		return -1;
	if (store_query(s, "read running runs",
	                "SELECT run_id, kind, date,"
	                " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), host"
	                " FROM run_history WHERE status = 'running' ORDER BY run_id",
	                0, NULL, 10000, &runs, err)) {
		store_rows_free(&locks);
		return -1;
	}
	fprintf(out, "running now: %zu\n", runs.n);
	for (i = 0; i < runs.n; i++) {
		char scope[LOCK_SCOPE_MAX], want[LOCK_SCOPE_MAX + 16];
		const char *holder = NULL;

		lock_scope(cell(&runs, i, 1), store_rows_get(&runs, i, 2), scope);
		snprintf(want, sizeof(want), "pipeline-run %s ", scope);
		for (j = 0; j < locks.n && !holder; j++)
			if (!strncmp(cell(&locks, j, 0), want, strlen(want)))
				holder = cell(&locks, j, 0) + strlen(want);
		fprintf(out, "  run %s %s %s started %s on %s: %s\n", cell(&runs, i, 0),
		        cell(&runs, i, 1), cell(&runs, i, 2), cell(&runs, i, 3), cell(&runs, i, 4),
		        holder ? holder
		               : "no process holds its lock (it died; the next run of "
		                 "this scope marks it failed)");
	}
	store_rows_free(&runs);
	store_rows_free(&locks);
	return 0;
}

int status_print(const struct config *cfg, int limit, FILE *out)
{
	struct err err = {0};
	struct store *s = store_open(cfg->db_conninfo, &err);
	int code = RUN_FAILED;

	if (!s || print_runs(s, limit, out, &err) || print_model(s, out, &err) ||
	    print_failures(s, out, &err) || print_running(s, out, &err))
		goto out;
	code = RUN_OK;
out:
	if (code != RUN_OK)
		log_error("status", "cannot read the pipeline's state", "error=\"%s\"", err.msg);
	store_close(s);
	return code;
}
