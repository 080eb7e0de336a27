/* run.h - one run of the pipeline: the stages joined by bounded queues.
 *
 *   source --(lock)--> N resize workers (fetch + decode + tensor)
 *          --queue--> embed thread (batches through the model)
 *          --queue--> store (upserts, one transaction per batch)
 *   then: group every ad the run touched (and ads an earlier run left ungrouped) from
 *         their stored embeddings and write its groups; only then may the source commit
 *         its position (Kafka offsets).
 *
 * Exit codes are the command's: RUN_OK, RUN_FAILED, RUN_USAGE, RUN_PARTIAL,
 * RUN_STOPPED, RUN_BUSY. */
#ifndef PIPELINE_RUN_H
#define PIPELINE_RUN_H

#include "config.h"
#include "err.h"

enum run_exit {
	RUN_OK = 0,      /* everything processed */
	RUN_FAILED = 1,  /* the run could not finish; nothing half-done is committed */
	RUN_USAGE = 2,   /* bad command line or configuration */
	RUN_PARTIAL = 3, /* finished, some photos failed (recorded with reasons) */
	RUN_STOPPED = 4, /* stopped by a signal: what was processed is written */
	RUN_BUSY = 5,    /* another run of the same scope holds the lock; nothing done */
};

struct run_opts {
	const char *date;  /* "YYYY-MM-DD" or NULL for every row */
	const char *since; /* RFC 3339 or YYYY-MM-DD, or NULL (with until: a window) */
	const char *until;
	int dry_run; /* process photos, write nothing */
	const char *version;
};

/* Run the nightly job (or a backfill when DATE is set). Returns an exit code. */
int run_nightly(const struct config *cfg, const struct run_opts *o);

/* Apply pending migrations. Returns an exit code. */
int run_migrate(const struct config *cfg);

/* The pipeline_runs status of a run that ends with exit CODE: "ok", "partial", "stopped",
 * "busy" (turned away by the lock; recorded nowhere) or "failed". */
const char *run_status_name(int code);

/* Ask a running run to stop after the photos in flight (signal-safe). */
void run_request_stop(void);

#endif
