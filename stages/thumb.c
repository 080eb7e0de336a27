/* thumb.c - JPEG previews through libvips' thumbnail operation. */
#include "thumb.h"

#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

/* libvips' error text, on one line and bounded, then cleared. */
static int vips_fail(struct err *err, const char *what)
{
	char msg[256];
	char *p;

	snprintf(msg, sizeof(msg), "%s", vips_error_buffer());
	vips_error_clear();
	for (p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return err_set(err, ERR_INPUT, "%s: %s", what, *msg ? msg : "libvips failed");
}

int thumb_jpeg(const void *buf, size_t len, int size, uint64_t max_pixels, void **out,
               size_t *out_len, int *w, int *h, struct err *err)
{
	VipsImage *hdr = NULL, *t = NULL, *flat = NULL;
	VipsImage *src;
	uint64_t pixels;
	int rc = -1;

	*out = NULL;
	*out_len = 0;
	if (!buf || len == 0)
		return err_set(err, ERR_INPUT, "empty file");
	hdr = vips_image_new_from_buffer(buf, len, "", NULL);
	if (!hdr)
		return vips_fail(err, "not an image");
	pixels = (uint64_t)vips_image_get_width(hdr) * (uint64_t)vips_image_get_height(hdr);
	if (pixels > max_pixels) {
		err_set(err, ERR_INPUT, "too many pixels: %dx%d, limit %llu",
		        vips_image_get_width(hdr), vips_image_get_height(hdr),
		        (unsigned long long)max_pixels);
		goto out;
	}
	if (vips_thumbnail_buffer((void *)buf, len, &t, size, "height", size, "size",
	                          VIPS_SIZE_DOWN, NULL)) {
		vips_fail(err, "thumbnail failed");
		goto out;
	}
	src = t;
	if (vips_image_hasalpha(t)) {
		double white[3] = {255, 255, 255};
		VipsArrayDouble *bg = vips_array_double_new(white, 3);
		int failed = vips_flatten(t, &flat, "background", bg, NULL);

		vips_area_unref(VIPS_AREA(bg));
		if (failed) {
			vips_fail(err, "flatten failed");
			goto out;
		}
		src = flat;
	}
	if (vips_jpegsave_buffer(src, out, out_len, "Q", 80, "strip", TRUE, NULL)) {
		vips_fail(err, "jpeg encode failed");
		goto out;
	}
	*w = vips_image_get_width(src);
	*h = vips_image_get_height(src);
	rc = 0;
out:
	if (flat)
		g_object_unref(flat);
	if (t)
		g_object_unref(t);
	g_object_unref(hdr);
	return rc;
}

void thumb_free(void *out)
{
	g_free(out);
}
