/* log.h - one logger: one event per line, key=value, to stderr.
 *
 * A line reads `level=info stage=embed msg="loaded weights" keys=314`. When
 * stderr is systemd's journal stream (JOURNAL_STREAM names its device and
 * inode) each line starts with a `<N>` syslog priority so that journald
 * records the level. Safe to call from any thread. */
#ifndef PIPELINE_LOG_H
#define PIPELINE_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum log_level {
	LOGL_ERROR = 3, /* syslog priorities */
	LOGL_WARN = 4,
	LOGL_INFO = 6,
	LOGL_DEBUG = 7,
};

/* Debug categories, switched on with log_set_debug("kafka,pg"). */
enum log_cat {
	LOGC_NONE = 0,
	LOGC_KAFKA = 1 << 0,
	LOGC_PG = 1 << 1,
	LOGC_VIPS = 1 << 2,
	LOGC_TORCH = 1 << 3,
	LOGC_ALL = 0xff,
};

/* Lines below LEVEL are dropped. Default LOGL_INFO. */
void log_set_level(enum log_level level);

/* Enable debug lines for a comma-separated list of categories ("all", "kafka",
 * "pg", "vips", "torch"). Returns -1 on an unknown name. */
int log_set_debug(const char *list);

int log_debug_on(enum log_cat cat);

/* `<N>` priority prefixes: LOG_PREFIX_AUTO (when stderr is the journal),
 * _ALWAYS or _NEVER. */
enum log_prefix { LOG_PREFIX_AUTO = 0, LOG_PREFIX_ALWAYS, LOG_PREFIX_NEVER };
void log_set_prefix(enum log_prefix mode);

/* Whether lines carry `<N>` prefixes now. */
int log_prefixed(void);

/* Show TEXT as a status line on a terminal (no newline; redrawn in place and
 * cleared before the next log line); NULL clears it. For stderr on a tty. */
void log_status_line(const char *text);

/* Emit one line. STAGE is a short tag ("run", "embed"); MSG a human message
 * (quoted in the output); KV_FMT, which may be NULL, printf-formats the
 * key=value pairs that follow. */
void log_emit(enum log_level level, const char *stage, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_error(stage, msg, ...) log_emit(LOGL_ERROR, stage, msg, __VA_ARGS__)
#define log_warn(stage, msg, ...)  log_emit(LOGL_WARN, stage, msg, __VA_ARGS__)
#define log_info(stage, msg, ...)  log_emit(LOGL_INFO, stage, msg, __VA_ARGS__)
#define log_debug(cat, stage, msg, ...)                                                            \
	do {                                                                                       \
		if (log_debug_on(cat))                                                             \
			log_emit(LOGL_DEBUG, stage, msg, __VA_ARGS__);                             \
	} while (0)

#ifdef __cplusplus
}
#endif

#endif
