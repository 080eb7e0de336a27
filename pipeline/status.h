/* status.h - `pipeline-run status`: what the pipeline did lately and what it
 * does now, read from the database. */
#ifndef PIPELINE_STATUS_H
#define PIPELINE_STATUS_H

#include <stdio.h>

#include "config.h"

/* Print the last LIMIT runs (kind, date, status, counts, duration, and why a
 * run failed or stopped), the active model, the pending failures by stage and
 * reason, and the runs going now (their locks) to OUT. Writes nothing to the
 * database. Returns an exit code (RUN_OK, RUN_FAILED). */
int status_print(const struct config *cfg, int limit, FILE *out);

#endif
