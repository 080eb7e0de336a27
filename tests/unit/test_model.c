/* test_model.c - the libtorch backbones against timm's golden outputs, the
 * embedding head, and the errors for weights that do not fit. Temporary
 * weight files go to a private temp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/shared_data.h"
#include "model.h"
#include "safetensors.h"

/* The golden README's tolerances. */
#define TOL_POOLED   1e-4
#define TOL_UNPOOLED 1e-3

#define FEAT      1280
#define HEAD_ROWS 16

static char tmpdir[] = "/tmp/test_model.XXXXXX";
static char head_file[600]; /* mobilenet weights + head.fc, no classifier */
static char cut_file[600];  /* mobilenet weights less one key */
static float head_w[HEAD_ROWS * FEAT];
static float head_b[HEAD_ROWS];

static const char *spath(const char *rel)
{
	static char buf[4][600];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", shared_dir(), rel);
	return p;
}

#define EFF_DIR      "golden/tf_efficientnet_b0_ns/"
#define MNV2_DIR     "golden/mobilenetv2_100/"
#define EFF_WEIGHTS  EFF_DIR "tf_efficientnet_b0_ns.random.safetensors"
#define MNV2_WEIGHTS "models/mobilenetv2_100.coral_imagenet.safetensors"

/* Read a raw float32 file that must hold exactly COUNT values. */
static float *read_f32(const char *rel, size_t count)
{
	const char *path = spath(rel);
	struct stat sb;
	float *buf;
	FILE *f;

	if (stat(path, &sb) < 0)
		fail_msg("cannot stat %s", path);
	assert_int_equal((size_t)sb.st_size, count * sizeof(float));
	buf = malloc(count * sizeof(float));
	assert_non_null(buf);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, sizeof(float), count, f), count);
	fclose(f);
	return buf;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
	double m = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (fabs((double)a[i] - b[i]) > m)
			m = fabs((double)a[i] - b[i]);
	return m;
}

static int argmax(const float *v, int n)
{
	int i, best = 0;

	for (i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return best;
}

static struct model *open_model(const char *backbone, const char *weights, int channels_last,
                                int keep_bn, struct err *err)
{
	struct model_opts o = {0};

	o.backbone = backbone;
	o.weights = weights;
	o.device = "cpu";
	o.threads = 2;
	o.channels_last = channels_last;
	o.keep_bn = keep_bn;
	return model_open(&o, err);
}

static void assert_close(const char *what, const float *got, const float *want, size_t n,
                         double tol)
{
	double d = max_abs_diff(got, want, n);

	printf("    %-40s max abs diff %.3g\n", what, d);
	if (!(d <= tol))
		fail_msg("%s: max abs diff %g over %g", what, d, tol);
}

/* Features, logits and the unpooled map of EfficientNet-B0 with random
 * weights (sensitive to padding, eps and layout) for one way of running. */
static void check_effnet(int channels_last, int keep_bn)
{
	const size_t n = 2, hw = 256, cells = 8 * 8;
	float *in = read_f32(EFF_DIR "effb0_input.f32", n * 3 * hw * hw);
	float *feat_ref = read_f32(EFF_DIR "effb0_features.f32", n * FEAT);
	float *logit_ref = read_f32(EFF_DIR "effb0_logits.f32", n * 1000);
	float *unp_ref = read_f32(EFF_DIR "effb0_features_unpooled.f32", n * FEAT * cells);
	float *feat = malloc(n * FEAT * sizeof(float));
	float *logits = malloc(n * 1000 * sizeof(float));
	float *unp = malloc(n * FEAT * cells * sizeof(float));
	struct err err = {0};
	struct model *m;
	int ncls = 0;
	size_t i;

	m = open_model("tf_efficientnet_b0_ns", spath(EFF_WEIGHTS), channels_last, keep_bn, &err);
	if (!m)
		fail_msg("open: %s", err.msg);
	printf("  effnet channels_last=%d keep_bn=%d\n", channels_last, keep_bn);
	assert_int_equal(model_has_head(m), 0);
	assert_int_equal(model_dim(m), FEAT);

	assert_int_equal(model_features(m, in, 2, 256, 256, feat, &err), 0);
	assert_close("pooled features", feat, feat_ref, n * FEAT, TOL_POOLED);
	assert_int_equal(model_logits(m, in, 2, 256, 256, logits, 1000, &ncls, &err), 0);
	assert_int_equal(ncls, 1000);
	assert_close("logits", logits, logit_ref, n * 1000, TOL_POOLED);
	for (i = 0; i < n; i++)
		assert_int_equal(argmax(logits + i * 1000, 1000),
		                 argmax(logit_ref + i * 1000, 1000));
	assert_int_equal(model_features_unpooled(m, in, 2, 256, 256, unp, n * FEAT * cells, &err),
	                 0);
	assert_close("unpooled features", unp, unp_ref, n * FEAT * cells, TOL_UNPOOLED);

	model_close(m);
	free(in);
	free(feat_ref);
	free(logit_ref);
	free(unp_ref);
	free(feat);
	free(logits);
	free(unp);
}

static void test_effnet_random_weights_match_timm(void **state)
{
	check_effnet(0, 0);
}

static void test_effnet_matches_timm_with_batchnorm_unfolded(void **state)
{
	check_effnet(0, 1);
}

static void test_effnet_matches_timm_in_channels_last(void **state)
{
	check_effnet(1, 0);
}

/* MobileNetV2 with the real ImageNet weights at SIDE px. */
static void check_mobilenet(int side, int channels_last)
{
	const size_t n = 2, npix = n * 3 * (size_t)side * (size_t)side;
	char rel[128];
	float *in, *feat_ref, *logit_ref;
	float feat[2 * FEAT], logits[2 * 1001];
	struct err err = {0};
	struct model *m;
	int ncls = 0;

	snprintf(rel, sizeof(rel), MNV2_DIR "mnv2_input%d.f32", side);
	in = read_f32(rel, npix);
	snprintf(rel, sizeof(rel), MNV2_DIR "mnv2_features%d.f32", side);
	feat_ref = read_f32(rel, n * FEAT);
	snprintf(rel, sizeof(rel), MNV2_DIR "mnv2_logits%d.f32", side);
	logit_ref = read_f32(rel, n * 1001);

	m = open_model("mobilenetv2_100", spath(MNV2_WEIGHTS), channels_last, 0, &err);
	if (!m)
		fail_msg("open: %s", err.msg);
	printf("  mobilenetv2 %d px channels_last=%d\n", side, channels_last);
	assert_int_equal(model_features(m, in, 2, side, side, feat, &err), 0);
	assert_close("pooled features", feat, feat_ref, n * FEAT, TOL_POOLED);
	assert_int_equal(model_logits(m, in, 2, side, side, logits, 1001, &ncls, &err), 0);
	assert_int_equal(ncls, 1001);
	assert_close("logits", logits, logit_ref, n * 1001, TOL_POOLED);
	/* Logit 672 is ImageNet class 671, mountain bike; image 1 is a cat. */
	assert_int_equal(argmax(logits, 1001), 672);
	assert_int_equal(argmax(logits + 1001, 1001), argmax(logit_ref + 1001, 1001));

	model_close(m);
	free(in);
	free(feat_ref);
	free(logit_ref);
}

static void test_mobilenet_224_matches_timm(void **state)
{
	check_mobilenet(224, 0);
}

static void test_mobilenet_512_matches_timm(void **state)
{
	check_mobilenet(512, 0);
}

static void test_mobilenet_224_matches_timm_in_channels_last(void **state)
{
	check_mobilenet(224, 1);
}

static void test_mobilenet_f16_weights_keep_top1(void **state)
{
	float *in = read_f32(MNV2_DIR "mnv2_input224.f32", 2 * 3 * 224 * 224);
	float logits[2 * 1001];
	struct err err = {0};
	struct model *m;
	int ncls = 0;

	m = open_model("mobilenetv2_100",
	               spath("models/mobilenetv2_100.coral_imagenet.f16.safetensors"), 0, 0, &err);
	if (!m)
		fail_msg("open: %s", err.msg);
	assert_int_equal(model_logits(m, in, 2, 224, 224, logits, 1001, &ncls, &err), 0);
	assert_int_equal(argmax(logits, 1001), 672);
	assert_int_equal(argmax(logits + 1001, 1001), 286);
	model_close(m);
	free(in);
}

static void test_embed_without_head_is_normalised_features(void **state)
{
	float *in = read_f32(MNV2_DIR "mnv2_input224.f32", 2 * 3 * 224 * 224);
	float feat[2 * FEAT], emb[2 * FEAT];
	struct err err = {0};
	struct model *m;
	int i, j;

	m = open_model("mobilenetv2_100", spath(MNV2_WEIGHTS), 0, 0, &err);
	assert_non_null(m);
	assert_int_equal(model_has_head(m), 0);
	assert_int_equal(model_dim(m), FEAT);
	assert_int_equal(model_features(m, in, 2, 224, 224, feat, &err), 0);
	assert_int_equal(model_embed(m, in, 2, 224, 224, emb, &err), 0);
	for (i = 0; i < 2; i++) {
		double norm = 0, fnorm = 0;

		for (j = 0; j < FEAT; j++) {
			norm += (double)emb[i * FEAT + j] * emb[i * FEAT + j];
			fnorm += (double)feat[i * FEAT + j] * feat[i * FEAT + j];
		}
		assert_true(fabs(sqrt(norm) - 1.0) < 1e-5);
		for (j = 0; j < FEAT; j++)
			assert_true(fabs(emb[i * FEAT + j] - feat[i * FEAT + j] / sqrt(fnorm)) <
			            1e-6);
	}
	model_close(m);
	free(in);
}

/* Batched rows equal the images run alone, and a second call (which reuses
 * the cached activation buffers) gives the same bytes. */
static void test_rows_do_not_depend_on_batch_or_earlier_calls(void **state)
{
	const size_t img = 3 * 224 * 224;
	float *in = read_f32(MNV2_DIR "mnv2_input224.f32", 2 * img);
	float both[2 * FEAT], again[2 * FEAT], one[FEAT];
	struct err err = {0};
	struct model *m;
	int i;

	m = open_model("mobilenetv2_100", spath(MNV2_WEIGHTS), 1, 0, &err);
	assert_non_null(m);
	assert_int_equal(model_embed(m, in, 2, 224, 224, both, &err), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(model_embed(m, in + (size_t)i * img, 1, 224, 224, one, &err), 0);
		assert_true(max_abs_diff(one, both + i * FEAT, FEAT) < 1e-5);
	}
	assert_int_equal(model_embed(m, in, 2, 224, 224, again, &err), 0);
	assert_memory_equal(again, both, sizeof(both));
	model_close(m);
	free(in);
}

/* GeM over the map: (mean over cells of max(x, 1e-6)^p)^(1/p), per channel. */
static void test_gem_pooling_follows_its_formula(void **state)
{
	float *in = read_f32(MNV2_DIR "mnv2_input224.f32", 2 * 3 * 224 * 224);
	const size_t cells = 7 * 7;
	float *unp = malloc(2 * FEAT * cells * sizeof(float));
	float gem[2 * FEAT];
	struct model_opts o = {0};
	struct err err = {0};
	struct model *m;
	double worst = 0;
	size_t i, c;

	o.backbone = "mobilenetv2_100";
	o.weights = spath(MNV2_WEIGHTS);
	o.pool = MODEL_POOL_GEM;
	o.gem_p = 3.0f;
	m = model_open(&o, &err);
	assert_non_null(m);
	assert_int_equal(model_features(m, in, 2, 224, 224, gem, &err), 0);
	assert_int_equal(model_features_unpooled(m, in, 2, 224, 224, unp, 2 * FEAT * cells, &err),
	                 0);
	for (i = 0; i < 2 * FEAT; i++) {
		double s = 0;

		for (c = 0; c < cells; c++)
			s += pow(fmax(unp[i * cells + c], 1e-6), 3.0);
		s = pow(s / (double)cells, 1.0 / 3.0);
		worst = fmax(worst, fabs(s - gem[i]));
	}
	assert_true(worst < 1e-4);
	model_close(m);
	free(unp);
	free(in);
}

/* Copy the mobilenet weights (F32 tensors only, so the BN counters go) into
 * PATH, less SKIP_KEY, with a HEAD_ROWS x 1280 head when WITH_HEAD and the
 * classifier unless DROP_CLASSIFIER. */
static void write_mnv2_variant(const char *path, const char *skip_key, int with_head,
                               int drop_classifier)
{
	struct st_write_tensor *ts;
	struct safetensors *st = NULL;
	struct err err = {0};
	size_t i, n = 0;
	uint32_t seed = 12345;

	assert_int_equal(safetensors_open(spath(MNV2_WEIGHTS), &st, &err), 0);
	ts = calloc(st->count + 2, sizeof(*ts));
	assert_non_null(ts);
	for (i = 0; i < st->count; i++) {
		const struct st_tensor *t = &st->tensors[i];
		float *buf;

		if (t->dtype != ST_F32 || (skip_key && !strcmp(t->name, skip_key)) ||
		    (drop_classifier && !strncmp(t->name, "classifier.", 11)))
			continue;
		buf = malloc((size_t)t->numel * sizeof(float) + 1);
		assert_non_null(buf);
		assert_int_equal(safetensors_to_f32(t, buf, (size_t)t->numel, &err), 0);
		ts[n].name = t->name;
		ts[n].ndim = t->ndim;
		memcpy(ts[n].shape, t->shape, sizeof(t->shape));
		ts[n].data = buf;
		n++;
	}
	if (with_head) {
		for (i = 0; i < HEAD_ROWS * FEAT; i++) {
			seed = seed * 1103515245u + 12345u;
			head_w[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
		}
		for (i = 0; i < HEAD_ROWS; i++)
			head_b[i] = 0.01f * (float)i - 0.05f;
		ts[n++] = (struct st_write_tensor){"head.fc.weight", 2, {HEAD_ROWS, FEAT}, head_w};
		ts[n++] = (struct st_write_tensor){"head.fc.bias", 1, {HEAD_ROWS}, head_b};
	}
	assert_int_equal(safetensors_write(path, ts, n, NULL, 0, &err), 0);
	for (i = 0; i < n; i++)
		if (ts[i].data != head_w && ts[i].data != head_b)
			free((void *)ts[i].data);
	free(ts);
	safetensors_close(st);
}

static void test_head_in_weights_gives_normalised_projection(void **state)
{
	float *in = read_f32(MNV2_DIR "mnv2_input224.f32", 2 * 3 * 224 * 224);
	float feat[2 * FEAT], emb[2 * HEAD_ROWS];
	struct model_opts o = {0};
	struct err err = {0};
	struct model *m;
	int i, r, j;

	o.backbone = "mobilenetv2_100";
	o.weights = head_file;
	o.embedding_size = HEAD_ROWS;
	m = model_open(&o, &err);
	if (!m)
		fail_msg("open: %s", err.msg);
	assert_int_equal(model_has_head(m), 1);
	assert_int_equal(model_dim(m), HEAD_ROWS);
	assert_int_equal(model_features(m, in, 2, 224, 224, feat, &err), 0);
	assert_int_equal(model_embed(m, in, 2, 224, 224, emb, &err), 0);
	for (i = 0; i < 2; i++) {
		double y[HEAD_ROWS], norm = 0;

		for (r = 0; r < HEAD_ROWS; r++) {
			y[r] = head_b[r];
			for (j = 0; j < FEAT; j++)
				y[r] += (double)head_w[r * FEAT + j] * feat[i * FEAT + j];
			norm += y[r] * y[r];
		}
		for (r = 0; r < HEAD_ROWS; r++)
			assert_true(fabs(emb[i * HEAD_ROWS + r] - y[r] / sqrt(norm)) < 1e-5);
	}
	model_close(m);
	free(in);
}

static void test_logits_without_classifier_is_error(void **state)
{
	float in[3 * 64 * 64] = {0}, out[1001];
	struct err err = {0};
	struct model *m;
	int ncls = -1;

	m = open_model("mobilenetv2_100", head_file, 0, 0, &err);
	assert_non_null(m);
	assert_int_equal(model_logits(m, in, 1, 64, 64, out, 1001, &ncls, &err), -1);
	assert_non_null(strstr(err.msg, "no classifier"));
	model_close(m);
}

static void test_wrong_embedding_size_is_fatal(void **state)
{
	struct model_opts o = {0};
	struct err err = {0};

	o.backbone = "mobilenetv2_100";
	o.weights = head_file;
	o.embedding_size = 512;
	assert_null(model_open(&o, &err));
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "16-d embeddings, embedding_size is 512"));
}

static void test_weights_of_other_backbone_list_missing_keys(void **state)
{
	struct err err = {0};

	assert_null(open_model("tf_efficientnet_b0_ns", spath(MNV2_WEIGHTS), 0, 0, &err));
	assert_int_equal(err.kind, ERR_FATAL);
	printf("    %s\n", err.msg);
	assert_non_null(strstr(err.msg, "does not fit tf_efficientnet_b0_ns"));
	/* EfficientNet has squeeze-excite in block 0.0; MobileNetV2 has none. */
	assert_non_null(strstr(err.msg, "missing (blocks.0.0.se.conv_reduce.weight"));
	assert_non_null(strstr(err.msg, "more"));
	assert_non_null(strstr(err.msg, "with other shapes"));

	assert_null(open_model("mobilenetv2_100", spath(EFF_WEIGHTS), 0, 0, &err));
	assert_non_null(strstr(err.msg, "unexpected (blocks.0.0.se.conv_expand.bias"));
}

static void test_one_missing_key_is_named(void **state)
{
	struct err err = {0};

	assert_null(open_model("mobilenetv2_100", cut_file, 0, 0, &err));
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "1 missing (blocks.3.1.conv_dw.weight)"));
	assert_null(strstr(err.msg, "unexpected"));
}

static void test_unknown_backbone_is_fatal(void **state)
{
	struct err err = {0};

	assert_null(open_model("resnet50", spath(MNV2_WEIGHTS), 0, 0, &err));
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "unknown backbone resnet50"));
}

static void test_missing_weights_file_is_fatal(void **state)
{
	struct err err = {0};

	assert_null(open_model("mobilenetv2_100", "/nonexistent/w.safetensors", 0, 0, &err));
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "/nonexistent/w.safetensors"));
}

/* This machine's libtorch is CPU-only (PLATFORM.md), so asking for CUDA must
 * fail with a message saying so rather than a libtorch stack trace. */
static void test_cuda_device_without_cuda_is_clear_error(void **state)
{
	struct model_opts o = {0};
	struct err err = {0};

	o.backbone = "mobilenetv2_100";
	o.weights = spath(MNV2_WEIGHTS);
	o.device = "cuda:0";
	assert_null(model_open(&o, &err));
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "device cuda:0: no CUDA"));
	o.device = "tpu";
	assert_null(model_open(&o, &err));
	assert_non_null(strstr(err.msg, "unknown device tpu"));
}

static void test_fp16_on_cpu_is_refused(void **state)
{
	struct model_opts o = {0};
	struct err err = {0};

	o.backbone = "mobilenetv2_100";
	o.weights = spath(MNV2_WEIGHTS);
	o.device = "cpu";
	o.precision = MODEL_PREC_FP16;
	assert_null(model_open(&o, &err));
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "precision fp16 needs a CUDA device, not cpu"));
}

/* The timing counters count each call and image once, and the network's share is part of
 * the call's time. */
static void test_stats_count_calls_and_time(void **state)
{
	float *in = read_f32(MNV2_DIR "mnv2_input224.f32", 2 * 3 * 224 * 224);
	float emb[2 * FEAT];
	struct model_stats st;
	struct err err = {0};
	struct model *m;

	m = open_model("mobilenetv2_100", spath(MNV2_WEIGHTS), 1, 0, &err);
	assert_non_null(m);
	assert_string_equal(model_device(m), "cpu");
	model_stats_get(m, &st);
	assert_int_equal(st.calls, 0);
	assert_int_equal(model_embed(m, in, 2, 224, 224, emb, &err), 0);
	assert_int_equal(model_embed(m, in, 1, 224, 224, emb, &err), 0);
	model_stats_get(m, &st);
	assert_int_equal(st.calls, 2);
	assert_int_equal(st.images, 3);
	assert_true(st.forward_s > 0);
	assert_true(st.call_s >= st.forward_s);
	model_close(m);
	free(in);
}

/* A batch split into several forward passes gives the rows of one pass, and both match the
 * reference at 512 px. */
static void test_split_forward_matches_one_pass(void **state)
{
	float *in = read_f32(MNV2_DIR "mnv2_input512.f32", 2 * 3 * 512 * 512);
	float *ref = read_f32(MNV2_DIR "mnv2_features512.f32", 2 * FEAT);
	float split[2 * FEAT], whole[2 * FEAT];
	struct model_opts o = {0};
	struct err err = {0};
	struct model *m;
	int i, j;

	o.backbone = "mobilenetv2_100";
	o.weights = spath(MNV2_WEIGHTS);
	o.device = "cpu";
	o.threads = 2;
	o.channels_last = 1;
	for (o.max_forward = 1; o.max_forward <= 2; o.max_forward++) {
		m = model_open(&o, &err);
		assert_non_null(m);
		assert_int_equal(
		    model_embed(m, in, 2, 512, 512, o.max_forward == 1 ? split : whole, &err), 0);
		model_close(m);
	}
	assert_close("rows split vs one pass", split, whole, 2 * FEAT, 1e-5);
	for (i = 0; i < 2; i++) {
		double norm = 0;

		for (j = 0; j < FEAT; j++)
			norm += (double)ref[i * FEAT + j] * ref[i * FEAT + j];
		for (j = 0; j < FEAT; j++)
			ref[i * FEAT + j] = (float)(ref[i * FEAT + j] / sqrt(norm));
	}
	assert_close("split rows vs normalised reference", split, ref, 2 * FEAT, TOL_POOLED);
	free(in);
	free(ref);
}

static void test_batch_outside_bounds_is_error(void **state)
{
	float in[3 * 32 * 32] = {0}, out[FEAT];
	struct err err = {0};
	struct model *m;

	m = open_model("mobilenetv2_100", spath(MNV2_WEIGHTS), 0, 0, &err);
	assert_non_null(m);
	assert_int_equal(model_embed(m, in, 0, 32, 32, out, &err), -1);
	assert_non_null(strstr(err.msg, "outside"));
	assert_int_equal(model_embed(m, in, 1, 32, 100000, out, &err), -1);
	/* A small odd-sized image runs: SAME padding handles any extent. */
	assert_int_equal(model_embed(m, in, 1, 31, 17, out, &err), 0);
	model_close(m);
}

static int group_setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(head_file, sizeof(head_file), "%s/mnv2-head.safetensors", tmpdir);
	snprintf(cut_file, sizeof(cut_file), "%s/mnv2-cut.safetensors", tmpdir);
	write_mnv2_variant(head_file, NULL, 1, 1);
	write_mnv2_variant(cut_file, "blocks.3.1.conv_dw.weight", 0, 0);
	return 0;
}

static int group_teardown(void **state)
{
	unlink(head_file);
	unlink(cut_file);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_effnet_random_weights_match_timm),
	    cmocka_unit_test(test_effnet_matches_timm_with_batchnorm_unfolded),
	    cmocka_unit_test(test_effnet_matches_timm_in_channels_last),
	    cmocka_unit_test(test_mobilenet_224_matches_timm),
	    cmocka_unit_test(test_mobilenet_512_matches_timm),
	    cmocka_unit_test(test_mobilenet_224_matches_timm_in_channels_last),
	    cmocka_unit_test(test_mobilenet_f16_weights_keep_top1),
	    cmocka_unit_test(test_embed_without_head_is_normalised_features),
	    cmocka_unit_test(test_rows_do_not_depend_on_batch_or_earlier_calls),
	    cmocka_unit_test(test_gem_pooling_follows_its_formula),
	    cmocka_unit_test(test_head_in_weights_gives_normalised_projection),
	    cmocka_unit_test(test_logits_without_classifier_is_error),
	    cmocka_unit_test(test_wrong_embedding_size_is_fatal),
	    cmocka_unit_test(test_weights_of_other_backbone_list_missing_keys),
	    cmocka_unit_test(test_one_missing_key_is_named),
	    cmocka_unit_test(test_unknown_backbone_is_fatal),
	    cmocka_unit_test(test_missing_weights_file_is_fatal),
	    cmocka_unit_test(test_cuda_device_without_cuda_is_clear_error),
	    cmocka_unit_test(test_batch_outside_bounds_is_error),
	    cmocka_unit_test(test_fp16_on_cpu_is_refused),
	    cmocka_unit_test(test_stats_count_calls_and_time),
	    cmocka_unit_test(test_split_forward_matches_one_pass),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
