/* train_bench.c - training images per second of train_batch() (forward,
 * ArcFace loss, backward, AdamW step) for one backbone, size and batch, on
 * random inputs: one warm-up step, then the mean of N timed steps.
 *   train_bench -b BACKBONE [-w WEIGHTS] [-s SIZE] [-n BATCH] [-t THREADS]
 *               [-i ITERS] [-k CLASSES] [-c] (channels-last) */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "rng.h"
#include "tool_args.h"
#include "train.h"

static void usage(void)
{
	fprintf(stderr, "usage: train_bench -b BACKBONE [-w WEIGHTS] [-s SIZE] [-n BATCH] "
	                "[-t THREADS] [-i ITERS] [-k CLASSES] [-c]\n");
}

int main(int argc, char **argv)
{
	struct train_opts o = {0};
	struct trainer *t = NULL;
	struct err err = {0};
	struct rng r;
	float *in = NULL;
	int *labels = NULL;
	int size = 224, batch = 16, iters = 5, classes = 100;
	double t0, loss = 0;
	size_t i, npix;
	int c, k, ret = 1;

	o.device = "cpu";
	o.threads = 2;
	o.embedding_size = 512;
	o.arcface_margin = 0.1;
	o.arcface_scale = 45;
	o.lr_backbone = o.lr_head = 1e-4;
	o.grad_accumulation = 1;
	o.schedule = SCHEDULE_CONSTANT;
	o.total_steps = 1000;
	o.seed = 1;
	while ((c = getopt(argc, argv, "b:w:s:n:t:i:k:c")) != -1) {
		int bad = 0;

		switch (c) {
		case 'b':
			o.backbone = optarg;
			break;
		case 'w':
			o.init_weights = optarg;
			break;
		case 's':
			bad = tool_parse_int(optarg, 16, 2048, &size);
			break;
		case 'n':
			bad = tool_parse_int(optarg, 1, 512, &batch);
			break;
		case 't':
			bad = tool_parse_int(optarg, 1, 256, &o.threads);
			break;
		case 'i':
			bad = tool_parse_int(optarg, 1, 10000, &iters);
			break;
		case 'k':
			bad = tool_parse_int(optarg, 2, 1000000, &classes);
			break;
		case 'c':
			o.channels_last = 1;
			break;
		default:
			bad = 1;
		}
		if (bad) {
			usage();
			return 2;
		}
	}
	if (!o.backbone) {
		usage();
		return 2;
	}
	o.classes = classes;
	npix = (size_t)batch * 3 * (size_t)size * (size_t)size;
	in = malloc(npix * sizeof(float));
	labels = malloc((size_t)batch * sizeof(int));
	if (!in || !labels)
		goto out;
	rng_seed(&r, 7);
	for (i = 0; i < npix; i++)
		in[i] = (float)rng_range(&r, -1, 1);
	for (k = 0; k < batch; k++)
		labels[k] = (int)rng_below(&r, (uint64_t)classes);
	t = train_open(&o, &err);
	if (!t || train_batch(t, in, labels, batch, size, size, &loss, &err))
		goto out;
	t0 = proc_now_s();
	for (k = 0; k < iters; k++)
		if (train_batch(t, in, labels, batch, size, size, &loss, &err))
			goto out;
	printf("backbone=%s size=%d batch=%d threads=%d channels_last=%d img_per_s=%.1f "
	       "step_s=%.3f loss=%.3f\n",
	       o.backbone, size, batch, o.threads, o.channels_last,
	       (double)batch * iters / (proc_now_s() - t0), (proc_now_s() - t0) / iters, loss);
	ret = 0;
out:
	if (ret)
		fprintf(stderr, "train_bench: %s\n", err.msg);
	train_close(t);
	free(in);
	free(labels);
	return ret;
}
