/* test_kafka_rebalance.c - the Kafka source across a rebalance, against a librdkafka mock
 * cluster started in this process (no database).
 *
 * A partition the source has read up to its bound is paused. librdkafka keeps that pause
 * through a revoke and a new assignment, so a partition handed back with nothing committed
 * was never read again and the run waited until its timeout ("no progress"). Here a second
 * member joins the group (subscribed to another topic, so the source keeps both of its
 * partitions) while one partition is done and paused and the other one's leader is slow;
 * the source must hand out the done partition's event again and then end normally. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "item.h"
#include "log.h"
#include "source.h"

#define TOPIC     "photos"
#define GROUP     "rebalance"
#define SLOW_RTT  2500 /* ms on the broker leading partition 1 */
#define SESSION_S "6000"

static rd_kafka_t *host;
static rd_kafka_mock_cluster_t *mc;
static volatile int member_stop;

static int produce_one(const char *bootstrap, int partition, const char *image_id)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256], value[256];
	rd_kafka_t *rk;
	int n, rc = -1;

	n = snprintf(value, sizeof(value),
	             "{\"ad_id\": \"9000001\", \"image_id\": \"%s\", \"url\": "
	             "\"file:///data/%s.jpg\", \"created_at\": \"2026-11-30T09:29:22Z\"}",
	             image_id, image_id);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)))
		return -1;
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
		return -1;
	if (!rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(partition),
	                       RD_KAFKA_V_KEY("9000001", 7), RD_KAFKA_V_VALUE(value, (size_t)n),
	                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) &&
	    rd_kafka_flush(rk, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
		rc = 0;
	rd_kafka_destroy(rk);
	return rc;
}

/* A second group member, subscribed to another topic: joining makes the group rebalance
 * without taking the source's partitions. Polls until told to stop. */
static void *member(void *arg)
{
	const char *bootstrap = arg;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
	char errstr[256];
	rd_kafka_t *rk;

	rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "group.id", GROUP, errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "session.timeout.ms", SESSION_S, errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "partition.assignment.strategy", "range", errstr, sizeof(errstr));
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (!rk)
		return NULL;
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_add(sub, "other", RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	while (!member_stop) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

		if (m)
			rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return NULL;
}

static void test_done_partition_is_read_again_after_a_rebalance(void **state)
{
	const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct source_window win = {0, 0};
	struct source *src;
	struct item it;
	struct err err = {0};
	pthread_t tid;
	int seen0 = 0, seen1 = 0, got, member_started = 0;

	assert_non_null(cfg);
	assert_int_equal(rd_kafka_mock_topic_create(mc, TOPIC, 2, 1), 0);
	assert_int_equal(rd_kafka_mock_topic_create(mc, "other", 1, 1), 0);
	assert_int_equal(rd_kafka_mock_partition_set_leader(mc, TOPIC, 0, 1), 0);
	assert_int_equal(rd_kafka_mock_partition_set_leader(mc, TOPIC, 1, 2), 0);
	assert_int_equal(rd_kafka_mock_coordinator_set(mc, "group", GROUP, 1), 0);
	assert_int_equal(produce_one(bootstrap, 0, "p0"), 0);
	assert_int_equal(produce_one(bootstrap, 1, "p1"), 0);
	/* partition 1's event arrives late, so the source is still reading when the
	 * group rebalances, with partition 0 done and paused */
	assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 2, SLOW_RTT), 0);

	config_defaults(cfg);
	cfg->source = SOURCE_KAFKA;
	snprintf(cfg->ks.topic, sizeof(cfg->ks.topic), TOPIC);
	snprintf(cfg->ks.group_id, sizeof(cfg->ks.group_id), GROUP);
	cfg->ks.poll_timeout_ms = 100;
	cfg->ks.wait_timeout_s = 40;
	snprintf(cfg->kafka.v[0].key, sizeof(cfg->kafka.v[0].key), "bootstrap.servers");
	snprintf(cfg->kafka.v[0].value, sizeof(cfg->kafka.v[0].value), "%s", bootstrap);
	snprintf(cfg->kafka.v[1].key, sizeof(cfg->kafka.v[1].key), "session.timeout.ms");
	snprintf(cfg->kafka.v[1].value, sizeof(cfg->kafka.v[1].value), SESSION_S);
	cfg->kafka.n = 2;
	src = source_open(cfg, &win, &err);
	if (!src)
		fail_msg("source_open: %s", err.msg);

	/* nothing is acknowledged, so nothing is committed: after the rebalance both
	 * events belong to the source again from the start */
	while ((got = source_next(src, &it, &err)) == 1) {
		assert_true(it.has_pos);
		if (it.part == 0) {
			assert_string_equal(it.image_id, "p0");
			assert_int_equal(it.offset, 0);
			seen0++;
		} else {
			assert_string_equal(it.image_id, "p1");
			seen1++;
		}
		if (!member_started) {
			member_started = 1;
			assert_int_equal(pthread_create(&tid, NULL, member, (void *)bootstrap), 0);
		}
	}
	if (got < 0)
		fail_msg("source_next: %s (partition 0 read %d times)", err.msg, seen0);
	assert_true(member_started);
	/* the event of partition 0 came before the rebalance and once more after it */
	assert_true(seen0 >= 2);
	assert_true(seen1 >= 1);
	source_close(src);
	member_stop = 1;
	pthread_join(tid, NULL);
	free(cfg);
}

static int setup(void **state)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];

	log_set_level(LOGL_WARN);
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	mc = host ? rd_kafka_mock_cluster_new(host, 2) : NULL;
	return mc ? 0 : -1;
}

static int teardown(void **state)
{
	if (mc)
		rd_kafka_mock_cluster_destroy(mc);
	if (host)
		rd_kafka_destroy(host);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_done_partition_is_read_again_after_a_rebalance),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
