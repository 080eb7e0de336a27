/* retrain.h - the weekly retraining stage.
 *
 * retrain_run(): labelled photos -> decode -> split by label -> ArcFace
 * training with a checkpoint per epoch -> the trained weights (.safetensors
 * and a .json sidecar) -> evaluation of the new model and of the active one
 * on the same validation photos -> registered as a candidate, and promoted
 * when its validation mAP@k beats the active model's. Returns an exit code
 * (enum run_exit of run.h). One call at a time per process. */
#ifndef STAGES_RETRAIN_H
#define STAGES_RETRAIN_H

#include <stdint.h>

#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

struct retrain_opts {
	int resume;          /* continue from the last checkpoint */
	const char *version; /* recorded with the run and the model */
};

/* Train, evaluate, register and maybe promote a model. */
int retrain_run(const struct config *cfg, const struct retrain_opts *o);

/* Ask a running retrain to stop before its next batch (signal-safe); the
 * last finished epoch's checkpoint stays for --resume. */
void retrain_request_stop(void);

#ifdef __cplusplus
}
#endif

#endif
