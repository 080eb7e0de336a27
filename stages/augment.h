/* augment.h - training augmentations on the model's float input tensor.
 *
 * "Soft" (the only strategy besides none): horizontal flip (p 0.5), a small
 * affine warp (shift up to 6.25% of each side, scale 0.9-1.1, rotation up
 * to 10 degrees, p 0.5, bilinear, borders mirrored) and mild colour jitter
 * (brightness, contrast and saturation each within 10%, p 0.5). Colour
 * changes are made in pixel units and clamped to 0..255 there, so they do
 * not depend on the normalisation. Every draw comes from the caller's rng:
 * the same stream gives the same picture. Any thread. */
#ifndef STAGES_AUGMENT_H
#define STAGES_AUGMENT_H

#include "rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the tensors are normalised: x = (pixel - mean[c]) / std[c]. */
struct augment_norm {
	float mean[3], std[3];
};

/* What one call drew; exposed for tests. */
struct augment_draw {
	int flip;
	int warp;      /* 0: no affine warp */
	double dx, dy; /* shift, in pixels */
	double scale;
	double angle;                            /* radians, counter-clockwise */
	int jitter;                              /* 0: no colour change */
	double brightness, contrast, saturation; /* factors near 1 */
};

/* Draw the Soft parameters for an H x W image from R. */
void augment_draw_soft(struct rng *r, int h, int w, struct augment_draw *d);

/* Apply D to IN (3 x H x W floats) into OUT (same size, not IN). */
void augment_apply(const struct augment_draw *d, const struct augment_norm *norm, const float *in,
                   float *out, int h, int w);

#ifdef __cplusplus
}
#endif

#endif
