/* notify.c - sd_notify() messages for systemd: readiness, status, watchdog. */
#include "notify.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"

static uint64_t watchdog_usec;
static uint64_t last_ping_usec;
static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void send_msg(const char *msg)
{
	int r = sd_notify(0, msg);

	if (r < 0)
		log_debug(LOGC_ALL, "notify", "sd_notify failed", "errno=%d", -r);
}

void notify_init(void)
{
	uint64_t usec = 0;

	/* only WATCHDOG_PID = our pid (or unset) counts; children do not inherit it */
	if (sd_watchdog_enabled(1, &usec) > 0)
		watchdog_usec = usec;
	last_ping_usec = mono_usec();
	if (watchdog_usec)
		log_info("notify", "systemd watchdog on", "watchdog_s=%.1f",
		         (double)watchdog_usec / 1e6);
}

void notify_ready(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status ? status : "running");
	send_msg(msg);
}

void notify_status(const char *fmt, ...)
{
	char msg[512] = "STATUS=";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
	va_end(ap);
	send_msg(msg);
}

void notify_stopping(void)
{
	send_msg("STOPPING=1\nSTATUS=stopping: finishing the photos in flight");
}

void notify_extend_timeout(uint64_t usec)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
	send_msg(msg);
}

void notify_watchdog(void)
{
	uint64_t now;
	int due;

	if (!watchdog_usec)
		return;
	now = mono_usec();
	pthread_mutex_lock(&notify_lock);
	due = now - last_ping_usec >= watchdog_usec / 2;
	if (due)
		last_ping_usec = now;
	pthread_mutex_unlock(&notify_lock);
	if (due)
		send_msg("WATCHDOG=1");
}

uint64_t notify_watchdog_usec(void)
{
	return watchdog_usec;
}
