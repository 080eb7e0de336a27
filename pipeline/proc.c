/* proc.c - clocks, CPU time, cores and peak memory of the process. */
#include "proc.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double proc_now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

double proc_unix_s(void)
{
	return clock_s(CLOCK_REALTIME);
}

double proc_cpu_s(void)
{
	return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

int proc_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

long proc_peak_rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}
