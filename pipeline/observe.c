/* observe.c - notifications, progress and metrics of one run. */
#include "observe.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "proc.h"

#define OBSERVE_STATUS_EVERY_S 2.0

static int want_bar(void)
{
	const char *term = getenv("TERM");

	return isatty(STDERR_FILENO) && !log_prefixed() && term && strcmp(term, "dumb") != 0;
}

void observe_begin(struct observe *o, const struct config *cfg, const char *kind, const char *date,
                   const char *version)
{
	memset(o, 0, sizeof(*o));
	notify_init();
	metrics_init(&o->metrics, cfg->metrics_dir, kind, date, version);
	o->metrics.started_unix = proc_unix_s();
	o->metrics_interval_s = cfg->metrics_interval_s;
	progress_init(&o->progress, -1, want_bar(), cfg->progress_interval_s);
}

long long observe_count_source(const struct config *cfg, const struct source_window *win)
{
	struct source *src;
	struct item *it;
	struct err e = {0};
	long long n = 0;
	int got;

	/* LIMIT: only a file can be read twice without consuming it; other
	 * sources run without a total (no ETA). */
	if (cfg->source != SOURCE_DIR)
		return -1;
	it = malloc(sizeof(*it));
	src = it ? source_open(cfg, win, &e) : NULL;
	if (!src) {
		free(it);
		return -1;
	}
	while ((got = source_next(src, it, &e)) == 1)
		n++;
	source_close(src);
	free(it);
	return got < 0 ? -1 : n;
}

static void write_metrics(struct observe *o)
{
	struct err e = {0};

	o->last_metrics = proc_now_s();
	if (metrics_write(&o->metrics, &e))
		log_warn("metrics", "could not write the metrics file", "error=\"%s\"", e.msg);
}

void observe_ready(struct observe *o, struct store *s, int64_t run_id, int64_t model_id,
                   long long total)
{
	const char *params[1] = {o->metrics.kind};
	struct store_rows rows = {0};
	struct err e = {0};
	char status[128];

	o->metrics.run_id = run_id;
	o->metrics.model_id = model_id;
	o->metrics.total = total;
	o->progress.total = total;
	if (s &&
	    !store_query(s, "read last successful run",
	                 "SELECT extract(epoch FROM max(finished_at)) FROM pipeline_runs"
	                 " WHERE kind = $1 AND status IN ('ok', 'partial')",
	                 1, params, 1, &rows, &e) &&
	    store_rows_get(&rows, 0, 0))
		o->metrics.last_success_unix = strtod(store_rows_get(&rows, 0, 0), NULL);
	store_rows_free(&rows);
	if (total >= 0)
		snprintf(status, sizeof(status), "run %lld: 0/%lld photos", (long long)run_id,
		         total);
	else
		snprintf(status, sizeof(status), "run %lld: started", (long long)run_id);
	notify_ready(status);
	o->last_status = proc_now_s();
	write_metrics(o);
}

void observe_stage(struct observe *o, enum metrics_stage stage, double t0)
{
	double d = proc_now_s() - t0;

	metrics_stage_add(&o->metrics, stage, d > 0 ? (uint64_t)(d * 1e9) : 0);
}

void observe_item(struct observe *o, const struct item *it)
{
	o->metrics.photos_in++;
	if (it->ok) {
		o->metrics.embedded++;
		return;
	}
	o->metrics.failed++;
	metrics_count_failure(&o->metrics, it->failure_stage, it->failure_reason);
}

void observe_tick(struct observe *o, int stop_requested)
{
	double now = proc_now_s(), rate, eta_s;
	char left[16];

	notify_watchdog();
	progress_update(&o->progress, o->metrics.photos_in, o->metrics.failed);
	if (stop_requested && !o->stopping) {
		o->stopping = 1;
		notify_stopping();
		log_info("run", "stop requested: finishing the photos in flight", "done=%ld",
		         o->metrics.photos_in);
	}
	if (!o->stopping && now - o->last_status >= OBSERVE_STATUS_EVERY_S) {
		o->last_status = now;
		progress_rate(&o->progress, now, &rate, &eta_s);
		if (o->progress.total >= 0)
			notify_status(
			    "run %lld: %ld/%lld photos, %.1f/s, ETA %s, %ld failed",
			    (long long)o->metrics.run_id, o->metrics.photos_in, o->progress.total,
			    rate, eta_s >= 0 ? progress_duration(left, sizeof(left), eta_s) : "?",
			    o->metrics.failed);
		else
			notify_status("run %lld: %ld photos, %.1f/s, %ld failed",
			              (long long)o->metrics.run_id, o->metrics.photos_in, rate,
			              o->metrics.failed);
	}
	if (o->metrics_interval_s > 0 && now - o->last_metrics >= o->metrics_interval_s)
		write_metrics(o);
}

void observe_phase(struct observe *o, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	progress_finish(&o->progress);
	notify_watchdog();
	if (!o->stopping)
		notify_status("run %lld: %s", (long long)o->metrics.run_id, what);
}

void observe_end(struct observe *o, struct store *s, int64_t run_id, const char *status, int code,
                 long ads_grouped, long groups, const char *error)
{
	char id[24];
	const char *params[2] = {id, error};
	struct err e = {0};

	progress_finish(&o->progress);
	if (s && run_id > 0 && error && *error) {
		snprintf(id, sizeof(id), "%lld", (long long)run_id);
		if (store_query(s, "record run error",
		                "UPDATE pipeline_runs SET error = $2 WHERE id = $1::bigint", 2,
		                params, 0, NULL, &e))
			log_warn("run", "could not record why the run ended", "error=\"%s\"",
			         e.msg);
	}
	o->metrics.running = 0;
	o->metrics.exit_code = code;
	o->metrics.ads_grouped = ads_grouped;
	o->metrics.groups = groups;
	o->metrics.finished_unix = proc_unix_s();
	snprintf(o->metrics.status, sizeof(o->metrics.status), "%s", status);
	if (!strcmp(status, "ok") || !strcmp(status, "partial"))
		o->metrics.last_success_unix = o->metrics.finished_unix;
	write_metrics(o);
	if (!o->stopping)
		notify_status("run %lld %s: %ld photos, %ld failed", (long long)run_id, status,
		              o->metrics.photos_in, o->metrics.failed);
}
