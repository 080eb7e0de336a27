/* test_resize.c - the resize stage on the shared hostile photos and on inputs made here with
 * libvips (EXIF orientations, cut files, bombs, odd formats), judged by their pixels. Files
 * made here live in a private temp directory; nothing is written under $SHARED. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>
#include <vips/vector.h> /* not included by vips.h in 8.14 */
#include <zlib.h>

#include "../lib/pictures.h"
#include "../lib/shared_data.h"
#include "proc.h"
#include "resize.h"

#define W    128
#define H    96
#define NPIX (W * H)
#define NOUT (3 * NPIX)

/* Mean absolute difference, in 0..255 units, below which two decodes are the same picture
 * (JPEG re-encoding noise is ~1-3), and the factor by which the wrong picture must be
 * further away. */
#define SAME_MAD 8.0
#define MARGIN   3.0

static char tmpdir[] = "/tmp/test_resize.XXXXXX";

static const char base_rel[] = "data/sop-ads/images/bicycle_final/111085122871_0.JPG";

static VipsImage *base_img; /* the base photo, decoded, upright */
static float *ref;          /* base photo through resize_file() */
static float *ref_mirror;   /* base photo mirrored left-right */
static float *ref_rot180;   /* base photo turned upside down */

static void tmp_path(char *buf, size_t cap, const char *file)
{
	snprintf(buf, cap, "%s/%s", tmpdir, file);
}

static struct resize_opts opts_simple(void)
{
	struct resize_opts o;

	memset(&o, 0, sizeof(o));
	o.width = W;
	o.height = H;
	o.norm = RESIZE_NORM_SIMPLE;
	return o;
}

static float *new_out(void)
{
	float *p = calloc(NOUT, sizeof(float));

	assert_non_null(p);
	return p;
}

/* Encode IM with the saver and options named by SUFFIX (".jpg[Q=95]"). Free with g_free. */
static void *encode(VipsImage *im, const char *suffix, size_t *len)
{
	void *buf = NULL;

	if (vips_image_write_to_buffer(im, suffix, &buf, len, NULL))
		fail_msg("encode %s: %s", suffix, vips_error_buffer());
	return buf;
}

static void write_tmp(const char *file, const void *buf, size_t len)
{
	char path[512];
	FILE *f;

	tmp_path(path, sizeof(path), file);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* The pictures of pictures.h, asserted to exist. */
static VipsImage *solid(int w0, int h0, int r, int g, int b, int alpha)
{
	VipsImage *im = picture_solid(w0, h0, r, g, b, alpha);

	assert_non_null(im);
	return im;
}

static VipsImage *pages(VipsImage *a, VipsImage *b)
{
	VipsImage *im = picture_pages(a, b);

	assert_non_null(im);
	return im;
}

/* CMYK without a profile by the plain formula, as ImageMagick and Pillow make it:
 * K = 255 - max(R, G, B), C = (255 - R - K) / (255 - K) * 255, and so on. */
static VipsImage *plain_cmyk(VipsImage *rgb)
{
	size_t n, i;
	unsigned char *px = vips_image_write_to_memory(rgb, &n);
	unsigned char *ink;
	VipsImage *mem, *out;

	assert_non_null(px);
	assert_int_equal(rgb->Bands, 3);
	n /= 3;
	ink = malloc(4 * n);
	assert_non_null(ink);
	for (i = 0; i < n; i++) {
		const unsigned char *q = px + 3 * i;
		int mx = q[0] > q[1] ? (q[0] > q[2] ? q[0] : q[2]) : (q[1] > q[2] ? q[1] : q[2]);
		int k = 255 - mx, c;

		for (c = 0; c < 3; c++)
			ink[4 * i + c] =
			    (unsigned char)(k == 255 ? 0
			                             : ((255 - q[c] - k) * 255 + (255 - k) / 2) /
			                                   (255 - k));
		ink[4 * i + 3] = (unsigned char)k;
	}
	mem = vips_image_new_from_memory_copy(ink, 4 * n, rgb->Xsize, rgb->Ysize, 4,
	                                      VIPS_FORMAT_UCHAR);
	assert_non_null(mem);
	assert_int_equal(vips_copy(mem, &out, "interpretation", VIPS_INTERPRETATION_CMYK, NULL), 0);
	g_object_unref(mem);
	free(ink);
	g_free(px);
	return out;
}

static VipsImage *quadrants(int w0, int h0, const int col[4][3])
{
	VipsImage *im = picture_quadrants(w0, h0, col);

	assert_non_null(im);
	return im;
}

/* Each quadrant of OUT, an output of OW x OH (away from the borders, where resizing mixes
 * colours), is within TOL of COL in every channel, on average over the quadrant's middle. */
static void assert_quadrants_wh(const char *what, const float *out, int ow, int oh,
                                const int col[4][3], double tol)
{
	static const char *const name[4] = {"top left", "top right", "bottom left", "bottom right"};
	int i, c, x, y;

	for (i = 0; i < 4; i++) {
		int x0 = (i % 2) * ow / 2 + ow / 8, y0 = (i / 2) * oh / 2 + oh / 8;

		for (c = 0; c < 3; c++) {
			double sum = 0;
			int n = 0;

			for (y = y0; y < y0 + oh / 4; y++)
				for (x = x0; x < x0 + ow / 4; x++, n++)
					sum +=
					    255.0 * out[(size_t)c * ow * oh + (size_t)y * ow + x];
			if (fabs(sum / n - col[i][c]) > tol)
				fail_msg("%s: %s channel %d is %.1f, want %d +- %.0f", what,
				         name[i], c, sum / n, col[i][c], tol);
		}
	}
}

/* assert_quadrants_wh() at the test size W x H. */
static void assert_quadrants(const char *what, const float *out, const int col[4][3], double tol)
{
	assert_quadrants_wh(what, out, W, H, col, tol);
}

static double mad(const float *a, const float *b)
{
	double s = 0;
	size_t i;

	for (i = 0; i < NOUT; i++)
		s += fabs((double)a[i] - (double)b[i]);
	return 255.0 * s / NOUT;
}

/* OUT shows the base photo upright and unmirrored: near REF, and clearly nearer to it than
 * to the mirrored and the upside-down pictures. */
static void assert_upright(const char *what, const float *out)
{
	double same = mad(out, ref);
	double mirror = mad(out, ref_mirror);
	double rot = mad(out, ref_rot180);

	print_message("  %-28s mad %.2f  (mirrored %.1f, upside down %.1f)\n", what, same, mirror,
	              rot);
	if (!(same < SAME_MAD && same * MARGIN < mirror && same * MARGIN < rot))
		fail_msg("%s is not the upright base photo: mad %.2f, mirrored %.2f, "
		         "upside down %.2f",
		         what, same, mirror, rot);
}

/* Finite and within 0..1 (SIMPLE normalisation). */
static void assert_sane(const char *what, const float *out)
{
	size_t i;

	for (i = 0; i < NOUT; i++)
		if (!isfinite(out[i]) || out[i] < 0.0f || out[i] > 1.0f)
			fail_msg("%s: value %g at %zu", what, (double)out[i], i);
}

static void assert_gray(const char *what, const float *out)
{
	size_t i;

	for (i = 0; i < NPIX; i++)
		if (out[i] != out[NPIX + i] || out[i] != out[2 * NPIX + i])
			fail_msg("%s: pixel %zu is not grey (%g %g %g)", what, i, (double)out[i],
			         (double)out[NPIX + i], (double)out[2 * NPIX + i]);
}

static void assert_solid(const char *what, const float *out, float r, float g, float b)
{
	size_t i;

	for (i = 0; i < NPIX; i++)
		if (out[i] != r || out[NPIX + i] != g || out[2 * NPIX + i] != b)
			fail_msg("%s: pixel %zu is (%.9g %.9g %.9g), want (%.9g %.9g %.9g)", what,
			         i, (double)out[i], (double)out[NPIX + i],
			         (double)out[2 * NPIX + i], (double)r, (double)g, (double)b);
}

/* Decode BUF with SIMPLE normalisation and expect success. */
static void decode_ok(const char *what, const void *buf, size_t len, float *out)
{
	struct resize_opts o = opts_simple();
	struct err err = {0};

	if (resize_buffer(&o, buf, len, out, NULL, &err))
		fail_msg("%s: unexpected failure: %s", what, err.msg);
}

/* Decode BUF and expect ERR_INPUT with a reason starting with WANT. */
static void decode_fails(const char *what, const void *buf, size_t len, const char *want)
{
	struct resize_opts o = opts_simple();
	struct err err = {0};
	float *out = new_out();
	int r = resize_buffer(&o, buf, len, out, NULL, &err);

	free(out);
	if (r == 0)
		fail_msg("%s: decoded, want failure \"%s\"", what, want);
	if (err.kind != ERR_INPUT || strncmp(err.msg, want, strlen(want)))
		fail_msg("%s: got %s \"%s\", want input \"%s\"", what, err_kind_name(err.kind),
		         err.msg, want);
}

static void resize_image(VipsImage *im, float *out)
{
	size_t len;
	void *png = encode(im, ".png", &len);

	decode_ok("reference", png, len, out);
	g_free(png);
}

static int group_setup(void **state)
{
	char path[512];
	struct resize_opts o = opts_simple();
	struct err err = {0};
	VipsImage *t;

	if (!mkdtemp(tmpdir))
		return -1;
	if (resize_init("test_resize", 0, &err)) {
		fprintf(stderr, "resize_init: %s\n", err.msg);
		return -1;
	}
	shared_path(path, sizeof(path), base_rel);
	base_img = vips_image_new_from_file(path, "access", VIPS_ACCESS_RANDOM, NULL);
	if (!base_img || vips_image_wio_input(base_img)) {
		fprintf(stderr, "cannot load %s (set SHARED=...)\n", path);
		return -1;
	}
	ref = new_out();
	ref_mirror = new_out();
	ref_rot180 = new_out();
	if (resize_file(&o, path, ref, NULL, &err)) {
		fprintf(stderr, "base photo: %s\n", err.msg);
		return -1;
	}
	if (vips_flip(base_img, &t, VIPS_DIRECTION_HORIZONTAL, NULL))
		return -1;
	resize_image(t, ref_mirror);
	g_object_unref(t);
	if (vips_rot(base_img, &t, VIPS_ANGLE_D180, NULL))
		return -1;
	resize_image(t, ref_rot180);
	g_object_unref(t);
	return 0;
}

static int group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char path[512];

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		tmp_path(path, sizeof(path), de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	free(ref);
	free(ref_mirror);
	free(ref_rot180);
	if (base_img)
		g_object_unref(base_img);
	resize_shutdown();
	return rmdir(tmpdir);
}

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		c ^= p[i];
		for (k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
	}
	return c ^ 0xffffffffu;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* A real 16x16 PNG whose IHDR (CRC fixed up) claims SIDE x SIDE. */
static void *png_bomb(uint32_t side, size_t *len)
{
	VipsImage *im = solid(16, 16, 10, 20, 30, -1);
	unsigned char *p = encode(im, ".png", len);

	g_object_unref(im);
	assert_memory_equal(p + 12, "IHDR", 4);
	put_be32(p + 16, side);
	put_be32(p + 20, side);
	put_be32(p + 29, crc32_png(p + 12, 17));
	return p;
}

/* A real 16x16 JPEG whose SOF claims SIDE x SIDE. */
static void *jpeg_bomb(unsigned side, size_t *len)
{
	VipsImage *im = solid(16, 16, 10, 20, 30, -1);
	unsigned char *p = encode(im, ".jpg", len);
	size_t i;

	g_object_unref(im);
	for (i = 2; i + 9 < *len; i++)
		if (p[i] == 0xff && p[i + 1] == 0xc0)
			break;
	assert_true(i + 9 < *len);
	p[i + 5] = (unsigned char)(side >> 8);
	p[i + 6] = (unsigned char)side;
	p[i + 7] = (unsigned char)(side >> 8);
	p[i + 8] = (unsigned char)side;
	return p;
}

/* A real 16x16 GIF whose first frame's descriptor claims SIDE x SIDE. */
static void *gif_bomb(unsigned side, size_t *len)
{
	VipsImage *im = solid(16, 16, 10, 20, 30, -1);
	unsigned char *p = encode(im, ".gif", len);
	size_t i;

	g_object_unref(im);
	/* the image descriptor follows the colour table and any extension blocks */
	for (i = 13; i + 9 < *len && p[i] != 0x2c; i++)
		;
	assert_true(i + 9 < *len);
	p[i + 5] = (unsigned char)side;
	p[i + 6] = (unsigned char)(side >> 8);
	p[i + 7] = (unsigned char)side;
	p[i + 8] = (unsigned char)(side >> 8);
	return p;
}

/* A real 16x16 little-endian TIFF whose ImageWidth and ImageLength (LONG) claim SIDE. */
static void *tiff_bomb(uint32_t side, size_t *len)
{
	VipsImage *im = solid(16, 16, 10, 20, 30, -1);
	unsigned char *p = encode(im, ".tif", len);
	uint32_t ifd, n, i;
	int patched = 0;

	g_object_unref(im);
	assert_memory_equal(p, "II*\0", 4);
	ifd = p[4] | p[5] << 8 | p[6] << 16 | (uint32_t)p[7] << 24;
	n = p[ifd] | p[ifd + 1] << 8;
	for (i = 0; i < n; i++) {
		unsigned char *e = p + ifd + 2 + 12 * i;
		unsigned tag = e[0] | e[1] << 8, type = e[2] | e[3] << 8;

		if (tag != 256 && tag != 257)
			continue;
		e[2] = 4; /* LONG */
		e[3] = 0;
		e[8] = (unsigned char)side;
		e[9] = (unsigned char)(side >> 8);
		e[10] = (unsigned char)(side >> 16);
		e[11] = (unsigned char)(side >> 24);
		(void)type;
		patched++;
	}
	assert_int_equal(patched, 2);
	return p;
}

/* A real 16x16 lossless WebP whose VP8L header (and VP8X canvas, when the saver writes one)
 * claims SIDE x SIDE, at most 16384. */
static void *webp_bomb(unsigned side, size_t *len)
{
	VipsImage *im = solid(16, 16, 10, 20, 30, -1);
	unsigned char *p = encode(im, ".webp[lossless]", len);
	unsigned char *l = NULL;
	uint32_t bits;
	size_t at;

	g_object_unref(im);
	for (at = 12; at + 8 < *len;
	     at +=
	     8 + ((p[at + 4] | p[at + 5] << 8 | p[at + 6] << 16 | (size_t)p[at + 7] << 24) + 1) /
	             2 * 2) {
		if (!memcmp(p + at, "VP8X", 4)) {
			p[at + 12] = p[at + 15] = (unsigned char)(side - 1);
			p[at + 13] = p[at + 16] = (unsigned char)((side - 1) >> 8);
			p[at + 14] = p[at + 17] = (unsigned char)((side - 1) >> 16);
		}
		if (!memcmp(p + at, "VP8L", 4))
			l = p + at + 8;
	}
	assert_non_null(l);
	assert_int_equal(l[0], 0x2f);
	/* 14 bits width - 1, 14 bits height - 1, then alpha and version, little-endian */
	bits = l[1] | l[2] << 8 | l[3] << 16 | (uint32_t)l[4] << 24;
	bits = (bits & 0xf0000000u) | (side - 1) | (side - 1) << 14;
	l[1] = (unsigned char)bits;
	l[2] = (unsigned char)(bits >> 8);
	l[3] = (unsigned char)(bits >> 16);
	l[4] = (unsigned char)(bits >> 24);
	return p;
}

/* A real 16x16 PNG with a TYPE chunk (zTXt or iCCP) holding N zero bytes deflated. */
static void *png_with_zchunk(const char *type, size_t n, size_t *len)
{
	VipsImage *im = solid(16, 16, 10, 20, 30, -1);
	size_t plen, name = 5; /* "bomb" and its NUL */
	unsigned char *png = encode(im, ".png", &plen);
	unsigned char *zero = calloc(1, n);
	uLongf zlen = compressBound(n);
	unsigned char *out = g_malloc(plen + 12 + name + 1 + zlen);
	unsigned char *c = out + 33;

	assert_non_null(zero);
	memcpy(out, png, 33);
	memcpy(c + 4, type, 4);
	memcpy(c + 8, "bomb", name);
	c[8 + name] = 0; /* compression method */
	assert_int_equal(compress2(c + 9 + name, &zlen, zero, n, 9), Z_OK);
	put_be32(c, (uint32_t)(name + 1 + zlen));
	put_be32(c + 8 + name + 1 + zlen, crc32_png(c + 4, 4 + name + 1 + zlen));
	memcpy(c + 12 + name + 1 + zlen, png + 33, plen - 33);
	*len = plen + 12 + name + 1 + zlen;
	free(zero);
	g_free(png);
	g_object_unref(im);
	return out;
}

/* Runs first, so that the peak RSS it sees is its own. A decode of any of these would need
 * gigabytes. */
static void test_bomb_headers_refused_fast_with_flat_memory(void **state)
{
	char path[512];
	long rss0 = proc_peak_rss_kb();
	double t0 = proc_now_s();
	struct resize_opts o = opts_simple();
	struct err err = {0};
	float *out = new_out();
	size_t len;
	void *p;
	int i;

	p = png_bomb(60000, &len);
	decode_fails("png 60000x60000", p, len, "too many pixels: 60000x60000, limit 100000000");
	g_free(p);
	p = png_bomb(1000000, &len);
	decode_fails("png 1000000x1000000", p, len, "too many pixels: 1000000x1000000");
	g_free(p);
	p = jpeg_bomb(65000, &len);
	decode_fails("jpeg 65000x65000", p, len, "too many pixels: 65000x65000");
	g_free(p);

	p = gif_bomb(65535, &len);
	decode_fails("gif frame 65535x65535", p, len, "too many pixels: 65535x65535");
	g_free(p);
	p = tiff_bomb(200000, &len);
	decode_fails("tiff 200000x200000", p, len, "too many pixels: 200000x200000");
	g_free(p);
	p = webp_bomb(12000, &len);
	decode_fails("webp 12000x12000", p, len, "too many pixels: 12000x12000");
	g_free(p);
	/* libvips' own header check refuses the largest WebP sizes before ours */
	p = webp_bomb(16384, &len);
	decode_fails("webp 16384x16384", p, len, "decode failed: webp: bad image dimensions");
	g_free(p);

	/* 64 MiB of text squeezed into 64 KiB of zTXt and of iCCP: libpng stops inflating at
	 * its chunk limit and the picture itself is fine. */
	p = png_with_zchunk("zTXt", (size_t)64 << 20, &len);
	decode_ok("png with a zTXt bomb", p, len, out);
	assert_solid("png with a zTXt bomb", out, 10 / 255.0f, 20 / 255.0f, 30 / 255.0f);
	g_free(p);
	p = png_with_zchunk("iCCP", (size_t)64 << 20, &len);
	decode_ok("png with an iCCP bomb", p, len, out);
	assert_solid("png with an iCCP bomb", out, 10 / 255.0f, 20 / 255.0f, 30 / 255.0f);
	g_free(p);

	shared_path(path, sizeof(path), "data/hostile-images/bomb-header.png");
	assert_int_equal(resize_file(&o, path, out, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_INPUT);
	assert_string_equal(err.msg, "too many pixels: 60000x60000, limit 100000000");

	/* A header under the limit that lies about its data: decoding starts, and must stop
	 * at the missing data with memory still flat. */
	o.max_pixels = 200000000;
	p = png_bomb(12000, &len);
	for (i = 0; i < 10; i++) {
		assert_int_equal(resize_buffer(&o, p, len, out, NULL, &err), -1);
		assert_int_equal(err.kind, ERR_INPUT);
	}
	print_message("  lying 12000x12000 png: %s\n", err.msg);
	g_free(p);

	print_message("  bombs: %.3f s, peak rss +%ld KiB\n", proc_now_s() - t0,
	              proc_peak_rss_kb() - rss0);
	assert_true(proc_now_s() - t0 < 5.0);
#ifndef __SANITIZE_ADDRESS__
	/* ASan keeps freed memory in quarantine, so the bound only means something without it. */
	assert_true(proc_peak_rss_kb() - rss0 < 100 * 1024);
#endif
	free(out);
}

/* The kinds that expected.csv names "fail", with the reason each must give. */
static const char *hostile_reason(const char *file)
{
	static const struct {
		const char *file, *reason;
	} known[] = {
	    {"truncated-half.jpg", "truncated"},
	    {"empty.jpg", "empty file"},
	    {"text-named.jpg", "not an image"},
	    {"bomb-header.png", "too many pixels: 60000x60000"},
	};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(file, known[i].file))
			return known[i].reason;
	return "";
}

static void check_hostile(const char *file, const char *expect)
{
	char rel[600], path[700];
	struct resize_opts o = opts_simple();
	struct err err = {0};
	float *out = new_out();
	int r;

	snprintf(rel, sizeof(rel), "data/hostile-images/%s", file);
	shared_path(path, sizeof(path), rel);
	r = resize_file(&o, path, out, NULL, &err);
	if (!strcmp(expect, "fail")) {
		const char *want = hostile_reason(file);

		if (r == 0)
			fail_msg("%s decoded, expected a failure", file);
		print_message("  %-28s fail: %s\n", file, err.msg);
		assert_int_equal(err.kind, ERR_INPUT);
		assert_true(err.msg[0] != '\0');
		if (strncmp(err.msg, want, strlen(want)))
			fail_msg("%s: reason \"%s\", want \"%s\"", file, err.msg, want);
	} else {
		if (r)
			fail_msg("%s: %s", file, err.msg);
		assert_sane(file, out);
		if (!strcmp(expect, "upright"))
			assert_upright(file, out);
		else
			print_message("  %-28s ok\n", file);
		if (!strcmp(file, "fully-transparent.png"))
			assert_solid(file, out, 1.0f, 1.0f, 1.0f);
		if (!strcmp(file, "grayscale.jpg"))
			assert_gray(file, out);
		/* made from the base photo by the plain formula, as ImageMagick does */
		if (!strcmp(file, "cmyk-no-icc.jpg"))
			assert_upright(file, out);
	}
	free(out);
}

static void test_hostile_images_match_expected_csv(void **state)
{
	char path[512], line[512];
	FILE *f;
	int n = 0;

	shared_path(path, sizeof(path), "data/hostile-images/expected.csv");
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	while (fgets(line, sizeof(line), f)) {
		char *file = line;
		char *expect = strchr(line, ',');
		char *end;

		if (!expect)
			continue;
		*expect++ = '\0';
		end = strchr(expect, ',');
		if (end)
			*end = '\0';
		assert_true(!strcmp(expect, "upright") || !strcmp(expect, "ok") ||
		            !strcmp(expect, "fail"));
		check_hostile(file, expect);
		n++;
	}
	fclose(f);
	assert_true(n >= 13);
}

/* Stored pixels for ORIENT such that a viewer that honours the tag shows UP upright: the
 * inverse of the transform the tag asks for. */
static VipsImage *unorient(VipsImage *up, int orient)
{
	VipsImage *a = NULL, *b = NULL;

	switch (orient) {
	case 1:
		assert_int_equal(vips_copy(up, &b, NULL), 0);
		break;
	case 2:
		assert_int_equal(vips_flip(up, &b, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
		break;
	case 3:
		assert_int_equal(vips_rot(up, &b, VIPS_ANGLE_D180, NULL), 0);
		break;
	case 4:
		assert_int_equal(vips_flip(up, &b, VIPS_DIRECTION_VERTICAL, NULL), 0);
		break;
	case 5: /* transpose, its own inverse */
		assert_int_equal(vips_rot(up, &a, VIPS_ANGLE_D90, NULL), 0);
		assert_int_equal(vips_flip(a, &b, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
		break;
	case 6: /* shown turned 90 clockwise, so stored turned 90 anticlockwise */
		assert_int_equal(vips_rot(up, &b, VIPS_ANGLE_D270, NULL), 0);
		break;
	case 7: /* transverse, its own inverse */
		assert_int_equal(vips_rot(up, &a, VIPS_ANGLE_D270, NULL), 0);
		assert_int_equal(vips_flip(a, &b, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
		break;
	case 8:
		assert_int_equal(vips_rot(up, &b, VIPS_ANGLE_D90, NULL), 0);
		break;
	default:
		fail();
	}
	if (a)
		g_object_unref(a);
	vips_image_set_int(b, VIPS_META_ORIENTATION, orient);
	return b;
}

static void test_exif_orientations_1_to_8_come_out_upright(void **state)
{
	struct resize_opts o = opts_simple();
	float *out = new_out();
	int orient;

	for (orient = 1; orient <= 8; orient++) {
		VipsImage *im = unorient(base_img, orient);
		struct resize_info info;
		struct err err = {0};
		char name[64], path[512];
		size_t len;
		void *jpg = encode(im, ".jpg[Q=95]", &len);

		snprintf(name, sizeof(name), "orientation-%d.jpg", orient);
		write_tmp(name, jpg, len);
		tmp_path(path, sizeof(path), name);
		if (resize_file(&o, path, out, &info, &err))
			fail_msg("%s: %s", name, err.msg);
		assert_upright(name, out);

		/* The source size is the stored one, before turning. */
		assert_int_equal(info.src_width, im->Xsize);
		assert_int_equal(info.src_height, im->Ysize);
		assert_string_equal(info.loader, "jpegload_buffer");
		g_free(jpg);
		g_object_unref(im);
	}
	free(out);
}

/* IM as PNG with an eXIf chunk carrying its orientation: libvips 8.14 reads that chunk but its
 * saver does not write it. The EXIF block is taken from a JPEG encoding of IM. Free with
 * g_free. */
static void *png_with_exif(VipsImage *im, size_t *len)
{
	size_t jlen, plen, elen, n;
	void *jpg = encode(im, ".jpg", &jlen);
	unsigned char *png = encode(im, ".png", &plen);
	VipsImage *hdr = vips_image_new_from_buffer(jpg, jlen, "", NULL);
	const void *exif;
	unsigned char *out;

	assert_non_null(hdr);
	assert_int_equal(vips_image_get_blob(hdr, VIPS_META_EXIF_NAME, &exif, &elen), 0);
	assert_true(elen > 6 && !memcmp(exif, "Exif\0\0", 6));
	exif = (const unsigned char *)exif + 6;
	elen -= 6;
	/* after the signature and IHDR (8 + 25 bytes) */
	n = plen + 12 + elen;
	out = g_malloc(n);
	memcpy(out, png, 33);
	put_be32(out + 33, (uint32_t)elen);
	memcpy(out + 37, "eXIf", 4);
	memcpy(out + 41, exif, elen);
	put_be32(out + 41 + elen, crc32_png(out + 37, elen + 4));
	memcpy(out + 45 + elen, png + 33, plen - 33);
	*len = n;
	g_object_unref(hdr);
	g_free(jpg);
	g_free(png);
	return out;
}

static const int quad_col[4][3] = {{200, 40, 40}, {40, 170, 60}, {40, 60, 190}, {235, 225, 80}};

/* A picture of four coloured quadrants stored under each orientation, in every format whose
 * libvips saver writes the tag: every one must come out with each colour in its corner. A
 * mirrored result swaps left and right, a wrong turn moves every colour. */
static void test_orientation_quadrants_in_every_tagged_format(void **state)
{
	static const char *const suffix[] = {".jpg[Q=95]", ".png", ".webp[lossless]", ".tif"};
	VipsImage *up = quadrants(64, 48, quad_col);
	float *out = new_out();
	size_t f;
	int orient;

	for (f = 0; f < sizeof(suffix) / sizeof(suffix[0]); f++)
		for (orient = 1; orient <= 8; orient++) {
			VipsImage *im = unorient(up, orient);
			VipsImage *hdr;
			char what[64];
			size_t len;
			void *p = strcmp(suffix[f], ".png") ? encode(im, suffix[f], &len)
			                                    : png_with_exif(im, &len);

			snprintf(what, sizeof(what), "%s orientation %d", suffix[f], orient);
			hdr = vips_image_new_from_buffer(p, len, "", NULL);
			assert_non_null(hdr);
			if (vips_image_get_orientation(hdr) != orient)
				fail_msg("%s: the saver did not keep the tag (%d)", what,
				         vips_image_get_orientation(hdr));
			g_object_unref(hdr);
			decode_ok(what, p, len, out);
			assert_quadrants(what, out, quad_col, 6);
			g_free(p);
			g_object_unref(im);
		}
	/* out-of-range tags (patched into the EXIF block: savers refuse to write them) are
	 * taken as 1 */
	{
		static const unsigned bad[] = {0, 9, 65535};
		size_t len, i, k;
		unsigned char *p = encode(up, ".jpg[Q=95]", &len);
		int found = 0;

		for (i = 0; i + 10 < len && !found; i++)
			found = !memcmp(p + i, "\x01\x12\x00\x03\x00\x00\x00\x01", 8) ||
			        !memcmp(p + i, "\x12\x01\x03\x00\x01\x00\x00\x00", 8);
		assert_true(found);
		i--;
		for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			int be = p[i] == 0x01;

			p[i + 8] = (unsigned char)(be ? bad[k] >> 8 : bad[k]);
			p[i + 9] = (unsigned char)(be ? bad[k] : bad[k] >> 8);
			decode_ok("orientation out of range", p, len, out);
			assert_quadrants("orientation out of range", out, quad_col, 6);
		}
		g_free(p);
	}
	g_object_unref(up);
	free(out);
}

/* Phone-size JPEGs go through shrink-on-load and a sequential read; turned ones must still
 * decode at every output size (a 4000x3000 photo under orientation 6 once failed at 512 with
 * "out of order read") and come out upright. */
static void test_large_turned_jpegs_at_model_sizes(void **state)
{
	static const int sides[] = {224, 512};
	VipsImage *up = quadrants(4000, 3000, quad_col);
	float *out = malloc(sizeof(float) * 3 * 512 * 512);
	int orient;
	size_t k;

	assert_non_null(out);
	for (orient = 1; orient <= 8; orient++) {
		VipsImage *im = unorient(up, orient);
		size_t len;
		void *p = encode(im, ".jpg[Q=85]", &len);

		for (k = 0; k < sizeof(sides) / sizeof(sides[0]); k++) {
			struct resize_opts o = opts_simple();
			struct err err = {0};
			char what[64];

			o.width = o.height = sides[k];
			snprintf(what, sizeof(what), "4000x3000 orientation %d to %d", orient,
			         sides[k]);
			if (resize_buffer(&o, p, len, out, NULL, &err))
				fail_msg("%s: unexpected failure: %s", what, err.msg);
			assert_quadrants_wh(what, out, sides[k], sides[k], quad_col, 6);
		}
		g_free(p);
		g_object_unref(im);
	}
	g_object_unref(up);
	free(out);
}

/* CMYK quadrants, with the profile that made them and without a profile (plain formula),
 * come back as the RGB colours they were made from. */
static void test_cmyk_quadrants_give_the_right_rgb(void **state)
{
	/* inside the gamut of the press profile, so that its round trip stays close */
	static const int muted[4][3] = {
	    {180, 90, 80}, {90, 150, 100}, {80, 100, 160}, {220, 210, 140}};
	VipsImage *soft = quadrants(64, 48, muted);
	VipsImage *up = quadrants(64, 48, quad_col);
	VipsImage *cmyk, *bare, *turned;
	float *out = new_out();
	size_t len;
	void *p;

	assert_int_equal(vips_icc_transform(soft, &cmyk, "cmyk", "input_profile", "srgb", NULL), 0);
	assert_int_equal(cmyk->Type, VIPS_INTERPRETATION_CMYK);
	p = encode(cmyk, ".jpg[Q=95]", &len);
	decode_ok("cmyk with icc", p, len, out);
	assert_quadrants("cmyk jpeg with icc", out, muted, 8);
	g_free(p);
	p = encode(cmyk, ".tif", &len);
	decode_ok("cmyk tiff with icc", p, len, out);
	assert_quadrants("cmyk tiff with icc", out, muted, 8);
	g_free(p);

	bare = plain_cmyk(up);
	p = encode(bare, ".jpg[Q=95]", &len);
	decode_ok("cmyk jpeg without icc", p, len, out);
	assert_quadrants("cmyk jpeg without icc", out, quad_col, 4);
	g_free(p);
	p = encode(bare, ".tif", &len);
	decode_ok("cmyk tiff without icc", p, len, out);
	assert_quadrants("cmyk tiff without icc", out, quad_col, 2);
	g_free(p);

	/* a large one goes through shrink-on-load and a sequential read, turned 90 degrees */
	{
		VipsImage *big = quadrants(2048, 1536, muted);
		VipsImage *big_cmyk, *big_turned;

		assert_int_equal(
		    vips_icc_transform(big, &big_cmyk, "cmyk", "input_profile", "srgb", NULL), 0);
		big_turned = unorient(big_cmyk, 6);
		p = encode(big_turned, ".jpg[Q=90]", &len);
		decode_ok("large cmyk jpeg with icc, orientation 6", p, len, out);
		assert_quadrants("large cmyk jpeg with icc, orientation 6", out, muted, 8);
		g_free(p);
		g_object_unref(big_turned);
		g_object_unref(big_cmyk);
		g_object_unref(big);
	}

	/* the plain path turns photos upright too */
	turned = unorient(bare, 6);
	p = encode(turned, ".jpg[Q=95]", &len);
	decode_ok("cmyk jpeg without icc, orientation 6", p, len, out);
	assert_quadrants("cmyk jpeg without icc, orientation 6", out, quad_col, 4);
	g_free(p);

	g_object_unref(turned);
	g_object_unref(bare);
	g_object_unref(cmyk);
	g_object_unref(up);
	g_object_unref(soft);
	free(out);
}

/* CMYK photos take their own path (profile or plain formula), also a sequential read: turned
 * ones must decode at the larger and non-square model sizes too (a 1200x900 CMYK JPEG or
 * TIFF under orientations 3-8 once failed at 512 px with "out of order read"). */
static void test_large_turned_cmyk_at_model_sizes(void **state)
{
	static const int sizes[][2] = {{512, 512}, {320, 224}};
	static const char *const savers[] = {".jpg[Q=90]", ".tif"};
	VipsImage *up = quadrants(1200, 900, quad_col);
	VipsImage *bare = plain_cmyk(up);
	float *out = malloc(sizeof(float) * 3 * 512 * 512);
	int orient;
	size_t k, f;

	assert_non_null(out);
	for (orient = 1; orient <= 8; orient++) {
		VipsImage *im = unorient(bare, orient);

		for (f = 0; f < sizeof(savers) / sizeof(savers[0]); f++) {
			size_t len;
			void *p = encode(im, savers[f], &len);

			for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
				struct resize_opts o = opts_simple();
				struct err err = {0};
				char what[96];

				o.width = sizes[k][0];
				o.height = sizes[k][1];
				snprintf(what, sizeof(what), "cmyk %s orientation %d to %dx%d",
				         savers[f], orient, o.width, o.height);
				if (resize_buffer(&o, p, len, out, NULL, &err))
					fail_msg("%s: unexpected failure: %s", what, err.msg);
				assert_quadrants_wh(what, out, o.width, o.height, quad_col, 6);
			}
			g_free(p);
		}
		g_object_unref(im);
	}
	g_object_unref(bare);
	g_object_unref(up);
	free(out);
}

/* Formats whose libvips loaders are marked untrusted (not fuzzed enough, or able to reach
 * other files) are refused with the loader's name, whatever saver made them. */
static void test_untrusted_formats_are_refused_by_name(void **state)
{
	static const struct {
		const char *suffix, *reason;
	} kinds[] = {
	    {".jp2", "loader blocked: jp2kload_buffer (untrusted)"},
	    {".jxl", "loader blocked: jxlload_buffer (untrusted)"},
	    {".hdr", "loader blocked: radload_buffer (untrusted)"},
	    {".bmp", "loader blocked: magickload_buffer (untrusted)"},
	};
	VipsImage *im = quadrants(64, 48, quad_col);
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t len;
		void *p;

		/* resize_init() blocks the untrusted savers as well */
		vips_block_untrusted_set(FALSE);
		p = encode(im, kinds[i].suffix, &len);
		vips_block_untrusted_set(TRUE);

		decode_fails(kinds[i].suffix, p, len, kinds[i].reason);
		g_free(p);
	}
	g_object_unref(im);
}

/* Every prefix of a small JPEG and PNG is refused as truncated; prefixes too short to carry
 * the signature may instead be "not an image". */
static void every_cut(const char *what, const unsigned char *p, size_t len, size_t sig)
{
	struct resize_opts o = opts_simple();
	float *out = new_out();
	size_t cut;

	for (cut = 1; cut < len; cut++) {
		struct err err = {0};

		if (resize_buffer(&o, p, cut, out, NULL, &err) == 0)
			fail_msg("%s cut at %zu of %zu bytes decoded", what, cut, len);
		if (err.kind != ERR_INPUT || (strcmp(err.msg, "truncated") &&
		                              !(cut < sig && !strcmp(err.msg, "not an image"))))
			fail_msg("%s cut at %zu of %zu: %s \"%s\"", what, cut, len,
			         err_kind_name(err.kind), err.msg);
	}
	decode_ok(what, p, len, out);
	free(out);
}

static void test_every_truncation_point_is_truncated(void **state)
{
	VipsImage *small;
	size_t len;
	void *p;

	assert_int_equal(vips_resize(base_img, &small, 0.12, NULL), 0);
	p = encode(small, ".jpg[Q=90]", &len);
	print_message("  every cut of a %zu-byte jpeg\n", len);
	every_cut("jpeg", p, len, 3);
	g_free(p);
	p = encode(small, ".jpg[Q=90,interlace]", &len);
	print_message("  every cut of a %zu-byte progressive jpeg\n", len);
	every_cut("progressive jpeg", p, len, 3);
	g_free(p);
	p = encode(small, ".png", &len);
	print_message("  every cut of a %zu-byte png\n", len);
	every_cut("png", p, len, 8);
	g_free(p);
	g_object_unref(small);
}

/* Full-size files cut at 10%, 50%, 90%, right before the end marker and one byte short. */
static void cuts(const char *what, const unsigned char *p, size_t len, size_t end_marker)
{
	size_t at[5] = {len / 10, len / 2, len * 9 / 10, len - end_marker, len - 1};
	char name[96];
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "%s cut at %zu of %zu", what, at[i], len);
		decode_fails(name, p, at[i], "truncated");
	}
}

static void test_truncation_at_10_50_90_percent_and_before_end_marker(void **state)
{
	VipsImage *anim;
	VipsImage *red = solid(64, 48, 255, 0, 0, -1);
	VipsImage *blue = solid(64, 48, 0, 0, 255, -1);
	size_t len;
	void *p;

	p = encode(base_img, ".jpg[Q=90]", &len);
	cuts("jpeg", p, len, 2);
	g_free(p);
	p = encode(base_img, ".jpg[Q=90,interlace]", &len);
	cuts("progressive jpeg", p, len, 2);
	g_free(p);
	p = encode(base_img, ".png", &len);
	cuts("png", p, len, 12);
	g_free(p);
	p = encode(base_img, ".webp[Q=80]", &len);
	cuts("webp", p, len, 1);
	g_free(p);
	p = encode(base_img, ".tif", &len);
	cuts("tiff", p, len, 1);
	g_free(p);
	p = encode(base_img, ".gif", &len);
	decode_fails("gif cut at 50%", p, len / 2, "truncated");
	decode_fails("gif cut at 90%", p, len * 9 / 10, "truncated");
	g_free(p);

	anim = pages(red, blue);
	p = encode(anim, ".gif", &len);
	decode_fails("animated gif cut at 50%", p, len / 2, "truncated");
	g_free(p);
	g_object_unref(anim);
	g_object_unref(red);
	g_object_unref(blue);
}

static void test_trailing_garbage_after_eoi_is_fine(void **state)
{
	static const unsigned char junk[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F',
	                                     0xff, 0xd9, 0x00, 0xff, 'x',  'y',  'z'};
	size_t len, i;
	unsigned char *p = encode(base_img, ".jpg[Q=95]", &len);
	unsigned char *q = malloc(len + 4096);
	float *out = new_out();

	assert_non_null(q);
	memcpy(q, p, len);
	for (i = 0; i < 4096; i++)
		q[len + i] = junk[i % sizeof(junk)];
	decode_ok("jpeg + junk", q, len + 4096, out);
	assert_upright("jpeg + 4 KiB junk", out);
	free(q);
	free(out);
	g_free(p);
}

static void test_formats_and_depths_decode_to_the_same_picture(void **state)
{
	static const struct {
		const char *what, *suffix;
	} fmts[] = {
	    {"progressive jpeg", ".jpg[Q=95,interlace]"},
	    {"png", ".png"},
	    {"palette png", ".png[palette]"},
	    {"webp", ".webp[Q=90]"},
	    {"lossless webp", ".webp[lossless]"},
	    {"tiff", ".tif"},
	    {"heif", ".avif[Q=90]"},
	    {"heic", ".heic[Q=90]"},
	};
	VipsImage *u16, *rgb16, *cmyk, *cmyk_bare, *hdr;
	float *out = new_out();
	size_t i, len;
	void *p;

	for (i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		p = encode(base_img, fmts[i].suffix, &len);
		decode_ok(fmts[i].what, p, len, out);
		assert_upright(fmts[i].what, out);
		g_free(p);
	}

	assert_int_equal(vips_cast(base_img, &u16, VIPS_FORMAT_USHORT, "shift", TRUE, NULL), 0);
	assert_int_equal(vips_copy(u16, &rgb16, "interpretation", VIPS_INTERPRETATION_RGB16, NULL),
	                 0);
	p = encode(rgb16, ".png", &len);
	assert_int_equal(((unsigned char *)p)[24], 16); /* IHDR bit depth */
	decode_ok("16-bit png", p, len, out);
	assert_upright("16-bit png", out);
	g_free(p);

	/* CMYK with its profile converts back closely; without one the inks are read by the
	 * plain formula, the one that made the file. */
	assert_int_equal(vips_icc_transform(base_img, &cmyk, "cmyk", NULL), 0);
	assert_int_equal(cmyk->Type, VIPS_INTERPRETATION_CMYK);
	p = encode(cmyk, ".jpg[Q=95]", &len);
	decode_ok("cmyk jpeg with icc", p, len, out);
	assert_upright("cmyk jpeg with icc", out);
	g_free(p);
	cmyk_bare = plain_cmyk(base_img);
	p = encode(cmyk_bare, ".jpg[Q=95]", &len);
	hdr = vips_image_new_from_buffer(p, len, "", NULL);
	assert_non_null(hdr);
	assert_int_equal(hdr->Type, VIPS_INTERPRETATION_CMYK);
	assert_int_equal(vips_image_get_typeof(hdr, VIPS_META_ICC_NAME), 0);
	g_object_unref(hdr);
	decode_ok("cmyk jpeg without icc", p, len, out);
	assert_upright("cmyk jpeg without icc", out);
	g_free(p);

	g_object_unref(u16);
	g_object_unref(rgb16);
	g_object_unref(cmyk);
	g_object_unref(cmyk_bare);
	free(out);
}

/* Pure sRGB red stored as Display P3 numbers (about 234,51,35) must come back as red. */
static void test_wide_gamut_rgb_is_converted_to_srgb(void **state)
{
	static const char *const suffix[] = {".png", ".jpg[Q=100]"};
	VipsImage *red = solid(40, 30, 255, 0, 0, -1);
	VipsImage *p3, *srgb_tagged;
	float *out = new_out();
	size_t i, len;
	void *p;

	assert_int_equal(vips_icc_transform(red, &p3, "p3", "input_profile", "srgb", NULL), 0);
	assert_int_equal(
	    vips_icc_transform(red, &srgb_tagged, "srgb", "input_profile", "srgb", NULL), 0);
	for (i = 0; i < 2; i++) {
		p = encode(p3, suffix[i], &len);
		decode_ok("p3", p, len, out);
		print_message("  p3 red as %-12s -> %.1f %.1f %.1f\n", suffix[i], 255 * out[0],
		              255 * out[NPIX], 255 * out[2 * NPIX]);
		assert_true(out[0] > 250 / 255.0f && out[NPIX] < 12 / 255.0f &&
		            out[2 * NPIX] < 12 / 255.0f);
		g_free(p);

		p = encode(srgb_tagged, suffix[i], &len);
		decode_ok("srgb-tagged", p, len, out);
		assert_true(out[0] > 250 / 255.0f && out[NPIX] < 5 / 255.0f &&
		            out[2 * NPIX] < 5 / 255.0f);
		g_free(p);
	}
	g_object_unref(red);
	g_object_unref(p3);
	g_object_unref(srgb_tagged);
	free(out);
}

static void test_grayscale_gives_equal_channels(void **state)
{
	VipsImage *bw, *g16, *ga;
	double a = 200;
	float *out = new_out();
	size_t len;
	void *p;

	assert_int_equal(vips_colourspace(base_img, &bw, VIPS_INTERPRETATION_B_W, NULL), 0);
	p = encode(bw, ".jpg", &len);
	decode_ok("grey jpeg", p, len, out);
	assert_gray("grey jpeg", out);
	g_free(p);

	assert_int_equal(vips_colourspace(base_img, &g16, VIPS_INTERPRETATION_GREY16, NULL), 0);
	p = encode(g16, ".png", &len);
	assert_int_equal(((unsigned char *)p)[24], 16);
	decode_ok("16-bit grey png", p, len, out);
	assert_gray("16-bit grey png", out);
	assert_sane("16-bit grey png", out);
	g_free(p);

	assert_int_equal(vips_bandjoin_const(bw, &ga, &a, 1, NULL), 0);
	p = encode(ga, ".png", &len);
	decode_ok("grey + alpha png", p, len, out);
	assert_gray("grey + alpha png", out);
	g_free(p);

	g_object_unref(bw);
	g_object_unref(g16);
	g_object_unref(ga);
	free(out);
}

/* Fully transparent becomes white, half transparent black becomes mid grey, for PNG and
 * lossless WebP. */
static void test_alpha_is_flattened_onto_white(void **state)
{
	static const char *const suffix[] = {".png", ".webp[lossless]"};
	VipsImage *clear = solid(40, 30, 255, 0, 0, 0);
	VipsImage *half = solid(40, 30, 0, 0, 0, 128);
	float *out = new_out();
	size_t i, len;
	void *p;

	for (i = 0; i < 2; i++) {
		p = encode(clear, suffix[i], &len);
		decode_ok(suffix[i], p, len, out);
		assert_solid("transparent red", out, 1.0f, 1.0f, 1.0f);
		g_free(p);

		/* 255 * (1 - 128/255) = 127 */
		p = encode(half, suffix[i], &len);
		decode_ok(suffix[i], p, len, out);
		assert_solid("half transparent black", out, 127 / 255.0f, 127 / 255.0f,
		             127 / 255.0f);
		g_free(p);
	}
	g_object_unref(clear);
	g_object_unref(half);
	free(out);
}

/* Red first page, blue second: the output must be red. */
static void test_multi_page_inputs_use_the_first_page(void **state)
{
	static const char *const suffix[] = {".gif", ".webp[lossless]", ".tif"};
	VipsImage *red = solid(64, 48, 255, 0, 0, -1);
	VipsImage *blue = solid(64, 48, 0, 0, 255, -1);
	VipsImage *two = pages(red, blue);
	struct resize_opts o = opts_simple();
	float *out = new_out();
	size_t i, len;

	for (i = 0; i < 3; i++) {
		struct resize_info info;
		struct err err = {0};
		void *p = encode(two, suffix[i], &len);

		if (resize_buffer(&o, p, len, out, &info, &err))
			fail_msg("%s: %s", suffix[i], err.msg);
		print_message("  two-page %-18s %s %dx%d\n", suffix[i], info.loader, info.src_width,
		              info.src_height);
		assert_int_equal(info.src_width, 64);
		assert_int_equal(info.src_height, 48);
		assert_solid(suffix[i], out, 1.0f, 0.0f, 0.0f);
		g_free(p);
	}
	g_object_unref(red);
	g_object_unref(blue);
	g_object_unref(two);
	free(out);
}

/* resize_init() switches libvips' run-time vector code (liborc) off: it crashed once in a
 * benchmark and measured no faster. */
static void test_vector_code_is_off(void **state)
{
	assert_false(vips_vector_isenabled());
}

static void test_untrusted_loaders_are_blocked(void **state)
{
	static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" "
	                          "height=\"64\"><image href=\"file:///etc/passwd\"/></svg>";
	static const char pdf[] = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n"
	                          "<< /Root 1 0 R >>\n%%EOF\n";

	decode_fails("svg", svg, sizeof(svg) - 1, "loader blocked: svgload_buffer (untrusted)");
	decode_fails("pdf", pdf, sizeof(pdf) - 1, "loader blocked: pdfload_buffer (untrusted)");
}

static void test_size_limits_and_empty_inputs(void **state)
{
	char path[512], want[128];
	struct resize_opts o = opts_simple();
	struct err err = {0};
	float *out = new_out();
	struct stat st;

	shared_path(path, sizeof(path), base_rel);
	assert_int_equal(stat(path, &st), 0);
	o.max_bytes = (size_t)st.st_size - 1;
	assert_int_equal(resize_file(&o, path, out, NULL, &err), -1);
	snprintf(want, sizeof(want), "too large: %lld bytes, limit %lld", (long long)st.st_size,
	         (long long)st.st_size - 1);
	assert_int_equal(err.kind, ERR_INPUT);
	assert_string_equal(err.msg, want);

	assert_int_equal(resize_buffer(&o, "xxxxxxxx", 8, out, NULL, &err), 0 - 1);
	assert_string_equal(err.msg, "not an image");
	o.max_bytes = 4;
	assert_int_equal(resize_buffer(&o, "xxxxxxxx", 8, out, NULL, &err), -1);
	assert_string_equal(err.msg, "too large: 8 bytes, limit 4");
	o.max_bytes = 0;
	assert_int_equal(resize_buffer(&o, "", 0, out, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_INPUT);
	assert_string_equal(err.msg, "empty file");

	/* A source that is exactly at the pixel limit passes; one pixel less fails. */
	o.max_pixels = 400 * 268;
	assert_int_equal(resize_file(&o, path, out, NULL, &err), 0);
	o.max_pixels = 400 * 268 - 1;
	assert_int_equal(resize_file(&o, path, out, NULL, &err), -1);
	assert_string_equal(err.msg, "too many pixels: 400x268, limit 107199");

	assert_int_equal(resize_file(&o, tmpdir, out, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_INPUT);
	assert_string_equal(err.msg, "not a regular file");
	/* a FIFO is refused at once, not waited on for a writer (alarm: fail, never hang) */
	tmp_path(path, sizeof(path), "fifo.jpg");
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(20);
	assert_int_equal(resize_file(&o, path, out, NULL, &err), -1);
	alarm(0);
	assert_int_equal(err.kind, ERR_INPUT);
	assert_string_equal(err.msg, "not a regular file");
	unlink(path);
	tmp_path(path, sizeof(path), "does-not-exist.jpg");
	assert_int_equal(resize_file(&o, path, out, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_INPUT);
	assert_string_equal(err.msg, "open failed: No such file or directory");
	free(out);
}

/* The base photo as PNG with the start of its first IDAT's zlib stream scrambled and the
 * CRC made right again, so that only the decoder can object. */
static unsigned char *corrupt_png(size_t *len)
{
	unsigned char *p = encode(base_img, ".png", len);
	size_t at = 8, n, i;

	for (;;) {
		n = (size_t)p[at] << 24 | (size_t)p[at + 1] << 16 | (size_t)p[at + 2] << 8 |
		    p[at + 3];
		if (!memcmp(p + at + 4, "IDAT", 4))
			break;
		at += 12 + n;
		assert_true(at + 12 < *len);
	}
	assert_true(n > 200);
	for (i = 0; i < 64; i++)
		p[at + 8 + 100 + i] ^= 0x5a;
	put_be32(p + at + 8 + n, crc32_png(p + at + 4, n + 4));
	return p;
}

static void test_corrupt_data_reports_the_decoder_message(void **state)
{
	size_t len;
	unsigned char *p = corrupt_png(&len);

	decode_fails("png with corrupt zlib data", p, len, "decode failed: vipspng: ");
	g_free(p);
}

/* A solid colour comes out as exactly the formula's value in every mode. */
static void test_normalisation_exact_on_solid_colour(void **state)
{
	static const int rgb[3] = {200, 100, 50};
	static const double in_mean[3] = {0.485, 0.456, 0.406};
	static const double in_std[3] = {0.229, 0.224, 0.225};
	VipsImage *im = solid(50, 40, rgb[0], rgb[1], rgb[2], -1);
	struct resize_opts o = opts_simple();
	struct err err = {0};
	float *out = new_out();
	float want[3];
	size_t len;
	void *p = encode(im, ".png", &len);
	int c;

	assert_int_equal(resize_buffer(&o, p, len, out, NULL, &err), 0);
	for (c = 0; c < 3; c++)
		want[c] = (float)(rgb[c] / 255.0);
	assert_solid("simple", out, want[0], want[1], want[2]);

	o.norm = RESIZE_NORM_IMAGENET;
	assert_int_equal(resize_buffer(&o, p, len, out, NULL, &err), 0);
	for (c = 0; c < 3; c++)
		want[c] = (float)((rgb[c] / 255.0 - in_mean[c]) / in_std[c]);
	assert_solid("imagenet", out, want[0], want[1], want[2]);
	assert_float_equal(out[0], 1.30705, 1e-4); /* (200/255 - 0.485) / 0.229 */

	o.norm = RESIZE_NORM_CUSTOM;
	for (c = 0; c < 3; c++) {
		o.mean[c] = 128.0f;
		o.std[c] = 128.0f;
	}
	assert_int_equal(resize_buffer(&o, p, len, out, NULL, &err), 0);
	assert_solid("custom 128/128", out, 0.5625f, -0.21875f, -0.609375f);

	g_free(p);
	g_object_unref(im);
	free(out);
}

static void test_bad_options_are_fatal(void **state)
{
	struct resize_opts o = opts_simple();
	struct err err = {0};
	float *out = new_out();

	o.width = 0;
	assert_int_equal(resize_buffer(&o, "x", 1, out, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	o = opts_simple();
	o.norm = RESIZE_NORM_CUSTOM;
	o.std[0] = o.std[1] = o.std[2] = 0.0f;
	assert_int_equal(resize_buffer(&o, "x", 1, out, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	free(out);
}

/* Random damage to small files of each format: every outcome is a picture or a bad-input
 * failure with a reason, never a crash, a hang or another error class. */
static void test_random_damage_gives_a_picture_or_a_reason(void **state)
{
	static const char *const suffix[] = {
	    ".jpg", ".jpg[interlace]", ".png", ".webp", ".gif", ".tif", ".avif"};
	struct resize_opts o = opts_simple();
	float *out = new_out();
	VipsImage *small;
	uint32_t seed = 12345;
	size_t f;
	int n_ok = 0, n_fail = 0;

	assert_int_equal(vips_resize(base_img, &small, 0.16, NULL), 0);
	for (f = 0; f < sizeof(suffix) / sizeof(suffix[0]); f++) {
		size_t len;
		unsigned char *p = encode(small, suffix[f], &len);
		unsigned char *q = malloc(len);
		int round;

		assert_non_null(q);
		for (round = 0; round < 80; round++) {
			struct err err = {0};
			size_t n = len, k, flips;

			memcpy(q, p, len);
			seed = seed * 1103515245u + 12345u;
			flips = 1 + (seed >> 16) % 8;
			for (k = 0; k < flips; k++) {
				seed = seed * 1103515245u + 12345u;
				q[(seed >> 8) % len] ^= (unsigned char)(1 + (seed >> 24) % 255);
			}
			if (round % 4 == 3)
				n = 1 + (seed >> 4) % (len - 1);
			if (resize_buffer(&o, q, n, out, NULL, &err) == 0) {
				assert_sane(suffix[f], out);
				n_ok++;
				continue;
			}
			n_fail++;
			if (err.kind != ERR_INPUT || !err.msg[0])
				fail_msg("%s round %d: %s \"%s\"", suffix[f], round,
				         err_kind_name(err.kind), err.msg);
		}
		free(q);
		g_free(p);
	}
	print_message("  damaged files: %d decoded, %d refused\n", n_ok, n_fail);
	g_object_unref(small);
	free(out);
}

/* Several threads decode a mix of good and bad items at once; each result must be exactly
 * what the item gives alone, pixels and reason. */
#define N_ITEMS   8
#define N_THREADS 4

struct item {
	const char *what;
	void *buf;
	size_t len;
	int rc;
	char msg[ERR_MSG_MAX];
	float *out;
};

static struct item items[N_ITEMS];
static int thread_mismatches;
static pthread_mutex_t mismatch_lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct resize_opts o = opts_simple();
	float *out = calloc(NOUT, sizeof(float));
	int round, k;

	for (round = 0; out && round < 3; round++)
		for (k = 0; k < N_ITEMS; k++) {
			struct item *it = &items[(k + id * 3 + round) % N_ITEMS];
			struct err err = {0};
			int rc = resize_buffer(&o, it->buf, it->len, out, NULL, &err);
			int bad = rc != it->rc || (rc && strcmp(err.msg, it->msg)) ||
			          (!rc && memcmp(out, it->out, NOUT * sizeof(float)));

			if (bad) {
				pthread_mutex_lock(&mismatch_lock);
				thread_mismatches++;
				fprintf(stderr, "thread %d, %s: rc %d \"%s\", alone rc %d \"%s\"\n",
				        id, it->what, rc, err.msg, it->rc, it->msg);
				pthread_mutex_unlock(&mismatch_lock);
			}
		}
	free(out);
	return NULL;
}

static void set_item(int i, const char *what, void *buf, size_t len)
{
	items[i].what = what;
	items[i].buf = buf;
	items[i].len = len;
}

static void test_concurrent_calls_match_serial_results(void **state)
{
	static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
	VipsImage *alpha = solid(40, 30, 0, 0, 0, 0);
	VipsImage *o6 = unorient(base_img, 6);
	pthread_t th[N_THREADS];
	size_t len;
	void *p;
	int i;

	p = encode(base_img, ".jpg", &len);
	set_item(0, "jpeg", p, len);
	p = encode(o6, ".jpg", &len);
	set_item(1, "orientation 6", p, len);
	p = corrupt_png(&len);
	set_item(2, "corrupt png", p, len);
	p = encode(base_img, ".jpg", &len);
	set_item(3, "cut jpeg", p, len / 2);
	p = encode(base_img, ".gif", &len);
	set_item(4, "cut gif", p, len / 2);
	set_item(5, "svg", g_strdup(svg), sizeof(svg) - 1);
	set_item(6, "text", g_strdup("hello, this is text"), 19);
	p = encode(alpha, ".png", &len);
	set_item(7, "alpha png", p, len);

	for (i = 0; i < N_ITEMS; i++) {
		struct resize_opts o = opts_simple();
		struct err err = {0};

		items[i].out = new_out();
		items[i].rc =
		    resize_buffer(&o, items[i].buf, items[i].len, items[i].out, NULL, &err);
		snprintf(items[i].msg, sizeof(items[i].msg), "%s", err.msg);
		print_message("  alone: %-14s %s\n", items[i].what,
		              items[i].rc ? items[i].msg : "ok");
	}
	assert_string_equal(items[4].msg, "truncated");

	for (i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
	for (i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(thread_mismatches, 0);

	for (i = 0; i < N_ITEMS; i++) {
		g_free(items[i].buf);
		free(items[i].out);
	}
	g_object_unref(alpha);
	g_object_unref(o6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bomb_headers_refused_fast_with_flat_memory),
	    cmocka_unit_test(test_hostile_images_match_expected_csv),
	    cmocka_unit_test(test_exif_orientations_1_to_8_come_out_upright),
	    cmocka_unit_test(test_orientation_quadrants_in_every_tagged_format),
	    cmocka_unit_test(test_large_turned_jpegs_at_model_sizes),
	    cmocka_unit_test(test_cmyk_quadrants_give_the_right_rgb),
	    cmocka_unit_test(test_large_turned_cmyk_at_model_sizes),
	    cmocka_unit_test(test_untrusted_formats_are_refused_by_name),
	    cmocka_unit_test(test_every_truncation_point_is_truncated),
	    cmocka_unit_test(test_truncation_at_10_50_90_percent_and_before_end_marker),
	    cmocka_unit_test(test_trailing_garbage_after_eoi_is_fine),
	    cmocka_unit_test(test_formats_and_depths_decode_to_the_same_picture),
	    cmocka_unit_test(test_wide_gamut_rgb_is_converted_to_srgb),
	    cmocka_unit_test(test_grayscale_gives_equal_channels),
	    cmocka_unit_test(test_alpha_is_flattened_onto_white),
	    cmocka_unit_test(test_multi_page_inputs_use_the_first_page),
	    cmocka_unit_test(test_untrusted_loaders_are_blocked),
	    cmocka_unit_test(test_vector_code_is_off),
	    cmocka_unit_test(test_size_limits_and_empty_inputs),
	    cmocka_unit_test(test_corrupt_data_reports_the_decoder_message),
	    cmocka_unit_test(test_normalisation_exact_on_solid_colour),
	    cmocka_unit_test(test_bad_options_are_fatal),
	    cmocka_unit_test(test_random_damage_gives_a_picture_or_a_reason),
	    cmocka_unit_test(test_concurrent_calls_match_serial_results),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
