/* resize_bench.c - photos per second through resize_file() on one thread: the sample ad
 * photos at 224 and 512, and a generated noisy 4000x3000 JPEG. A measurement, not a test.
 *   build/tools/resize_bench [SECONDS]   (SHARED as for the tests; default 3 s a row) */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "resize.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Decode PATHS round-robin for at least SECONDS (and at least one full pass) at SIDE x SIDE;
 * print one table row. */
static int bench_row(const char *what, char **paths, size_t n, int side, double seconds)
{
	struct resize_opts o = {.width = side, .height = side, .norm = RESIZE_NORM_IMAGENET};
	float *out = malloc(sizeof(float) * 3 * (size_t)side * (size_t)side);
	double t0, c0, wall, cpu;
	size_t done = 0, failed = 0, i;

	if (!out)
		return -1;
	for (i = 0; i < n && i < 8; i++) /* warm up caches and lazy libvips setup */
		resize_file(&o, paths[i], out, NULL, NULL);
	t0 = now_s();
	c0 = cpu_s();
	do {
		struct err err = {0};

		if (resize_file(&o, paths[done % n], out, NULL, &err))
			failed++;
		done++;
	} while (done < n || now_s() - t0 < seconds);
	wall = now_s() - t0;
	cpu = cpu_s() - c0;
	printf("%-34s %5d %7zu %8.1f %9.2f %9.2f %6zu\n", what, side, done, done / wall,
	       1000 * wall / done, 1000 * cpu / done, failed);
	free(out);
	return 0;
}

/* The base photo blown up to 4000x3000 with noise, so that it costs what a phone photo
 * costs to decode. Written into DIR; the path goes to PATH. */
static int make_big_jpeg(const char *dir, char *path, size_t cap, const char *base)
{
	VipsImage *in = vips_image_new_from_file(base, NULL);
	VipsImage *big = NULL, *noise = NULL, *sum = NULL, *u8 = NULL;
	int ret = -1;

	if (!in)
		return -1;
	snprintf(path, cap, "%s/big-4000x3000.jpg", dir);
	if (vips_resize(in, &big, 4000.0 / in->Xsize, "vscale", 3000.0 / in->Ysize, NULL) ||
	    vips_gaussnoise(&noise, 4000, 3000, "sigma", 12.0, "mean", 0.0, NULL) ||
	    vips_add(big, noise, &sum, NULL) || vips_cast(sum, &u8, VIPS_FORMAT_UCHAR, NULL) ||
	    vips_image_write_to_file(u8, path, "Q", 90, NULL))
		goto out;
	ret = 0;
out:
	if (u8)
		g_object_unref(u8);
	if (sum)
		g_object_unref(sum);
	if (noise)
		g_object_unref(noise);
	if (big)
		g_object_unref(big);
	g_object_unref(in);
	return ret;
}

int main(int argc, char **argv)
{
	const char *shared = getenv("SHARED") && *getenv("SHARED") ? getenv("SHARED") : "../shared";
	double seconds = argc > 1 ? strtod(argv[1], NULL) : 3.0;
	char dir[] = "/tmp/resize_bench.XXXXXX";
	char pattern[512], base[512], big[600] = "";
	char *big_paths[1] = {big};
	struct err err = {0};
	glob_t g;
	int ret = 1;

	if (resize_init(argv[0], 0, &err)) {
		fprintf(stderr, "resize_bench: %s\n", err.msg);
		return 1;
	}
	snprintf(pattern, sizeof(pattern), "%s/data/sop-ads/images/*/*.JPG", shared);
	snprintf(base, sizeof(base), "%s/data/sop-ads/images/bicycle_final/111085122871_0.JPG",
	         shared);
	if (glob(pattern, 0, NULL, &g) || g.gl_pathc == 0) {
		fprintf(stderr, "resize_bench: no photos match %s (set SHARED=...)\n", pattern);
		return 1;
	}
	if (!mkdtemp(dir) || make_big_jpeg(dir, big, sizeof(big), base)) {
		fprintf(stderr, "resize_bench: cannot make the 4000x3000 JPEG: %s\n",
		        vips_error_buffer());
		goto out;
	}

	printf("one thread, libvips concurrency %d, imagenet normalisation\n",
	       vips_concurrency_get());
	printf("%-34s %5s %7s %8s %9s %9s %6s\n", "input", "side", "photos", "photos/s", "ms/photo",
	       "cpu ms", "failed");
	bench_row("sop-ads photos (<=500 px)", g.gl_pathv, g.gl_pathc, 224, seconds);
	bench_row("sop-ads photos (<=500 px)", g.gl_pathv, g.gl_pathc, 512, seconds);
	bench_row("noisy 4000x3000 jpeg", big_paths, 1, 224, seconds);
	bench_row("noisy 4000x3000 jpeg", big_paths, 1, 512, seconds);
	ret = 0;
out:
	if (big[0])
		unlink(big);
	rmdir(dir);
	globfree(&g);
	resize_shutdown();
	return ret;
}
