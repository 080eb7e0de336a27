/* log.c - key=value lines on stderr, with journald priorities under systemd. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static enum log_level log_threshold = LOGL_INFO;
static unsigned log_debug_mask;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_prefix = -1; /* -1: not decided yet */
static int status_shown;    /* a status line is on the terminal; guarded by log_lock */

/* stderr is the journal when JOURNAL_STREAM ("DEV:INODE") names it; a child
 * whose stderr was redirected inherits the variable but not the stream. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st))
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_prefix(enum log_prefix mode)
{
	log_prefix = mode == LOG_PREFIX_ALWAYS  ? 1
	             : mode == LOG_PREFIX_NEVER ? 0
	                                        : stderr_is_journal();
}

int log_prefixed(void)
{
	if (log_prefix < 0)
		log_set_prefix(LOG_PREFIX_AUTO);
	return log_prefix;
}

void log_status_line(const char *text)
{
	pthread_mutex_lock(&log_lock);
	if (text) {
		fprintf(stderr, "\r\033[K%s", text);
		status_shown = 1;
	} else if (status_shown) {
		fputs("\r\033[K", stderr);
		status_shown = 0;
	}
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

int log_set_debug(const char *list)
{
	static const struct {
		const char *name;
		unsigned bit;
	} cats[] = {
	    {"all", LOGC_ALL},   {"kafka", LOGC_KAFKA}, {"pg", LOGC_PG},
	    {"vips", LOGC_VIPS}, {"torch", LOGC_TORCH},
	};
	const char *p = list;

	while (p && *p) {
		size_t len = strcspn(p, ",");
		size_t i;

		for (i = 0; i < sizeof(cats) / sizeof(cats[0]); i++)
			if (strlen(cats[i].name) == len && !strncmp(cats[i].name, p, len))
				break;
		if (i == sizeof(cats) / sizeof(cats[0]))
			return -1;
		log_debug_mask |= cats[i].bit;
		p += len;
		if (*p == ',')
			p++;
	}
	if (log_debug_mask)
		log_threshold = LOGL_DEBUG;
	return 0;
}

int log_debug_on(enum log_cat cat)
{
	return (log_debug_mask & (unsigned)cat) != 0;
}

static const char *level_name(enum log_level level)
{
	switch (level) {
	case LOGL_ERROR:
		return "error";
	case LOGL_WARN:
		return "warn";
	case LOGL_INFO:
		return "info";
	default:
		return "debug";
	}
}

/* Append MSG quoted, escaping quotes, backslashes and control characters. */
static size_t put_quoted(char *buf, size_t cap, size_t at, const char *msg)
{
	if (at < cap)
		buf[at++] = '"';
	for (; *msg && at + 3 < cap; msg++) {
		unsigned char c = (unsigned char)*msg;

		if (c == '"' || c == '\\') {
			buf[at++] = '\\';
			buf[at++] = (char)c;
		} else if (c < 0x20) {
			buf[at++] = ' ';
		} else {
			buf[at++] = (char)c;
		}
	}
	if (at < cap)
		buf[at++] = '"';
	return at;
}

void log_emit(enum log_level level, const char *stage, const char *msg, const char *kv_fmt, ...)
{
	char line[4096];
	size_t at = 0;
	int n;

	if (level > log_threshold)
		return;
	if (log_prefixed()) {
		n = snprintf(line, sizeof(line), "<%d>", (int)level);
		at = n > 0 ? (size_t)n : 0;
	}
	n = snprintf(line + at, sizeof(line) - at, "level=%s stage=%s msg=", level_name(level),
	             stage ? stage : "-");
	at += n > 0 ? (size_t)n : 0;
	at = put_quoted(line, sizeof(line) - 2, at, msg ? msg : "");
	if (kv_fmt && *kv_fmt && at + 2 < sizeof(line)) {
		va_list ap;

		line[at++] = ' ';
		va_start(ap, kv_fmt);
		n = vsnprintf(line + at, sizeof(line) - at - 1, kv_fmt, ap);
		va_end(ap);
		if (n > 0) {
			size_t end =
			    at +
			    ((size_t)n < sizeof(line) - at - 1 ? (size_t)n : sizeof(line) - at - 2);

			/* values can carry input (ids, reasons): a newline in one must not
			 * start a forged line */
			for (; at < end; at++)
				if ((unsigned char)line[at] < 0x20)
					line[at] = ' ';
		}
	}
	line[at++] = '\n';
	pthread_mutex_lock(&log_lock);
	if (status_shown) {
		fputs("\r\033[K", stderr);
		status_shown = 0;
	}
	fwrite(line, 1, at, stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}
