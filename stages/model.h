/* model.h - the embedding network (libtorch behind a C interface).
 *
 * Backbones are built natively with timm's parameter names
 * (tf_efficientnet_b0_ns, mobilenetv2_100) and loaded from .safetensors.
 * The head is pool (average or GeM) -> dropout -> linear to the embedding
 * size -> L2 normalise. When the weights carry no head ("head.fc.weight",
 * "head.fc.bias"), the head is the identity: pooled backbone features,
 * L2-normalised. Every entry point catches C++ exceptions and reports them
 * through struct err. A model handle is used by one thread at a time. */
#ifndef STAGES_MODEL_H
#define STAGES_MODEL_H

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

enum model_pool { MODEL_POOL_AVG = 0, MODEL_POOL_GEM };

/* FP16 runs the network under CUDA autocast (float16 convolutions, float32
 * reductions and output); on the CPU it is refused (bf16/f16 measured slower
 * on these CPUs). */
enum model_precision { MODEL_PREC_FP32 = 0, MODEL_PREC_FP16 };

struct model_opts {
	const char *backbone; /* timm name */
	const char *weights;  /* .safetensors path */
	enum model_pool pool;
	float gem_p;        /* GeM exponent when pool is GEM (default 3) */
	int embedding_size; /* expected head size; checked against the weights */
	const char *device; /* "cpu", "cuda", "cuda:N" */
	int threads;        /* intra-op threads; 0 leaves libtorch's default */
	int channels_last;  /* 1: run convolutions in channels-last layout */
	int keep_bn;        /* 1: run each BatchNorm as its own op instead of folding it
	                     * into the conv before it (slower; for comparisons) */
	enum model_precision precision;
	int max_forward; /* most images per CPU forward pass; 0: chosen from the
	                  * image size (see model.cpp) */
};

/* Where model_embed()'s time went, summed since model_open(). */
struct model_stats {
	long calls, images;
	double call_s;    /* whole model_embed() calls */
	double forward_s; /* the network alone: input on the device to embeddings */
};

struct model;

/* Build the network and load the weights. Missing or unexpected keys, or
 * shapes that do not fit the backbone, are ERR_FATAL listing the keys.
 * Returns NULL on failure. Free with model_close(). */
struct model *model_open(const struct model_opts *opts, struct err *err);

/* Width of model_embed()'s output rows (embedding size, or the backbone's
 * feature width when the head is the identity). */
int model_dim(const struct model *m);

/* 1 when the weights carried a trained embedding head. */
int model_has_head(const struct model *m);

/* Embed N images, IN laid out N x 3 x H x W float32 (already normalised),
 * into OUT, N x model_dim() float32, each row L2-normalised. */
int model_embed(struct model *m, const float *in, int n, int h, int w, float *out, struct err *err);

/* Pooled backbone features, N x 1280, before the head (for tests). */
int model_features(struct model *m, const float *in, int n, int h, int w, float *out,
                   struct err *err);

/* Backbone output before pooling, N x 1280 x ceil(H/32) x ceil(W/32). */
int model_features_unpooled(struct model *m, const float *in, int n, int h, int w, float *out,
                            size_t cap, struct err *err);

/* Classifier logits when the weights have "classifier.*"; *NCLS receives the
 * class count. OUT holds N x CAP_CLASSES floats: row i starts at
 * OUT + i * CAP_CLASSES and its first *NCLS entries are written. The
 * classifier always sees average-pooled features, as it was trained. */
int model_logits(struct model *m, const float *in, int n, int h, int w, float *out, int cap_classes,
                 int *ncls, struct err *err);

/* Copy M's timing counters into OUT. */
void model_stats_get(const struct model *m, struct model_stats *out);

/* "cpu", "cuda:0", ...: the device the model runs on. */
const char *model_device(const struct model *m);

void model_close(struct model *m);

#ifdef __cplusplus
}
#endif

#endif
