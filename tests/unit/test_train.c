/* test_train.c - the training pieces on their own: the ArcFace loss against
 * a value computed here in plain C (and its gradient against finite
 * differences of that value), finite gradients at cos = +-1, the learning
 * rate per step, checkpoints that resume to the same weights, saved weights
 * that the inference model loads, and BatchNorm recalibration. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/shared_data.h"
#include "model.h"
#include "rng.h"
#include "safetensors.h"
#include "schedule.h"
#include "train.h"

#define MNV2_WEIGHTS "models/mobilenetv2_100.coral_imagenet.safetensors"

static char tmpdir[] = "/tmp/test_train.XXXXXX";

/* The path of REL under the shared data, in a static buffer. */
static const char *shared_file(const char *rel)
{
	static char buf[1024];

	shared_path(buf, sizeof(buf), rel);
	return buf;
}

static const char *tmp_path(const char *name)
{
	static char buf[4][600];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
	return p;
}

/* ---- ArcFace, computed independently ---- */

static void unit(const double *v, int dim, double *out)
{
	double n = 0;
	int d;

	for (d = 0; d < dim; d++)
		n += v[d] * v[d];
	n = sqrt(n);
	for (d = 0; d < dim; d++)
		out[d] = v[d] / n;
}

/* The loss from its definition: theta = acos(cos), target logit
 * s * cos(theta + m) while theta + m < pi, else s * (cos - m sin m). */
static double arcface_ref(const double *emb, const double *w, const int *labels, int n, int dim,
                          int classes, double m, double s)
{
	double total = 0, e[16], c[16];
	int i, k, d;

	for (i = 0; i < n; i++) {
		double logits[16], mx = -INFINITY, sum = 0;

		unit(emb + i * dim, dim, e);
		for (k = 0; k < classes; k++) {
			double cosv = 0;

			unit(w + k * dim, dim, c);
			for (d = 0; d < dim; d++)
				cosv += e[d] * c[d];
			if (cosv > 1 - 1e-6)
				cosv = 1 - 1e-6;
			if (cosv < -1 + 1e-6)
				cosv = -1 + 1e-6;
			if (k == labels[i])
				logits[k] = acos(cosv) + m < M_PI ? s * cos(acos(cosv) + m)
				                                  : s * (cosv - m * sin(m));
			else
				logits[k] = s * cosv;
			if (logits[k] > mx)
				mx = logits[k];
		}
		for (k = 0; k < classes; k++)
			sum += exp(logits[k] - mx);
		total += mx + log(sum) - logits[labels[i]];
	}
	return total / n;
}

/* Three embeddings of 4 values, three classes; the third embedding points
 * away from its class (theta + m past pi: the fallback branch). */
static const double EMB[3 * 4] = {0.9, 0.1, -0.2, 0.3, -0.5, 0.8, 0.1, 0.0, -1.0, -0.1, 0.05, -0.2};
static const double W[3 * 4] = {1.0, 0.2, -0.1, 0.2, -0.3, 1.0, 0.0, 0.1, 1.0, 0.1, -0.05, 0.2};
static const int LABELS[3] = {0, 1, 2};

static void to_float(const double *in, float *out, int n)
{
	int i;

	for (i = 0; i < n; i++)
		out[i] = (float)in[i];
}

static void test_arcface_loss_matches_plain_c(void **state)
{
	float emb[12], w[12], gemb[12], gw[12];
	double loss = 0, want;
	struct err err = {0};
	int i;

	to_float(EMB, emb, 12);
	to_float(W, w, 12);
	for (i = 0; i < 2; i++) {
		double m = i ? 0.5 : 0.1, s = i ? 30 : 45;

		want = arcface_ref(EMB, W, LABELS, 3, 4, 3, m, s);
		assert_int_equal(
		    train_arcface_loss(emb, w, LABELS, 3, 4, 3, m, s, &loss, gemb, gw, &err), 0);
		printf("    margin %.1f scale %.0f: loss %.6f, plain C %.6f\n", m, s, loss, want);
		assert_true(fabs(loss - want) < 1e-4 * fmax(1, fabs(want)));
	}
}

static void test_arcface_gradient_matches_finite_differences(void **state)
{
	float emb[12], w[12], gemb[12], gw[12];
	double loss, e2[12];
	struct err err = {0};
	int i;

	to_float(EMB, emb, 12);
	to_float(W, w, 12);
	assert_int_equal(
	    train_arcface_loss(emb, w, LABELS, 3, 4, 3, 0.1, 45, &loss, gemb, gw, &err), 0);
	for (i = 0; i < 12; i++) {
		double h = 1e-5, up, down, num;

		memcpy(e2, EMB, sizeof(e2));
		e2[i] += h;
		up = arcface_ref(e2, W, LABELS, 3, 4, 3, 0.1, 45);
		e2[i] -= 2 * h;
		down = arcface_ref(e2, W, LABELS, 3, 4, 3, 0.1, 45);
		num = (up - down) / (2 * h);
		if (fabs(num - gemb[i]) > 2e-3 * fmax(1, fabs(num)))
			fail_msg("d loss / d emb[%d]: libtorch %g, finite differences %g", i,
			         gemb[i], num);
	}
}

static void test_arcface_gradients_finite_at_cos_plus_and_minus_one(void **state)
{
	/* embedding 0 equals its class's weights (cos = 1), embedding 1 is its
	 * class's weights negated (cos = -1); scale 45 as in the reference */
	float w[2 * 3] = {0.6f, 0.8f, 0.0f, 0.0f, 0.6f, 0.8f};
	float emb[2 * 3] = {0.6f, 0.8f, 0.0f, 0.0f, -0.6f, -0.8f};
	float gemb[6], gw[6];
	int labels[2] = {0, 1};
	struct err err = {0};
	double loss = NAN;
	int i;

	assert_int_equal(
	    train_arcface_loss(emb, w, labels, 2, 3, 2, 0.1, 45, &loss, gemb, gw, &err), 0);
	printf("    loss at cos = +-1: %g\n", loss);
	assert_true(isfinite(loss));
	for (i = 0; i < 6; i++) {
		assert_true(isfinite(gemb[i]));
		assert_true(isfinite(gw[i]));
	}
	/* the target at cos = -1 is still pushed towards its class */
	assert_true(loss > 10);
}

/* ---- the schedule ---- */

static void test_schedule_warmup_then_cosine_per_step(void **state)
{
	/* 10 steps, 2 of warmup: 0, 1/2, then 0.5 (1 + cos(pi (s - 2) / 8)) */
	static const double want[11] = {0,
	                                0.5,
	                                1,
	                                0.9619397662556434,
	                                0.8535533905932737,
	                                0.6913417161825449,
	                                0.5,
	                                0.3086582838174551,
	                                0.1464466094067263,
	                                0.0380602337443566,
	                                0};
	long s;

	for (s = 0; s <= 10; s++)
		assert_true(fabs(schedule_factor(SCHEDULE_COSINE, s, 10, 2) - want[s]) < 1e-12);
	assert_true(schedule_factor(SCHEDULE_COSINE, 25, 10, 2) == 0);
	assert_true(schedule_factor(SCHEDULE_COSINE, 0, 10, 0) == 1);
	assert_true(fabs(schedule_factor(SCHEDULE_LINEAR, 6, 10, 2) - 0.5) < 1e-12);
	assert_true(schedule_factor(SCHEDULE_CONSTANT, 9, 10, 2) == 1);
	assert_true(schedule_factor(SCHEDULE_CONSTANT, 1, 10, 2) == 0.5);
	assert_int_equal(schedule_parse("Cosine"), SCHEDULE_COSINE);
	assert_int_equal(schedule_parse("Linear"), SCHEDULE_LINEAR);
	assert_int_equal(schedule_parse("Step"), -1);
}

/* ---- a small trainer: random MobileNetV2 at 32 px ---- */

#define SIDE    32
#define BATCH   4
#define CLASSES 3

static float batch_x[8][BATCH * 3 * SIDE * SIDE];
static int batch_y[8][BATCH];

static void make_batches(void)
{
	struct rng r;
	size_t b, i;

	rng_seed(&r, 11);
	for (b = 0; b < 8; b++) {
		for (i = 0; i < sizeof(batch_x[b]) / sizeof(float); i++)
			batch_x[b][i] = (float)rng_range(&r, -1, 1);
		for (i = 0; i < BATCH; i++)
			batch_y[b][i] = (int)((b + i) % CLASSES);
	}
}

static struct trainer *small_trainer(const char *weights, int accumulation)
{
	struct train_opts o = {0};
	struct err err = {0};
	struct trainer *t;

	o.backbone = "mobilenetv2_100";
	o.init_weights = weights;
	o.embedding_size = 16;
	o.classes = CLASSES;
	o.arcface_margin = 0.1;
	o.arcface_scale = 45;
	o.lr_backbone = 1e-4;
	o.lr_head = 1e-3;
	o.weight_decay = 0.01;
	o.gradient_clip = 5;
	o.grad_accumulation = accumulation;
	o.schedule = SCHEDULE_COSINE;
	o.total_steps = 6;
	o.warmup_steps = 1;
	o.seed = 3;
	o.device = "cpu";
	o.threads = 2;
	o.channels_last = 1;
	t = train_open(&o, &err);
	if (!t)
		fail_msg("train_open: %s", err.msg);
	return t;
}

static void steps(struct trainer *t, int from, int to)
{
	struct err err = {0};
	double loss;
	int b;

	for (b = from; b < to; b++)
		if (train_batch(t, batch_x[b], batch_y[b], BATCH, SIDE, SIDE, &loss, &err))
			fail_msg("train_batch %d: %s", b, err.msg);
}

static void read_file(const char *path, unsigned char **buf, long *len)
{
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	rewind(f);
	*buf = malloc((size_t)*len);
	assert_non_null(*buf);
	assert_int_equal(fread(*buf, 1, (size_t)*len, f), (size_t)*len);
	fclose(f);
}

static void test_trainer_steps_follow_schedule_and_accumulation(void **state)
{
	struct trainer *t = small_trainer(NULL, 2);
	double lr_b, lr_h;

	train_current_lr(t, &lr_b, &lr_h);
	assert_true(lr_b == 0 && lr_h == 0); /* step 0 of a 1-step warmup */
	steps(t, 0, 3);
	assert_int_equal(train_steps(t), 1); /* 3 micro-batches, 2 per step */
	train_current_lr(t, &lr_b, &lr_h);
	assert_true(fabs(lr_h - 1e-3) < 1e-15 && fabs(lr_b - 1e-4) < 1e-16);
	assert_int_equal(train_flush(t, &(struct err){0}), 0);
	assert_int_equal(train_steps(t), 2);
	train_current_lr(t, &lr_b, &lr_h);
	assert_true(fabs(lr_h - 1e-3 * schedule_factor(SCHEDULE_COSINE, 2, 6, 1)) < 1e-15);
	train_close(t);
}

static void test_checkpoint_resumes_to_identical_weights(void **state)
{
	struct trainer *a = small_trainer(NULL, 1), *b;
	unsigned char *wa, *wb;
	long la, lb;
	struct err err = {0};

	/* uninterrupted: 6 steps; interrupted: 3, checkpoint, new trainer, 3 */
	steps(a, 0, 3);
	assert_int_equal(train_checkpoint_save(a, tmp_path("ckpt.pt"), &err), 0);
	steps(a, 3, 6);
	assert_int_equal(train_save_weights(a, tmp_path("a.safetensors"), NULL, 0, &err), 0);
	train_close(a);

	b = small_trainer(NULL, 1);
	steps(b, 0, 1); /* state that the checkpoint must overwrite */
	if (train_checkpoint_load(b, tmp_path("ckpt.pt"), &err))
		fail_msg("%s", err.msg);
	assert_int_equal(train_steps(b), 3);
	steps(b, 3, 6);
	assert_int_equal(train_save_weights(b, tmp_path("b.safetensors"), NULL, 0, &err), 0);
	train_close(b);

	read_file(tmp_path("a.safetensors"), &wa, &la);
	read_file(tmp_path("b.safetensors"), &wb, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(wa, wb, (size_t)la);
	free(wa);
	free(wb);
}

static void test_checkpoint_of_other_shape_is_refused(void **state)
{
	struct trainer *a = small_trainer(NULL, 1);
	struct train_opts o = {0};
	struct err err = {0};
	struct trainer *b;

	assert_int_equal(train_checkpoint_save(a, tmp_path("c3.pt"), &err), 0);
	train_close(a);
	o.backbone = "mobilenetv2_100";
	o.embedding_size = 8;
	o.classes = CLASSES;
	o.arcface_scale = 45;
	o.grad_accumulation = 1;
	o.device = "cpu";
	b = train_open(&o, &err);
	assert_non_null(b);
	assert_int_equal(train_checkpoint_load(b, tmp_path("c3.pt"), &err), -1);
	assert_non_null(strstr(err.msg, "another shape"));
	train_close(b);
}

static void test_saved_weights_load_in_the_inference_model(void **state)
{
	struct trainer *t = small_trainer(NULL, 1);
	struct model_opts mo = {0};
	struct err err = {0};
	struct safetensors *st = NULL;
	float a[BATCH * 16], b[BATCH * 16];
	const char *meta[2] = {"backbone", "mobilenetv2_100"};
	struct model *m;
	char *v;
	int i;

	steps(t, 0, 2);
	assert_int_equal(train_embed(t, batch_x[5], BATCH, SIDE, SIDE, a, &err), 0);
	assert_int_equal(train_save_weights(t, tmp_path("w.safetensors"), meta, 1, &err), 0);
	train_close(t);

	assert_int_equal(safetensors_open(tmp_path("w.safetensors"), &st, &err), 0);
	assert_non_null(safetensors_find(st, "head.fc.weight"));
	assert_non_null(safetensors_find(st, "blocks.6.0.conv_pwl.weight"));
	assert_null(safetensors_find(st, "arcface.weight"));
	v = safetensors_metadata_get(st, "backbone");
	assert_string_equal(v, "mobilenetv2_100");
	free(v);
	safetensors_close(st);

	mo.backbone = "mobilenetv2_100";
	mo.weights = tmp_path("w.safetensors");
	mo.embedding_size = 16;
	mo.device = "cpu";
	mo.threads = 2;
	m = model_open(&mo, &err);
	if (!m)
		fail_msg("%s", err.msg);
	assert_int_equal(model_dim(m), 16);
	assert_int_equal(model_embed(m, batch_x[5], BATCH, SIDE, SIDE, b, &err), 0);
	model_close(m);
	/* the inference model folds the BatchNorm: equal up to rounding */
	for (i = 0; i < BATCH * 16; i++)
		assert_true(fabs(a[i] - b[i]) < 1e-4);
}

static void test_folded_batchnorm_is_recalibrated_without_changing_output(void **state)
{
	struct trainer *t = small_trainer(shared_file(MNV2_WEIGHTS), 1);
	float before[BATCH * 16], after[BATCH * 16];
	struct err err = {0};
	int i, n;

	assert_int_equal(train_bn_folded(t), 1);
	assert_int_equal(train_embed(t, batch_x[7], BATCH, SIDE, SIDE, before, &err), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(train_bn_calibrate(t, batch_x[i], BATCH, SIDE, SIDE, &err), 0);
	n = train_bn_calibrate_end(t, &err);
	assert_int_equal(n, 52); /* every conv of MobileNetV2 has a BatchNorm */
	assert_int_equal(train_bn_folded(t), 0);
	assert_int_equal(train_embed(t, batch_x[7], BATCH, SIDE, SIDE, after, &err), 0);
	for (i = 0; i < BATCH * 16; i++)
		if (fabs(before[i] - after[i]) > 1e-4)
			fail_msg("output %d moved: %g -> %g", i, before[i], after[i]);
	train_close(t);
}

static void test_bad_labels_and_sizes_are_errors(void **state)
{
	struct trainer *t = small_trainer(NULL, 1);
	int bad[BATCH] = {0, 1, 7, 2};
	struct err err = {0};
	double loss;

	assert_int_equal(train_batch(t, batch_x[0], bad, BATCH, SIDE, SIDE, &loss, &err), -1);
	assert_non_null(strstr(err.msg, "label 7 outside 0..2"));
	assert_int_equal(train_batch(t, batch_x[0], batch_y[0], 0, SIDE, SIDE, &loss, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	train_close(t);
}

static int setup(void **state)
{
	make_batches();
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_arcface_loss_matches_plain_c),
	    cmocka_unit_test(test_arcface_gradient_matches_finite_differences),
	    cmocka_unit_test(test_arcface_gradients_finite_at_cos_plus_and_minus_one),
	    cmocka_unit_test(test_schedule_warmup_then_cosine_per_step),
	    cmocka_unit_test(test_trainer_steps_follow_schedule_and_accumulation),
	    cmocka_unit_test(test_checkpoint_resumes_to_identical_weights),
	    cmocka_unit_test(test_checkpoint_of_other_shape_is_refused),
	    cmocka_unit_test(test_saved_weights_load_in_the_inference_model),
	    cmocka_unit_test(test_folded_batchnorm_is_recalibrated_without_changing_output),
	    cmocka_unit_test(test_bad_labels_and_sizes_are_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
