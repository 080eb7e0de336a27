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
	RESIZE_NORM_SIMPLE = 0, /* x / 255 */
	RESIZE_NORM_IMAGENET,   /* (x/255 - mean) / std with ImageNet's mean/std */
	RESIZE_NORM_CUSTOM,     /* (x - mean[c]) / std[c], mean/std in pixel units 0..255 */
};

/* Used where resize_opts leaves max_bytes or max_pixels at 0. */
#define RESIZE_DEFAULT_MAX_BYTES  ((size_t)64 << 20)
#define RESIZE_DEFAULT_MAX_PIXELS ((uint64_t)100000000)

struct resize_opts {
	int width, height; /* 1..8192 */
	enum resize_norm norm;
	float mean[3], std[3]; /* RESIZE_NORM_CUSTOM only; std > 0 */
	size_t max_bytes;      /* reject larger inputs before decoding; 0: default */
	uint64_t max_pixels;   /* reject headers claiming more pixels; 0: default */
};

struct resize_info {
	int src_width, src_height; /* as stored, before orientation */
	char loader[32];           /* libvips loader name, e.g. "jpegload_buffer" */
};

/* Start libvips once per process (VIPS_INIT, untrusted loaders blocked, operation
 * cache off). CONCURRENCY is libvips' thread count per decode; 0 or 1 means one.
 * More is honoured but unsafe: libvips 8.14.1 then sometimes drops decode errors and
 * returns made-up pixels, so get parallelism by calling resize_buffer() from several
 * threads. Call from one thread, before any other resize_* call. */
int resize_init(const char *argv0, int concurrency, struct err *err);
/* Stop libvips; once, at exit, after every resize_* call has returned. */
void resize_shutdown(void);

/* O's normalisation in pixel units, x = (pixel - MEAN[c]) / STD[c], for code that works
 * on pixel values (the training augmentations). */
void resize_pixel_norm(const struct resize_opts *o, float mean[3], float std[3]);

/* Decode BUF (LEN bytes) and fill OUT (3 * height * width floats). Every
 * failure is ERR_INPUT with a specific reason ("empty file", "not an image",
 * "truncated", "too many pixels: WxH, limit N", "too large: N bytes, limit M",
 * "loader blocked: svgload_buffer (untrusted)", "decode failed: <libvips text>"),
 * except bad options and a missing resize_init(), which are ERR_FATAL. INFO may
 * be NULL. Safe to call from several threads at once; BUF stays the caller's. */
int resize_buffer(const struct resize_opts *o, const void *buf, size_t len, float *out,
                  struct resize_info *info, struct err *err);

/* Read PATH (refusing files over max_bytes before reading) and call
 * resize_buffer(). Open and read errors are ERR_INPUT ("open failed: ...",
 * "not a regular file"), except running out of descriptors or memory
 * (ERR_RETRY). */
int resize_file(const struct resize_opts *o, const char *path, float *out, struct resize_info *info,
                struct err *err);

#ifdef __cplusplus
}
#endif

#endif
