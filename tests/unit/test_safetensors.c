/* test_safetensors.c - the .safetensors reader on the shared model files and on
 * damaged copies, and the writer by round trip. Damaged files live in a
 * private temp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/shared_data.h"
#include "safetensors.h"

static char tmpdir[] = "/tmp/test_safetensors.XXXXXX";

static void model_path(char *buf, size_t cap, const char *file)
{
	snprintf(buf, cap, "%s/models/%s", shared_dir(), file);
}

static void tmp_path(char *buf, size_t cap, const char *file)
{
	snprintf(buf, cap, "%s/%s", tmpdir, file);
}

static int group_setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char path[512];

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	return rmdir(tmpdir);
}

/* Write a file made of a header length field LEN_FIELD, JSON and DATA_LEN
 * bytes of data: DATA, or zeros when DATA is NULL. */
static void write_raw(const char *file, uint64_t len_field, const char *json, const void *data,
                      size_t data_len)
{
	char path[512];
	FILE *f;
	size_t i;

	tmp_path(path, sizeof(path), file);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(&len_field, 8, 1, f), 1);
	assert_int_equal(fwrite(json, 1, strlen(json), f), strlen(json));
	for (i = 0; i < data_len; i++)
		fputc(data ? ((const unsigned char *)data)[i] : 0, f);
	assert_int_equal(fclose(f), 0);
}

/* Write JSON with a correct length field and DATA_LEN zero bytes of data. */
static void write_st_json(const char *file, const char *json, size_t data_len)
{
	write_raw(file, strlen(json), json, NULL, data_len);
}

/* Open FILE from the temp dir, expect ERR_INPUT with NEEDLE in the message. */
static void expect_open_error(const char *file, const char *needle)
{
	struct safetensors *st = (struct safetensors *)1;
	struct err err = {0};
	char path[512];

	tmp_path(path, sizeof(path), file);
	assert_int_equal(safetensors_open(path, &st, &err), -1);
	assert_null(st);
	assert_int_equal(err.kind, ERR_INPUT);
	if (!strstr(err.msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
	/* Messages name the file so that an operator knows which one is bad. */
	assert_non_null(strstr(err.msg, file));
}

static void test_reads_mobilenet_f32_keys_shapes_and_i64_scalars(void **state)
{
	struct safetensors *st = NULL;
	struct err err = {0};
	const struct st_tensor *t;
	char path[512];
	float stem[32 * 3 * 3 * 3];
	char *model;
	size_t i, n_i64 = 0, n_f32 = 0;

	model_path(path, sizeof(path), "mobilenetv2_100.coral_imagenet.safetensors");
	assert_int_equal(safetensors_open(path, &st, &err), 0);
	assert_int_equal(st->count, 314);
	for (i = 0; i < st->count; i++) {
		t = &st->tensors[i];
		if (t->dtype == ST_I64) {
			n_i64++;
			assert_int_equal(t->ndim, 0);
			assert_int_equal(t->numel, 1);
			assert_int_equal(t->nbytes, 8);
			assert_non_null(strstr(t->name, "num_batches_tracked"));
		} else if (t->dtype == ST_F32) {
			n_f32++;
		}
	}
	assert_int_equal(n_i64, 52);
	assert_int_equal(n_f32, 314 - 52);

	t = safetensors_find(st, "conv_stem.weight");
	assert_non_null(t);
	assert_int_equal(t->ndim, 4);
	assert_int_equal(t->shape[0], 32);
	assert_int_equal(t->shape[1], 3);
	assert_int_equal(t->shape[2], 3);
	assert_int_equal(t->shape[3], 3);
	assert_int_equal(safetensors_to_f32(t, stem, 32 * 27, &err), 0);
	assert_true(isfinite(stem[0]) && isfinite(stem[32 * 27 - 1]));

	t = safetensors_find(st, "classifier.weight");
	assert_non_null(t);
	assert_int_equal(t->ndim, 2);
	assert_int_equal(t->shape[0], 1001);
	assert_int_equal(t->shape[1], 1280);
	assert_int_equal(t->nbytes, 1001 * 1280 * 4);
	t = safetensors_find(st, "blocks.6.0.conv_pwl.weight");
	assert_non_null(t);
	assert_int_equal(t->shape[0], 320);
	assert_int_equal(t->shape[1], 960);
	assert_null(safetensors_find(st, "head.fc.weight"));

	model = safetensors_metadata_get(st, "model");
	assert_non_null(model);
	assert_string_equal(model, "mobilenetv2_100");
	free(model);
	assert_null(safetensors_metadata_get(st, "no such key"));
	safetensors_close(st);
}

static void test_i64_scalar_is_refused_as_float(void **state)
{
	struct safetensors *st = NULL;
	struct err err = {0};
	const struct st_tensor *t;
	char path[512];
	float v;

	model_path(path, sizeof(path), "mobilenetv2_100.coral_imagenet.safetensors");
	assert_int_equal(safetensors_open(path, &st, &err), 0);
	t = safetensors_find(st, "bn1.num_batches_tracked");
	assert_non_null(t);
	assert_int_equal(safetensors_to_f32(t, &v, 1, &err), -1);
	assert_int_equal(err.kind, ERR_INPUT);
	assert_non_null(strstr(err.msg, "bn1.num_batches_tracked"));
	assert_non_null(strstr(err.msg, "I64"));
	safetensors_close(st);
}

static void test_too_small_buffer_is_refused(void **state)
{
	struct safetensors *st = NULL;
	struct err err = {0};
	char path[512];
	float v[4];

	model_path(path, sizeof(path), "mobilenetv2_100.coral_imagenet.safetensors");
	assert_int_equal(safetensors_open(path, &st, &err), 0);
	assert_int_equal(safetensors_to_f32(safetensors_find(st, "bn1.bias"), v, 4, &err), -1);
	assert_non_null(strstr(err.msg, "do not fit"));
	safetensors_close(st);
}

/* Every F16 value is the F32 value rounded to half precision: relative error
 * at most 2^-11 for normal halves, absolute 2^-25 below them. */
static void test_f16_copy_converts_within_half_precision(void **state)
{
	struct safetensors *a = NULL, *b = NULL;
	struct err err = {0};
	char path[512];
	float *x = NULL, *y = NULL;
	size_t i, j, checked = 0;
	double worst = 0;

	model_path(path, sizeof(path), "mobilenetv2_100.coral_imagenet.safetensors");
	assert_int_equal(safetensors_open(path, &a, &err), 0);
	model_path(path, sizeof(path), "mobilenetv2_100.coral_imagenet.f16.safetensors");
	assert_int_equal(safetensors_open(path, &b, &err), 0);
	assert_int_equal(a->count, b->count);

	for (i = 0; i < a->count; i++) {
		const struct st_tensor *ta = &a->tensors[i];
		const struct st_tensor *tb = safetensors_find(b, ta->name);

		assert_non_null(tb);
		if (ta->dtype == ST_I64) {
			assert_int_equal(tb->dtype, ST_I64);
			continue;
		}
		assert_int_equal(tb->dtype, ST_F16);
		assert_int_equal(ta->numel, tb->numel);
		x = malloc((size_t)ta->numel * sizeof(float));
		y = malloc((size_t)ta->numel * sizeof(float));
		assert_non_null(x);
		assert_non_null(y);
		assert_int_equal(safetensors_to_f32(ta, x, (size_t)ta->numel, &err), 0);
		assert_int_equal(safetensors_to_f32(tb, y, (size_t)tb->numel, &err), 0);
		for (j = 0; j < (size_t)ta->numel; j++) {
			double d = fabs((double)x[j] - y[j]);
			double tol = fabs(x[j]) * ldexp(1, -11) + ldexp(1, -25);

			if (d > tol)
				fail_msg("%s[%zu]: f32 %g vs f16 %g", ta->name, j, x[j], y[j]);
			if (d > worst)
				worst = d;
		}
		checked += (size_t)ta->numel;
		free(x);
		free(y);
	}
	/* The copy is not a byte-for-byte F32 file in disguise. */
	assert_true(worst > 0);
	assert_true(checked > 3000000);
	safetensors_close(a);
	safetensors_close(b);
}

/* Half, bfloat16 and double values with known float32 equivalents, the
 * half subnormal, infinity and negative zero included. */
static void test_f16_bf16_f64_convert_exactly(void **state)
{
	const uint16_t f16[6] = {0x3c00, 0xc000, 0x0001, 0x7c00, 0x8000, 0x7bff};
	const float f16_want[6] = {1.0f, -2.0f, 0x1p-24f, INFINITY, -0.0f, 65504.0f};
	const uint16_t bf16[2] = {0x3f80, 0xc040};
	const double f64[2] = {0.1, -1e300};
	const char *json = "{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]},"
	                   "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]},"
	                   "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}";
	unsigned char data[12 + 4 + 16];
	struct safetensors *st = NULL;
	struct err err = {0};
	char path[512];
	float got[6];
	int i;

	memcpy(data, f16, 12);
	memcpy(data + 12, bf16, 4);
	memcpy(data + 16, f64, 16);
	write_raw("dtypes.safetensors", strlen(json), json, data, sizeof(data));
	tmp_path(path, sizeof(path), "dtypes.safetensors");
	assert_int_equal(safetensors_open(path, &st, &err), 0);

	assert_int_equal(safetensors_to_f32(safetensors_find(st, "h"), got, 6, &err), 0);
	for (i = 0; i < 6; i++)
		assert_memory_equal(&got[i], &f16_want[i], sizeof(float));
	assert_int_equal(safetensors_to_f32(safetensors_find(st, "b"), got, 2, &err), 0);
	assert_true(got[0] == 1.0f && got[1] == -3.0f);
	assert_int_equal(safetensors_to_f32(safetensors_find(st, "d"), got, 2, &err), 0);
	assert_true(got[0] == (float)0.1);
	assert_true(isinf(got[1]) && got[1] < 0);
	safetensors_close(st);
}

static void test_truncated_copy_in_header_is_input_error(void **state)
{
	char src[512], dst[512];
	FILE *in, *out;
	char buf[4096];
	size_t got;

	model_path(src, sizeof(src), "mobilenetv2_100.coral_imagenet.safetensors");
	tmp_path(dst, sizeof(dst), "cut-header.safetensors");
	in = fopen(src, "rb");
	out = fopen(dst, "wb");
	assert_non_null(in);
	assert_non_null(out);
	got = fread(buf, 1, 1000, in);
	assert_int_equal(got, 1000);
	assert_int_equal(fwrite(buf, 1, got, out), got);
	fclose(in);
	assert_int_equal(fclose(out), 0);
	expect_open_error("cut-header.safetensors",
	                  "truncated: header says 28640 bytes, file has 992");
}

static void test_truncated_copy_in_data_is_input_error(void **state)
{
	char src[512], dst[512];
	FILE *in, *out;
	char buf[65536];
	size_t got, total = 0;

	model_path(src, sizeof(src), "mobilenetv2_100.coral_imagenet.safetensors");
	tmp_path(dst, sizeof(dst), "cut-data.safetensors");
	in = fopen(src, "rb");
	out = fopen(dst, "wb");
	assert_non_null(in);
	assert_non_null(out);
	while (total < 5000000 && (got = fread(buf, 1, sizeof(buf), in)) > 0) {
		assert_int_equal(fwrite(buf, 1, got, out), got);
		total += got;
	}
	fclose(in);
	assert_int_equal(fclose(out), 0);
	expect_open_error("cut-data.safetensors", "outside the data area");
}

static void test_header_length_past_eof_is_input_error(void **state)
{
	write_raw("past-eof.safetensors", 1234, "{}", NULL, 97);
	expect_open_error("past-eof.safetensors", "truncated: header says 1234 bytes, file has 99");
}

static void test_file_shorter_than_length_field_is_input_error(void **state)
{
	char path[512];
	FILE *f;

	tmp_path(path, sizeof(path), "tiny.safetensors");
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("abc", f);
	fclose(f);
	expect_open_error("tiny.safetensors", "truncated: file has 3 bytes");
}

static void test_huge_header_length_is_refused_before_reading(void **state)
{
	write_raw("huge.safetensors", (uint64_t)1 << 40, "{}", NULL, 0);
	expect_open_error("huge.safetensors", "over the");
}

static void test_bad_json_is_input_error(void **state)
{
	write_st_json("badjson.safetensors", "{\"a\": {\"dtype\": ", 0);
	expect_open_error("badjson.safetensors", "not valid JSON");
	write_st_json("array.safetensors", "[1, 2]", 0);
	expect_open_error("array.safetensors", "not an object");
	write_st_json("trailing.safetensors", "{} xyz", 0);
	expect_open_error("trailing.safetensors", "bytes after its JSON");
}

static void test_unsupported_dtype_is_named(void **state)
{
	write_st_json("q4.safetensors",
	              "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1);
	expect_open_error("q4.safetensors", "tensor w: dtype Q4 not supported");
}

static void test_offsets_out_of_range_are_input_error(void **state)
{
	write_st_json("offs.safetensors",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16);
	expect_open_error("offs.safetensors",
	                  "tensor w: data_offsets [8, 24] outside the data area (16 bytes)");
	write_st_json("reversed.safetensors",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16);
	expect_open_error("reversed.safetensors", "outside the data area");
	write_st_json("negative.safetensors",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16);
	expect_open_error("negative.safetensors", "not a pair of non-negative integers");
}

static void test_shape_and_byte_count_mismatch_is_input_error(void **state)
{
	write_st_json("mismatch.safetensors",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12);
	expect_open_error("mismatch.safetensors",
	                  "tensor w: 4 elements of F32 need 16 bytes, data_offsets give 12");
	write_st_json("fracdim.safetensors",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4);
	expect_open_error("fracdim.safetensors", "non-negative integer");
	write_st_json("overflow.safetensors",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
	              "\"data_offsets\":[0,4]}}",
	              4);
	expect_open_error("overflow.safetensors", "overflows");
}

static void test_overlapping_and_duplicate_tensors_are_input_error(void **state)
{
	write_st_json("overlap.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
	              12);
	expect_open_error("overlap.safetensors", "tensors a and b overlap");
	write_st_json("dup.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
	              8);
	expect_open_error("dup.safetensors", "tensor a appears twice");
}

static void test_metadata_must_map_strings_to_strings(void **state)
{
	write_st_json("meta.safetensors", "{\"__metadata__\":{\"epoch\":5}}", 0);
	expect_open_error("meta.safetensors", "__metadata__ value epoch is not a string");
}

static void test_missing_file_is_input_error(void **state)
{
	expect_open_error("does-not-exist.safetensors", "cannot open");
}

static void test_write_then_read_round_trips_values_order_and_metadata(void **state)
{
	const float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
	const float b[1] = {42.0f};
	float c[24];
	const struct st_write_tensor ts[] = {
	    {"zeta.weight", 2, {2, 3}, a},
	    {"alpha", 0, {0}, b},
	    {"mid.conv.weight", 4, {2, 3, 2, 2}, c},
	    {"empty", 1, {0}, NULL},
	};
	const char *meta[] = {"format", "pt", "note", "round \"trip\" test"};
	struct safetensors *st = NULL;
	struct err err = {0};
	const struct st_tensor *t;
	char path[512];
	float back[24];
	char *v;
	uint64_t hlen;
	DIR *d;
	struct dirent *de;
	int files = 0;
	int i;

	for (i = 0; i < 24; i++)
		c[i] = (float)i * 0.1f - 1.0f;
	tmp_path(path, sizeof(path), "roundtrip.safetensors");
	assert_int_equal(safetensors_write(path, ts, 4, meta, 2, &err), 0);

	assert_int_equal(safetensors_open(path, &st, &err), 0);
	assert_int_equal(st->count, 4);
	/* Sorted by name in the file, so header order is sorted too. */
	assert_string_equal(st->tensors[0].name, "alpha");
	assert_string_equal(st->tensors[1].name, "empty");
	assert_string_equal(st->tensors[2].name, "mid.conv.weight");
	assert_string_equal(st->tensors[3].name, "zeta.weight");
	memcpy(&hlen, st->map, 8);
	assert_int_equal((8 + hlen) % 8, 0);

	t = safetensors_find(st, "zeta.weight");
	assert_int_equal(t->ndim, 2);
	assert_int_equal(t->shape[1], 3);
	assert_int_equal(safetensors_to_f32(t, back, 24, &err), 0);
	assert_memory_equal(back, a, sizeof(a));
	t = safetensors_find(st, "mid.conv.weight");
	assert_int_equal(t->numel, 24);
	assert_int_equal(safetensors_to_f32(t, back, 24, &err), 0);
	assert_memory_equal(back, c, sizeof(c));
	t = safetensors_find(st, "alpha");
	assert_int_equal(t->ndim, 0);
	assert_int_equal(safetensors_to_f32(t, back, 1, &err), 0);
	assert_true(back[0] == 42.0f);
	assert_int_equal(safetensors_find(st, "empty")->numel, 0);

	v = safetensors_metadata_get(st, "note");
	assert_string_equal(v, "round \"trip\" test");
	free(v);
	v = safetensors_metadata_get(st, "format");
	assert_string_equal(v, "pt");
	free(v);
	safetensors_close(st);

	/* The temp file was renamed away, not left beside the result. */
	d = opendir(tmpdir);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, "roundtrip"))
			files++;
	closedir(d);
	assert_int_equal(files, 1);
}

static void test_write_refuses_duplicate_names_and_leaves_no_file(void **state)
{
	const float x[1] = {1};
	const struct st_write_tensor ts[] = {{"w", 1, {1}, x}, {"w", 1, {1}, x}};
	struct err err = {0};
	char path[512];

	tmp_path(path, sizeof(path), "dupwrite.safetensors");
	assert_int_equal(safetensors_write(path, ts, 2, NULL, 0, &err), -1);
	assert_int_equal(err.kind, ERR_INPUT);
	assert_non_null(strstr(err.msg, "tensor w given twice"));
	assert_int_equal(access(path, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads_mobilenet_f32_keys_shapes_and_i64_scalars),
	    cmocka_unit_test(test_i64_scalar_is_refused_as_float),
	    cmocka_unit_test(test_too_small_buffer_is_refused),
	    cmocka_unit_test(test_f16_copy_converts_within_half_precision),
	    cmocka_unit_test(test_f16_bf16_f64_convert_exactly),
	    cmocka_unit_test(test_truncated_copy_in_header_is_input_error),
	    cmocka_unit_test(test_truncated_copy_in_data_is_input_error),
	    cmocka_unit_test(test_header_length_past_eof_is_input_error),
	    cmocka_unit_test(test_file_shorter_than_length_field_is_input_error),
	    cmocka_unit_test(test_huge_header_length_is_refused_before_reading),
	    cmocka_unit_test(test_bad_json_is_input_error),
	    cmocka_unit_test(test_unsupported_dtype_is_named),
	    cmocka_unit_test(test_offsets_out_of_range_are_input_error),
	    cmocka_unit_test(test_shape_and_byte_count_mismatch_is_input_error),
	    cmocka_unit_test(test_overlapping_and_duplicate_tensors_are_input_error),
	    cmocka_unit_test(test_metadata_must_map_strings_to_strings),
	    cmocka_unit_test(test_missing_file_is_input_error),
	    cmocka_unit_test(test_write_then_read_round_trips_values_order_and_metadata),
	    cmocka_unit_test(test_write_refuses_duplicate_names_and_leaves_no_file),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
