/* augment.c - the Soft training augmentations on CHW float tensors. */
#include "augment.h"

#include <math.h>
#include <string.h>

#define SHIFT_MAX  0.0625
#define SCALE_MAX  0.1
#define ROTATE_MAX (10.0 * M_PI / 180.0)
#define JITTER_MAX 0.1

void augment_draw_soft(struct rng *r, int h, int w, struct augment_draw *d)
{
	memset(d, 0, sizeof(*d));
	d->scale = 1;
	d->brightness = d->contrast = d->saturation = 1;
	/* every draw is made whether used or not, so that the stream advances
	 * the same way for every image */
	d->flip = rng_uniform(r) < 0.5;
	d->warp = rng_uniform(r) < 0.5;
	d->dx = rng_range(r, -SHIFT_MAX, SHIFT_MAX) * w;
	d->dy = rng_range(r, -SHIFT_MAX, SHIFT_MAX) * h;
	d->scale = 1 + rng_range(r, -SCALE_MAX, SCALE_MAX);
	d->angle = rng_range(r, -ROTATE_MAX, ROTATE_MAX);
	d->jitter = rng_uniform(r) < 0.5;
	d->brightness = 1 + rng_range(r, -JITTER_MAX, JITTER_MAX);
	d->contrast = 1 + rng_range(r, -JITTER_MAX, JITTER_MAX);
	d->saturation = 1 + rng_range(r, -JITTER_MAX, JITTER_MAX);
	if (!d->warp) {
		d->dx = d->dy = d->angle = 0;
		d->scale = 1;
	}
	if (!d->jitter)
		d->brightness = d->contrast = d->saturation = 1;
}

/* Mirror I into 0..N-1 without repeating the edge (gfedcb|abcdefg|fedcba). */
static int mirror(int i, int n)
{
	int period = 2 * n - 2;

	if (n == 1)
		return 0;
	i %= period;
	if (i < 0)
		i += period;
	return i < n ? i : period - i;
}

static float sample(const float *plane, int h, int w, double y, double x)
{
	int x0 = (int)floor(x), y0 = (int)floor(y);
	float fx = (float)(x - x0), fy = (float)(y - y0);
	int xa = mirror(x0, w), xb = mirror(x0 + 1, w);
	int ya = mirror(y0, h), yb = mirror(y0 + 1, h);
	float top = plane[(size_t)ya * w + xa] * (1 - fx) + plane[(size_t)ya * w + xb] * fx;
	float bot = plane[(size_t)yb * w + xa] * (1 - fx) + plane[(size_t)yb * w + xb] * fx;

	return top * (1 - fy) + bot * fy;
}

/* Geometry: each output pixel is looked up in the input through the inverse
 * of flip, then rotate and scale about the centre, then shift. */
static void warp(const struct augment_draw *d, const float *in, float *out, int h, int w)
{
	double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
	double c = cos(d->angle) / d->scale, s = sin(d->angle) / d->scale;
	size_t plane = (size_t)h * (size_t)w;
	int ch, y, x;

	for (ch = 0; ch < 3; ch++) {
		const float *src = in + ch * plane;
		float *dst = out + ch * plane;

		for (y = 0; y < h; y++) {
			for (x = 0; x < w; x++) {
				double ox = (d->flip ? (w - 1 - x) : x) - cx - d->dx;
				double oy = y - cy - d->dy;
				double sx = c * ox - s * oy + cx;
				double sy = s * ox + c * oy + cy;

				if (!d->warp)
					dst[(size_t)y * w + x] =
					    src[(size_t)y * w + (int)(sx + 0.5)];
				else
					dst[(size_t)y * w + x] = sample(src, h, w, sy, sx);
			}
		}
	}
}

/* Colour in pixel units: brightness scales, contrast pulls towards the
 * picture's mean grey, saturation towards each pixel's grey. */
static void jitter(const struct augment_draw *d, const struct augment_norm *n, float *t, int h,
                   int w)
{
	size_t plane = (size_t)h * (size_t)w, i;
	double mean_grey = 0;
	int ch;

	for (i = 0; i < plane; i++) {
		double g = 0;

		for (ch = 0; ch < 3; ch++) {
			double p = t[ch * plane + i] * n->std[ch] + n->mean[ch];

			g += (ch == 0 ? 0.299 : ch == 1 ? 0.587 : 0.114) * p;
		}
		mean_grey += g;
	}
	mean_grey = mean_grey * d->brightness / (double)plane;
	for (i = 0; i < plane; i++) {
		double p[3], g = 0;

		for (ch = 0; ch < 3; ch++) {
			p[ch] = (t[ch * plane + i] * n->std[ch] + n->mean[ch]) * d->brightness;
			g += (ch == 0 ? 0.299 : ch == 1 ? 0.587 : 0.114) * p[ch];
		}
		for (ch = 0; ch < 3; ch++) {
			double v = g + (p[ch] - g) * d->saturation;

			v = mean_grey + (v - mean_grey) * d->contrast;
			v = v < 0 ? 0 : v > 255 ? 255 : v;
			t[ch * plane + i] = (float)((v - n->mean[ch]) / n->std[ch]);
		}
	}
}

void augment_apply(const struct augment_draw *d, const struct augment_norm *norm, const float *in,
                   float *out, int h, int w)
{
	warp(d, in, out, h, w);
	if (d->jitter)
		jitter(d, norm, out, h, w);
}
