/* model_bench.c - photos per second of the embed step for one backbone, size, batch and
 * layout, as the pipeline runs it: BATCH photos, each in its own buffer as the resize
 * threads leave them, copied into the batch, embedded with model_embed() and the rows
 * copied out. One warm-up batch, then ITERS timed batches, one line each; overhead_pct is
 * the share of the step spent outside the network itself (model_stats' forward_s).
 *   model_bench -b BACKBONE -w WEIGHTS [-s SIZE] [-n BATCH] [-t THREADS]
 *               [-c] (channels-last) [-k] (keep BatchNorm unfolded) [-i ITERS]
 *               [-f MAX_FORWARD] (images per forward pass; default: the whole batch, -f 0:
 *               the model's own choice)
 * cpu_ms_per_photo counts every thread of the process. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "proc.h"
#include "tool_args.h"

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
	float *in = NULL, *out = NULL, *photos = NULL, *rows = NULL;
	int size = 224, batch = 8, iters = 5;
	struct model_stats before, after;
	uint32_t seed = 1;
	size_t i, npix;
	int c, ret = 1;

	o.device = "cpu";
	o.threads = 2;
	o.max_forward = -1;
	while ((c = getopt(argc, argv, "b:w:s:n:t:cki:f:")) != -1) {
		int bad = 0;

		switch (c) {
		case 'b':
			o.backbone = optarg;
			break;
		case 'w':
			o.weights = optarg;
			break;
		case 's':
			bad = tool_parse_int(optarg, 32, 2048, &size);
			break;
		case 'n':
			bad = tool_parse_int(optarg, 1, 256, &batch);
			break;
		case 't':
			bad = tool_parse_int(optarg, 0, 256, &o.threads);
			break;
		case 'c':
			o.channels_last = 1;
			break;
		case 'k':
			o.keep_bn = 1;
			break;
		case 'i':
			bad = tool_parse_int(optarg, 1, 1000, &iters);
			break;
		case 'f':
			bad = tool_parse_int(optarg, 0, 256, &o.max_forward);
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
	photos = malloc(npix * sizeof(float));
	out = malloc((size_t)batch * 1280 * sizeof(float));
	rows = malloc((size_t)batch * 1280 * sizeof(float));
	if (!in || !out || !photos || !rows)
		goto out;
	for (i = 0; i < npix; i++) {
		seed = seed * 1664525u + 1013904223u;
		photos[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
	}
	if (o.max_forward < 0)
		o.max_forward = batch;
	m = model_open(&o, &err);
	if (!m) {
		fprintf(stderr, "model_bench: %s\n", err.msg);
		goto out;
	}
	for (c = 0; c <= iters; c++) {
		size_t per = npix / (size_t)batch, dim = (size_t)model_dim(m);
		double t0 = proc_now_s(), c0 = proc_cpu_s(), dt;
		int k;

		model_stats_get(m, &before);
		for (k = 0; k < batch; k++)
			memcpy(in + (size_t)k * per, photos + (size_t)k * per, per * sizeof(float));
		if (model_embed(m, in, batch, size, size, out, &err) < 0) {
			fprintf(stderr, "model_bench: %s\n", err.msg);
			goto out;
		}
		for (k = 0; k < batch; k++)
			memcpy(rows + (size_t)k * dim, out + (size_t)k * dim, dim * sizeof(float));
		dt = proc_now_s() - t0;
		model_stats_get(m, &after);
		if (c == 0)
			continue;
		printf("backbone=%s size=%d batch=%d threads=%d channels_last=%d fold_bn=%d "
		       "max_forward=%d ms=%.1f photos_per_s=%.2f overhead_pct=%.2f "
		       "cpu_ms_per_photo=%.2f\n",
		       o.backbone, size, batch, o.threads, o.channels_last, !o.keep_bn,
		       o.max_forward, dt * 1e3, batch / dt,
		       100 * (1 - (after.forward_s - before.forward_s) / dt),
		       1e3 * (proc_cpu_s() - c0) / batch);
		fflush(stdout);
	}
	ret = 0;
out:
	model_close(m);
	free(in);
	free(out);
	free(photos);
	free(rows);
	return ret;
}
