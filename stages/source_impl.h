/* source_impl.h - what a source kind implements (private to stages/source*). */
#ifndef STAGES_SOURCE_IMPL_H
#define STAGES_SOURCE_IMPL_H

#include <signal.h>

#include "source.h"

struct source_ops {
	int (*next)(struct source *src, struct item *it, struct err *err);
	void (*close)(struct source *src);
	void (*ack)(struct source *src, const struct item *it); /* may be NULL */
	int (*commit)(struct source *src, struct err *err);     /* may be NULL */
};

struct source {
	const struct source_ops *ops;
	const volatile sig_atomic_t *stop; /* may be NULL; see source_set_stop() */
};

struct source *source_dir_open(const struct config *cfg, const struct source_window *win,
                               struct err *err);

struct source *source_kafka_open(const struct config *cfg, const struct source_window *win,
                                 struct err *err);

struct source *source_db_open(const struct config *cfg, const struct source_window *win,
                              struct err *err);

#endif
