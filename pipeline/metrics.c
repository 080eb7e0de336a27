/* metrics.c - the textfile collector's file: figures of the current or last
 * run of one kind. */
#include "metrics.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const stage_names[METRICS_NSTAGES] = {"resize", "embed", "store", "group"};

void metrics_init(struct metrics *m, const char *dir, const char *kind, const char *date,
                  const char *version)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < METRICS_NSTAGES; i++)
		atomic_init(&m->stage_ns[i], 0);
	/* LIMIT: one file per kind: backfills of different dates running at once
	 * overwrite each other's file, the last writer wins. */
	if (dir && *dir)
		snprintf(m->path, sizeof(m->path), "%s/pipeline-run-%s.prom", dir, kind);
	snprintf(m->kind, sizeof(m->kind), "%s", kind);
	snprintf(m->date, sizeof(m->date), "%s", date ? date : "");
	snprintf(m->version, sizeof(m->version), "%s", version ? version : "");
	snprintf(m->status, sizeof(m->status), "running");
	m->running = 1;
	m->exit_code = -1;
	m->total = -1;
}

void metrics_stage_add(struct metrics *m, enum metrics_stage stage, uint64_t ns)
{
	if (stage < METRICS_NSTAGES)
		atomic_fetch_add_explicit(&m->stage_ns[stage], ns, memory_order_relaxed);
}

void metrics_reason_label(const char *reason, char *out, size_t cap)
{
	size_t at = 0;
	int gap = 0;

	for (; reason && *reason && *reason != ':' && *reason != '(' && at + 1 < cap; reason++) {
		unsigned char c = (unsigned char)*reason;

		if (isalnum(c) && c < 0x80) {
			if (gap && at > 0 && at + 2 < cap)
				out[at++] = '_';
			out[at++] = (char)tolower(c);
			gap = 0;
		} else {
			gap = 1;
		}
	}
	if (at == 0 && cap > 7)
		at = (size_t)snprintf(out, cap, "unknown");
	out[at < cap ? at : cap - 1] = '\0';
}

void metrics_count_failure(struct metrics *m, const char *stage, const char *reason)
{
	char label[sizeof(m->reasons[0].reason)];
	char st[sizeof(m->reasons[0].stage)];
	size_t i;

	metrics_reason_label(stage, st, sizeof(st));
	metrics_reason_label(reason, label, sizeof(label));
	for (i = 0; i < m->nreasons; i++)
		if (!strcmp(m->reasons[i].stage, st) && !strcmp(m->reasons[i].reason, label)) {
			m->reasons[i].n++;
			return;
		}
	if (m->nreasons == METRICS_REASONS_MAX) {
		/* the last slot collects every further kind */
		i = METRICS_REASONS_MAX - 1;
		snprintf(m->reasons[i].stage, sizeof(m->reasons[i].stage), "other");
		snprintf(m->reasons[i].reason, sizeof(m->reasons[i].reason), "other");
		m->reasons[i].n++;
		return;
	}
	snprintf(m->reasons[m->nreasons].stage, sizeof(st), "%s", st);
	snprintf(m->reasons[m->nreasons].reason, sizeof(label), "%s", label);
	m->reasons[m->nreasons].n = 1;
	m->nreasons++;
}

static void head(FILE *out, const char *name, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

void metrics_print(const struct metrics *m, FILE *out)
{
	const char *k = m->kind;
	size_t i;

	head(out, "pipeline_run_info", "The run this file describes (labels), always 1.");
	fprintf(out,
	        "pipeline_run_info{kind=\"%s\",run_id=\"%lld\",date=\"%s\",status=\"%s\","
	        "version=\"%s\"} 1\n",
	        k, (long long)m->run_id, m->date, m->status, m->version);
	head(out, "pipeline_run_running", "1 while the run is going, 0 once it ended.");
	fprintf(out, "pipeline_run_running{kind=\"%s\"} %d\n", k, m->running);
	head(out, "pipeline_run_exit_code", "Exit code of the run; -1 while running.");
	fprintf(out, "pipeline_run_exit_code{kind=\"%s\"} %d\n", k, m->exit_code);
	head(out, "pipeline_run_start_timestamp_seconds", "When the run started (Unix time).");
	fprintf(out, "pipeline_run_start_timestamp_seconds{kind=\"%s\"} %.3f\n", k,
	        m->started_unix);
	head(out, "pipeline_run_end_timestamp_seconds", "When the run ended; 0 while running.");
	fprintf(out, "pipeline_run_end_timestamp_seconds{kind=\"%s\"} %.3f\n", k, m->finished_unix);
	head(out, "pipeline_run_last_success_timestamp_seconds",
	     "When a run of this kind last ended ok or partial (Unix time); 0: never.");
	fprintf(out, "pipeline_run_last_success_timestamp_seconds{kind=\"%s\"} %.3f\n", k,
	        m->last_success_unix);
	head(out, "pipeline_run_model_id", "Id of the model the run embeds with (models.id).");
	fprintf(out, "pipeline_run_model_id{kind=\"%s\"} %lld\n", k, (long long)m->model_id);
	head(out, "pipeline_run_photos_expected", "Photos the run expects; -1 unknown.");
	fprintf(out, "pipeline_run_photos_expected{kind=\"%s\"} %lld\n", k, m->total);
	head(out, "pipeline_run_photos_processed", "Photos the run has processed so far.");
	fprintf(out, "pipeline_run_photos_processed{kind=\"%s\"} %ld\n", k, m->photos_in);
	head(out, "pipeline_run_photos_embedded", "Photos embedded so far.");
	fprintf(out, "pipeline_run_photos_embedded{kind=\"%s\"} %ld\n", k, m->embedded);
	head(out, "pipeline_run_photos_failed", "Photos that failed so far.");
	fprintf(out, "pipeline_run_photos_failed{kind=\"%s\"} %ld\n", k, m->failed);
	head(out, "pipeline_run_photos_failed_by_reason",
	     "Photos that failed, by stage and kind of reason.");
	for (i = 0; i < m->nreasons; i++)
		fprintf(out,
		        "pipeline_run_photos_failed_by_reason{kind=\"%s\",stage=\"%s\","
		        "reason=\"%s\"} %ld\n",
		        k, m->reasons[i].stage, m->reasons[i].reason, m->reasons[i].n);
	head(out, "pipeline_run_ads_grouped", "Ads grouped by the run.");
	fprintf(out, "pipeline_run_ads_grouped{kind=\"%s\"} %ld\n", k, m->ads_grouped);
	head(out, "pipeline_run_groups", "Groups (bicycles) found in the ads grouped.");
	fprintf(out, "pipeline_run_groups{kind=\"%s\"} %ld\n", k, m->groups);
	head(out, "pipeline_run_stage_seconds",
	     "Seconds spent in each stage, summed over its threads.");
	for (i = 0; i < METRICS_NSTAGES; i++)
		fprintf(out, "pipeline_run_stage_seconds{kind=\"%s\",stage=\"%s\"} %.3f\n", k,
		        stage_names[i],
		        (double)atomic_load_explicit((atomic_uint_fast64_t *)&m->stage_ns[i],
		                                     memory_order_relaxed) /
		            1e9);
	head(out, "pipeline_run_duration_seconds", "Seconds from start to end (or to now).");
	fprintf(out, "pipeline_run_duration_seconds{kind=\"%s\"} %.3f\n", k,
	        m->finished_unix > 0 ? m->finished_unix - m->started_unix : 0.0);
}

int metrics_write(const struct metrics *m, struct err *err)
{
	char tmp[sizeof(m->path) + 32];
	const char *slash;
	FILE *fp;
	int n, rc;

	if (!m->path[0])
		return 0;
	/* a hidden name without .prom: the collector skips it until the rename */
	slash = strrchr(m->path, '/');
	n = snprintf(tmp, sizeof(tmp), "%.*s.%s.tmp%ld", slash ? (int)(slash - m->path + 1) : 0,
	             m->path, slash ? slash + 1 : m->path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return err_set(err, ERR_FATAL, "metrics: path too long: %s", m->path);
	fp = fopen(tmp, "w");
	if (!fp)
		return err_set(err, ERR_FATAL, "metrics: cannot write %s: %s", tmp,
		               strerror(errno));
	metrics_print(m, fp);
	rc = fflush(fp) || ferror(fp);
	if (fclose(fp) || rc) {
		unlink(tmp);
		return err_set(err, ERR_FATAL, "metrics: cannot write %s: %s", tmp,
		               strerror(errno));
	}
	if (rename(tmp, m->path)) {
		int e = errno;

		unlink(tmp);
		return err_set(err, ERR_FATAL, "metrics: cannot rename to %s: %s", m->path,
		               strerror(e));
	}
	return 0;
}
