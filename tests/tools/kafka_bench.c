/* kafka_bench.c - events per second through the Kafka source alone: read
 * from a mock cluster in this process, parsed, recorded in PostgreSQL (as
 * photos not processed), acknowledged and committed. No photo is fetched.
 *
 *   kafka_bench [EVENTS]   (default 100000; PGHOST etc. name the server)
 *
 * Creates its own database and drops it. Prints two lines: the source with
 * no database, and the source with the database writes. The group join
 * (about 3 s on the mock) is left out of the rates. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "item.h"
#include "log.h"
#include "proc.h"
#include "source.h"
#include "store.h"

#define BATCH      1000
#define PARTITIONS 6

static int produce(const char *bootstrap, long events)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256], key[24], value[256];
	rd_kafka_t *rk;
	long i;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof(errstr)))
		return -1;
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
		return -1;
	for (i = 0; i < events; i++) {
		int klen = snprintf(key, sizeof(key), "%ld", 9000000 + i / 7);
		int vlen = snprintf(value, sizeof(value),
		                    "{\"ad_id\": \"%s\", \"image_id\": \"%ld\", \"url\": "
		                    "\"file:///data/ads/%ld.jpg\", \"created_at\": "
		                    "\"2026-11-30T09:29:22Z\"}",
		                    key, i, i);
		rd_kafka_resp_err_t e;

		while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("bench"),
		                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		                              RD_KAFKA_V_KEY(key, (size_t)klen),
		                              RD_KAFKA_V_VALUE(value, (size_t)vlen),
		                              RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
		if (e)
			return -1;
	}
	rd_kafka_flush(rk, 60000);
	rd_kafka_destroy(rk);
	return 0;
}

/* Read every event with GROUP; write them to S when it is not NULL. */
static int pass(struct config *cfg, const char *group, struct store *s, int64_t run, long events)
{
	struct source_window win = {0, 0};
	struct store_image *imgs = calloc(BATCH, sizeof(*imgs));
	struct item *items = calloc(BATCH, sizeof(*items));
	struct err err = {0};
	struct source *src;
	double t0 = 0, t1;
	long got = 0;
	size_t n = 0, i;
	int r, rc = -1;

	snprintf(cfg->ks.group_id, sizeof(cfg->ks.group_id), "%s", group);
	src = source_open(cfg, &win, &err);
	if (!src || !imgs || !items)
		goto out;
	for (;;) {
		r = source_next(src, &items[n], &err);
		if (r < 0)
			goto out;
		if (r == 1 && !t0)
			t0 = proc_now_s();
		if (r == 1)
			n++;
		if (n == BATCH || (r == 0 && n > 0)) {
			for (i = 0; i < n; i++)
				imgs[i] = (struct store_image){.image_id = items[i].image_id,
				                               .ad_id = items[i].ad_id,
				                               .url = items[i].url,
				                               .created_at = items[i].created_at,
				                               .source = items[i].source,
				                               .ok = 0,
				                               .failure_stage = "bench",
				                               .failure_reason = "not processed"};
			if (s && store_write_images(s, run, 0, imgs, n, NULL, &err))
				goto out;
			for (i = 0; i < n; i++)
				source_ack(src, &items[i]);
			got += (long)n;
			n = 0;
		}
		if (r == 0)
			break;
	}
	if (source_commit(src, &err))
		goto out;
	t1 = proc_now_s();
	printf("kafka_source %-22s events=%ld partitions=%d batch=%d events_per_s=%.0f\n",
	       s ? "read+parse+postgres" : "read+parse", got, PARTITIONS, BATCH,
	       t1 > t0 ? (double)got / (t1 - t0) : 0);
	rc = got == events ? 0 : -1;
out:
	if (rc && err.msg[0])
		fprintf(stderr, "kafka_bench: %s\n", err.msg);
	source_close(src);
	free(imgs);
	free(items);
	return rc;
}

int main(int argc, char **argv)
{
	long events = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
	const char *root = getenv("ROOT");
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct store_run sr = {"nightly", NULL, "bench", "bench", 0};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc = NULL;
	rd_kafka_t *host = NULL;
	char db[64], conninfo[96], sql[128], sql_dir[512], errstr[256];
	struct store *s = NULL;
	struct err err = {0};
	PGconn *admin = NULL;
	int64_t run = 0;
	int rc = 1;

	if (!cfg || events <= 0)
		return 2;
	log_set_level(LOGL_WARN);
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	mc = host ? rd_kafka_mock_cluster_new(host, 1) : NULL;
	if (!mc || rd_kafka_mock_topic_create(mc, "bench", PARTITIONS, 1) ||
	    produce(rd_kafka_mock_cluster_bootstraps(mc), events)) {
		fprintf(stderr, "kafka_bench: mock cluster or produce failed\n");
		goto out;
	}

	admin = PQconnectdb("dbname=postgres");
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "kafka_bench: %s", PQerrorMessage(admin));
		goto out;
	}
	snprintf(db, sizeof(db), "kafka_bench_%ld", (long)getpid());
	snprintf(conninfo, sizeof(conninfo), "dbname=%s", db);
	snprintf(sql_dir, sizeof(sql_dir), "%s/sql", root ? root : ".");
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	PQclear(PQexec(admin, sql));
	s = store_open(conninfo, &err);
	if (!s || store_migrate(s, sql_dir, NULL, &err) || store_run_begin(s, &sr, &run, &err)) {
		fprintf(stderr, "kafka_bench: %s\n", err.msg);
		goto out;
	}

	config_defaults(cfg);
	cfg->source = SOURCE_KAFKA;
	snprintf(cfg->ks.topic, sizeof(cfg->ks.topic), "bench");
	cfg->ks.poll_timeout_ms = 100;
	snprintf(cfg->kafka.v[0].key, sizeof(cfg->kafka.v[0].key), "bootstrap.servers");
	snprintf(cfg->kafka.v[0].value, sizeof(cfg->kafka.v[0].value), "%s",
	         rd_kafka_mock_cluster_bootstraps(mc));
	snprintf(cfg->kafka.v[1].key, sizeof(cfg->kafka.v[1].key), "session.timeout.ms");
	snprintf(cfg->kafka.v[1].value, sizeof(cfg->kafka.v[1].value), "6000");
	cfg->kafka.n = 2;
	if (pass(cfg, "bench-read", NULL, 0, events) || pass(cfg, "bench-store", s, run, events))
		goto out;
	rc = 0;
out:
	store_close(s);
	if (admin) {
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
		PQclear(PQexec(admin, sql));
		PQfinish(admin);
	}
	if (mc)
		rd_kafka_mock_cluster_destroy(mc);
	if (host)
		rd_kafka_destroy(host);
	free(cfg);
	return rc;
}
