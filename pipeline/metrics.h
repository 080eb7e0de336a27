/* metrics.h - a run's figures for Prometheus' node-exporter textfile
 * collector.
 *
 * One file per run kind (DIR/pipeline-run-KIND.prom), replaced atomically
 * (a temporary file in the same folder, then rename) so the collector never
 * reads half a file. Stage seconds may be added from any thread; everything
 * else belongs to one thread. */
#ifndef PIPELINE_METRICS_H
#define PIPELINE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

#define METRICS_REASONS_MAX 32

enum metrics_stage {
	METRICS_RESIZE = 0, /* read the photo, decode, resize, make the tensor */
	METRICS_EMBED,      /* the model's forward passes */
	METRICS_STORE,      /* database writes of photos and embeddings */
	METRICS_GROUP,      /* reading embeddings, clustering, writing groups */
	METRICS_NSTAGES,
};

struct metrics_reason {
	char stage[16];
	char reason[48]; /* a label value: [a-z0-9_] */
	long n;
};

struct metrics {
	char path[4096]; /* the .prom file; "" = off */
	char kind[16];   /* nightly, backfill, retrain */
	char date[16];   /* backfill date or "" */
	char version[32];
	int64_t run_id, model_id;
	int running;
	char status[16]; /* running, ok, partial, failed, stopped */
	int exit_code;   /* -1 while running */
	double started_unix, finished_unix;
	double last_success_unix; /* 0: never */
	long photos_in, embedded, failed, ads_grouped, groups;
	long long total; /* -1 unknown */
	atomic_uint_fast64_t stage_ns[METRICS_NSTAGES];
	struct metrics_reason reasons[METRICS_REASONS_MAX];
	size_t nreasons;
};

/* Set up M for a run of KIND writing into DIR (NULL or "" = write nothing). */
void metrics_init(struct metrics *m, const char *dir, const char *kind, const char *date,
                  const char *version);

/* Add NS nanoseconds spent in STAGE. Thread-safe. */
void metrics_stage_add(struct metrics *m, enum metrics_stage stage, uint64_t ns);

/* Count one failed photo under its STAGE and the kind of REASON: the text
 * before the first ':' or '(' reduced to [a-z0-9_], so "too many pixels:
 * 9000x9000, limit 100000000" counts as too_many_pixels. Past
 * METRICS_REASONS_MAX kinds, failures count as "other". */
void metrics_count_failure(struct metrics *m, const char *stage, const char *reason);

/* Reduce REASON to a label value into OUT (see metrics_count_failure). */
void metrics_reason_label(const char *reason, char *out, size_t cap);

/* Print M in the text exposition format. */
void metrics_print(const struct metrics *m, FILE *out);

/* Replace M's file atomically. Does nothing when M has no path. */
int metrics_write(const struct metrics *m, struct err *err);

#endif
