/* The event parser: valid events, every kind of bad value, hostile ids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

#define MAXB 65536

static int parse(const char *json, const char *key, struct event *ev, char *reason)
{
	return event_parse(json, strlen(json), key, key ? strlen(key) : 0, MAXB, ev, reason);
}

/* Parse JSON, expect a failure whose reason contains WANT. */
static void expect_bad(const char *json, const char *key, const char *want)
{
	struct event ev;
	char reason[EVENT_REASON_MAX];

	if (parse(json, key, &ev, reason) != -1 || !strstr(reason, want)) {
		print_error("event %s: reason '%s', wanted '%s'\n", json, reason, want);
		fail();
	}
}

static void test_valid_event_with_unknown_fields(void **state)
{
	struct event ev;
	char reason[EVENT_REASON_MAX];
	const char *json = "{\"ad_id\": \"9000001\", \"image_id\": \"30\", \"extra\": [1, {}],"
	                   " \"url\": \"file:///data/ads/30.jpg\","
	                   " \"created_at\": \"2026-11-30T09:29:22Z\", \"n\": null}\n";

	assert_int_equal(parse(json, "9000001", &ev, reason), 0);
	assert_string_equal(reason, "");
	assert_string_equal(ev.ad_id, "9000001");
	assert_string_equal(ev.image_id, "30");
	assert_string_equal(ev.url, "file:///data/ads/30.jpg");
	assert_string_equal(ev.created_at, "2026-11-30T09:29:22Z");
	assert_int_equal(ev.created, 1796030962);
	assert_int_equal(ev.has_identity, 1);
	/* no key is fine: the ad id comes from the value */
	assert_int_equal(parse(json, NULL, &ev, reason), 0);
}

static void test_value_need_not_be_nul_terminated(void **state)
{
	const char *json = "{\"ad_id\":\"1\",\"image_id\":\"2\",\"url\":\"http://h/x\","
	                   "\"created_at\":\"2026-11-30T09:29:22Z\"}GARBAGE";
	size_t len = strlen(json) - strlen("GARBAGE");
	struct event ev;
	char reason[EVENT_REASON_MAX];

	assert_int_equal(event_parse(json, len, NULL, 0, MAXB, &ev, reason), 0);
	assert_string_equal(ev.url, "http://h/x");
	assert_int_equal(event_parse(json, strlen(json), NULL, 0, MAXB, &ev, reason), -1);
	assert_non_null(strstr(reason, "junk after the JSON value"));
}

static void test_malformed_json(void **state)
{
	expect_bad("", NULL, "empty event");
	expect_bad("{\"ad_id\": \"1\"", NULL, "malformed JSON at byte");
	expect_bad("not json", NULL, "malformed JSON at byte 0");
	expect_bad("[1, 2]", NULL, "not a JSON object");
	expect_bad("\"a string\"", NULL, "not a JSON object");
	expect_bad("{\"ad_id\": \"1\"} {}", NULL, "junk after");
}

static void test_missing_and_wrong_typed_fields(void **state)
{
	expect_bad("{}", NULL, "missing field ad_id");
	expect_bad("{\"ad_id\": null, \"image_id\": \"1\"}", NULL, "missing field ad_id");
	expect_bad("{\"ad_id\": 9000001, \"image_id\": \"1\"}", NULL,
	           "field ad_id must be a string");
	expect_bad("{\"ad_id\": \"1\", \"image_id\": [\"1\"]}", NULL,
	           "field image_id must be a string");
	expect_bad("{\"ad_id\": \"\", \"image_id\": \"1\"}", NULL, "field ad_id is empty");
	expect_bad("{\"ad_id\": \"1\", \"image_id\": \"2\"}", NULL, "missing field created_at");
	expect_bad("{\"ad_id\": \"1\", \"image_id\": \"2\", \"created_at\": true}", NULL,
	           "field created_at must be a string");
	expect_bad("{\"ad_id\": \"1\", \"image_id\": \"2\", \"created_at\": \"yesterday\"}", NULL,
	           "created_at is not an RFC 3339 timestamp");
	/* times PostgreSQL would refuse, failing the whole batch and every nightly after it */
	expect_bad(
	    "{\"ad_id\": \"1\", \"image_id\": \"2\", \"created_at\": \"2026-02-30T01:00:00Z\"}",
	    NULL, "created_at is not an RFC 3339 timestamp");
	expect_bad("{\"ad_id\": \"1\", \"image_id\": \"2\","
	           " \"created_at\": \"2026-11-30T01:00:00+16:00\"}",
	           NULL, "created_at is not an RFC 3339 timestamp");
	expect_bad("{\"ad_id\": \"1\", \"image_id\": \"2\","
	           " \"created_at\": \"2026-11-30T09:29:22Z\"}",
	           NULL, "missing field url");
	expect_bad("{\"ad_id\": \"1\", \"image_id\": \"2\", \"url\": 5,"
	           " \"created_at\": \"2026-11-30T09:29:22Z\"}",
	           NULL, "field url must be a string");
}

static void test_identity_kept_when_later_field_is_bad(void **state)
{
	struct event ev;
	char reason[EVENT_REASON_MAX];

	assert_int_equal(parse("{\"ad_id\": \"7\", \"image_id\": \"8\", \"url\": \"ftp://x/y\","
	                       " \"created_at\": \"2026-11-30T09:29:22Z\"}",
	                       NULL, &ev, reason),
	                 -1);
	assert_int_equal(ev.has_identity, 1);
	assert_string_equal(ev.image_id, "8");
	assert_string_equal(reason, "url scheme 'ftp' not allowed (file, http, https)");
	assert_int_equal(parse("{\"ad_id\": 7, \"image_id\": \"8\"}", NULL, &ev, reason), -1);
	assert_int_equal(ev.has_identity, 0);
}

static void test_huge_values(void **state)
{
	char *big = malloc(MAXB + 64);
	char id[300];
	char json[1024];
	struct event ev;
	char reason[EVENT_REASON_MAX];

	assert_non_null(big);
	memset(big, ' ', MAXB + 63);
	big[0] = '{';
	big[MAXB + 62] = '}';
	big[MAXB + 63] = '\0';
	assert_int_equal(event_parse(big, strlen(big), NULL, 0, MAXB, &ev, reason), -1);
	assert_string_equal(reason, "event of 65599 bytes is over the limit of 65536");
	free(big);

	memset(id, 'a', 200);
	id[200] = '\0';
	snprintf(json, sizeof(json), "{\"ad_id\": \"1\", \"image_id\": \"%s\"}", id);
	expect_bad(json, NULL, "field image_id longer than 127 bytes");
	snprintf(json, sizeof(json),
	         "{\"ad_id\": \"1\", \"image_id\": \"1\", \"url\": \"%s\","
	         " \"created_at\": \"2026-11-30T09:29:22Z\"}",
	         "file:///x");
	assert_int_equal(parse(json, NULL, &ev, reason), 0);
}

static void test_hostile_ids(void **state)
{
	struct event ev;
	char reason[EVENT_REASON_MAX];
	const char *sql = "{\"ad_id\": \"x'); drop table ad_images; --\", \"image_id\": \"1;2\","
	                  " \"url\": \"file:///a\", \"created_at\": \"2026-11-30T09:29:22Z\"}";

	/* quotes and semicolons are data: kept verbatim */
	assert_int_equal(parse(sql, NULL, &ev, reason), 0);
	assert_string_equal(ev.ad_id, "x'); drop table ad_images; --");
	assert_string_equal(ev.image_id, "1;2");
	/* unicode, escaped or raw, is kept as UTF-8 */
	assert_int_equal(
	    parse("{\"ad_id\": \"v\\u00e9lo\", \"image_id\": \"\xc3\xa9\\ud83d\\udeb2\","
	          " \"url\": \"file:///a\", \"created_at\": \"2026-11-30T09:29:22Z\"}",
	          NULL, &ev, reason),
	    0);
	assert_string_equal(ev.ad_id, "v\xc3\xa9lo");
	assert_string_equal(ev.image_id, "\xc3\xa9\xf0\x9f\x9a\xb2");
	/* NUL, escaped or raw, would cut an id short */
	expect_bad("{\"ad_id\": \"1\\u0000; drop\", \"image_id\": \"2\"}", NULL, "NUL character");
	assert_int_equal(event_parse("{\"ad_id\": \"1\0\"}", 14, NULL, 0, MAXB, &ev, reason), -1);
	assert_string_equal(reason, "event holds a NUL character");
	/* an escaped backslash before u0000 is text, not a NUL */
	assert_int_equal(
	    parse("{\"ad_id\": \"a\\\\u0000\", \"image_id\": \"2\", \"url\": \"file:///a\","
	          " \"created_at\": \"2026-11-30T09:29:22Z\"}",
	          NULL, &ev, reason),
	    0);
	assert_string_equal(ev.ad_id, "a\\u0000");
	/* invalid UTF-8 and control characters would break the database write */
	expect_bad("{\"ad_id\": \"\xff\xfe\", \"image_id\": \"2\"}", NULL, "not valid UTF-8");
	expect_bad("{\"ad_id\": \"\xc0\xaf\", \"image_id\": \"2\"}", NULL, "not valid UTF-8");
	expect_bad("{\"ad_id\": \"\xed\xa0\x80\", \"image_id\": \"2\"}", NULL, "not valid UTF-8");
	expect_bad("{\"ad_id\": \"a\\nb\", \"image_id\": \"2\"}", NULL, "control characters");
	expect_bad("{\"ad_id\": \"a\x01\", \"image_id\": \"2\"}", NULL, "control characters");
	expect_bad("{\"ad_id\": \"1\", \"ad_id\": \"2\", \"image_id\": \"2\"}", NULL,
	           "field given twice: ad_id");
}

static void test_key_must_match_ad_id(void **state)
{
	expect_bad("{\"ad_id\": \"1\", \"image_id\": \"2\", \"url\": \"file:///a\","
	           " \"created_at\": \"2026-11-30T09:29:22Z\"}",
	           "2", "message key does not match ad_id");
	expect_bad("{\"ad_id\": \"1\", \"image_id\": \"2\", \"url\": \"file:///a\","
	           " \"created_at\": \"2026-11-30T09:29:22Z\"}",
	           "11", "message key does not match ad_id");
}

#define URL_EVENT                                                                                  \
	"{\"ad_id\": \"1\", \"image_id\": \"2\", \"url\": \"%s\", \"created_at\": "                \
	"\"2026-11-30T09:29:22Z\"}"

static void test_url_schemes(void **state)
{
	const char *good[] = {"file:///a/b.jpg", "http://h/x.jpg", "HTTPS://h:8443/x?y=1"};
	const char *bad[][2] = {{"gopher://h/x", "scheme 'gopher' not allowed"},
	                        {"javascript:alert(1)", "scheme 'javascript' not allowed"},
	                        {"/etc/passwd", "url has no scheme"},
	                        {"http://h/a b.jpg", "url contains a space"}};
	char json[512];
	struct event ev;
	char reason[EVENT_REASON_MAX];
	size_t i;

	for (i = 0; i < 3; i++) {
		snprintf(json, sizeof(json), URL_EVENT, good[i]);
		assert_int_equal(parse(json, NULL, &ev, reason), 0);
	}
	for (i = 0; i < 4; i++) {
		snprintf(json, sizeof(json), URL_EVENT, bad[i][0]);
		expect_bad(json, NULL, bad[i][1]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_event_with_unknown_fields),
	    cmocka_unit_test(test_value_need_not_be_nul_terminated),
	    cmocka_unit_test(test_malformed_json),
	    cmocka_unit_test(test_missing_and_wrong_typed_fields),
	    cmocka_unit_test(test_identity_kept_when_later_field_is_bad),
	    cmocka_unit_test(test_huge_values),
	    cmocka_unit_test(test_hostile_ids),
	    cmocka_unit_test(test_key_must_match_ad_id),
	    cmocka_unit_test(test_url_schemes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
