/* resize_bench.c - photos per second through resize_file(), as `make bench` measures it:
 * the given photos decoded, EXIF-rotated and resized to SIDE x SIDE float CHW (ImageNet
 * normalisation) by THREADS threads, ROUNDS times over the whole list. A measurement, not a
 * test. Also makes the large JPEGs the benchmark uses.
 *
 *   resize_bench [-s SIDE] [-t THREADS] [-r ROUNDS] FILE...
 *       one line per round: photos=N failed=N wall_s=X photos_per_s=X cpu_ms_per_photo=X
 *   resize_bench -g DIR -k COUNT BASE...
 *       write COUNT noisy 4000x3000 JPEGs (Q 90) made from the BASE photos into DIR; every
 *       second one carries EXIF orientation 6 (rotate 90 on display), as phones write */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "proc.h"
#include "resize.h"
#include "tool_args.h"

struct job {
	struct resize_opts o;
	char **paths;
	size_t n;
	size_t next; /* guarded by lock */
	size_t failed;
	pthread_mutex_t lock;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	float *out = malloc(sizeof(float) * 3 * (size_t)j->o.width * (size_t)j->o.height);

	for (;;) {
		struct err err = {0};
		size_t i;
		int bad;

		pthread_mutex_lock(&j->lock);
		i = j->next++;
		pthread_mutex_unlock(&j->lock);
		if (i >= j->n || !out)
			break;
		bad = resize_file(&j->o, j->paths[i], out, NULL, &err) != 0;
		if (bad) {
			pthread_mutex_lock(&j->lock);
			j->failed++;
			pthread_mutex_unlock(&j->lock);
		}
	}
	free(out);
	return NULL;
}

/* One pass over every photo with THREADS threads; SHOW prints its line. */
static int run_round(struct job *j, int threads, int show)
{
	pthread_t tid[64];
	double t0 = proc_now_s(), c0 = proc_cpu_s(), wall, cpu;
	int i;

	j->next = 0;
	j->failed = 0;
	for (i = 0; i < threads; i++)
		if (pthread_create(&tid[i], NULL, worker, j))
			return -1;
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	wall = proc_now_s() - t0;
	cpu = proc_cpu_s() - c0;
	if (show)
		printf(
		    "photos=%zu failed=%zu wall_s=%.3f photos_per_s=%.2f cpu_ms_per_photo=%.3f\n",
		    j->n, j->failed, wall, (double)j->n / wall, 1000 * cpu / (double)j->n);
	fflush(stdout);
	/* a rate that includes failed photos measures the wrong thing */
	if (j->failed) {
		fprintf(stderr, "resize_bench: %zu of %zu photos failed\n", j->failed, j->n);
		return -1;
	}
	return 0;
}

/* BASE blown up to 4000x3000 with noise, so that it costs what a phone photo costs to
 * decode, saved as PATH. */
static int make_big_jpeg(const char *base, const char *path, int rotated)
{
	VipsImage *in = vips_image_new_from_file(base, NULL);
	VipsImage *big = NULL, *noise = NULL, *sum = NULL, *u8 = NULL;
	int ret = -1;

	if (!in)
		return -1;
	if (vips_resize(in, &big, 4000.0 / in->Xsize, "vscale", 3000.0 / in->Ysize, NULL) ||
	    vips_gaussnoise(&noise, 4000, 3000, "sigma", 8.0, "mean", 0.0, NULL) ||
	    vips_add(big, noise, &sum, NULL) || vips_cast(sum, &u8, VIPS_FORMAT_UCHAR, NULL))
		goto out;
	vips_image_remove(u8, "exif-data");
	vips_image_set_int(u8, VIPS_META_ORIENTATION, rotated ? 6 : 1);
	if (vips_image_write_to_file(u8, path, "Q", 90, NULL))
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

static int make_big(const char *dir, int count, char **bases, int nbases)
{
	char path[1024];
	int i;

	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/big-%02d.jpg", dir, i);
		if (make_big_jpeg(bases[i % nbases], path, i % 2)) {
			fprintf(stderr, "resize_bench: cannot make %s: %s\n", path,
			        vips_error_buffer());
			return -1;
		}
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: resize_bench [-s SIDE] [-t THREADS] [-r ROUNDS] FILE...\n"
	                "       resize_bench -g DIR -k COUNT BASE...\n");
}

int main(int argc, char **argv)
{
	struct job j = {.o = {.width = 224, .height = 224, .norm = RESIZE_NORM_IMAGENET}};
	const char *gen_dir = NULL;
	int threads = 1, rounds = 3, count = 8, side = 224, c, r, ret = 1;
	struct err err = {0};

	while ((c = getopt(argc, argv, "s:t:r:g:k:")) != -1) {
		int bad = 0;

		switch (c) {
		case 's':
			bad = tool_parse_int(optarg, 16, 4096, &side);
			break;
		case 't':
			bad = tool_parse_int(optarg, 1, 64, &threads);
			break;
		case 'r':
			bad = tool_parse_int(optarg, 1, 1000, &rounds);
			break;
		case 'g':
			gen_dir = optarg;
			break;
		case 'k':
			bad = tool_parse_int(optarg, 1, 1000, &count);
			break;
		default:
			bad = 1;
		}
		if (bad) {
			usage();
			return 2;
		}
	}
	if (optind >= argc) {
		usage();
		return 2;
	}
	if (resize_init(argv[0], 0, &err)) {
		fprintf(stderr, "resize_bench: %s\n", err.msg);
		return 1;
	}
	if (gen_dir) {
		ret = make_big(gen_dir, count, argv + optind, argc - optind) ? 1 : 0;
		goto out;
	}
	j.o.width = j.o.height = side;
	j.paths = argv + optind;
	j.n = (size_t)(argc - optind);
	pthread_mutex_init(&j.lock, NULL);

	/* warm-up: page cache and libvips' lazy setup */
	if (run_round(&j, threads, 0) == 0)
		ret = 0;
	for (r = 0; r < rounds && ret == 0; r++)
		if (run_round(&j, threads, 1))
			ret = 1;
	pthread_mutex_destroy(&j.lock);
out:
	resize_shutdown();
	return ret;
}
