/* notify.h - tell systemd how a run is doing (sd_notify through libsystemd).
 *
 * Every call does nothing when the process was not started by systemd with a
 * notification socket (NOTIFY_SOCKET unset), so the same code runs from a
 * shell. Not async-signal-safe: call from normal threads. */
#ifndef PIPELINE_NOTIFY_H
#define PIPELINE_NOTIFY_H

#include <stdint.h>

/* Read the watchdog interval systemd asks for (WatchdogSec=), once. */
void notify_init(void);

/* Initialisation is done: READY=1 with a first STATUS= line. */
void notify_ready(const char *status);

/* STATUS= line shown by `systemctl status`. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* STOPPING=1: the run is winding down after a stop request. */
void notify_stopping(void);

/* Ask for more start-up time while still initialising (waiting for a lock):
 * EXTEND_TIMEOUT_USEC. */
void notify_extend_timeout(uint64_t usec);

/* WATCHDOG=1 when the watchdog is on and half its interval has passed since
 * the last ping. Cheap; call it whenever the run makes progress. */
void notify_watchdog(void);

/* The watchdog interval in microseconds; 0 when off. */
uint64_t notify_watchdog_usec(void);

#endif
