/* err.h - the error struct every fallible call fills in.
 *
 * Functions return 0 on success and -1 (or NULL) on failure, after filling a
 * caller-supplied struct err. The kind tells the caller what to do next. */
#ifndef PIPELINE_ERR_H
#define PIPELINE_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

enum err_kind {
	ERR_NONE = 0,
	ERR_INPUT, /* bad input: record the item as failed, count it, go on */
	ERR_RETRY, /* retriable: back off and try again */
	ERR_FATAL, /* fatal: stop the run cleanly */
};

#define ERR_MSG_MAX 512

struct err {
	enum err_kind kind;
	char msg[ERR_MSG_MAX];
};

/* Fill ERR (may be NULL) with KIND and a printf-style message. Always
 * returns -1, so that callers can write `return err_set(...)`. */
int err_set(struct err *err, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the current message with "PREFIX: " (keeps the kind). Returns -1. */
int err_prefix(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void err_clear(struct err *err);

/* "input", "retry", "fatal" or "none". */
const char *err_kind_name(enum err_kind kind);

#ifdef __cplusplus
}
#endif

#endif
