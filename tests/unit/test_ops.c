/* test_ops.c - the pieces of operations that need no service: the progress
 * bar, metrics labels and file, HTML escaping, lock scopes, the check of a
 * registered model's weights. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lock.h"
#include "metrics.h"
#include "progress.h"
#include "registry.h"
#include "report.h"
#include "sha256.h"

static void test_progress_bar_known_total(void **state)
{
	char out[256];

	progress_format(out, sizeof(out), 100, 2, 400, 10.0, 20);
	assert_string_equal(out,
	                    "[#####...............] 100/400 photos  10.0/s  ETA 30s  failed 2");
	progress_format(out, sizeof(out), 400, 0, 400, 40.0, 10);
	assert_string_equal(out, "[##########] 400/400 photos  10.0/s  ETA 0s");
}

static void test_progress_bar_unknown_total(void **state)
{
	char out[256];

	progress_format(out, sizeof(out), 16, 0, -1, 2.0, 5);
	assert_string_equal(out, "[..#..] 16 photos  8.0/s");
}

static void test_progress_durations(void **state)
{
	char out[32];

	assert_string_equal(progress_duration(out, sizeof(out), 42.4), "42s");
	assert_string_equal(progress_duration(out, sizeof(out), 200), "3m20s");
	assert_string_equal(progress_duration(out, sizeof(out), 3720), "1h02m");
	assert_string_equal(progress_duration(out, sizeof(out), -5), "0s");
}

/* A run shorter than the redraw interval must still show its bar once. */
static void test_progress_first_update_draws_at_once(void **state)
{
	char path[] = "/tmp/test_ops_tty.XXXXXX";
	struct progress p;
	char buf[512] = "";
	int fd = mkstemp(path), saved = dup(2);
	FILE *fp;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	progress_init(&p, 7, 1, 60);
	progress_update(&p, 3, 0);
	progress_update(&p, 4, 0); /* inside the redraw interval: not drawn */
	progress_finish(&p);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fp = fdopen(fd, "r");
	assert_non_null(fp);
	rewind(fp);
	buf[fread(buf, 1, sizeof(buf) - 1, fp)] = '\0';
	fclose(fp);
	unlink(path);
	assert_non_null(strstr(buf, "] 3/7 photos"));
	assert_null(strstr(buf, "4/7"));
	/* cleared before whatever is printed next */
	assert_int_equal(strcmp(buf + strlen(buf) - 4, "\r\033[K"), 0);
}

static void test_reason_labels(void **state)
{
	char out[48];

	metrics_reason_label("too many pixels: 9000x9000, limit 100000000", out, sizeof(out));
	assert_string_equal(out, "too_many_pixels");
	metrics_reason_label("loader blocked: svgload_buffer (untrusted)", out, sizeof(out));
	assert_string_equal(out, "loader_blocked");
	metrics_reason_label("image path leaves the images folder ('..')", out, sizeof(out));
	assert_string_equal(out, "image_path_leaves_the_images_folder");
	metrics_reason_label("\"}\n{evil=\"1", out, sizeof(out));
	assert_string_equal(out, "evil_1");
	metrics_reason_label("", out, sizeof(out));
	assert_string_equal(out, "unknown");
}

static void test_failure_kinds_are_bounded(void **state)
{
	struct metrics *m = malloc(sizeof(*m));
	char reason[32];
	int i;

	metrics_init(m, NULL, "nightly", NULL, "t");
	for (i = 0; i < 100; i++) {
		snprintf(reason, sizeof(reason), "kind %c%c", 'a' + i % 26, 'a' + i / 26);
		metrics_count_failure(m, "resize", reason);
	}
	metrics_count_failure(m, "resize", "kind aa: again");
	assert_int_equal(m->nreasons, METRICS_REASONS_MAX);
	assert_string_equal(m->reasons[0].reason, "kind_aa");
	assert_int_equal(m->reasons[0].n, 2);
	assert_string_equal(m->reasons[METRICS_REASONS_MAX - 1].reason, "other");
	assert_int_equal(m->reasons[METRICS_REASONS_MAX - 1].n, 100 - (METRICS_REASONS_MAX - 1));
	free(m);
}

static void test_metrics_file_replaced_whole(void **state)
{
	char dir[] = "/tmp/test_ops.XXXXXX", path[256], line[256];
	struct metrics *m = malloc(sizeof(*m));
	struct err err = {0};
	struct stat st;
	FILE *fp;
	int found = 0;

	assert_non_null(mkdtemp(dir));
	metrics_init(m, dir, "backfill", "2026-11-30", "0.1.0");
	m->photos_in = 7;
	metrics_count_failure(m, "fetch", "cannot open photo: No such file or directory");
	metrics_stage_add(m, METRICS_EMBED, 1500000000u);
	assert_int_equal(metrics_write(m, &err), 0);
	m->photos_in = 9;
	assert_int_equal(metrics_write(m, &err), 0);
	snprintf(path, sizeof(path), "%s/pipeline-run-backfill.prom", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		found += !strcmp(line, "pipeline_run_photos_processed{kind=\"backfill\"} 9\n");
		found +=
		    !strcmp(line, "pipeline_run_stage_seconds{kind=\"backfill\",stage=\"embed\"} "
		                  "1.500\n");
		found += !strcmp(line, "pipeline_run_photos_failed_by_reason{kind=\"backfill\","
		                       "stage=\"fetch\",reason=\"cannot_open_photo\"} 1\n");
		found += strstr(line, "date=\"2026-11-30\"") != NULL;
	}
	fclose(fp);
	assert_int_equal(found, 4);
	unlink(path);
	assert_int_equal(rmdir(dir), 0); /* no temporary file left behind */
	free(m);
}

static void test_metrics_unwritable_folder_is_an_error(void **state)
{
	struct metrics *m = malloc(sizeof(*m));
	struct err err = {0};

	metrics_init(m, "/nonexistent/folder", "nightly", NULL, "t");
	assert_int_equal(metrics_write(m, &err), -1);
	assert_non_null(strstr(err.msg, "cannot write /nonexistent/folder/.pipeline-run-nightly"));
	free(m);
}

static void test_html_escape(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	report_html_escape(fp, "<img src=x onerror='a()'>&\"");
	fclose(fp);
	assert_string_equal(buf, "&lt;img src=x onerror=&#39;a()&#39;&gt;&amp;&quot;");
	free(buf);
}

static void test_lock_scopes(void **state)
{
	char s[LOCK_SCOPE_MAX];

	lock_scope("backfill", "2026-11-30", s);
	assert_string_equal(s, "date:2026-11-30");
	lock_scope("nightly", NULL, s);
	assert_string_equal(s, "nightly");
	lock_scope("retrain", NULL, s);
	assert_string_equal(s, "retrain");
}

/* SHA-256 of "abc": the test vector of FIPS 180-2. */
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

/* --promote and a run with the active model refuse weights whose file changed since they
 * were registered. */
static void test_replaced_weights_are_refused(void **state)
{
	char path[] = "/tmp/test_ops_weights.XXXXXX", hex[SHA256_HEX_SIZE];
	struct store_model_info info = {0};
	struct err err = {0};
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abc", 3), 3);
	close(fd);
	sha256_hex("abc", 3, hex);
	assert_string_equal(hex, ABC_SHA256);
	assert_int_equal(sha256_file(path, hex, &err), 0);
	assert_string_equal(hex, ABC_SHA256);

	info.id = 7;
	snprintf(info.weights_path, sizeof(info.weights_path), "%s", path);
	snprintf(info.weights_sha256, sizeof(info.weights_sha256), "%s", ABC_SHA256);
	assert_int_equal(registry_check_weights(&info, &err), 0);

	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "d", 1), 1);
	close(fd);
	assert_int_equal(registry_check_weights(&info, &err), -1);
	assert_non_null(strstr(err.msg, "model 7: "));
	assert_non_null(strstr(err.msg, "registered " ABC_SHA256));

	unlink(path);
	assert_int_equal(registry_check_weights(&info, &err), -1);
	assert_non_null(strstr(err.msg, "model 7: "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_progress_bar_known_total),
	    cmocka_unit_test(test_progress_bar_unknown_total),
	    cmocka_unit_test(test_progress_durations),
	    cmocka_unit_test(test_progress_first_update_draws_at_once),
	    cmocka_unit_test(test_reason_labels),
	    cmocka_unit_test(test_failure_kinds_are_bounded),
	    cmocka_unit_test(test_metrics_file_replaced_whole),
	    cmocka_unit_test(test_metrics_unwritable_folder_is_an_error),
	    cmocka_unit_test(test_html_escape),
	    cmocka_unit_test(test_lock_scopes),
	    cmocka_unit_test(test_replaced_weights_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
