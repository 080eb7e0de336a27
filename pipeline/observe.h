/* observe.h - what a run shows the outside while it works: systemd
 * notifications (READY, STATUS, STOPPING, WATCHDOG), the progress bar or
 * progress lines, and the metrics file.
 *
 * run.c and retrain.c call these at a few fixed points; everything here is best effort
 * and never fails a run. observe_stage() may be called from any thread, the
 * rest from the thread that drives the run. */
#ifndef PIPELINE_OBSERVE_H
#define PIPELINE_OBSERVE_H

#include <stdint.h>

#include "config.h"
#include "item.h"
#include "metrics.h"
#include "progress.h"
#include "source.h"
#include "store.h"

struct observe {
	struct progress progress;
	struct metrics metrics;
	double metrics_interval_s, last_metrics, last_status;
	int stopping;
};

/* Start observing a run of KIND ("nightly", "backfill", "retrain") over DATE
 * (may be NULL). Nothing is written or sent yet. */
void observe_begin(struct observe *o, const struct config *cfg, const char *kind, const char *date,
                   const char *version);

/* Photos a directory source will hand out inside WIN (a pass over the CSV),
 * or -1 when the source cannot say in advance. */
long long observe_count_source(const struct config *cfg, const struct source_window *win);

/* Initialisation is over: send READY=1, write the first metrics file. S (may
 * be NULL) is asked for the last successful run of this kind; TOTAL < 0 when
 * unknown. */
void observe_ready(struct observe *o, struct store *s, int64_t run_id, int64_t model_id,
                   long long total);

/* Add the time since T0 (proc_now_s()) to STAGE. Thread-safe. */
void observe_stage(struct observe *o, enum metrics_stage stage, double t0);

/* One photo left the pipeline (counted, failure reason recorded). */
void observe_item(struct observe *o, const struct item *it);

/* After each batch: progress, STATUS, watchdog, periodic metrics file;
 * STOPPING=1 once STOP_REQUESTED turns on. */
void observe_tick(struct observe *o, int stop_requested);

/* Tell what the run does now ("grouping 812 ads"), for `systemctl status`. */
void observe_phase(struct observe *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The run ended with STATUS ("ok", "partial", "failed", "stopped") and exit
 * CODE: final metrics file; when S and RUN_ID are set, ERROR (may be NULL) is
 * recorded as the run's pipeline_runs.error. */
void observe_end(struct observe *o, struct store *s, int64_t run_id, const char *status, int code,
                 long ads_grouped, long groups, const char *error);

#endif
