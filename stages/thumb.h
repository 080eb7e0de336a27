/* thumb.h - small JPEG previews of photos, made with libvips, for the HTML
 * report.
 *
 * Call after resize_init() (which starts libvips and blocks untrusted
 * loaders). Not for the pipeline's hot path: one photo at a time. */
#ifndef STAGES_THUMB_H
#define STAGES_THUMB_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Decode BUF (LEN bytes) honouring EXIF orientation and make a JPEG whose
 * longest side is at most SIZE pixels (never enlarged). Pictures whose header
 * claims more than MAX_PIXELS are refused before decoding. On success *OUT
 * (free with thumb_free()) holds *OUT_LEN bytes and *W x *H is the preview's
 * size. Every failure is ERR_INPUT with a reason. */
int thumb_jpeg(const void *buf, size_t len, int size, uint64_t max_pixels, void **out,
               size_t *out_len, int *w, int *h, struct err *err);

void thumb_free(void *out);

#endif
