/* progress.h - how far a long run is: a bar on a terminal, periodic
 * key=value lines otherwise.
 *
 * Called by one thread (the store loop); output is rate-limited inside, so
 * calling progress_update() after every batch is cheap. */
#ifndef PIPELINE_PROGRESS_H
#define PIPELINE_PROGRESS_H

#include <stddef.h>

struct progress {
	int tty;           /* draw a bar (stderr is a terminal) */
	double interval_s; /* between log lines when not a tty */
	long long total;   /* photos expected; -1 unknown */
	double t0, last_out;
	long done, failed;
	int drawn;         /* the bar has been drawn at least once */
};

/* Start counting now. TOTAL < 0 when unknown; TTY draws a bar, else a log
 * line every INTERVAL_S seconds (0: none). */
void progress_init(struct progress *p, long long total, int tty, double interval_s);

/* DONE photos so far, FAILED of them failed. */
void progress_update(struct progress *p, long done, long failed);

/* Clear the bar (a final summary is the run's own line). */
void progress_finish(struct progress *p);

/* Photos per second so far and the seconds left (-1 unknown). */
void progress_rate(const struct progress *p, double now, double *rate, double *eta_s);

/* Render the bar for DONE/FAILED of TOTAL after ELAPSED seconds into OUT:
 * "[#####.....]  120/400 photos  35.2/s  ETA 8s  failed 2". WIDTH is the
 * bar's cell count. Returns OUT. */
char *progress_format(char *out, size_t cap, long done, long failed, long long total,
                      double elapsed, int width);

/* "1h02m", "3m20s", "42s". */
char *progress_duration(char *out, size_t cap, double s);

#endif
