/* make_hostile.c - write one small file of every hostile photo kind into a folder, with a
 * manifest of the outcome each must get from the pipeline, for the end-to-end test.
 *   build/tools/make_hostile DIR   writes DIR/<kind files> and DIR/manifest.csv
 * manifest.csv: file,expect where expect is "ok" (embedded) or the start of the reason
 * ("resize: truncated"). The pixel checks of the same kinds are in tests/unit/test_resize.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>
#include <zlib.h>

#include "../lib/pictures.h"

static const char *dir;
static FILE *manifest;

static void die(const char *what)
{
	fprintf(stderr, "make_hostile: %s: %s\n", what, vips_error_buffer());
	exit(1);
}

static void put(const char *file, const void *p, size_t n, const char *expect)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		die(path);
	fprintf(manifest, "%s,%s\n", file, expect);
}

static unsigned char *encode(VipsImage *im, const char *suffix, size_t *len)
{
	void *buf = NULL;

	if (vips_image_write_to_buffer(im, suffix, &buf, len, NULL))
		die(suffix);
	return buf;
}

static void save(VipsImage *im, const char *file, const char *suffix, const char *expect)
{
	size_t len;
	unsigned char *p = encode(im, suffix, &len);

	put(file, p, len, expect);
	g_free(p);
}

static VipsImage *solid(int w, int h, int r, int g, int b)
{
	VipsImage *im = picture_solid(w, h, r, g, b, -1);

	if (!im)
		die("solid");
	return im;
}

/* A small picture with some structure: four coloured quadrants. */
static VipsImage *picture(void)
{
	static const int col[4][3] = {{200, 40, 40}, {40, 170, 60}, {40, 60, 190}, {235, 225, 80}};
	VipsImage *im = picture_quadrants(96, 64, col);

	if (!im)
		die("quadrants");
	return im;
}

static VipsImage *two_pages(VipsImage *a, VipsImage *b)
{
	VipsImage *im = picture_pages(a, b);

	if (!im)
		die("pages");
	return im;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void orientations(VipsImage *pic)
{
	static const VipsAngle turn[9] = {0,
	                                  VIPS_ANGLE_D0,
	                                  VIPS_ANGLE_D0,
	                                  VIPS_ANGLE_D180,
	                                  VIPS_ANGLE_D0,
	                                  VIPS_ANGLE_D90,
	                                  VIPS_ANGLE_D270,
	                                  VIPS_ANGLE_D270,
	                                  VIPS_ANGLE_D90};
	static const int flip[9] = {0, 0, 1, 0, 2, 1, 0, 1, 0}; /* 1: left-right, 2: top-bottom */
	int o;

	for (o = 1; o <= 8; o++) {
		VipsImage *a, *b;
		char file[64];

		if (vips_rot(pic, &a, turn[o], NULL))
			die("rot");
		if (flip[o] &&
		    vips_flip(a, &b,
		              flip[o] == 1 ? VIPS_DIRECTION_HORIZONTAL : VIPS_DIRECTION_VERTICAL,
		              NULL))
			die("flip");
		if (!flip[o] && vips_copy(a, &b, NULL))
			die("copy");
		vips_image_set_int(b, VIPS_META_ORIENTATION, o);
		snprintf(file, sizeof(file), "orientation-%d.jpg", o);
		save(b, file, ".jpg[Q=95]", "ok");
		g_object_unref(a);
		g_object_unref(b);
	}
}

static void truncated(VipsImage *pic)
{
	size_t len;
	unsigned char *p = encode(pic, ".jpg[Q=90]", &len);
	unsigned char *q;

	put("truncated-half.jpg", p, len / 2, "resize: truncated");
	put("truncated-before-eoi.jpg", p, len - 2, "resize: truncated");
	/* over limits.max_bytes (2000000 in the end-to-end test): refused before reading */
	q = g_malloc0(2000001);
	memcpy(q, p, len);
	put("oversized.jpg", q, 2000001, "fetch: too large: 2000001 bytes, limit 2000000");
	g_free(q);
	q = g_malloc(len + 300);
	memcpy(q, p, len);
	memset(q + len, 'x', 300);
	put("trailing-garbage.jpg", q, len + 300, "ok");
	g_free(q);
	g_free(p);

	p = encode(pic, ".png", &len);
	put("truncated-before-iend.png", p, len - 12, "resize: truncated");
	put("truncated-half.png", p, len / 2, "resize: truncated");
	g_free(p);
	p = encode(pic, ".webp", &len);
	put("truncated-half.webp", p, len / 2, "resize: truncated");
	g_free(p);
	p = encode(pic, ".tif", &len);
	put("truncated-half.tif", p, len / 2, "resize: truncated");
	g_free(p);
}

static void formats(VipsImage *pic)
{
	VipsImage *bw, *u16, *rgb16, *cmyk, *bare, *alpha, *red, *blue, *two;
	double half = 128;

	save(pic, "progressive.jpg", ".jpg[Q=90,interlace]", "ok");
	save(pic, "plain.png", ".png", "ok");
	save(pic, "palette.png", ".png[palette]", "ok");
	save(pic, "lossy.webp", ".webp[Q=80]", "ok");
	save(pic, "plain.tif", ".tif", "ok");
	save(pic, "picture.avif", ".avif", "ok");
	save(pic, "picture.heic", ".heic", "ok");
	save(pic, "one-frame.gif", ".gif", "ok");
	/* the content decides, not the name */
	save(pic, "png-named.jpg", ".png", "ok");

	if (vips_colourspace(pic, &bw, VIPS_INTERPRETATION_B_W, NULL))
		die("b-w");
	save(bw, "grayscale.jpg", ".jpg", "ok");
	if (vips_cast(pic, &u16, VIPS_FORMAT_USHORT, "shift", TRUE, NULL) ||
	    vips_copy(u16, &rgb16, "interpretation", VIPS_INTERPRETATION_RGB16, NULL))
		die("16 bit");
	save(rgb16, "16-bit.png", ".png", "ok");
	if (vips_icc_transform(pic, &cmyk, "cmyk", "input_profile", "srgb", NULL))
		die("cmyk");
	save(cmyk, "cmyk-icc.jpg", ".jpg[Q=95]", "ok");
	if (vips_copy(cmyk, &bare, NULL) || !vips_image_remove(bare, VIPS_META_ICC_NAME))
		die("strip icc");
	save(bare, "cmyk-no-icc.jpg", ".jpg[Q=95]", "ok");
	if (vips_bandjoin_const(pic, &alpha, &half, 1, NULL))
		die("alpha");
	save(alpha, "alpha.png", ".png", "ok");
	save(alpha, "alpha.webp", ".webp[lossless]", "ok");

	red = solid(40, 30, 255, 0, 0);
	blue = solid(40, 30, 0, 0, 255);
	two = two_pages(red, blue);
	save(two, "animated.gif", ".gif", "ok");
	save(two, "animated.webp", ".webp[lossless]", "ok");
	save(two, "multi-page.tif", ".tif", "ok");

	g_object_unref(bw);
	g_object_unref(u16);
	g_object_unref(rgb16);
	g_object_unref(cmyk);
	g_object_unref(bare);
	g_object_unref(alpha);
	g_object_unref(red);
	g_object_unref(blue);
	g_object_unref(two);
}

static uint32_t png_crc(const unsigned char *p, size_t n)
{
	return (uint32_t)crc32(0, p, (uInt)n);
}

static void bombs(void)
{
	VipsImage *small = solid(16, 16, 10, 20, 30);
	size_t len, i;
	unsigned char *p;

	/* PNG: IHDR claims 60000 x 60000, CRC made right */
	p = encode(small, ".png", &len);
	put_be32(p + 16, 60000);
	put_be32(p + 20, 60000);
	put_be32(p + 29, png_crc(p + 12, 17));
	put("bomb-60000.png", p, len, "resize: too many pixels: 60000x60000");
	g_free(p);

	/* JPEG: SOF claims 65000 x 65000 */
	p = encode(small, ".jpg", &len);
	for (i = 2; i + 9 < len && !(p[i] == 0xff && p[i + 1] == 0xc0); i++)
		;
	p[i + 5] = p[i + 7] = 65000 >> 8;
	p[i + 6] = p[i + 8] = 65000 & 0xff;
	put("bomb-65000.jpg", p, len, "resize: too many pixels: 65000x65000");
	g_free(p);

	/* GIF: the first frame's descriptor claims 65535 x 65535 */
	p = encode(small, ".gif", &len);
	for (i = 13; i + 9 < len && p[i] != 0x2c; i++)
		;
	p[i + 5] = p[i + 6] = p[i + 7] = p[i + 8] = 0xff;
	put("bomb-65535.gif", p, len, "resize: too many pixels: 65535x65535");
	g_free(p);

	/* PNG with 64 MiB of zeros deflated into a zTXt chunk: the picture is fine */
	{
		size_t n = (size_t)64 << 20, plen;
		unsigned char *png = encode(small, ".png", &plen);
		unsigned char *zero = calloc(1, n);
		uLongf zlen = compressBound(n);
		unsigned char *out = g_malloc(plen + 12 + 6 + zlen);
		unsigned char *c = out + 33;

		if (!zero)
			die("calloc");
		memcpy(out, png, 33);
		memcpy(c + 4, "zTXtbomb\0\0", 10);
		if (compress2(c + 14, &zlen, zero, n, 9) != Z_OK)
			die("compress");
		put_be32(c, (uint32_t)(6 + zlen));
		put_be32(c + 14 + zlen, png_crc(c + 4, 10 + zlen));
		memcpy(c + 18 + zlen, png + 33, plen - 33);
		put("ztxt-bomb.png", out, plen + 18 + zlen, "ok");
		free(zero);
		g_free(out);
		g_free(png);
	}
	g_object_unref(small);
}

static void not_photos(VipsImage *pic)
{
	static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" "
	                          "height=\"64\"><image href=\"file:///etc/passwd\"/></svg>";
	static const char pdf[] = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n"
	                          "<< /Root 1 0 R >>\n%%EOF\n";
	static const char text[] = "this is a text file with a photo's name\n";

	put("empty.jpg", "", 0, "resize: empty file");
	put("text.jpg", text, sizeof(text) - 1, "resize: not an image");
	put("image.svg.jpg", svg, sizeof(svg) - 1,
	    "resize: loader blocked: svgload_buffer (untrusted)");
	put("document.pdf.jpg", pdf, sizeof(pdf) - 1,
	    "resize: loader blocked: pdfload_buffer (untrusted)");
	save(pic, "picture.jp2", ".jp2", "resize: loader blocked: jp2kload_buffer (untrusted)");
	save(pic, "picture.jxl", ".jxl", "resize: loader blocked: jxlload_buffer (untrusted)");
	save(pic, "picture.bmp", ".bmp", "resize: loader blocked: magickload_buffer (untrusted)");
}

int main(int argc, char **argv)
{
	char path[4096];
	VipsImage *pic;

	if (argc != 2) {
		fprintf(stderr, "usage: make_hostile DIR\n");
		return 2;
	}
	if (VIPS_INIT(argv[0]))
		die("init");
	dir = argv[1];
	snprintf(path, sizeof(path), "%s/manifest.csv", dir);
	manifest = fopen(path, "w");
	if (!manifest)
		die(path);
	fprintf(manifest, "file,expect\n");

	pic = picture();
	orientations(pic);
	truncated(pic);
	formats(pic);
	bombs();
	not_photos(pic);
	g_object_unref(pic);

	if (fclose(manifest))
		die("manifest");
	vips_shutdown();
	return 0;
}
