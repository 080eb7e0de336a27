/* Where a Kafka backfill starts reading, from broker answers made here: the
 * seek path a real broker takes, and the scan the mock broker forces. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "source_kafka.h"

#define FROM_MS 1796000000000LL

static rd_kafka_topic_partition_list_t *answer(void)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);

	return l;
}

static void add(rd_kafka_topic_partition_list_t *l, int32_t p, int64_t offset,
                rd_kafka_resp_err_t err)
{
	rd_kafka_topic_partition_t *t = rd_kafka_topic_partition_list_add(l, "ad-images", p);

	t->offset = offset;
	t->err = err;
}

static void test_broker_offsets_are_seeked_to(void **state)
{
	struct kafka_backfill_part p[3] = {
	    {.partition = 0, .low = 0, .high = 100, .last_ts_ms = -1},
	    {.partition = 1, .low = 10, .high = 50, .last_ts_ms = -1},
	    {.partition = 2, .low = 0, .high = 30, .last_ts_ms = -1},
	};
	rd_kafka_topic_partition_list_t *l = answer();

	add(l, 0, 42, RD_KAFKA_RESP_ERR_NO_ERROR);
	add(l, 1, 5, RD_KAFKA_RESP_ERR_NO_ERROR);  /* below low: clamped */
	add(l, 2, 30, RD_KAFKA_RESP_ERR_NO_ERROR); /* at high: nothing to read */
	assert_int_equal(kafka_backfill_plan(l, FROM_MS, p, 3), 2);
	assert_int_equal(p[0].start, 42);
	assert_int_equal(p[0].scan, 0);
	assert_int_equal(p[1].start, 10);
	assert_int_equal(p[1].scan, 0);
	assert_int_equal(p[2].start, 30);
	assert_int_equal(p[2].scan, 0);
	rd_kafka_topic_partition_list_destroy(l);
}

static void test_end_answer_believed_only_when_the_last_message_is_older(void **state)
{
	struct kafka_backfill_part p[3] = {
	    /* last message before the window: the answer is right, skip */
	    {.partition = 0, .low = 0, .high = 100, .last_ts_ms = FROM_MS - 1},
	    /* last message inside the window: the broker did not look, scan */
	    {.partition = 1, .low = 7, .high = 100, .last_ts_ms = FROM_MS + 5000},
	    /* last message unknown: scan */
	    {.partition = 2, .low = 3, .high = 9, .last_ts_ms = -1},
	};
	rd_kafka_topic_partition_list_t *l = answer();

	add(l, 0, -1, RD_KAFKA_RESP_ERR_NO_ERROR);
	add(l, 1, -1, RD_KAFKA_RESP_ERR_NO_ERROR);
	add(l, 2, -1, RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(kafka_backfill_plan(l, FROM_MS, p, 3), 2);
	assert_int_equal(p[0].start, 100);
	assert_int_equal(p[0].scan, 0);
	assert_int_equal(p[1].start, 7);
	assert_int_equal(p[1].scan, 1);
	assert_int_equal(p[2].start, 3);
	assert_int_equal(p[2].scan, 1);
	rd_kafka_topic_partition_list_destroy(l);
}

static void test_errors_and_missing_answers_scan(void **state)
{
	struct kafka_backfill_part p[4] = {
	    {.partition = 0, .low = 0, .high = 10, .last_ts_ms = -1},
	    {.partition = 1, .low = 4, .high = 10, .last_ts_ms = -1},
	    {.partition = 2, .low = 5, .high = 5, .last_ts_ms = -1}, /* empty */
	    {.partition = 3, .low = 0, .high = 10, .last_ts_ms = -1},
	};
	rd_kafka_topic_partition_list_t *l = answer();

	add(l, 0, 3, RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION);
	/* partition 1: no answer at all */
	add(l, 2, 0, RD_KAFKA_RESP_ERR_NO_ERROR);
	add(l, 3, RD_KAFKA_OFFSET_INVALID, RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(kafka_backfill_plan(l, FROM_MS, p, 4), 3);
	assert_int_equal(p[0].start, 0);
	assert_int_equal(p[0].scan, 1);
	assert_int_equal(p[1].start, 4);
	assert_int_equal(p[1].scan, 1);
	assert_int_equal(p[2].start, 5);
	assert_int_equal(p[2].scan, 0);
	assert_int_equal(p[3].start, 0);
	assert_int_equal(p[3].scan, 1);
	/* the whole lookup failed */
	assert_int_equal(kafka_backfill_plan(NULL, FROM_MS, p, 4), 3);
	assert_int_equal(p[0].scan + p[1].scan + p[3].scan, 3);
	rd_kafka_topic_partition_list_destroy(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_broker_offsets_are_seeked_to),
	    cmocka_unit_test(test_end_answer_believed_only_when_the_last_message_is_older),
	    cmocka_unit_test(test_errors_and_missing_answers_scan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
