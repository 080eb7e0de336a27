/* model_bench.c - photos per second of model_embed() for one backbone, size,
 * batch and layout: one warm-up batch, then the best of N timed batches.
 *   model_bench -b BACKBONE -w WEIGHTS [-s SIZE] [-n BATCH] [-t THREADS]
 *               [-c] (channels-last) [-k] (keep BatchNorm unfolded) [-i ITERS] */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "model.h"

static int parse_int(const char *s, int lo, int hi, int *v)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(s, &end, 10);
	if (errno || end == s || *end || x < lo || x > hi)
		return -1;
	*v = (int)x;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(void)
{
	fprintf(stderr, "usage: model_bench -b BACKBONE -w WEIGHTS [-s SIZE] [-n BATCH] "
	                "[-t THREADS] [-c] [-k] [-i ITERS]\n");
}

int main(int argc, char **argv)
{
	struct model_opts o = {0};
	struct model *m = NULL;
	struct err err = {0};
	float *in = NULL, *out = NULL;
	int size = 224, batch = 8, iters = 5;
	double best = 1e30;
	uint32_t seed = 1;
	size_t i, npix;
	int c, ret = 1;

	o.device = "cpu";
	o.threads = 2;
	while ((c = getopt(argc, argv, "b:w:s:n:t:cki:")) != -1) {
		int bad = 0;

		switch (c) {
		case 'b':
			o.backbone = optarg;
			break;
		case 'w':
			o.weights = optarg;
			break;
		case 's':
			bad = parse_int(optarg, 32, 2048, &size);
			break;
		case 'n':
			bad = parse_int(optarg, 1, 256, &batch);
			break;
		case 't':
			bad = parse_int(optarg, 0, 256, &o.threads);
			break;
		case 'c':
			o.channels_last = 1;
			break;
		case 'k':
			o.keep_bn = 1;
			break;
		case 'i':
			bad = parse_int(optarg, 1, 1000, &iters);
			break;
		default:
			bad = 1;
		}
		if (bad) {
			usage();
			return 2;
		}
	}
	if (!o.backbone || !o.weights) {
		usage();
		return 2;
	}

	npix = (size_t)batch * 3 * (size_t)size * (size_t)size;
	in = malloc(npix * sizeof(float));
	out = malloc((size_t)batch * 1280 * sizeof(float));
	if (!in || !out)
		goto out;
	for (i = 0; i < npix; i++) {
		seed = seed * 1664525u + 1013904223u;
		in[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
	}
	m = model_open(&o, &err);
	if (!m) {
		fprintf(stderr, "model_bench: %s\n", err.msg);
		goto out;
	}
	for (c = 0; c <= iters; c++) {
		double t0 = now_s(), dt;

		if (model_embed(m, in, batch, size, size, out, &err) < 0) {
			fprintf(stderr, "model_bench: %s\n", err.msg);
			goto out;
		}
		dt = now_s() - t0;
		if (c > 0 && dt < best)
			best = dt;
	}
	printf("backbone=%s size=%d batch=%d threads=%d channels_last=%d fold_bn=%d "
	       "best_ms=%.1f photos_per_s=%.2f\n",
	       o.backbone, size, batch, o.threads, o.channels_last, !o.keep_bn, best * 1e3,
	       batch / best);
	ret = 0;
out:
	model_close(m);
	free(in);
	free(out);
	return ret;
}
