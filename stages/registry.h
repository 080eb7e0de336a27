/* registry.h - how a registered model is run.
 *
 * A models row names the backbone, weights, image size and embedding width;
 * its "inference" JSON adds what the model config said about pooling and
 * normalisation: {"pool": "Average", "gem_p": 3, "normalization": "Custom",
 * "mean": [128, 128, 128], "std": [128, 128, 128]} (mean and std in pixel
 * units). These helpers turn a model config into that JSON and a registry
 * row back into a model config; the two commands change the active model. */
#ifndef STAGES_REGISTRY_H
#define STAGES_REGISTRY_H

#include "config.h"
#include "err.h"
#include "model.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The inference JSON of MC, newly allocated (free()), or NULL when out of
 * memory. */
char *registry_inference_json(const struct model_config *mc);

/* The model config to run model INFO with: BASE (the pipeline's model
 * config) with the row's backbone, image size and embedding width, and the
 * row's inference JSON when it has one. A JSON that cannot be read is
 * ERR_FATAL naming the model. */
int registry_model_config(const struct store_model_info *info, const struct model_config *base,
                          struct model_config *out, struct err *err);

/* model_opts for MC and WEIGHTS (pointers into MC and WEIGHTS). */
void registry_model_opts(const struct model_config *mc, const char *weights, const char *device,
                         int threads, int channels_last, struct model_opts *out);

/* The resize options that feed a model of MC, with the photo size limits of CFG (NULL: none
 * set). */
void registry_resize_opts(const struct model_config *mc, const struct config *cfg,
                          struct resize_opts *out);

/* The weights file of model INFO still has its registered checksum (ERR_FATAL naming the
 * model, file and both checksums when it does not, or cannot be read). */
int registry_check_weights(const struct store_model_info *info, struct err *err);

/* pipeline-run --promote ID: make model ID active (recorded as a manual
 * promotion) once its weights file is there with the registered checksum.
 * Returns an exit code (enum run_exit of run.h). */
int registry_promote(const struct config *cfg, int64_t id);

/* pipeline-run --rollback: make the model that was active before the newest
 * promotion active again. Returns an exit code. */
int registry_rollback(const struct config *cfg);

#ifdef __cplusplus
}
#endif

#endif
