/* kafka_mock - a Kafka broker for the tests: librdkafka's mock cluster on
 * loopback, plus the small client commands the tests need.
 *
 *   kafka_mock serve [-b BROKERS] [-t TOPIC:PARTITIONS]...
 *       start the cluster, print its bootstrap servers on stdout, run until
 *       SIGTERM/SIGINT; commands on stdin (one a line) inject faults:
 *         fail API COUNT ERROR   the next COUNT requests of API (Fetch,
 *                                OffsetCommit, ...) fail with ERROR
 *                                (a name such as NOT_COORDINATOR)
 *         clear API              drop the errors still queued for API
 *         down ID | up ID        take broker ID down or bring it back
 *         leader TOPIC PARTITION ID
 *   kafka_mock produce BOOTSTRAP TOPIC
 *       produce stdin lines "KEY<TAB>TIMESTAMP_MS<TAB>VALUE" (empty KEY: no
 *       key; TIMESTAMP_MS 0: now); exits non-zero unless all were delivered
 *   kafka_mock committed BOOTSTRAP GROUP TOPIC
 *       print "PARTITION OFFSET" lines: the group's committed offsets (-1: none)
 *   kafka_mock consume BOOTSTRAP TOPIC
 *       print every message as "PARTITION OFFSET KEY<TAB>VALUE" and exit
 *       (assigned, so the group kafka_mock-consume commits nothing) */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "kafka_mock: %s: %s\n", what, detail);
	exit(1);
}

static long num(const char *s, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		die(what, s);
	return v;
}

static int api_key(const char *name)
{
	static const struct {
		const char *name;
		int key;
	} apis[] = {{"Produce", 0},          {"Fetch", 1},        {"ListOffsets", 2},
	            {"Metadata", 3},         {"OffsetCommit", 8}, {"OffsetFetch", 9},
	            {"FindCoordinator", 10}, {"JoinGroup", 11},   {"Heartbeat", 12},
	            {"LeaveGroup", 13},      {"SyncGroup", 14},   {"ApiVersion", 18}};
	size_t i;

	for (i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
		if (!strcmp(apis[i].name, name))
			return apis[i].key;
	return -1;
}

static int error_code(const char *name, rd_kafka_resp_err_t *out)
{
	const struct rd_kafka_err_desc *descs;
	size_t n, i;

	rd_kafka_get_err_descs(&descs, &n);
	for (i = 0; i < n; i++)
		if (descs[i].name && !strcmp(descs[i].name, name)) {
			*out = descs[i].code;
			return 0;
		}
	return -1;
}

/* Carry out one fault-injection command; replies "ok ..." or "error ...". */
static void command(rd_kafka_mock_cluster_t *mc, char *line)
{
	char *argv[8];
	int argc = 0;
	char *save = NULL, *tok;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

	for (tok = strtok_r(line, " \t\n", &save); tok && argc < 8;
	     tok = strtok_r(NULL, " \t\n", &save))
		argv[argc++] = tok;
	if (argc == 0)
		return;
	if (!strcmp(argv[0], "fail") && argc == 4) {
		rd_kafka_resp_err_t errs[1000];
		long cnt = num(argv[2], "count");
		int key = api_key(argv[1]);
		long i;

		if (key < 0 || cnt < 1 || cnt > 1000 || error_code(argv[3], &errs[0])) {
			fprintf(stderr, "kafka_mock: error bad fail command\n");
			return;
		}
		for (i = 1; i < cnt; i++)
			errs[i] = errs[0];
		rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)cnt, errs);
	} else if (!strcmp(argv[0], "clear") && argc == 2 && api_key(argv[1]) >= 0) {
		rd_kafka_mock_clear_request_errors(mc, (int16_t)api_key(argv[1]));
	} else if (!strcmp(argv[0], "down") && argc == 2) {
		err = rd_kafka_mock_broker_set_down(mc, (int32_t)num(argv[1], "broker"));
	} else if (!strcmp(argv[0], "up") && argc == 2) {
		err = rd_kafka_mock_broker_set_up(mc, (int32_t)num(argv[1], "broker"));
	} else if (!strcmp(argv[0], "leader") && argc == 4) {
		err = rd_kafka_mock_partition_set_leader(mc, argv[1],
		                                         (int32_t)num(argv[2], "partition"),
		                                         (int32_t)num(argv[3], "broker"));
	} else {
		fprintf(stderr, "kafka_mock: error unknown command %s\n", argv[0]);
		return;
	}
	fprintf(stderr, "kafka_mock: %s %s\n", err ? "error" : "ok", rd_kafka_err2str(err));
}

static int serve(int argc, char **argv)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *rk;
	int brokers = 3, c, stdin_open = 1;
	char line[512];
	size_t at = 0;

	/* the mock cluster lives inside a client handle's threads */
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
		die("client", errstr);
	while ((c = getopt(argc, argv, "b:t:")) != -1) {
		if (c == 'b')
			brokers = (int)num(optarg, "brokers");
		else if (c != 't')
			die("usage", "serve [-b BROKERS] [-t TOPIC:PARTITIONS]...");
	}
	mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (!mc)
		die("mock cluster", "could not start");
	optind = 1;
	while ((c = getopt(argc, argv, "b:t:")) != -1) {
		char *colon;

		if (c != 't')
			continue;
		colon = strrchr(optarg, ':');
		if (!colon)
			die("topic needs NAME:PARTITIONS", optarg);
		*colon = '\0';
		if (rd_kafka_mock_topic_create(mc, optarg, (int)num(colon + 1, "partitions"),
		                               brokers < 3 ? brokers : 3))
			die("cannot create topic", optarg);
	}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	while (!stop) {
		struct pollfd p = {0, POLLIN, 0};
		ssize_t n;

		if (!stdin_open || poll(&p, 1, 200) <= 0) {
			if (!stdin_open)
				usleep(200000);
			continue;
		}
		n = read(0, line + at, sizeof(line) - 1 - at);
		if (n <= 0) {
			stdin_open = 0;
			continue;
		}
		at += (size_t)n;
		line[at] = '\0';
		for (char *nl; (nl = strchr(line, '\n'));) {
			*nl = '\0';
			command(mc, line);
			at -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, at + 1);
		}
		if (at == sizeof(line) - 1)
			at = 0;
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap, const char *group)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
	    (group && rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr))) ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
	    (type == RD_KAFKA_PRODUCER &&
	     rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr))))
		die("config", errstr);
	rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (!rk)
		die("client", errstr);
	return rk;
}

static int failed_deliveries;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	if (m->err) {
		failed_deliveries++;
		fprintf(stderr, "kafka_mock: delivery failed: %s\n", rd_kafka_err2str(m->err));
	}
}

static int produce(const char *bootstrap, const char *topic)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long n = 0;
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr)))
		die("config", errstr);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
		die("client", errstr);
	while ((len = getline(&line, &cap, stdin)) > 0) {
		char *tab1, *tab2, *value;
		long long ts;
		rd_kafka_resp_err_t err;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		tab1 = strchr(line, '\t');
		tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
		if (!tab2)
			die("input line needs KEY<TAB>TIMESTAMP_MS<TAB>VALUE", line);
		*tab1 = *tab2 = '\0';
		value = tab2 + 1;
		ts = strtoll(tab1 + 1, NULL, 10);
		do {
			err = rd_kafka_producev(
			    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			    RD_KAFKA_V_KEY(*line ? line : NULL, strlen(line)),
			    RD_KAFKA_V_VALUE(value, (size_t)(line + len - value)),
			    RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
			if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(rk, 100);
		} while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
		if (err)
			die("produce", rd_kafka_err2str(err));
		rd_kafka_poll(rk, 0);
		n++;
	}
	free(line);
	if (rd_kafka_flush(rk, 30000))
		die("flush", "timed out");
	rd_kafka_destroy(rk);
	fprintf(stderr, "kafka_mock: produced %ld messages to %s\n", n, topic);
	return failed_deliveries ? 1 : 0;
}

static rd_kafka_topic_partition_list_t *all_partitions(rd_kafka_t *rk, const char *topic)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, 10000);
	int i;

	if (err || md->topic_cnt != 1 || md->topics[0].err)
		die("metadata", rd_kafka_err2str(err ? err : md->topics[0].err));
	l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(l, topic, md->topics[0].partitions[i].id);
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	return l;
}

static int cmp_part(const void *a, const void *b)
{
	return ((const rd_kafka_topic_partition_t *)a)->partition -
	       ((const rd_kafka_topic_partition_t *)b)->partition;
}

static int committed(const char *bootstrap, const char *group, const char *topic)
{
	rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, bootstrap, group);
	rd_kafka_topic_partition_list_t *l = all_partitions(rk, topic);
	rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, 10000);
	int i;

	if (err)
		die("committed", rd_kafka_err2str(err));
	qsort(l->elems, (size_t)l->cnt, sizeof(l->elems[0]), cmp_part);
	for (i = 0; i < l->cnt; i++)
		printf("%d %lld\n", l->elems[i].partition,
		       l->elems[i].offset < 0 ? -1LL : (long long)l->elems[i].offset);
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return 0;
}

static int consume(const char *bootstrap, const char *topic)
{
	rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, bootstrap, "kafka_mock-consume");
	rd_kafka_topic_partition_list_t *l = all_partitions(rk, topic);
	int64_t *high = calloc((size_t)l->cnt, sizeof(*high));
	int i, left = 0;

	for (i = 0; i < l->cnt; i++) {
		int64_t low;

		if (rd_kafka_query_watermark_offsets(rk, topic, l->elems[i].partition, &low,
		                                     &high[i], 10000))
			die("watermarks", topic);
		l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
		left += high[i] > low;
		if (high[i] <= low)
			high[i] = -1;
	}
	if (rd_kafka_assign(rk, l))
		die("assign", topic);
	while (left > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10000);

		if (!m)
			die("consume", "timed out");
		if (!m->err) {
			for (i = 0; i < l->cnt; i++)
				if (l->elems[i].partition == m->partition)
					break;
			printf("%d %lld %.*s\t%.*s\n", (int)m->partition, (long long)m->offset,
			       (int)m->key_len, m->key ? (const char *)m->key : "", (int)m->len,
			       m->payload ? (const char *)m->payload : "");
			if (i < l->cnt && m->offset + 1 == high[i])
				left--;
		}
		rd_kafka_message_destroy(m);
	}
	free(high);
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return serve(argc - 1, argv + 1);
	if (argc == 4 && !strcmp(argv[1], "produce"))
		return produce(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "committed"))
		return committed(argv[2], argv[3], argv[4]);
	if (argc == 4 && !strcmp(argv[1], "consume"))
		return consume(argv[2], argv[3]);
	fprintf(stderr, "usage: kafka_mock serve [-b N] [-t TOPIC:PARTITIONS]... | produce "
	                "BOOTSTRAP TOPIC | committed BOOTSTRAP GROUP TOPIC | consume BOOTSTRAP "
	                "TOPIC\n");
	return 2;
}
