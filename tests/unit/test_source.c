/* The CSV directory source: dates, CSV quirks, bad rows, path escapes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "source.h"

static char tmpdir[256];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_source.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static void test_rfc3339_parsing(void **state)
{
	time_t t;

	assert_int_equal(source_parse_time("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(source_parse_time("2026-11-30T09:29:22Z", &t), 0);
	assert_int_equal(t, 1796030962);
	assert_int_equal(source_parse_time("2026-11-30T10:29:22.123+01:00", &t), 0);
	assert_int_equal(t, 1796030962);
	assert_int_equal(source_parse_time("2024-02-29T00:00:00Z", &t), 0);
	assert_int_equal(source_parse_time("2023-02-29T00:00:00Z", &t), -1);
	assert_int_equal(source_parse_time("2026-11-30 09:29:22", &t), -1); /* no zone */
	assert_int_equal(source_parse_time("2026-11-30T25:00:00Z", &t), -1);
	assert_int_equal(source_parse_time("2026-11-30T09:29:22Zjunk", &t), -1);
	assert_int_equal(source_parse_time("", &t), -1);
	/* the database's range of offsets: up to 15:59 either way */
	assert_int_equal(source_parse_time("2026-11-30T09:29:22-15:59", &t), 0);
	assert_int_equal(source_parse_time("2026-11-30T09:29:22+16:00", &t), -1);
	assert_int_equal(source_parse_time("2026-11-30T09:29:22-23:59", &t), -1);
}

static void test_date_window_is_strict(void **state)
{
	struct source_window w;
	struct err err = {0};

	assert_int_equal(source_window_date("2026-11-30", &w, &err), 0);
	assert_int_equal(w.since, 1795996800);
	assert_int_equal(w.until - w.since, 86400);
	assert_int_equal(source_window_date("2026-11-31", &w, &err), -1);
	assert_non_null(strstr(err.msg, "YYYY-MM-DD"));
	assert_int_equal(source_window_date("2026-1-30", &w, &err), -1);
	assert_int_equal(source_window_date("2026-11-30x", &w, &err), -1);
	assert_int_equal(source_window_date("", &w, &err), -1);
	/* an open window ends in 2100: a later start says so, not "--until must be after" */
	assert_int_equal(source_window_parse(NULL, "9999-12-31", NULL, &w, &err), -1);
	assert_non_null(strstr(err.msg, "past 2100-01-01"));
	assert_int_equal(source_window_parse(NULL, "2099-12-31", NULL, &w, &err), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static struct source *open_csv(const char *text, const char *date, struct err *err)
{
	static struct config cfg;
	struct source_window w = {0};

	memset(&cfg, 0, sizeof(cfg));
	cfg.source = SOURCE_DIR;
	snprintf(cfg.source_csv, sizeof(cfg.source_csv), "%s/ads.csv", tmpdir);
	snprintf(cfg.images_root, sizeof(cfg.images_root), "%s", tmpdir);
	if (text)
		write_file(cfg.source_csv, text);
	if (date)
		assert_int_equal(source_window_date(date, &w, err), 0);
	return source_open(&cfg, &w, err);
}

static void test_date_selects_that_utc_day(void **state)
{
	struct err err = {0};
	struct source *src = open_csv("image,created_at,ad_id,image_id,extra\n"
	                              "a.jpg,2026-11-29T23:59:59Z,1,10,x\n"
	                              "b.jpg,2026-11-30T00:00:00Z,1,11,x\n"
	                              "c.jpg,2026-11-30T23:59:59Z,2,12,x\n"
	                              "d.jpg,2026-12-01T00:00:00Z,2,13,x\n"
	                              "e.jpg,2026-11-30T23:30:00-01:00,3,14,x\n",
	                              "2026-11-30", &err);
	struct item it;
	char got[64] = "";
	size_t at = 0;

	assert_non_null(src);
	while (source_next(src, &it, &err) == 1) {
		assert_true(it.ok);
		at += (size_t)snprintf(got + at, sizeof(got) - at, "%s ", it.image_id);
		assert_true(at < sizeof(got));
	}
	assert_string_equal(got, "11 12 ");
	source_close(src);
}

static void test_bad_rows_become_failed_items(void **state)
{
	struct err err = {0};
	struct source *src = open_csv("ad_id,image_id,image,created_at\n"
	                              "1,10,ok.jpg,2026-11-30T01:00:00Z\n"
	                              "1,,x.jpg,2026-11-30T01:00:00Z\n"
	                              "1,12,../../etc/passwd,2026-11-30T01:00:00Z\n"
	                              "1,13,/etc/passwd,2026-11-30T01:00:00Z\n"
	                              "1,14,y.jpg,yesterday\n"
	                              "1,\"15,\"\"q\"\"\",\"with,comma.jpg\",2026-11-30T01:00:00Z\n"
	                              "1,16\n"
	                              "\n"
	                              "1,\"17,broken.jpg,2026-11-30T01:00:00Z\n",
	                              NULL, &err);
	struct item it;

	assert_non_null(src);
	assert_int_equal(source_next(src, &it, &err), 1);
	assert_true(it.ok);
	assert_string_equal(it.source, "ads.csv:2");
	assert_non_null(strstr(it.url, "/ok.jpg"));
	assert_memory_equal(it.url, "file:///", 8);

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_false(it.ok);
	assert_string_equal(it.failure_reason, "missing image_id");
	assert_false(it.has_identity);

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_false(it.ok);
	assert_true(it.has_identity);
	assert_non_null(strstr(it.failure_reason, ".."));

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_false(it.ok);
	assert_non_null(strstr(it.failure_reason, "absolute"));

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_false(it.ok);
	assert_non_null(strstr(it.failure_reason, "RFC 3339"));
	assert_string_equal(it.created_at, ""); /* not handed to the database */

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_true(it.ok);
	assert_string_equal(it.image_id, "15,\"q\"");
	assert_non_null(strstr(it.url, "/with,comma.jpg"));

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_false(it.ok);
	assert_string_equal(it.failure_reason, "too few fields");
	assert_string_equal(it.source, "ads.csv:8");

	assert_int_equal(source_next(src, &it, &err), 1); /* blank line skipped */
	assert_false(it.ok);
	assert_string_equal(it.source, "ads.csv:10");
	assert_non_null(strstr(it.failure_reason, "malformed"));

	assert_int_equal(source_next(src, &it, &err), 0);
	source_close(src);
}

/* A NUL cannot be part of a C string id: the line is refused, and so is a line that is not
 * UTF-8 (the database would refuse it, and with it the whole batch). Bytes that mean
 * something in a URL are escaped in the file url and read back by name. */
static void test_nul_bad_utf8_and_url_bytes(void **state)
{
	static const char csv[] =
	    "ad_id,image_id,image,created_at\n"
	    "1,a\0b,x.jpg,2026-11-30T01:00:00Z\n"
	    "1,20,y.jpg,2026-11-30T01:00:00Z\0junk\n"
	    "1,caf\xe9,z.jpg,2026-11-30T01:00:00Z\n"
	    "1,\xc3\xa9\xf0\x9f\x9a\xb2,50%25 #1?.jpg,2026-11-30T01:00:00Z\r\n"
	    "1,last,w.jpg,2026-11-30T01:00:00Z";
	struct err err = {0};
	struct item it;
	char path[512];
	struct source *src;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/ads.csv", tmpdir);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(csv, 1, sizeof(csv) - 1, fp), sizeof(csv) - 1);
	fclose(fp);
	src = open_csv(NULL, NULL, &err);
	assert_non_null(src);

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_false(it.ok);
	assert_false(it.has_identity);
	assert_string_equal(it.source, "ads.csv:2");
	assert_string_equal(it.failure_reason, "NUL byte in line");

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_false(it.ok);
	assert_string_equal(it.source, "ads.csv:3");
	assert_string_equal(it.failure_reason, "NUL byte in line");

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_false(it.ok);
	assert_false(it.has_identity);
	assert_string_equal(it.source, "ads.csv:4");
	assert_string_equal(it.failure_reason, "line is not valid UTF-8");

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_true(it.ok);
	assert_string_equal(it.image_id, "\xc3\xa9\xf0\x9f\x9a\xb2");
	assert_string_equal(it.created_at, "2026-11-30T01:00:00Z");
	assert_non_null(strstr(it.url, "/50%2525 %231%3F.jpg"));

	assert_int_equal(source_next(src, &it, &err), 1);
	assert_true(it.ok);
	assert_string_equal(it.image_id, "last");
	assert_string_equal(it.source, "ads.csv:6");
	assert_int_equal(source_next(src, &it, &err), 0);
	source_close(src);
}

/* A failure reason is always valid UTF-8, however it was cut or whatever it quoted. */
static void test_failure_reasons_stay_utf8(void **state)
{
	struct item it;
	char reason[600] = "";
	size_t i;

	for (i = 0; i < 200; i++)
		memcpy(reason + 2 * i, "\xc3\xa9", 2); /* 400 bytes of é: the field cuts one */
	memset(&it, 0, sizeof(it));
	item_fail(&it, "resize", reason);
	assert_int_equal(strlen(it.failure_reason), sizeof(it.failure_reason) - 1);
	assert_int_equal((unsigned char)it.failure_reason[sizeof(it.failure_reason) - 2], '?');
	assert_memory_equal(it.failure_reason, reason, sizeof(it.failure_reason) - 2);
	item_fail(&it, "resize", "decode failed: marker \xff\xd8 at 12");
	assert_string_equal(it.failure_reason, "decode failed: marker ?? at 12");
}

/* Spreadsheets save UTF-8 CSV with a byte order mark before the header. */
static void test_byte_order_mark_before_the_header(void **state)
{
	struct err err = {0};
	struct source *src = open_csv("\xef\xbb\xbf"
	                              "ad_id,image_id,image,created_at\r\n"
	                              "1,10,ok.jpg,2026-11-30T01:00:00Z\r\n",
	                              NULL, &err);
	struct item it;

	assert_non_null(src);
	assert_int_equal(source_next(src, &it, &err), 1);
	assert_true(it.ok);
	assert_string_equal(it.ad_id, "1");
	assert_string_equal(it.created_at, "2026-11-30T01:00:00Z");
	assert_int_equal(source_next(src, &it, &err), 0);
	source_close(src);
}

static void test_missing_column_is_fatal(void **state)
{
	struct err err = {0};

	assert_null(open_csv("ad_id,image,created_at\n", NULL, &err));
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "'image_id'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc3339_parsing),
	    cmocka_unit_test(test_date_window_is_strict),
	    cmocka_unit_test(test_date_selects_that_utc_day),
	    cmocka_unit_test(test_bad_rows_become_failed_items),
	    cmocka_unit_test(test_nul_bad_utf8_and_url_bytes),
	    cmocka_unit_test(test_failure_reasons_stay_utf8),
	    cmocka_unit_test(test_byte_order_mark_before_the_header),
	    cmocka_unit_test(test_missing_column_is_fatal),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
