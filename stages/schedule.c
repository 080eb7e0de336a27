/* schedule.c - warmup + cosine (or linear, or constant) learning-rate factor. */
#include "schedule.h"

#include <math.h>
#include <string.h>

double schedule_factor(enum schedule_kind kind, long step, long total, long warmup)
{
	double p;

	if (step < 0)
		step = 0;
	if (warmup > 0 && step < warmup)
		return (double)step / (double)warmup;
	if (kind == SCHEDULE_CONSTANT || total <= warmup)
		return 1.0;
	p = (double)(step - warmup) / (double)(total - warmup);
	if (p > 1)
		p = 1;
	if (kind == SCHEDULE_LINEAR)
		return 1.0 - p;
	return 0.5 * (1.0 + cos(M_PI * p));
}

int schedule_parse(const char *name)
{
	if (!strcmp(name, "Cosine"))
		return SCHEDULE_COSINE;
	if (!strcmp(name, "Linear"))
		return SCHEDULE_LINEAR;
	if (!strcmp(name, "Constant"))
		return SCHEDULE_CONSTANT;
	return -1;
}
