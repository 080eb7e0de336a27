/* resize.h - decode a photo with libvips and make the model's input tensor.
 *
 * Decoding honours EXIF orientation, converts any colour space to sRGB,
 * flattens alpha onto white and takes the first page of multi-page images;
 * the picture is then resized to exactly width x height (no aspect kept,
 * as the reference model configuration does) and written as float32 CHW,
 * RGB, normalised. Thread-safe after resize_init(). */
#ifndef STAGES_RESIZE_H
#define STAGES_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

enum resize_norm {
	RESIZE_NORM_SIMPLE = 0,	/* x / 255 */
	RESIZE_NORM_IMAGENET,	/* (x/255 - mean) / std with ImageNet's mean/std */
	RESIZE_NORM_CUSTOM,	/* (x - mean[c]) / std[c], mean/std in pixel units 0..255 */
};

struct resize_opts {
	int width, height;
	enum resize_norm norm;
	float mean[3], std[3];		/* RESIZE_NORM_CUSTOM only */
	size_t max_bytes;		/* reject larger inputs before decoding */
	uint64_t max_pixels;		/* reject headers claiming more pixels */
};

struct resize_info {
	int src_width, src_height;	/* as stored, before orientation */
	char loader[32];		/* libvips loader name, e.g. "jpegload_buffer" */
};

/* Start libvips once per process (VIPS_INIT, untrusted loaders blocked,
 * concurrency CONCURRENCY per operation; 0 keeps libvips' default). */
int resize_init(const char *argv0, int concurrency, struct err *err);
void resize_shutdown(void);

/* Decode BUF (LEN bytes) and fill OUT (3 * height * width floats). Every
 * failure is ERR_INPUT with a specific reason ("empty file", "not an image",
 * "truncated", "too many pixels: WxH", ...). INFO may be NULL. */
int resize_buffer(const struct resize_opts *o, const void *buf, size_t len, float *out,
		  struct resize_info *info, struct err *err);

/* Read PATH (refusing files over max_bytes before reading) and call
 * resize_buffer(). */
int resize_file(const struct resize_opts *o, const char *path, float *out,
		struct resize_info *info, struct err *err);

#ifdef __cplusplus
}
#endif

#endif
