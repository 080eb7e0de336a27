/* test_dataset.c - labelled photos for retraining: bad rows skipped with
 * their reasons, the split by label (disjoint, seeded, sized as asked), the
 * validation ads, the bounded tensor cache, the Soft augmentations and the
 * seeded generator. Photos come from the sample ads in ../shared. */
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
#include "augment.h"
#include "config.h"
#include "dataset.h"
#include "rng.h"

static char tmpdir[] = "/tmp/test_dataset.XXXXXX";
static char images[1024], labels_csv[1024], ads_csv[1024];

static const struct resize_opts ro64 = {64, 64, RESIZE_NORM_SIMPLE, {0}, {0}, 0, 0};

static void train_defaults(struct train_config *t)
{
	memset(t, 0, sizeof(*t));
	t->validation_size = 0.2;
	t->data_sample = 1;
	snprintf(t->validation_strategy, sizeof(t->validation_strategy), "automatic");
	snprintf(t->folds, sizeof(t->folds), "0");
}

static const char *write_tmp(const char *name, const char *text)
{
	static char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* The sample labels (396 photos, 87 labels) decoded at 64 px. */
static struct dataset *sample(size_t cache_bytes)
{
	struct dataset *ds = malloc(sizeof(*ds));
	struct err err = {0};

	dataset_init(ds, "labels.csv");
	if (dataset_load_csv(ds, labels_csv, "image", "label", 100000, &err) ||
	    dataset_decode(ds, images, &ro64, cache_bytes, 2, &err))
		fail_msg("%s", err.msg);
	return ds;
}

static struct dataset *shared_ds;

static void copy_file(const char *from, const char *to)
{
	char buf[1 << 16];
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
}

static void test_bad_rows_are_skipped_with_reasons(void **state)
{
	struct dataset ds;
	struct err err = {0};
	char root[700], from[1200], to[800];
	const char *csv;

	/* a root of our own: two photos, a text file named .JPG */
	snprintf(root, sizeof(root), "%s/img", tmpdir);
	assert_int_equal(mkdir(root, 0755), 0);
	snprintf(from, sizeof(from), "%s/bicycle_final/111085122871_0.JPG", images);
	snprintf(to, sizeof(to), "%s/a.JPG", root);
	copy_file(from, to);
	snprintf(from, sizeof(from), "%s/bicycle_final/111085122871_1.JPG", images);
	snprintf(to, sizeof(to), "%s/b.JPG", root);
	copy_file(from, to);
	write_tmp("img/text.JPG", "hello\n");
	csv = write_tmp("labels.csv", "label,image,extra\n"
	                              "a,a.JPG,x\n"
	                              "a,b.JPG,x\n"
	                              ",a.JPG,x\n"
	                              "b,missing.JPG,x\n"
	                              "b,../labels.csv,x\n"
	                              "b,\"unterminated,x\n"
	                              "b,text.JPG,x\n"
	                              "b,a.JPG,x\n");
	dataset_init(&ds, "labels.csv");
	assert_int_equal(dataset_load_csv(&ds, csv, "image", "label", 100, &err), 0);
	assert_int_equal(ds.nbad, 2); /* empty label, malformed line */
	assert_int_equal(dataset_decode(&ds, root, &ro64, 1 << 20, 2, &err), 0);
	assert_int_equal(ds.rows, 8);
	assert_int_equal(ds.n, 3);
	assert_int_equal(ds.nlabels, 2);
	assert_int_equal(ds.nbad, 5);
	assert_int_equal(ds.bad[0].line, 4);
	assert_string_equal(ds.bad[0].reason, "empty label");
	assert_int_equal(ds.bad[1].line, 7);
	assert_string_equal(ds.bad[1].reason, "malformed line");
	assert_int_equal(ds.bad[2].line, 5);
	assert_non_null(strstr(ds.bad[2].reason, "No such file"));
	assert_int_equal(ds.bad[3].line, 6);
	assert_non_null(strstr(ds.bad[3].reason, "outside the allowed folders"));
	assert_int_equal(ds.bad[4].line, 8);
	assert_non_null(strstr(ds.bad[4].reason, "not an image"));
	/* the 1 MiB cache holds 21 tensors of 64 x 64: all three are kept */
	assert_int_equal(ds.cached_bytes, 3 * 3 * 64 * 64 * sizeof(float));
	assert_string_equal(ds.labels[0], "a");
	assert_int_equal(ds.photos[2].label_id, 1);
	dataset_free(&ds);

	dataset_init(&ds, "labels.csv");
	assert_int_equal(dataset_load_csv(&ds, csv, "image", "item", 100, &err), -1);
	assert_non_null(strstr(err.msg, "no column 'item'"));
	dataset_free(&ds);
	dataset_init(&ds, "labels.csv");
	assert_int_equal(dataset_load_csv(&ds, csv, "image", "label", 5, &err), -1);
	assert_non_null(strstr(err.msg, "more than 5 labelled rows"));
	dataset_free(&ds);
}

/* A labels line holding a NUL byte is a bad row named for it, as in the source CSV. */
static void test_labels_line_with_a_nul_byte(void **state)
{
	static const char text[] = "image,label\n"
	                           "a.JPG,a\n"
	                           "b.JPG,b\0x\n"
	                           "c.JPG,c\n";
	struct dataset ds;
	struct err err = {0};
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/nul.csv", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, sizeof(text) - 1, f), sizeof(text) - 1);
	fclose(f);
	dataset_init(&ds, "nul.csv");
	assert_int_equal(dataset_load_csv(&ds, path, "image", "label", 100, &err), 0);
	assert_int_equal(ds.rows, 3);
	assert_int_equal(ds.n, 2);
	assert_int_equal(ds.nbad, 1);
	assert_int_equal(ds.bad[0].line, 3);
	assert_string_equal(ds.bad[0].reason, "NUL byte in line");
	dataset_free(&ds);
}

static void test_uncached_tensor_equals_cached_one(void **state)
{
	struct dataset *ds = sample(3 * 64 * 64 * sizeof(float) * 10);
	float *a = malloc(3 * 64 * 64 * sizeof(float)), *b = malloc(3 * 64 * 64 * sizeof(float));
	struct err err = {0};
	size_t i, cached = 0, idx_cached = 0, idx_not = 0;

	for (i = 0; i < ds->n; i++) {
		if (ds->photos[i].cached) {
			cached++;
			idx_cached = i;
		} else {
			idx_not = i;
		}
	}
	assert_int_equal(cached, 10);
	assert_int_equal(dataset_tensor(ds, idx_cached, a, &err), 0);
	assert_int_equal(dataset_tensor_as(ds, idx_cached, &ro64, b, &err), 0);
	assert_memory_equal(a, b, 3 * 64 * 64 * sizeof(float));
	assert_int_equal(dataset_tensor(ds, idx_not, a, &err), 0);
	free(a);
	free(b);
	dataset_free(ds);
	free(ds);
}

static void test_split_is_by_label_seeded_and_sized(void **state)
{
	struct dataset *ds = shared_ds;
	struct train_config t;
	signed char s1[128], s2[128], s3[128];
	struct err err = {0};
	size_t i, val = 0, train = 0, changed = 0;

	assert_int_equal(ds->nlabels, 87);
	train_defaults(&t);
	assert_int_equal(dataset_split(ds, &t, 7, s1, &err), 0);
	assert_int_equal(dataset_split(ds, &t, 7, s2, &err), 0);
	assert_int_equal(dataset_split(ds, &t, 8, s3, &err), 0);
	assert_memory_equal(s1, s2, ds->nlabels);
	for (i = 0; i < ds->nlabels; i++) {
		val += s1[i] == 1;
		train += s1[i] == 0;
		changed += s1[i] != s3[i];
	}
	assert_int_equal(val, 17); /* round(87 * 0.2) */
	assert_int_equal(train, 70);
	assert_true(changed > 0);

	/* kfold: 5 folds of 0.2; folds 1 and 3 held out */
	snprintf(t.validation_strategy, sizeof(t.validation_strategy), "kfold");
	snprintf(t.folds, sizeof(t.folds), "1,3");
	assert_int_equal(dataset_split(ds, &t, 7, s2, &err), 0);
	for (val = 0, i = 0; i < ds->nlabels; i++)
		val += s2[i] == 1;
	assert_int_equal(val, 35); /* 87 labels dealt round-robin: 18 + 17 */

	/* data_sample 0.5: 44 labels in use, 9 of them for validation */
	train_defaults(&t);
	t.data_sample = 0.5;
	assert_int_equal(dataset_split(ds, &t, 7, s2, &err), 0);
	for (val = 0, train = 0, i = 0; i < ds->nlabels; i++) {
		val += s2[i] == 1;
		train += s2[i] == 0;
	}
	assert_int_equal(val + train, 44);
	assert_int_equal(val, 9);
}

static void test_split_without_a_scorable_validation_label_fails(void **state)
{
	struct dataset ds;
	struct train_config t;
	signed char st[8];
	struct err err = {0};

	dataset_init(&ds, "tiny");
	assert_int_equal(dataset_add(&ds, "bicycle_final/111085122871_0.JPG", "a", 2, &err), 0);
	assert_int_equal(dataset_add(&ds, "bicycle_final/111085122871_1.JPG", "b", 3, &err), 0);
	assert_int_equal(dataset_add(&ds, "bicycle_final/111085122871_2.JPG", "c", 4, &err), 0);
	assert_int_equal(dataset_decode(&ds, images, &ro64, 0, 1, &err), 0);
	assert_int_equal(ds.cached_bytes, 0);
	train_defaults(&t);
	assert_int_equal(dataset_split(&ds, &t, 1, st, &err), -1);
	assert_non_null(strstr(err.msg, "no validation label has two photos"));
	dataset_free(&ds);
}

static void test_validation_ads_from_csv_and_synthetic(void **state)
{
	struct dataset *ds = shared_ds;
	struct train_config t;
	signed char st[128];
	int *ad = malloc(ds->n * sizeof(int)), *labels_in_ad, nads = 0, a;
	struct err err = {0};
	size_t i, in_ads = 0, val_photos = 0;

	train_defaults(&t);
	assert_int_equal(dataset_split(ds, &t, 7, st, &err), 0);
	assert_int_equal(dataset_val_ads(ds, st, ads_csv, 7, ad, &nads, &err), 0);
	assert_true(nads > 0);
	for (i = 0; i < ds->n; i++) {
		val_photos += st[ds->photos[i].label_id] == 1;
		if (ad[i] >= 0) {
			in_ads++;
			assert_int_equal(st[ds->photos[i].label_id], 1);
		}
	}
	/* every sample photo sits in one ad of ads.csv */
	assert_int_equal(in_ads, val_photos);

	assert_int_equal(dataset_val_ads(ds, st, "", 7, ad, &nads, &err), 0);
	labels_in_ad = calloc((size_t)nads * 128, sizeof(int));
	for (i = 0; i < ds->n; i++) {
		assert_int_equal(ad[i] >= 0, st[ds->photos[i].label_id] == 1);
		if (ad[i] >= 0)
			labels_in_ad[ad[i] * 128 + ds->photos[i].label_id] = 1;
	}
	for (a = 0; a < nads; a++) {
		int k, n = 0;

		for (k = 0; k < 128; k++)
			n += labels_in_ad[a * 128 + k];
		assert_true(n >= 1 && n <= 3);
	}
	free(labels_in_ad);
	free(ad);
}

/* ---- augmentations and the generator ---- */

static void fill(float *t, size_t n, uint64_t seed)
{
	struct rng r;
	size_t i;

	rng_seed(&r, seed);
	for (i = 0; i < n; i++)
		t[i] = (float)rng_range(&r, -1, 1);
}

static void test_soft_augmentation_is_seeded_and_bounded(void **state)
{
	enum { H = 24, W = 32, N = 3 * H * W };
	static float in[N], a[N], b[N];
	struct augment_norm norm = {{128, 128, 128}, {128, 128, 128}};
	struct augment_draw d, d2;
	struct rng r1, r2;
	int k, i, flips = 0, warps = 0, jitters = 0;

	fill(in, N, 1);
	for (k = 0; k < 64; k++) {
		rng_seed(&r1, rng_derive(9, 2, (uint64_t)k));
		rng_seed(&r2, rng_derive(9, 2, (uint64_t)k));
		augment_draw_soft(&r1, H, W, &d);
		augment_draw_soft(&r2, H, W, &d2);
		assert_memory_equal(&d, &d2, sizeof(d));
		augment_apply(&d, &norm, in, a, H, W);
		augment_apply(&d2, &norm, in, b, H, W);
		assert_memory_equal(a, b, sizeof(a));
		flips += d.flip;
		warps += d.warp;
		jitters += d.jitter;
		assert_true(fabs(d.dx) <= 0.0625 * W && fabs(d.dy) <= 0.0625 * H);
		assert_true(d.scale >= 0.9 && d.scale <= 1.1);
		assert_true(fabs(d.angle) <= 10 * M_PI / 180 + 1e-12);
		assert_true(fabs(d.brightness - 1) <= 0.1 && fabs(d.contrast - 1) <= 0.1);
		/* pixels stay in 0..255 once jittered */
		for (i = 0; d.jitter && i < N; i++)
			assert_true(a[i] >= -1.0001f && a[i] <= (255 - 128) / 128.0f + 1e-4f);
	}
	/* each part is applied about half the time */
	assert_true(flips > 16 && flips < 48);
	assert_true(warps > 16 && warps < 48);
	assert_true(jitters > 16 && jitters < 48);
}

static void test_augmentation_geometry(void **state)
{
	enum { H = 5, W = 7, N = 3 * H * W };
	static float in[N], out[N], back[N];
	struct augment_norm norm = {{0, 0, 0}, {255, 255, 255}};
	struct augment_draw d;
	int c, y, x;

	fill(in, N, 2);
	memset(&d, 0, sizeof(d));
	d.scale = 1;
	d.brightness = d.contrast = d.saturation = 1;
	augment_apply(&d, &norm, in, out, H, W);
	assert_memory_equal(in, out, sizeof(in)); /* nothing drawn: unchanged */

	d.flip = 1;
	augment_apply(&d, &norm, in, out, H, W);
	for (c = 0; c < 3; c++)
		for (y = 0; y < H; y++)
			for (x = 0; x < W; x++)
				assert_true(out[(c * H + y) * W + x] ==
				            in[(c * H + y) * W + (W - 1 - x)]);
	augment_apply(&d, &norm, out, back, H, W);
	assert_memory_equal(in, back, sizeof(in));

	/* a whole-pixel shift moves the picture by one column */
	d.flip = 0;
	d.warp = 1;
	d.dx = 1;
	augment_apply(&d, &norm, in, out, H, W);
	for (y = 0; y < H; y++)
		for (x = 1; x < W; x++)
			assert_true(fabs(out[y * W + x] - in[y * W + x - 1]) < 1e-5);
}

static void test_rng_is_stable_and_unbiased_enough(void **state)
{
	struct rng r;
	int counts[6] = {0}, v[10], i;

	/* the stream is part of the format: checkpoints and splits rely on it */
	rng_seed(&r, 42);
	assert_true(rng_next(&r) == UINT64_C(0x15780b2e0c2ec716));
	assert_true(rng_derive(1, 2, 3) != rng_derive(1, 3, 2));
	for (i = 0; i < 6000; i++)
		counts[rng_below(&r, 6)]++;
	for (i = 0; i < 6; i++)
		assert_true(counts[i] > 850 && counts[i] < 1150);
	for (i = 0; i < 10; i++)
		v[i] = i;
	rng_shuffle(&r, v, 10);
	for (i = 0; i < 10; i++) {
		int j, seen = 0;

		for (j = 0; j < 10; j++)
			seen += v[j] == i;
		assert_int_equal(seen, 1);
	}
}

static int setup(void **state)
{
	struct err err = {0};

	if (!mkdtemp(tmpdir))
		return -1;
	shared_path(images, sizeof(images), "data/sop-ads/images");
	shared_path(labels_csv, sizeof(labels_csv), "data/sop-ads/labels.csv");
	shared_path(ads_csv, sizeof(ads_csv), "data/sop-ads/ads.csv");
	if (resize_init("test_dataset", 1, &err))
		return -1;
	shared_ds = sample((size_t)1 << 30);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	dataset_free(shared_ds);
	free(shared_ds);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_rows_are_skipped_with_reasons),
	    cmocka_unit_test(test_labels_line_with_a_nul_byte),
	    cmocka_unit_test(test_uncached_tensor_equals_cached_one),
	    cmocka_unit_test(test_split_is_by_label_seeded_and_sized),
	    cmocka_unit_test(test_split_without_a_scorable_validation_label_fails),
	    cmocka_unit_test(test_validation_ads_from_csv_and_synthetic),
	    cmocka_unit_test(test_soft_augmentation_is_seeded_and_bounded),
	    cmocka_unit_test(test_augmentation_geometry),
	    cmocka_unit_test(test_rng_is_stable_and_unbiased_enough),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
