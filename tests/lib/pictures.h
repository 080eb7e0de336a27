/* pictures.h - small pictures of known colours made with libvips, for the resize tests and
 * the hostile-image maker. Header-only, so that each test or tool stays one translation
 * unit. Every function returns a new image (g_object_unref() it), or NULL when libvips
 * refuses (the caller's assertion or exit says so). Call after VIPS_INIT. */
#ifndef TESTS_LIB_PICTURES_H
#define TESTS_LIB_PICTURES_H

#include <vips/vips.h>

/* Solid colour, W x H, sRGB uchar; with a fourth (alpha) band when ALPHA >= 0. */
static inline VipsImage *picture_solid(int w, int h, int r, int g, int b, int alpha)
{
	double one[4] = {1, 1, 1, 1};
	double c[4] = {r, g, b, alpha};
	int n = alpha >= 0 ? 4 : 3;
	VipsImage *blk = NULL, *lin = NULL, *u8 = NULL, *out = NULL;

	if (!vips_black(&blk, w, h, "bands", n, NULL) && !vips_linear(blk, &lin, one, c, n, NULL) &&
	    !vips_cast(lin, &u8, VIPS_FORMAT_UCHAR, NULL) &&
	    vips_copy(u8, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL))
		out = NULL;
	if (blk)
		g_object_unref(blk);
	if (lin)
		g_object_unref(lin);
	if (u8)
		g_object_unref(u8);
	return out;
}

/* Four quadrants of known colours, W x H: top left, top right, bottom left, bottom right,
 * as sRGB triples. */
static inline VipsImage *picture_quadrants(int w, int h, const int col[4][3])
{
	VipsImage *q[4] = {NULL, NULL, NULL, NULL}, *out = NULL;
	int i, ok = 1;

	for (i = 0; i < 4; i++)
		ok &= (q[i] = picture_solid(w / 2, h / 2, col[i][0], col[i][1], col[i][2], -1)) !=
		      NULL;
	if (ok && vips_arrayjoin(q, &out, 4, "across", 2, NULL))
		out = NULL;
	for (i = 0; i < 4; i++)
		if (q[i])
			g_object_unref(q[i]);
	return out;
}

/* A and B stacked as the two pages of one multi-page image (page-height set). */
static inline VipsImage *picture_pages(VipsImage *a, VipsImage *b)
{
	VipsImage *in[2] = {a, b};
	VipsImage *joined = NULL, *out = NULL;

	if (vips_arrayjoin(in, &joined, 2, "across", 1, NULL) || vips_copy(joined, &out, NULL))
		out = NULL;
	if (joined)
		g_object_unref(joined);
	if (out) {
		vips_image_set_int(out, "page-height", a->Ysize);
		vips_image_set_int(out, "n-pages", 2);
	}
	return out;
}

#endif
