/* proc.h - what the process sees of itself: its clocks, CPU time, the cores it may use and
 * its peak memory. Every call is cheap and safe from any thread. */
#ifndef PIPELINE_PROC_H
#define PIPELINE_PROC_H

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic seconds (CLOCK_MONOTONIC): for intervals, never for dates. */
double proc_now_s(void);

/* Wall-clock seconds since the Unix epoch, with a fraction. */
double proc_unix_s(void);

/* CPU seconds spent so far by every thread of the process, user and system. */
double proc_cpu_s(void);

/* Online CPU cores, at least 1. */
int proc_ncpu(void);

/* The largest resident set the process has had, KiB. */
long proc_peak_rss_kb(void);

#ifdef __cplusplus
}
#endif

#endif
