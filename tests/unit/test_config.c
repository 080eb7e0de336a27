/* Configuration: good files, the reference model config, unknown keys, bad
 * values with their line numbers, secrets masked. */
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
#include "config.h"

static char tmpdir[256];
static char shared[1024];

static int setup(void **state)
{
	snprintf(shared, sizeof(shared), "%s", shared_dir());
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static const char *write_tmp(const char *name, const char *text)
{
	static char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

static const char *model_yaml = "architecture:\n"
                                "  backbone: mobilenetv2_100\n"
                                "  embedding_size: 1280\n"
                                "  pool: Average\n"
                                "image:\n"
                                "  image_height: 224\n"
                                "  image_width: 224\n"
                                "  image_normalization: Custom\n"
                                "  image_mean: [128, 128, 128]\n"
                                "  image_std: [128, 128, 128]\n";

/* A pipeline config with the given extra text appended to the pipeline
 * section; returns its path. */
static const char *pipeline_yaml(const char *db_extra, const char *pipeline_extra)
{
	char text[4096];

	write_tmp("model.yaml", model_yaml);
	snprintf(text, sizeof(text),
	         "database:\n"
	         "  conninfo: \"host=/tmp dbname=bikes password=hunter2 user=p\"\n%s"
	         "source:\n"
	         "  kind: dir\n"
	         "  csv: %s/data/sop-ads/ads.csv\n"
	         "  images_root: %s/data/sop-ads\n"
	         "pipeline:\n"
	         "  batch_size: 8\n%s"
	         "model:\n"
	         "  config: model.yaml\n"
	         "  weights: %s/models/mobilenetv2_100.coral_imagenet.safetensors\n",
	         db_extra, shared, shared, pipeline_extra, shared);
	return write_tmp("pipeline.yaml", text);
}

static void test_good_file_and_defaults(void **state)
{
	struct config *cfg = malloc(sizeof(*cfg));
	struct err err = {0};
	char expect[600];

	assert_int_equal(config_load(cfg, pipeline_yaml("", ""), &err), 0);
	assert_int_equal(cfg->batch_size, 8);
	assert_int_equal(cfg->queue_depth, 64); /* default */
	assert_true(isnan(cfg->threshold));     /* auto */
	assert_int_equal(cfg->linkage, LINKAGE_AVERAGE);
	assert_int_equal(cfg->model.image_width, 224);
	assert_int_equal(cfg->model.norm, RESIZE_NORM_CUSTOM);
	assert_float_equal(cfg->model.mean[1], 128, 0);
	assert_string_equal(cfg->model.backbone, "mobilenetv2_100");
	/* relative paths resolve against the file's folder */
	snprintf(expect, sizeof(expect), "%s/model.yaml", tmpdir);
	assert_string_equal(cfg->model_config, expect);
	snprintf(expect, sizeof(expect), "%s/../sql", tmpdir);
	assert_string_equal(cfg->sql_dir, expect);
	free(cfg);
}

static void test_reference_model_config_accepted(void **state)
{
	struct model_config mc;
	struct err err = {0};
	char path[1100];

	snprintf(path, sizeof(path), "%s/configs/hydrogen-torch-bicycle.yaml", shared);
	assert_int_equal(config_load_model(&mc, path, &err), 0);
	assert_string_equal(mc.backbone, "tf_efficientnet_b0_ns");
	assert_int_equal(mc.embedding_size, 512);
	assert_int_equal(mc.image_height, 512);
	assert_int_equal(mc.norm, RESIZE_NORM_SIMPLE);
	assert_int_equal(mc.top_k, 50);
	assert_int_equal(mc.train.epochs, 5);
	assert_int_equal(mc.train.batch_size, 16);
	assert_float_equal(mc.train.arcface_margin, 0.1, 1e-12);
	assert_float_equal(mc.train.arcface_scale, 45, 1e-12);
	assert_float_equal(mc.train.validation_size, 0.2, 1e-12);
	assert_int_equal(mc.train.seed, -1);
	assert_int_equal(mc.train.mixed_precision, 1);
	assert_string_equal(mc.train.schedule, "Cosine");
}

static void expect_error(const char *path, const char *needle)
{
	struct config *cfg = malloc(sizeof(*cfg));
	struct err err = {0};

	assert_int_equal(config_load(cfg, path, &err), -1);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' lacks '%s'", err.msg, needle);
	free(cfg);
}

static void test_unknown_key_names_file_and_line(void **state)
{
	expect_error(pipeline_yaml("", "  batch_sise: 8\n"),
	             "pipeline.yaml:9: pipeline.batch_sise: unknown key");
}

static void test_bad_values_name_line_and_reason(void **state)
{
	expect_error(pipeline_yaml("", "  queue_depth: lots\n"),
	             "pipeline.yaml:9: pipeline.queue_depth: 'lots' is not a whole number");
	expect_error(pipeline_yaml("", "  resize_threads: -3\n"), ":9: pipeline.resize_threads: "
	                                                          "-3 is out of range");
	expect_error(pipeline_yaml("", "  queue_depth: 4\n"), "queue_depth (4) must be at least");
	expect_error(pipeline_yaml("", "  batch_size: 9\n"), "given twice (first on line 8)");
	expect_error(pipeline_yaml("grouping:\n  linkage: ward\n", ""),
	             ":4: grouping.linkage: 'ward' is not supported (one of: average, single, "
	             "complete)");
}

/* Wrong types, ranges and broken files, each named with file:line and key. */
static void test_wrong_types_ranges_and_broken_files(void **state)
{
	char dir_msg[300];

	expect_error(pipeline_yaml("", "  queue_depth: [8, 16]\n"),
	             "pipeline.yaml:9: pipeline.queue_depth: expected a single value");
	expect_error(pipeline_yaml("grouping:\n  threshold: [0.5]\n", ""),
	             "pipeline.yaml:4: grouping.threshold: expected a single value");
	expect_error(pipeline_yaml("grouping:\n  threshold: 1.5\n", ""),
	             "pipeline.yaml:4: grouping.threshold: 1.5 is out of range [-1, 1]");
	expect_error(pipeline_yaml("grouping:\n  threshold: nan\n", ""),
	             "pipeline.yaml:4: grouping.threshold: 'nan' is not a number");
	expect_error(pipeline_yaml("", "  torch_threads: 2.5\n"),
	             "pipeline.yaml:9: pipeline.torch_threads: '2.5' is not a whole number");
	expect_error(pipeline_yaml("", "  queue_depth: 99999999999999999999\n"),
	             "pipeline.queue_depth: '99999999999999999999' is not a whole number");
	expect_error(pipeline_yaml("limits:\n  max_pixels: 1e13\n", ""),
	             "pipeline.yaml:4: limits.max_pixels: '1e13' is not a whole number");
	expect_error(pipeline_yaml("limits:\n  max_bytes: 0\n", ""),
	             "pipeline.yaml:4: limits.max_bytes: 0 is out of range [1, 2147483647]");
	expect_error(pipeline_yaml("model:\n  channels_last: maybe\n", ""),
	             "pipeline.yaml:4: model.channels_last: 'maybe' is not true or false");
	expect_error(
	    pipeline_yaml("source:\n  kind: ftp\n", ""),
	    "pipeline.yaml:4: source.kind: 'ftp' is not supported (one of: dir, kafka, db)");
	expect_error(pipeline_yaml("database:\n  sql_dir: [a]\n", ""),
	             "database.sql_dir: expected a single value");
	expect_error(write_tmp("p3.yaml", "database: [unclosed\n"),
	             "p3.yaml:2: invalid YAML: did not find expected ',' or ']'");
	expect_error(write_tmp("p4.yaml", ""),
	             "p4.yaml: expected a mapping of sections at the top");
	expect_error(write_tmp("p5.yaml", "- a\n- b\n"),
	             "p5.yaml: expected a mapping of sections at the top");
	expect_error(write_tmp("p6.yaml", "? [a, b]\n: c\n"),
	             "p6.yaml:1: keys must be plain scalars");
	snprintf(dir_msg, sizeof(dir_msg), "%s: not a regular file", tmpdir);
	expect_error(tmpdir, dir_msg);
	/* a FIFO is refused at once, not waited on for a writer (alarm: fail, never hang) */
	snprintf(dir_msg, sizeof(dir_msg), "%s/fifo.yaml", tmpdir);
	assert_int_equal(mkfifo(dir_msg, 0600), 0);
	alarm(20);
	expect_error(dir_msg, "fifo.yaml: not a regular file");
	alarm(0);
	unlink(dir_msg);
	/* a section that is not a mapping is named as such, not as an unknown key */
	expect_error(pipeline_yaml("grouping:\n  - threshold: 0.5\n", ""),
	             "pipeline.yaml:4: grouping: expected a mapping of keys");
	expect_error(pipeline_yaml("kafka: broker1:9092\n", ""),
	             "pipeline.yaml:3: kafka: expected a mapping of keys");
}

/* A second YAML document would be silently left unread; an empty one, or one "---" at the
 * top, changes nothing. */
static void test_one_yaml_document(void **state)
{
	struct config *cfg = malloc(sizeof(*cfg));
	struct err err = {0};
	char text[8192];
	FILE *fp;

	snprintf(text, sizeof(text), "%s/pipeline.yaml", tmpdir);
	pipeline_yaml("", "");
	fp = fopen(text, "a");
	assert_non_null(fp);
	fputs("---\npipeline:\n  batch_size: 9\n", fp);
	fclose(fp);
	expect_error(text, "pipeline.yaml:12: a second YAML document ('---')");

	pipeline_yaml("", "");
	fp = fopen(text, "a");
	assert_non_null(fp);
	fputs("...\n---\n", fp);
	fclose(fp);
	assert_int_equal(config_load(cfg, text, &err), 0);
	assert_int_equal(cfg->batch_size, 8);
	free(cfg);
}

/* A section whose keys are all commented out is an empty section. */
static void test_empty_section(void **state)
{
	struct config *cfg = malloc(sizeof(*cfg));
	struct err err = {0};

	assert_int_equal(config_load(cfg, pipeline_yaml("grouping:\n# threshold: 0.5\n", ""), &err),
	                 0);
	assert_true(isnan(cfg->threshold));
	free(cfg);
}

/* Aliases to one big mapping: 58 kB of YAML once flattened to 9 million keys (1.7 GB,
 * 11 s) before the first unknown key was reported. Bounded now, and fast. */
static void test_alias_amplification_is_bounded(void **state)
{
	static char text[200000];
	size_t at = 0;
	int i;

	at += (size_t)snprintf(text + at, sizeof(text) - at, "a0: &a0 {");
	for (i = 0; i < 3000; i++)
		at += (size_t)snprintf(text + at, sizeof(text) - at, "%sk%d: 1", i ? ", " : "", i);
	at += (size_t)snprintf(text + at, sizeof(text) - at, "}\n");
	for (i = 1; i < 3000; i++)
		at += (size_t)snprintf(text + at, sizeof(text) - at, "b%d: *a0\n", i);
	assert_true(at < sizeof(text) - 1);
	expect_error(write_tmp("bomb.yaml", text), "more than 4096 keys");
}

static void test_model_config_errors(void **state)
{
	struct model_config mc;
	struct err err = {0};
	const char *p;

	p = write_tmp("m1.yaml", "architecture:\n  backbone: resnet50\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, "m1.yaml:2: architecture.backbone: 'resnet50' is not "
	                                "supported"));
	p = write_tmp("m2.yaml", "architecture:\n  backbone: mobilenetv2_100\nimage:\n"
	                         "  image_channels: 1\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, ":4: image.image_channels"));
	p = write_tmp("m3.yaml", "image:\n  image_height: 224\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, "architecture.backbone: required key missing"));
	p = write_tmp(
	    "m4.yaml",
	    "architecture:\n  backbone: mobilenetv2_100\naugmentation:\n"
	    "  custom_inference_augmentations: '{\"transform\": {\"__class_fullname__\": "
	    "\"Compose\", \"transforms\": [{\"__class_fullname__\": \"HorizontalFlip\"}]}}'\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, "only a plain Resize"));
	p = write_tmp("m5.yaml", "architecture: [1, 2\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, "invalid YAML"));
	p = write_tmp("m6.yaml", "architecture:\n  backbone: mobilenetv2_100\nimage:\n"
	                         "  image_mean: [1, 2]\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, ":4: image.image_mean: expected a list of 3 numbers"));
	p = write_tmp("m7.yaml", "architecture:\n  backbone: mobilenetv2_100\nimage:\n"
	                         "  image_height: 8\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(
	    strstr(err.msg, "m7.yaml:4: image.image_height: 8 is out of range [16, 4096]"));
	p = write_tmp("m8.yaml", "architecture:\n  backbone: mobilenetv2_100\n  pool: Max\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, "m8.yaml:3: architecture.pool: 'Max' is not supported"));
}

static void test_missing_files_are_named(void **state)
{
	struct config *cfg = malloc(sizeof(*cfg));
	struct err err = {0};

	assert_int_equal(config_load(cfg, "/nonexistent/pipeline.yaml", &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/pipeline.yaml: cannot open"));
	write_tmp("p2.yaml", "model:\n  config: nothere.yaml\n  weights: nothere.safetensors\n"
	                     "source:\n  csv: a.csv\n  images_root: .\n");
	/* the model config is checked by config_load, the weights by config_check_weights */
	assert_int_equal(
	    config_load(cfg,
	                write_tmp("p2.yaml", "model:\n  config: nothere.yaml\n"
	                                     "  weights: nothere.safetensors\nsource:\n"
	                                     "  csv: a.csv\n  images_root: .\n"),
	                &err),
	    -1);
	assert_non_null(strstr(err.msg, "model.config:"));
	assert_int_equal(config_load(cfg, pipeline_yaml("", ""), &err), 0);
	snprintf(cfg->model_weights, sizeof(cfg->model_weights), "%s/nothere.safetensors", tmpdir);
	assert_int_equal(config_check_weights(cfg, &err), -1);
	assert_non_null(strstr(err.msg, "model.weights: cannot read"));
	free(cfg);
}

static void test_print_config_masks_password(void **state)
{
	struct config *cfg = malloc(sizeof(*cfg));
	struct err err = {0};
	char buf[8192] = "";
	char masked[256];
	FILE *fp;
	size_t n;

	assert_int_equal(config_load(cfg, pipeline_yaml("", ""), &err), 0);
	fp = tmpfile();
	config_print(cfg, fp);
	rewind(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	assert_null(strstr(buf, "hunter2"));
	assert_non_null(strstr(buf, "password=***"));
	assert_non_null(strstr(buf, "batch_size: 8"));
	assert_non_null(strstr(buf, "backbone: mobilenetv2_100"));
	config_mask_conninfo("postgresql://bob:s3cret@db/bikes", masked, sizeof(masked));
	assert_string_equal(masked, "postgresql://bob:***@db/bikes");
	config_mask_conninfo("host=x password='a b\\' c' user=u", masked, sizeof(masked));
	assert_string_equal(masked, "host=x password=*** user=u");
	free(cfg);
}

static void test_kafka_map_passes_through_and_hides_secrets(void **state)
{
	struct config *cfg = malloc(sizeof(*cfg));
	struct err err = {0};
	char buf[8192] = "";
	FILE *fp;
	size_t n;

	assert_int_equal(config_load(cfg,
	                             pipeline_yaml("kafka:\n"
	                                           "  bootstrap.servers: \"b1:9093,b2:9093\"\n"
	                                           "  security.protocol: sasl_ssl\n"
	                                           "  sasl.mechanisms: SCRAM-SHA-512\n"
	                                           "  sasl.username: pipeline\n"
	                                           "  sasl.password: s3cr3t-kafka\n"
	                                           "  ssl.key.password: k3y-pass\n"
	                                           "kafka_source:\n"
	                                           "  topic: ad-images\n"
	                                           "  clock_skew_s: 600\n",
	                                           ""),
	                             &err),
	                 0);
	assert_int_equal(cfg->kafka.n, 6);
	assert_string_equal(config_prop(cfg, "bootstrap.servers"), "b1:9093,b2:9093");
	assert_string_equal(config_prop(cfg, "sasl.password"), "s3cr3t-kafka");
	assert_null(config_prop(cfg, "group.id"));
	assert_string_equal(cfg->ks.topic, "ad-images");
	assert_string_equal(cfg->ks.group_id, "pipeline-run"); /* default */
	assert_int_equal(cfg->ks.clock_skew_s, 600);
	assert_true(config_key_is_secret("sasl.password"));
	assert_true(config_key_is_secret("ssl.keystore.password"));
	assert_true(config_key_is_secret("sasl.oauthbearer.client.secret"));
	assert_false(config_key_is_secret("sasl.username"));
	fp = tmpfile();
	config_print(cfg, fp);
	rewind(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	assert_null(strstr(buf, "s3cr3t-kafka"));
	assert_null(strstr(buf, "k3y-pass"));
	assert_non_null(strstr(buf, "  sasl.password: \"***\""));
	assert_non_null(strstr(buf, "  sasl.username: \"pipeline\""));
	assert_non_null(strstr(buf, "  topic: \"ad-images\""));
	free(cfg);
}

static void test_kafka_map_errors_name_the_line(void **state)
{
	struct config *cfg = malloc(sizeof(*cfg));
	struct err err = {0};

	/* the pipeline's own settings may not be overridden */
	assert_int_equal(config_load(cfg, pipeline_yaml("kafka:\n  group.id: other\n", ""), &err),
	                 -1);
	assert_non_null(strstr(err.msg, ":4: kafka.group.id: set by the pipeline"));
	assert_int_equal(
	    config_load(cfg, pipeline_yaml("kafka:\n  enable.auto.commit: true\n", ""), &err), -1);
	assert_non_null(strstr(err.msg, "kafka.enable.auto.commit: set by the pipeline"));
	/* librdkafka checks names and values */
	assert_int_equal(
	    config_load(cfg, pipeline_yaml("kafka:\n  bootstrap.srevers: x\n", ""), &err), -1);
	assert_non_null(strstr(err.msg, ":4: kafka.bootstrap.srevers: No such configuration"));
	assert_int_equal(
	    config_load(cfg, pipeline_yaml("kafka:\n  session.timeout.ms: soon\n", ""), &err), -1);
	assert_non_null(strstr(err.msg, ":4: kafka.session.timeout.ms: Invalid value"));
	/* a bad secret's value is not echoed */
	assert_int_equal(
	    config_load(cfg, pipeline_yaml("kafka:\n  sasl.password: [a, b]\n", ""), &err), -1);
	assert_non_null(strstr(err.msg, "kafka.sasl.password: expected a single value"));
	/* the kafka source needs a topic and brokers */
	for (int i = 0; i < 2; i++) {
		char text[1024];

		pipeline_yaml("", "");
		snprintf(text, sizeof(text),
		         "source:\n  kind: kafka\n%s"
		         "model:\n  config: model.yaml\n"
		         "  weights: %s/models/mobilenetv2_100.coral_imagenet.safetensors\n",
		         i ? "kafka_source:\n  topic: t\n" : "kafka:\n  bootstrap.servers: b:1\n",
		         shared);
		assert_int_equal(config_load(cfg, write_tmp("k.yaml", text), &err), -1);
		assert_non_null(
		    strstr(err.msg, i ? "source.kind kafka needs kafka.bootstrap.servers"
		                      : "source.kind kafka needs kafka_source.topic"));
	}
	free(cfg);
}

static void test_training_keys_lists_and_folds(void **state)
{
	struct model_config mc;
	struct err err = {0};
	const char *p;
	int folds[64], n = 0;

	p = write_tmp("t1.yaml", "architecture:\n  backbone: mobilenetv2_100\ntraining:\n"
	                         "  differential_learning_rate_layers: [backbone]\n"
	                         "  schedule: Linear\ndataset:\n  validation_strategy: kfold\n"
	                         "  validation_size: 0.25\n  folds: ['1', 3]\n  data_sample: 0.5\n"
	                         "  label_columns: item\n");
	assert_int_equal(config_load_model(&mc, p, &err), 0);
	assert_string_equal(mc.train.diff_lr_layers, "backbone");
	assert_string_equal(mc.train.schedule, "Linear");
	assert_string_equal(mc.train.validation_strategy, "kfold");
	assert_string_equal(mc.train.label_column, "item");
	assert_string_equal(mc.train.image_column, "image");
	assert_float_equal(mc.train.data_sample, 0.5, 0);
	assert_int_equal(config_fold_count(&mc.train), 4);
	assert_int_equal(config_folds(&mc.train, folds, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(folds[1], 3);

	p = write_tmp("t2.yaml", "architecture:\n  backbone: mobilenetv2_100\ntraining:\n"
	                         "  differential_learning_rate_layers: [backbone, neck]\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, "t2.yaml:4: training.differential_learning_rate_layers: "
	                                "'neck' is not supported (one of: backbone, head)"));
	p = write_tmp("t3.yaml", "architecture:\n  backbone: mobilenetv2_100\ndataset:\n"
	                         "  folds: [5]\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, "dataset.folds: '5' are not fold numbers below 5"));
	p = write_tmp("t4.yaml", "architecture:\n  backbone: mobilenetv2_100\ntraining:\n"
	                         "  optimizer: SGD\n");
	assert_int_equal(config_load_model(&mc, p, &err), -1);
	assert_non_null(strstr(err.msg, "t4.yaml:4: training.optimizer: 'SGD' is not supported"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_file_and_defaults),
	    cmocka_unit_test(test_reference_model_config_accepted),
	    cmocka_unit_test(test_unknown_key_names_file_and_line),
	    cmocka_unit_test(test_bad_values_name_line_and_reason),
	    cmocka_unit_test(test_wrong_types_ranges_and_broken_files),
	    cmocka_unit_test(test_one_yaml_document),
	    cmocka_unit_test(test_empty_section),
	    cmocka_unit_test(test_alias_amplification_is_bounded),
	    cmocka_unit_test(test_model_config_errors),
	    cmocka_unit_test(test_missing_files_are_named),
	    cmocka_unit_test(test_print_config_masks_password),
	    cmocka_unit_test(test_kafka_map_passes_through_and_hides_secrets),
	    cmocka_unit_test(test_kafka_map_errors_name_the_line),
	    cmocka_unit_test(test_training_keys_lists_and_folds),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
