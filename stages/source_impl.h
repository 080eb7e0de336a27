/* source_impl.h - what a source kind implements (private to stages/source*). */
#ifndef STAGES_SOURCE_IMPL_H
#define STAGES_SOURCE_IMPL_H

#include "source.h"

struct source_ops {
	int (*next)(struct source *src, struct item *it, struct err *err);
	void (*close)(struct source *src);
};

struct source {
	const struct source_ops *ops;
};

struct source *source_dir_open(const struct config *cfg, const struct source_window *win,
			       struct err *err);

#endif
