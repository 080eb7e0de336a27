/* resize.c - turn photo bytes into the model's float CHW tensor with libvips, or into one
 * specific reason why not. The only file in the pipeline that talks to libvips. */
#include "resize.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>
#include <vips/vector.h> /* not included by vips.h in 8.14 */

#include "log.h"

#if VIPS_MAJOR_VERSION < 8 || (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION < 13)
#error "resize.c needs libvips >= 8.13 (vips_block_untrusted_set)"
#endif

#define STAGE        "resize"
#define OUT_SIDE_MAX 8192

/* What one decode attempt ended with. Only DEC_VIPS needs libvips' error text. */
enum dec_status {
	DEC_OK = 0,
	DEC_PIXELS,    /* header claims more than max_pixels */
	DEC_TRUNCATED, /* the bytes stop before the end of the image */
	DEC_VIPS,      /* libvips failed; the reason is in its error buffer */
};

struct decode {
	VipsImage *rgb; /* W x H, 3 bands, uchar, in memory; caller unrefs */
	int src_w, src_h;
};

static int resize_ready;

/* libvips 8.14 keeps one error buffer for the whole process, not one per thread, so the text
 * left by a failure may sit next to text from another thread's item. Decodes share this lock;
 * after a failure the item is decoded once more holding it exclusively, with the buffer
 * cleared first, so that the reason read back belongs to that item alone.
 * LIMIT: every libvips failure costs a second decode, and other decodes wait while it runs. */
static pthread_rwlock_t vips_err_lock;

static const double imagenet_mean[3] = {0.485, 0.456, 0.406};
static const double imagenet_std[3] = {0.229, 0.224, 0.225};

/* libvips reports per-image trouble ("read gave 2 warnings") through GLib warnings. They are
 * the item's business, reported through its reason, so they go to the vips debug category
 * instead of stderr. */
static void vips_log_handler(const char *domain, GLogLevelFlags level, const char *msg, void *user)
{
	log_debug(LOGC_VIPS, STAGE, msg, "domain=%s", domain ? domain : "");
}

int resize_init(const char *argv0, int concurrency, struct err *err)
{
	pthread_rwlockattr_t attr;

	if (resize_ready)
		return 0;
	if (VIPS_INIT(argv0 ? argv0 : "pipeline"))
		return err_set(err, ERR_FATAL, "libvips init failed: %s", vips_error_buffer());

	/* SVG, PDF, ImageMagick and friends can fetch files or URLs named inside the image;
	 * resize_buffer() also refuses them itself, before they see a byte. */
	vips_block_untrusted_set(TRUE);

	/* libvips 8.14.1 loses loader errors when one decode runs on several threads: a JPEG
	 * cut at 90% or a PNG with broken zlib data then "succeeds" with made-up pixels, in
	 * some runs and not others. One thread per decode reports them every time; the
	 * pipeline gets its parallelism by decoding several photos at once instead. */
	if (concurrency > 1)
		log_warn(STAGE,
		         "libvips may lose decode errors with more than one thread per image",
		         "concurrency=%d", concurrency);
	vips_concurrency_set(concurrency > 1 ? concurrency : 1);

	/* No run-time vector code (liborc): one benchmark run in about twenty crashed with a read
	 * fault inside liborc during a resize, and switching it off measured no difference
	 * (decode + resize of sample and 4000x3000 JPEGs to 224 and 512, within run-to-run
	 * noise), as JPEG decoding dominates. */
	vips_vector_set_enabled(FALSE);

	/* Every photo is new, so the operation cache only costs memory. Worse, buffer loads are
	 * keyed by the buffer's address, which malloc reuses for the next photo. */
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);

	g_log_set_handler("VIPS",
	                  G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO |
	                      G_LOG_LEVEL_DEBUG,
	                  vips_log_handler, NULL);

	/* Writers (the re-decode after a failure) must not starve behind a steady stream of
	 * readers. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&vips_err_lock, &attr);
	pthread_rwlockattr_destroy(&attr);

	resize_ready = 1;
	log_debug(LOGC_VIPS, STAGE, "libvips ready", "version=%s concurrency=%d",
	          vips_version_string(), vips_concurrency_get());
	return 0;
}

void resize_shutdown(void)
{
	if (!resize_ready)
		return;
	vips_shutdown();
	pthread_rwlock_destroy(&vips_err_lock);
	resize_ready = 0;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Skip entropy-coded data that starts at I: return the index of the 0xFF that opens the next
 * real marker, or LEN. Inside the data 0xFF is only ever followed by 0x00 (a stuffed byte) or
 * by a restart marker. */
static size_t jpeg_skip_scan(const unsigned char *p, size_t len, size_t i)
{
	while (i < len) {
		const unsigned char *ff = memchr(p + i, 0xff, len - i);
		unsigned char next;

		if (!ff)
			return len;
		i = (size_t)(ff - p);
		if (i + 1 >= len)
			return len;
		next = p[i + 1];
		if (next == 0x00 || (next >= 0xd0 && next <= 0xd7)) {
			i += 2;
			continue;
		}
		return i;
	}
	return len;
}

/* LIMIT: progressive scans are not counted; each costs a pass over the coefficients, and
 * libjpeg's refusal of repeated scans is what bounds them.
 * Walk the marker segments; the first EOI ends the image and anything after it (camera
 * junk, a second picture in MPO files) is ignored. Only a well-formed walk that runs out of
 * bytes counts as truncated: a reserved marker or a length that makes no sense means
 * corrupt data, which is libjpeg's to report. */
static int jpeg_truncated(const unsigned char *p, size_t len)
{
	size_t i = 2;

	while (i < len) {
		unsigned char m;
		size_t seg;

		if (p[i] != 0xff) {
			/* Stray bytes between segments: libjpeg skips them with a warning. */
			i++;
			continue;
		}
		while (i < len && p[i] == 0xff)
			i++;
		if (i >= len)
			return 1;
		m = p[i++];
		if (m == 0xd9)
			return 0;
		if (m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd8))
			continue;
		if (m < 0xc0)
			return 0;
		if (len - i < 2)
			return 1;
		seg = (size_t)p[i] << 8 | p[i + 1];
		if (seg < 2)
			return 0;
		if (len - i < seg)
			return 1;
		i += seg;
		if (m == 0xda)
			i = jpeg_skip_scan(p, len, i);
	}
	return 1;
}

/* Walk the chunks up to IEND. libpng stops once it has the pixels and never looks for IEND,
 * so a file cut right before it would otherwise pass. */
static int png_truncated(const unsigned char *p, size_t len)
{
	size_t i = 8;

	while (len - i >= 8) {
		uint32_t n = be32(p + i);

		if (n > 0x7fffffffu)
			return 0;
		if (len - i - 8 < (size_t)n + 4)
			return 1;
		if (!memcmp(p + i + 4, "IEND", 4))
			return 0;
		i += 12 + (size_t)n;
	}
	return 1;
}

/* The RIFF header gives the file size. */
static int webp_truncated(const unsigned char *p, size_t len)
{
	uint32_t riff =
	    (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;

	return (uint64_t)riff + 8 > len;
}

struct tiff {
	const unsigned char *p;
	size_t len;
	int le; /* "II": little-endian */
};

static uint32_t tiff_u16(const struct tiff *t, uint64_t at)
{
	const unsigned char *q = t->p + at;

	return t->le ? (uint32_t)q[0] | (uint32_t)q[1] << 8 : (uint32_t)q[0] << 8 | q[1];
}

static uint32_t tiff_u32(const struct tiff *t, uint64_t at)
{
	const unsigned char *q = t->p + at;

	return t->le ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
	                   (uint32_t)q[3] << 24
	             : be32(q);
}

static uint64_t tiff_type_size(uint32_t type)
{
	static const unsigned char size[] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4};

	return type < sizeof(size) ? size[type] : 1;
}

/* Value I of the SHORT or LONG entry at E, whose data is known to lie inside the file. */
static uint64_t tiff_value(const struct tiff *t, uint64_t e, uint32_t i)
{
	uint32_t type = tiff_u16(t, e + 2);
	uint64_t size = tiff_type_size(type) * tiff_u32(t, e + 4);
	uint64_t at = size > 4 ? tiff_u32(t, e + 8) : e + 8;

	return type == 3 ? tiff_u16(t, at + 2 * (uint64_t)i) : tiff_u32(t, at + 4 * (uint64_t)i);
}

/* The first directory, the values it points at and the strips or tiles of the first page
 * must all lie inside the file. Only the first page is decoded, so only it is checked.
 * LIMIT: BigTIFF is not walked. */
static int tiff_truncated(const unsigned char *p, size_t len)
{
	struct tiff t = {p, len, p[0] == 'I'};
	uint64_t ifd = tiff_u32(&t, 4), offs = 0, counts = 0, e;
	uint32_t n, i;

	if (ifd + 2 > len)
		return 1;
	n = tiff_u16(&t, ifd);
	if (ifd + 2 + 12 * (uint64_t)n + 4 > len)
		return 1;
	for (i = 0, e = ifd + 2; i < n; i++, e += 12) {
		uint32_t tag = tiff_u16(&t, e), type = tiff_u16(&t, e + 2);
		uint64_t size = tiff_type_size(type) * tiff_u32(&t, e + 4);

		if (size > 4 && tiff_u32(&t, e + 8) + size > len)
			return 1;
		if ((type == 3 || type == 4) && (tag == 273 || tag == 324))
			offs = e;
		if ((type == 3 || type == 4) && (tag == 279 || tag == 325))
			counts = e;
	}
	if (!offs || !counts || tiff_u32(&t, offs + 4) != tiff_u32(&t, counts + 4))
		return 0;
	for (i = 0; i < tiff_u32(&t, offs + 4); i++)
		if (tiff_value(&t, offs, i) + tiff_value(&t, counts, i) > len)
			return 1;
	return 0;
}

/* True when BUF is certainly cut short. libvips' fail_on is not enough on its own: a PNG
 * cut right before IEND decodes without a word, and with more than one thread per decode a
 * JPEG cut at 90% or before EOI sometimes "succeeds" with a grey tail. So the containers we
 * can walk cheaply are checked here, and libvips' verdict is used for the rest.
 * LIMIT: GIF and HEIF truncation is only what their decoders report. */
static int container_truncated(const void *buf, size_t len)
{
	static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	const unsigned char *p = buf;

	if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return jpeg_truncated(p, len);
	if (len >= 8 && !memcmp(p, png_sig, 8))
		return png_truncated(p, len);
	if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return webp_truncated(p, len);
	if (len >= 8 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4)))
		return tiff_truncated(p, len);
	return 0;
}

/* True for an RGB source whose embedded profile is something other than sRGB (Display P3
 * from phones, Adobe RGB from cameras): thumbnail leaves those pixels in that space. An sRGB
 * profile names itself in its description; skipping it saves a colour transform per photo. */
static int wants_icc_to_srgb(VipsImage *hdr)
{
	const void *data;
	size_t n;

	if (hdr->Type != VIPS_INTERPRETATION_sRGB && hdr->Type != VIPS_INTERPRETATION_RGB16)
		return 0;
	if (!vips_image_get_typeof(hdr, VIPS_META_ICC_NAME) ||
	    vips_image_get_blob(hdr, VIPS_META_ICC_NAME, &data, &n))
		return 0;
	return !memmem(data, n, "sRGB", 4) && !memmem(data, n, "\0s\0R\0G\0B", 8);
}

/* sRGB, alpha flattened onto white, 3 bands, 8 bits: what the tensor is made from. ICC says
 * whether to apply the embedded RGB profile. T holds the intermediates (owned by the
 * caller's context). */
static int to_rgb8(VipsImage *in, int icc, VipsImage **t, VipsImage **out)
{
	VipsImage *x = in;

	/* LIMIT: a profile lcms cannot use is ignored and the pixels are taken as sRGB. */
	if (icc && !vips_icc_transform(x, &t[5], "srgb", "embedded", TRUE, NULL))
		x = t[5];
	if (x->Type != VIPS_INTERPRETATION_sRGB) {
		if (vips_colourspace(x, &t[0], VIPS_INTERPRETATION_sRGB, NULL))
			return -1;
		x = t[0];
	}
	if (x->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_cast(x, &t[1], VIPS_FORMAT_UCHAR, NULL))
			return -1;
		x = t[1];
	}
	if (vips_image_hasalpha(x)) {
		VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
		int r = vips_flatten(x, &t[2], "background", white, "max_alpha", 255.0, NULL);

		vips_area_unref(VIPS_AREA(white));
		if (r)
			return -1;
		x = t[2];
		if (x->BandFmt != VIPS_FORMAT_UCHAR) {
			if (vips_cast(x, &t[3], VIPS_FORMAT_UCHAR, NULL))
				return -1;
			x = t[3];
		}
	}
	if (x->Bands > 3) {
		if (vips_extract_band(x, &t[4], 0, "n", 3, NULL))
			return -1;
		x = t[4];
	}
	if (x->Bands != 3) {
		vips_error(STAGE, "%d bands after conversion to sRGB", x->Bands);
		return -1;
	}
	*out = x;
	return 0;
}

/* The largest JPEG DCT scale (1/1, 1/2, 1/4, 1/8) that still gives at least TW x TH. */
static int jpeg_shrink_for(int w, int h, int tw, int th)
{
	int s;

	for (s = 8; s > 1; s /= 2)
		if ((w + s - 1) / s >= tw && (h + s - 1) / s >= th)
			break;
	return s;
}

/* A JPEG resized to exactly the output size, EXIF-rotated. libjpeg decodes at the smallest
 * DCT scale that keeps at least the output size, as Pillow's draft() does; vips_thumbnail
 * leaves a factor of two more pixels for its final resize (1000x750 rather than 500x375 for
 * a 4000x3000 photo going to 224), which measured ~1.3x the CPU per photo. The resize runs
 * before the rotation, on the side lengths the rotation will swap, so that only the small
 * picture is rotated. HDR is the header-only image of BUF; T[0..1] hold intermediates. */
static int jpeg_shrunk(const struct resize_opts *o, const void *buf, size_t len, VipsImage *hdr,
                       VipsImage **t, VipsImage **out)
{
	int swap = vips_image_get_orientation_swap(hdr);
	int tw = swap ? o->height : o->width, th = swap ? o->width : o->height;
	int shrink = jpeg_shrink_for(hdr->Xsize, hdr->Ysize, tw, th);

	if (vips_jpegload_buffer((void *)buf, len, &t[0], "shrink", shrink, "fail_on",
	                         VIPS_FAIL_ON_ERROR, "access", VIPS_ACCESS_SEQUENTIAL, NULL) ||
	    vips_resize(t[0], &t[1], (double)tw / t[0]->Xsize, "vscale", (double)th / t[0]->Ysize,
	                NULL))
		return -1;
	if (vips_image_get_orientation(hdr) <= 1) {
		g_object_ref(t[1]);
		*out = t[1];
		return 0;
	}
	/* turning reads its input out of order, which the sequential load refuses ("out of
	 * order read"): turn a copy of the small resized picture instead */
	if (!(t[2] = vips_image_copy_memory(t[1])))
		return -1;
	return vips_autorot(t[2], out, NULL);
}

/* CMYK photos (JPEG, TIFF) are shrunk, turned upright and converted here rather than by
 * vips_thumbnail(), whose CMYK import lands about 13 levels off on blues in libvips 8.14
 * (80,100,160 came back as 65,101,157; the plain ICC transform gives 78,100,158).
 * With an embedded profile the inks go through it. Without one they are read by the plain
 * formula R = (1 - C)(1 - K), as browsers, ImageMagick and Pillow do: those are the tools
 * that make such files, so this gives back the photo they started from, where libvips'
 * fallback press profile washes it out (14 levels on average on the shared sample). HDR is
 * the header; T holds the intermediates (caller's context). */
static int cmyk_thumbnail(const struct resize_opts *o, const void *buf, size_t len, VipsImage *hdr,
                          VipsImage **t, VipsImage **out)
{
	const unsigned char *p = buf;
	int swap = vips_image_get_orientation_swap(hdr);
	int tw = swap ? o->height : o->width, th = swap ? o->width : o->height;
	int icc = vips_image_get_typeof(hdr, VIPS_META_ICC_NAME) != 0;
	int shrink = 1;
	char opt[80];

	/* JPEG shrinks by 2, 4 or 8 while decoding: keep at least the output size. */
	if (len >= 2 && p[0] == 0xff && p[1] == 0xd8)
		while (shrink < 8 && hdr->Xsize / (2 * shrink) >= tw &&
		       hdr->Ysize / (2 * shrink) >= th)
			shrink *= 2;
	if (shrink > 1)
		snprintf(opt, sizeof(opt), "access=sequential,fail_on=error,shrink=%d", shrink);
	else
		snprintf(opt, sizeof(opt), "access=sequential,fail_on=error");
	t[0] = vips_image_new_from_buffer(buf, len, opt, NULL);
	if (!t[0])
		return -1;
	if (vips_extract_band(t[0], &t[1], 0, "n", 4, NULL) ||
	    vips_resize(t[1], &t[2], (double)tw / t[1]->Xsize, "vscale", (double)th / t[1]->Ysize,
	                NULL))
		return -1;
	/* as in jpeg_shrunk(): turning reads out of order, which the sequential load refuses
	 * (a 1200x900 CMYK photo under orientations 3-8 failed at 512 px): turn a copy of the
	 * small resized picture */
	if (vips_image_get_orientation(hdr) > 1) {
		if (!(t[11] = vips_image_copy_memory(t[2])) || vips_autorot(t[11], &t[3], NULL))
			return -1;
	} else if (vips_copy(t[2], &t[3], NULL)) {
		return -1;
	}
	if (icc) {
		if (vips_icc_transform(t[3], &t[4], "srgb", "embedded", TRUE, NULL))
			return -1;
	} else {
		/* (255 - C)(255 - K) / 255, rounded */
		if (vips_extract_band(t[3], &t[5], 0, "n", 3, NULL) ||
		    vips_extract_band(t[3], &t[6], 3, NULL) ||
		    vips_linear1(t[5], &t[7], -1.0, 255.0, NULL) ||
		    vips_linear1(t[6], &t[8], -1.0, 255.0, NULL) ||
		    vips_multiply(t[7], t[8], &t[9], NULL) ||
		    vips_linear1(t[9], &t[10], 1.0 / 255.0, 0.5, "uchar", TRUE, NULL) ||
		    vips_copy(t[10], &t[4], "interpretation", VIPS_INTERPRETATION_sRGB, NULL))
			return -1;
	}
	*out = t[4];
	return 0;
}

/* One attempt: header, bounds, container check, decode. Fills D on DEC_OK; sets D's source
 * size whenever the header could be read. */
static enum dec_status decode_once(const struct resize_opts *o, uint64_t max_pixels,
                                   const void *buf, size_t len, struct decode *d)
{
	VipsImage *ctx = vips_image_new();
	VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 20);
	const char *loader;
	int icc;
	VipsImage *conv, *rgb = NULL;
	enum dec_status st = DEC_VIPS;

	/* Header only: nothing is decoded yet, so a tiny file claiming 60000x60000 costs
	 * nothing. The first page is all we decode, so it is all we count. */
	t[0] = vips_image_new_from_buffer(buf, len, "", NULL);
	if (!t[0]) {
		st = container_truncated(buf, len) ? DEC_TRUNCATED : DEC_VIPS;
		goto out;
	}
	d->src_w = t[0]->Xsize;
	d->src_h = vips_image_get_page_height(t[0]);
	icc = wants_icc_to_srgb(t[0]);
	if ((uint64_t)d->src_w * (uint64_t)d->src_h > max_pixels) {
		st = DEC_PIXELS;
		goto out;
	}
	if (container_truncated(buf, len)) {
		st = DEC_TRUNCATED;
		goto out;
	}

	/* Shrink-on-load, EXIF auto-rotation and the first page only; libvips never writes
	 * through the buffer pointer, whatever its prototype says. fail_on=error refuses
	 * truncation and decoder errors but lets libjpeg's warnings through: "extraneous bytes
	 * before marker" is common in phone photos that look fine.
	 * LIMIT: corrupt JPEG entropy data passes as a partly grey picture.
	 * LIMIT: a progressive JPEG needs about 3-6 bytes per source pixel whatever the shrink
	 * (200 MB measured for 8000x6000), so max_pixels also bounds memory per decode. */
	loader = vips_foreign_find_load_buffer(buf, len);
	if (t[0]->Type == VIPS_INTERPRETATION_CMYK && t[0]->Bands >= 4) {
		if (cmyk_thumbnail(o, buf, len, t[0], t + 8, &t[1]))
			goto out;
		g_object_ref(t[1]);
	} else if (loader && !strcmp(loader, "VipsForeignLoadJpegBuffer")) {
		if (jpeg_shrunk(o, buf, len, t[0], t + 8, &t[1]))
			goto out;
	} else if (vips_thumbnail_buffer((void *)buf, len, &t[1], o->width, "height", o->height,
	                                 "size", VIPS_SIZE_FORCE, "option_string", "fail_on=error",
	                                 NULL)) {
		goto out;
	}
	if (to_rgb8(t[1], icc, t + 2, &conv))
		goto out;

	/* Nothing has been decoded until here: pixels are pulled through the pipeline now, and
	 * decode errors surface now. */
	rgb = vips_image_copy_memory(conv);
	if (!rgb)
		goto out;
	if (rgb->Xsize != o->width || rgb->Ysize != o->height || rgb->Bands != 3 ||
	    rgb->BandFmt != VIPS_FORMAT_UCHAR) {
		vips_error(STAGE, "unexpected output %dx%d, %d bands", rgb->Xsize, rgb->Ysize,
		           rgb->Bands);
		goto out;
	}
	d->rgb = rgb;
	rgb = NULL;
	st = DEC_OK;
out:
	if (rgb)
		g_object_unref(rgb);
	g_object_unref(ctx);
	return st;
}

/* Decoders that hit the end of the data word it in their own ways. */
static int text_says_truncated(const char *s)
{
	static const char *const words[] = {
	    "premature end of input",
	    "premature end of jpeg file",
	    "unexpected end",
	    "not enough data",
	    "truncated",
	    "end of file",
	    "read error on strip",
	    "read error on tile",
	    "read error at",
	};
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(s, words[i]))
			return 1;
	return 0;
}

/* The item's own libvips error text, made into a reason. Runs alone (see vips_err_lock). */
static enum dec_status decode_alone(const struct resize_opts *o, uint64_t max_pixels,
                                    const void *buf, size_t len, struct decode *d, struct err *err)
{
	enum dec_status st;
	char *text;
	size_t n;

	pthread_rwlock_wrlock(&vips_err_lock);
	vips_error_clear();
	st = decode_once(o, max_pixels, buf, len, d);
	text = vips_error_buffer_copy();
	pthread_rwlock_unlock(&vips_err_lock);

	if (st == DEC_VIPS) {
		n = strcspn(text, "\n");
		if (text_says_truncated(text))
			err_set(err, ERR_INPUT, "truncated");
		else if (n == 0)
			err_set(err, ERR_INPUT, "decode failed: unknown libvips error");
		else
			err_set(err, ERR_INPUT, "decode failed: %.*s", (int)n, text);
	}
	g_free(text);
	return st;
}

static int check_opts(const struct resize_opts *o, struct err *err)
{
	int c;

	if (o->width < 1 || o->height < 1 || o->width > OUT_SIDE_MAX || o->height > OUT_SIDE_MAX)
		return err_set(err, ERR_FATAL, "bad output size %dx%d (1..%d)", o->width, o->height,
		               OUT_SIDE_MAX);
	if (o->norm != RESIZE_NORM_SIMPLE && o->norm != RESIZE_NORM_IMAGENET &&
	    o->norm != RESIZE_NORM_CUSTOM)
		return err_set(err, ERR_FATAL, "unknown normalisation %d", (int)o->norm);
	if (o->norm == RESIZE_NORM_CUSTOM)
		for (c = 0; c < 3; c++)
			if (!isfinite(o->mean[c]) || !isfinite(o->std[c]) || !(o->std[c] > 0.0f))
				return err_set(err, ERR_FATAL,
				               "bad custom normalisation for channel %d: mean %g "
				               "std %g",
				               c, (double)o->mean[c], (double)o->std[c]);
	return 0;
}

/* One float per channel and byte value, each the correctly rounded result of the formula in
 * double, so that every mode gives exactly what its definition says. */
static void norm_table(const struct resize_opts *o, float lut[3][256])
{
	int c, v;

	for (c = 0; c < 3; c++)
		for (v = 0; v < 256; v++) {
			double x = v;

			switch (o->norm) {
			case RESIZE_NORM_IMAGENET:
				x = (x / 255.0 - imagenet_mean[c]) / imagenet_std[c];
				break;
			case RESIZE_NORM_CUSTOM:
				x = (x - (double)o->mean[c]) / (double)o->std[c];
				break;
			default:
				x = x / 255.0;
				break;
			}
			lut[c][v] = (float)x;
		}
}

static void to_chw(const struct resize_opts *o, VipsImage *rgb, float *out)
{
	const unsigned char *px = (const unsigned char *)VIPS_IMAGE_ADDR(rgb, 0, 0);
	size_t plane = (size_t)o->width * (size_t)o->height;
	float lut[3][256];
	size_t i;

	norm_table(o, lut);
	for (i = 0; i < plane; i++) {
		out[i] = lut[0][px[3 * i]];
		out[plane + i] = lut[1][px[3 * i + 1]];
		out[2 * plane + i] = lut[2][px[3 * i + 2]];
	}
}

/* Refuse loaders that may read other files or the network before they parse anything:
 * libvips 8.14 still runs a blocked loader's header code (poppler parses a PDF) before it
 * says "operation is blocked". */
static int loader_check(const void *buf, size_t len, const char **nick, struct err *err)
{
	const char *name = vips_foreign_find_load_buffer(buf, len);
	const VipsObjectClass *oc;
	VipsOperationFlags flags;

	if (!name)
		return err_set(err, ERR_INPUT, "not an image");
	oc = vips_class_find("VipsForeignLoad", name);
	if (!oc)
		return err_set(err, ERR_INPUT, "not an image");
	*nick = oc->nickname;
	flags = VIPS_OPERATION_CLASS(oc)->flags;

	/* A cut TIFF fails tiffload's sniffing and falls through to the catch-all ImageMagick
	 * loader; "truncated" is the useful reason there. */
	if ((flags & (VIPS_OPERATION_UNTRUSTED | VIPS_OPERATION_BLOCKED)) &&
	    container_truncated(buf, len))
		return err_set(err, ERR_INPUT, "truncated");
	if (flags & VIPS_OPERATION_UNTRUSTED)
		return err_set(err, ERR_INPUT, "loader blocked: %s (untrusted)", oc->nickname);
	if (flags & VIPS_OPERATION_BLOCKED)
		return err_set(err, ERR_INPUT, "loader blocked: %s", oc->nickname);
	return 0;
}

/* Check the loader and decode under the shared lock; decode again alone if libvips failed,
 * for the reason. Returns 0 with D->rgb set, or -1 with ERR set; D's source size and INFO's
 * loader are filled as far as they got. */
static int decode_item(const struct resize_opts *o, uint64_t max_pixels, const void *buf,
                       size_t len, struct decode *d, struct resize_info *info, struct err *err)
{
	const char *nick = "";
	enum dec_status st = DEC_VIPS;
	int blocked;

	/* Everything that may add to libvips' error buffer runs under the shared lock. */
	pthread_rwlock_rdlock(&vips_err_lock);
	blocked = loader_check(buf, len, &nick, err);
	if (!blocked)
		st = decode_once(o, max_pixels, buf, len, d);
	pthread_rwlock_unlock(&vips_err_lock);
	if (info)
		snprintf(info->loader, sizeof(info->loader), "%s", nick);
	if (blocked)
		return -1;

	if (st == DEC_VIPS) {
		log_debug(LOGC_VIPS, STAGE, "decode failed, again alone for its reason",
		          "loader=%s bytes=%zu", nick, len);
		st = decode_alone(o, max_pixels, buf, len, d, err);
	}
	switch (st) {
	case DEC_OK:
		return 0;
	case DEC_PIXELS:
		return err_set(err, ERR_INPUT, "too many pixels: %dx%d, limit %llu", d->src_w,
		               d->src_h, (unsigned long long)max_pixels);
	case DEC_TRUNCATED:
		return err_set(err, ERR_INPUT, "truncated");
	default:
		return -1; /* decode_alone() has set the reason */
	}
}

void resize_pixel_norm(const struct resize_opts *o, float mean[3], float std[3])
{
	int c;

	for (c = 0; c < 3; c++) {
		if (o->norm == RESIZE_NORM_CUSTOM) {
			mean[c] = o->mean[c];
			std[c] = o->std[c];
		} else if (o->norm == RESIZE_NORM_IMAGENET) {
			mean[c] = (float)imagenet_mean[c] * 255;
			std[c] = (float)imagenet_std[c] * 255;
		} else {
			mean[c] = 0;
			std[c] = 255;
		}
	}
}

int resize_buffer(const struct resize_opts *o, const void *buf, size_t len, float *out,
                  struct resize_info *info, struct err *err)
{
	struct decode d = {NULL, 0, 0};
	size_t max_bytes;
	int ret;

	if (info) {
		info->src_width = 0;
		info->src_height = 0;
		info->loader[0] = '\0';
	}
	if (!resize_ready)
		return err_set(err, ERR_FATAL, "resize_init() has not been called");
	if (!o || !out)
		return err_set(err, ERR_FATAL, "resize_buffer() needs options and an output");
	if (check_opts(o, err))
		return -1;
	max_bytes = o->max_bytes ? o->max_bytes : RESIZE_DEFAULT_MAX_BYTES;
	if (!buf || len == 0)
		return err_set(err, ERR_INPUT, "empty file");
	if (len > max_bytes)
		return err_set(err, ERR_INPUT, "too large: %zu bytes, limit %zu", len, max_bytes);

	ret = decode_item(o, o->max_pixels ? o->max_pixels : RESIZE_DEFAULT_MAX_PIXELS, buf, len,
	                  &d, info, err);
	if (info) {
		info->src_width = d.src_w;
		info->src_height = d.src_h;
	}
	if (ret == 0) {
		to_chw(o, d.rgb, out);
		g_object_unref(d.rgb);
	}
	return ret;
}

/* Read all of FD (SIZE bytes by fstat) into *BUF; *LEN may come out smaller if the file
 * shrank meanwhile. */
static int read_all(int fd, size_t size, unsigned char **buf, size_t *len, struct err *err)
{
	unsigned char *b = malloc(size);
	size_t got = 0;

	if (!b)
		return err_set(err, ERR_RETRY, "out of memory for %zu bytes", size);
	while (got < size) {
		ssize_t n = read(fd, b + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(b);
			return err_set(err, ERR_INPUT, "read failed: %s", strerror(errno));
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*buf = b;
	*len = got;
	return 0;
}

int resize_file(const struct resize_opts *o, const char *path, float *out, struct resize_info *info,
                struct err *err)
{
	size_t max_bytes;
	unsigned char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd = -1;
	int ret = -1;

	if (info) {
		info->src_width = 0;
		info->src_height = 0;
		info->loader[0] = '\0';
	}
	if (!o || !path)
		return err_set(err, ERR_FATAL, "resize_file() needs options and a path");
	max_bytes = o->max_bytes ? o->max_bytes : RESIZE_DEFAULT_MAX_BYTES;
	/* O_NONBLOCK: a FIFO would otherwise block the open until a writer came */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		/* Running out of descriptors or memory passes; a missing file does not. */
		enum err_kind kind =
		    errno == EMFILE || errno == ENFILE || errno == ENOMEM ? ERR_RETRY : ERR_INPUT;

		err_set(err, kind, "open failed: %s", strerror(errno));
		goto out;
	}
	if (fstat(fd, &st)) {
		err_set(err, ERR_INPUT, "stat failed: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, ERR_INPUT, "not a regular file");
		goto out;
	}
	if (st.st_size == 0) {
		err_set(err, ERR_INPUT, "empty file");
		goto out;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		err_set(err, ERR_INPUT, "too large: %lld bytes, limit %zu", (long long)st.st_size,
		        max_bytes);
		goto out;
	}
	if (read_all(fd, (size_t)st.st_size, &buf, &len, err))
		goto out;
	ret = resize_buffer(o, buf, len, out, info, err);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}
