/* schedule.h - the learning-rate schedule of training, per optimizer step.
 *
 * The factor multiplies each parameter group's base learning rate. With W
 * warmup steps of T in all, step s (counted from 0) gets s / W while s < W
 * (linear warmup from 0), then, with p = (s - W) / (T - W):
 *   Cosine:   0.5 * (1 + cos(pi * p))
 *   Linear:   1 - p
 *   Constant: 1
 * so that the last step of a cosine schedule is just above 0. This is the
 * schedule the reference training uses (warmup in steps, the scheduler
 * advanced after every optimizer step). Pure functions; any thread. */
#ifndef STAGES_SCHEDULE_H
#define STAGES_SCHEDULE_H

#ifdef __cplusplus
extern "C" {
#endif

enum schedule_kind { SCHEDULE_COSINE = 0, SCHEDULE_LINEAR, SCHEDULE_CONSTANT };

/* The factor for STEP of TOTAL steps with WARMUP warmup steps. STEP past the
 * end gives the last step's factor's limit (0 for Cosine and Linear, 1 for
 * Constant); TOTAL <= WARMUP makes every step after the warmup 1. */
double schedule_factor(enum schedule_kind kind, long step, long total, long warmup);

/* "Cosine", "Linear", "Constant" to the kind; -1 for another name. */
int schedule_parse(const char *name);

#ifdef __cplusplus
}
#endif

#endif
