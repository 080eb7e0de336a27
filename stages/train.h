/* train.h - metric-learning training of the embedding network (libtorch
 * behind a C interface).
 *
 * The network is the inference model's backbone (model.h) with its head:
 * pool -> dropout -> linear to the embedding size. An ArcFace layer over the
 * training classes sits on top during training only; what is saved is the
 * backbone and the head, with timm's key names, which model_open() loads.
 * The optimizer is AdamW with two parameter groups (backbone, and head +
 * ArcFace), each with its own base learning rate scaled per optimizer step
 * by schedule_factor(). Every entry point catches C++ exceptions into
 * struct err (ERR_FATAL). A trainer is used by one thread at a time. */
#ifndef STAGES_TRAIN_H
#define STAGES_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"
#include "schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

struct train_opts {
	const char *backbone;     /* timm name */
	const char *init_weights; /* .safetensors to start from; NULL: random init */
	enum model_pool pool;
	float gem_p;
	int embedding_size;    /* head width; a head in init_weights must match */
	double dropout;        /* before the head, training only */
	int classes;           /* ArcFace classes: training labels 0..classes-1 */
	double arcface_margin; /* additive angular margin, radians */
	double arcface_scale;
	double lr_backbone, lr_head; /* base learning rates of the two groups */
	double weight_decay;         /* AdamW's decoupled weight decay */
	double gradient_clip;        /* max global L2 norm of the gradients; 0: off */
	int grad_accumulation;       /* micro-batches per optimizer step, >= 1 */
	enum schedule_kind schedule;
	long total_steps, warmup_steps; /* optimizer steps */
	uint64_t seed;                  /* libtorch's generator (head and ArcFace init) */
	const char *device;             /* "cpu", "cuda", "cuda:N" */
	int threads;                    /* intra-op threads; 0 leaves libtorch's setting */
	int channels_last;
	int mixed_precision; /* bf16 autocast on CUDA; ignored on the CPU */
};

struct trainer;

/* Build the network, load INIT_WEIGHTS (a head in them is kept when its size
 * is EMBEDDING_SIZE, otherwise a new one is drawn), draw the ArcFace weights
 * and set up the optimizer. Returns NULL with ERR filled; free with
 * train_close(). */
struct trainer *train_open(const struct train_opts *o, struct err *err);

/* 1 when the backbone's BatchNorms are all the identity plus a bias (their
 * statistics were folded into the convolutions, as in a TFLite export).
 * Such weights must be recalibrated before training: feed
 * train_bn_calibrate() a few hundred training images (no augmentation),
 * then call train_bn_calibrate_end(). The network's output in evaluation
 * mode does not change; batch statistics then match the running ones. */
int train_bn_folded(struct trainer *t);
int train_bn_calibrate(struct trainer *t, const float *x, int n, int h, int w, struct err *err);
/* Returns the number of BatchNorms recalibrated, or -1. */
int train_bn_calibrate_end(struct trainer *t, struct err *err);

/* Weight imprinting: feed train_imprint() every training image once (no
 * augmentation) with its class; train_imprint_end() then sets each class's
 * ArcFace weights to the normalised mean of its embeddings, so that training
 * starts from logits that already mean something instead of random class
 * directions (which pull the embeddings apart before they learn). Returns
 * the number of classes set, or -1. */
int train_imprint(struct trainer *t, const float *x, const int *labels, int n, int h, int w,
                  struct err *err);
int train_imprint_end(struct trainer *t, struct err *err);

/* One micro-batch: N images (N x 3 x H x W floats, normalised) with their
 * class LABELS (0..classes-1). Forward, ArcFace loss, backward; every
 * grad_accumulation micro-batches the optimizer steps with the scheduled
 * learning rate. *LOSS receives the batch's mean loss. A non-finite loss is
 * ERR_FATAL (the weights are left as before the batch's step). */
int train_batch(struct trainer *t, const float *x, const int *labels, int n, int h, int w,
                double *loss, struct err *err);

/* Step the optimizer on gradients accumulated by fewer than
 * grad_accumulation micro-batches (the end of an epoch); no-op if none. */
int train_flush(struct trainer *t, struct err *err);

/* Optimizer steps taken so far (the schedule's position). */
long train_steps(const struct trainer *t);

/* The learning rates the next optimizer step will use. */
void train_current_lr(const struct trainer *t, double *lr_backbone, double *lr_head);

/* Seed libtorch's generator (dropout) for what follows; the retrain stage
 * calls it at every epoch start with a seed derived from the run's, so that
 * a resumed run draws as an uninterrupted one does. */
void train_reseed(struct trainer *t, uint64_t seed);

/* Width of train_embed()'s rows (the embedding size). */
int train_dim(const struct trainer *t);

/* Embed N images in evaluation mode (BatchNorm running stats, no dropout)
 * into OUT, N x train_dim() floats, each row L2-normalised. */
int train_embed(struct trainer *t, const float *x, int n, int h, int w, float *out,
                struct err *err);

/* Write the backbone and head ("head.fc.weight", "head.fc.bias") as float32
 * .safetensors with timm's names to PATH (atomically), with NMETA string
 * pairs of metadata (see safetensors_write()). */
int train_save_weights(struct trainer *t, const char *path, const char *const *meta, size_t nmeta,
                       struct err *err);

/* Save everything needed to continue training to PATH (atomically): every
 * network tensor, the ArcFace weights, the optimizer's state and the step
 * count. train_checkpoint_load() restores it into a trainer opened with the
 * same options; a checkpoint of another shape is ERR_FATAL. */
int train_checkpoint_save(struct trainer *t, const char *path, struct err *err);
int train_checkpoint_load(struct trainer *t, const char *path, struct err *err);

void train_close(struct trainer *t);

/* The ArcFace loss on its own, for tests: EMB (N x DIM) and class weights W
 * (CLASSES x DIM), both normalised inside; with theta the angle between an
 * embedding and its class's weights, the target logit is
 * scale * cos(theta + margin) (scale * (cos(theta) - margin * sin(margin))
 * once theta + margin passes pi), the others scale * cos; the loss is the
 * mean cross-entropy. Cosines are clamped to [-1 + 1e-6, 1 - 1e-6] first, so
 * nothing is NaN at cos = +-1. GRAD_EMB (N x DIM) and GRAD_W (CLASSES x DIM)
 * may be NULL; they receive d loss / d EMB and d loss / d W. */
int train_arcface_loss(const float *emb, const float *w, const int *labels, int n, int dim,
                       int classes, double margin, double scale, double *loss, float *grad_emb,
                       float *grad_w, struct err *err);

#ifdef __cplusplus
}
#endif

#endif
