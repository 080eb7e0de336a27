/* report.h - `pipeline-run report`: one HTML page to check the grouping of a
 * day's ads by eye. */
#ifndef PIPELINE_REPORT_H
#define PIPELINE_REPORT_H

#include "config.h"

/* Write OUT_DIR/index.html (OUT_DIR is created if missing; the page replaces
 * an older one atomically) showing every ad with photos created on DATE
 * (YYYY-MM-DD, UTC): all its photos arranged by the active model's groups as
 * thumbnails made by libvips and embedded as data URIs, the average-linkage
 * similarity between its groups, and its failed photos with their reasons.
 * Needs resize_init(). Returns an exit code (RUN_OK, RUN_FAILED). */
int report_write(const struct config *cfg, const char *date, const char *out_dir);

/* Write S to FP with &, <, >, " and ' escaped (for text and attribute values). */
void report_html_escape(FILE *fp, const char *s);

#endif
