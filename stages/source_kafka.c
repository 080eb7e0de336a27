/* source_kafka.c - photo events from a Kafka topic with librdkafka.
 *
 * Nightly (no window): join the consumer group, read each assigned partition
 * from its committed offset up to the high-water mark seen when it was
 * assigned, and store an offset only once every item before it is durable
 * (source_ack); offsets are committed at the end of the run and when
 * partitions are revoked. Backfill (a window): assign every partition by
 * hand, find the start by timestamp, read up to the high-water mark or past
 * the window, and commit nothing. */
#include "source_kafka.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "log.h"
#include "source_impl.h"

#define KAFKA_META_TIMEOUT_MS 10000
#define KAFKA_PEEK_TIMEOUT_MS 10000

/* A partition of the topic as this process sees it. */
struct kpart {
	int assigned;
	int done;      /* reached its bound (or the end of the window) */
	int64_t bound; /* offsets from here on are left for the next run */
	unsigned gen;  /* assignment generation: acks of an older one are stale */
	/* offsets handed out and not yet durable, ascending, in a ring */
	int64_t *pend;
	unsigned char *acked;
	size_t head, n, cap;
	int64_t next;   /* offset after the last one handed out; -1: none yet */
	int64_t stored; /* offset last given to offsets_store; -1: none */
};

struct source_kafka {
	struct source base;
	const struct config *cfg;
	rd_kafka_t *rk;
	rd_kafka_t *dlq; /* producer for the dead-letter topic, or NULL */
	int backfill;
	struct source_window win;
	int64_t stop_ms; /* backfill: a partition is done past this timestamp */

	pthread_mutex_t lock; /* parts, between source_next and source_ack */
	struct kpart *parts;
	int nparts;
	int assigned_once; /* holds an assignment (possibly empty) */
	unsigned gen;

	long long taken, bad, skipped, dlq_failed;
	int commits, commit_errors;
	/* backfill: partitions ended by a message stamped past the window, and the first */
	int late_parts;
	int32_t late_part;
	int64_t late_offset, late_ms;
	struct timespec last_progress;
	int closing; /* leaving the group: the run has decided about commits */
	int fatal;   /* a fatal client error was reported */
	char fatal_msg[256];
};

static double since_s(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void progress(struct source_kafka *k)
{
	clock_gettime(CLOCK_MONOTONIC, &k->last_progress);
}

/* ---- librdkafka callbacks: logs and errors go through our logger ---- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* the client retries what it reports here (a refused connection is
	 * its "error"); what ends the run is decided in kafka_next */
	if (level <= 4)
		log_warn("kafka", "client", "facility=%s level=%d detail=\"%s\"", fac, level, buf);
	else
		log_debug(LOGC_KAFKA, "kafka", "client", "facility=%s detail=\"%s\"", fac, buf);
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
	struct source_kafka *k = opaque;
	char msg[256];

	if (code == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, msg, sizeof(msg));
		snprintf(k->fatal_msg, sizeof(k->fatal_msg), "%s", msg);
		k->fatal = 1;
		return;
	}
	/* the client retries by itself; the wait timeout bounds how long */
	log_warn("kafka", "broker error", "error=%s detail=\"%s\"",
	         rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
}

/* ---- partitions and the offsets that may be committed ---- */

static struct kpart *part_get(struct source_kafka *k, int32_t p)
{
	if (p < 0)
		return NULL;
	if (p >= k->nparts) {
		int n = p + 1;
		struct kpart *parts = realloc(k->parts, (size_t)n * sizeof(*parts));

		if (!parts)
			return NULL;
		memset(parts + k->nparts, 0, (size_t)(n - k->nparts) * sizeof(*parts));
		k->parts = parts;
		k->nparts = n;
	}
	return &k->parts[p];
}

static void part_reset(struct kpart *kp, unsigned gen)
{
	kp->head = kp->n = 0;
	kp->next = kp->stored = -1;
	kp->done = 0;
	kp->bound = 0;
	kp->gen = gen;
}

static int pend_push(struct kpart *kp, int64_t offset)
{
	if (kp->n == kp->cap) {
		size_t cap = kp->cap ? kp->cap * 2 : 64, i;
		int64_t *pend = malloc(cap * sizeof(*pend));
		unsigned char *acked = malloc(cap);

		if (!pend || !acked) {
			free(pend);
			free(acked);
			return -1;
		}
		for (i = 0; i < kp->n; i++) {
			pend[i] = kp->pend[(kp->head + i) % kp->cap];
			acked[i] = kp->acked[(kp->head + i) % kp->cap];
		}
		free(kp->pend);
		free(kp->acked);
		kp->pend = pend;
		kp->acked = acked;
		kp->cap = cap;
		kp->head = 0;
	}
	kp->pend[(kp->head + kp->n) % kp->cap] = offset;
	kp->acked[(kp->head + kp->n) % kp->cap] = 0;
	kp->n++;
	kp->next = offset + 1;
	return 0;
}

/* The offset to commit for KP: the first one not yet durable, or the one
 * after the last handed out when all are. -1 when nothing was handed out. */
static int64_t part_commit_pos(const struct kpart *kp)
{
	if (kp->n)
		return kp->pend[kp->head];
	return kp->next;
}

/* Hand the committable position of partition P to librdkafka (lock held). */
static void part_store(struct source_kafka *k, int32_t p, struct kpart *kp)
{
	rd_kafka_topic_partition_list_t *l;
	int64_t pos = part_commit_pos(kp);
	rd_kafka_resp_err_t err;

	if (pos < 0 || pos == kp->stored)
		return;
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, k->cfg->ks.topic, p)->offset = pos;
	err = rd_kafka_offsets_store(k->rk, l);
	if (!err)
		err = l->elems[0].err;
	rd_kafka_topic_partition_list_destroy(l);
	if (err)
		log_debug(LOGC_KAFKA, "kafka", "offset not stored",
		          "partition=%d offset=%" PRId64 " error=%s", p, pos,
		          rd_kafka_err2name(err));
	else
		kp->stored = pos;
}

static void kafka_ack(struct source *src, const struct item *it)
{
	struct source_kafka *k = (struct source_kafka *)src;
	struct kpart *kp;
	size_t lo, hi;

	if (k->backfill)
		return;
	pthread_mutex_lock(&k->lock);
	kp = it->part < k->nparts ? &k->parts[it->part] : NULL;
	if (!kp || !kp->assigned || kp->gen != it->gen || kp->n == 0)
		goto out;
	/* binary search: pending offsets ascend */
	lo = 0;
	hi = kp->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (kp->pend[(kp->head + mid) % kp->cap] < it->offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == kp->n || kp->pend[(kp->head + lo) % kp->cap] != it->offset)
		goto out;
	kp->acked[(kp->head + lo) % kp->cap] = 1;
	while (kp->n && kp->acked[kp->head]) {
		kp->head = (kp->head + 1) % kp->cap;
		kp->n--;
	}
	part_store(k, it->part, kp);
out:
	pthread_mutex_unlock(&k->lock);
}

/* Deliver what the dead-letter producer holds before offsets move past it.
 * LIMIT: a dead letter still undelivered after commit_timeout_s is logged and
 * dropped; its failure row in the database is the record that stays. */
static void dlq_flush(struct source_kafka *k)
{
	if (k->dlq && rd_kafka_flush(k->dlq, k->cfg->ks.commit_timeout_s * 1000))
		log_warn("kafka", "dead-letter messages not delivered in time",
		         "topic=%s pending=%d", k->cfg->ks.dead_letter_topic,
		         rd_kafka_outq_len(k->dlq));
}

/* Commit the stored offsets synchronously. */
static int commit_stored(struct source_kafka *k, const char *why, struct err *err)
{
	rd_kafka_resp_err_t e;

	dlq_flush(k);
	e = rd_kafka_commit(k->rk, NULL, 0);
	if (e == RD_KAFKA_RESP_ERR__NO_OFFSET)
		return 0;
	if (e) {
		k->commit_errors++;
		return err_set(err, ERR_RETRY, "offset commit (%s) refused for topic %s: %s", why,
		               k->cfg->ks.topic, rd_kafka_err2str(e));
	}
	k->commits++;
	log_debug(LOGC_KAFKA, "kafka", "offsets committed", "reason=%s", why);
	return 0;
}

static int kafka_commit(struct source *src, struct err *err)
{
	struct source_kafka *k = (struct source_kafka *)src;

	if (k->backfill)
		return 0;
	return commit_stored(k, "end of run", err);
}

/* Bound each newly assigned partition at its high-water mark now. */
static void assign_parts(struct source_kafka *k, rd_kafka_topic_partition_list_t *l)
{
	int i;

	pthread_mutex_lock(&k->lock);
	k->gen++;
	for (i = 0; i < l->cnt; i++) {
		int32_t p = l->elems[i].partition;
		struct kpart *kp = part_get(k, p);
		int64_t low = 0, high = 0;
		rd_kafka_resp_err_t e;

		if (!kp)
			continue;
		part_reset(kp, k->gen);
		kp->assigned = 1;
		e = rd_kafka_query_watermark_offsets(k->rk, k->cfg->ks.topic, p, &low, &high,
		                                     KAFKA_META_TIMEOUT_MS);
		if (e) {
			/* without a bound, read what the end-of-partition event shows */
			log_warn("kafka", "high-water mark unknown",
			         "topic=%s partition=%d error=%s", k->cfg->ks.topic, p,
			         rd_kafka_err2name(e));
			high = INT64_MAX;
		}
		kp->bound = high;
		kp->done = high <= low;
	}
	k->assigned_once = 1;
	progress(k);
	pthread_mutex_unlock(&k->lock);
}

static void revoke_parts(struct source_kafka *k, rd_kafka_topic_partition_list_t *l)
{
	struct err e = {0};
	int i;

	/* what is durable is committed now; in-flight items of these
	 * partitions are still written, but their acks no longer count and the
	 * new owner reads them again (writes are idempotent) */
	if (!k->closing && commit_stored(k, "partitions revoked", &e))
		log_warn("kafka", "offsets not committed at revoke; the new owner re-reads them",
		         "error=\"%s\"", e.msg);
	pthread_mutex_lock(&k->lock);
	for (i = 0; i < l->cnt; i++) {
		struct kpart *kp =
		    l->elems[i].partition < k->nparts ? &k->parts[l->elems[i].partition] : NULL;

		if (kp) {
			kp->assigned = 0;
			kp->gen = 0;
		}
	}
	/* not finished: the group assigns partitions again (perhaps others,
	 * perhaps those of a member that left) and this process reads them */
	k->assigned_once = 0;
	progress(k);
	pthread_mutex_unlock(&k->lock);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct source_kafka *k = opaque;
	const char *protocol = rd_kafka_rebalance_protocol(rk); /* NULL while closing */
	int cooperative = protocol && !strcmp(protocol, "COOPERATIVE");
	rd_kafka_error_t *error = NULL;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

	log_info("kafka",
	         err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "partitions assigned"
	                                                     : "partitions revoked",
	         "topic=%s partitions=%d", k->cfg->ks.topic, parts->cnt);
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		assign_parts(k, parts);
		if (cooperative)
			error = rd_kafka_incremental_assign(rk, parts);
		else
			e = rd_kafka_assign(rk, parts);
		/* a partition paused when it reached its bound stays paused through a
		 * revoke and a new assignment; its offsets from the last commit on must
		 * be read again, so resume it */
		if (!error && !e)
			rd_kafka_resume_partitions(rk, parts);
	} else {
		revoke_parts(k, parts);
		if (cooperative)
			error = rd_kafka_incremental_unassign(rk, parts);
		else
			e = rd_kafka_assign(rk, NULL);
	}
	if (error) {
		log_error("kafka", "assignment failed", "error=\"%s\"",
		          rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	} else if (e) {
		log_error("kafka", "assignment failed", "error=%s", rd_kafka_err2name(e));
	}
}

/* ---- client set-up ---- */

static rd_kafka_conf_t *client_conf(struct source_kafka *k, int consumer, struct err *err)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const struct config_props *props = &k->cfg->kafka;
	char errstr[256];
	int i;

	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, k);
	/* defaults that suit a batch job; the kafka map may change them */
	if (consumer &&
	    (rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr)) ||
	     rd_kafka_conf_set(conf, "partition.assignment.strategy", "range,roundrobin", errstr,
	                       sizeof(errstr))))
		goto fail;
	for (i = 0; i < props->n; i++)
		if (rd_kafka_conf_set(conf, props->v[i].key, props->v[i].value, errstr,
		                      sizeof(errstr)) != RD_KAFKA_CONF_OK) {
			snprintf(errstr, sizeof(errstr), "kafka.%s: invalid", props->v[i].key);
			goto fail;
		}
	if (!consumer)
		return conf;
	/* the offset handling depends on these */
	if (rd_kafka_conf_set(conf, "group.id", k->cfg->ks.group_id, errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr)))
		goto fail;
	if (!k->backfill)
		rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	err_set(err, ERR_FATAL, "kafka client configuration: %s", errstr);
	return NULL;
}

/* ---- backfill: where each partition starts ---- */

int kafka_backfill_plan(const rd_kafka_topic_partition_list_t *answer, int64_t from_ms,
                        struct kafka_backfill_part *p, int n)
{
	int i, j, reading = 0;

	for (i = 0; i < n; i++) {
		const rd_kafka_topic_partition_t *a = NULL;

		for (j = 0; answer && j < answer->cnt; j++)
			if (answer->elems[j].partition == p[i].partition)
				a = &answer->elems[j];
		p[i].scan = 0;
		if (p[i].high <= p[i].low) {
			p[i].start = p[i].high;
		} else if (!a || a->err || a->offset < -1) {
			p[i].scan = 1;
			p[i].start = p[i].low;
		} else if (a->offset == -1) {
			/* "nothing at or after FROM_MS": true only if the last message
			 * says so */
			if (p[i].last_ts_ms >= 0 && p[i].last_ts_ms < from_ms) {
				p[i].start = p[i].high;
			} else {
				p[i].scan = 1;
				p[i].start = p[i].low;
			}
		} else {
			p[i].start = a->offset < p[i].low    ? p[i].low
			             : a->offset > p[i].high ? p[i].high
			                                     : a->offset;
		}
		reading += p[i].start < p[i].high;
	}
	return reading;
}

/* Read the last message of each partition in P flagged NEED to learn its
 * timestamp (the check on an "offset -1" answer). */
static void peek_last(struct source_kafka *k, struct kafka_backfill_part *p, int *need, int n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	struct timespec t0;
	int i, left = 0;

	for (i = 0; i < n; i++)
		if (need[i]) {
			rd_kafka_topic_partition_list_add(l, k->cfg->ks.topic, p[i].partition)
			    ->offset = p[i].high - 1;
			left++;
		}
	if (!left || rd_kafka_assign(k->rk, l))
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (left > 0 && since_s(&t0) * 1000 < KAFKA_PEEK_TIMEOUT_MS) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 200);

		if (!m)
			continue;
		/* a partition whose last offset holds no message (a transaction
		 * marker, compaction) shows its end instead: left unknown */
		for (i = 0; (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) && i < n; i++)
			if (need[i] && p[i].partition == m->partition) {
				if (!m->err)
					p[i].last_ts_ms = rd_kafka_message_timestamp(m, NULL);
				need[i] = 0;
				left--;
			}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_assign(k->rk, NULL);
out:
	rd_kafka_topic_partition_list_destroy(l);
}

static int backfill_start(struct source_kafka *k, struct err *err)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *ask = NULL, *go = NULL;
	struct kafka_backfill_part *p = NULL;
	int64_t from_ms = ((int64_t)k->win.since - k->cfg->ks.clock_skew_s) * 1000;
	rd_kafka_topic_t *t = rd_kafka_topic_new(k->rk, k->cfg->ks.topic, NULL);
	rd_kafka_resp_err_t e;
	int *need = NULL;
	int i, n, reading, scans = 0, ret = -1;

	e = rd_kafka_metadata(k->rk, 0, t, &md, KAFKA_META_TIMEOUT_MS);
	if (e || md->topic_cnt != 1 || md->topics[0].err) {
		err_set(err, ERR_RETRY, "kafka metadata for topic %s: %s", k->cfg->ks.topic,
		        rd_kafka_err2str(e ? e : md->topics[0].err));
		goto out;
	}
	n = md->topics[0].partition_cnt;
	p = calloc((size_t)n + 1, sizeof(*p));
	need = calloc((size_t)n + 1, sizeof(*need));
	ask = rd_kafka_topic_partition_list_new(n);
	if (!p || !need || !ask) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		p[i].partition = md->topics[0].partitions[i].id;
		p[i].last_ts_ms = -1;
		e = rd_kafka_query_watermark_offsets(k->rk, k->cfg->ks.topic, p[i].partition,
		                                     &p[i].low, &p[i].high, KAFKA_META_TIMEOUT_MS);
		if (e) {
			err_set(err, ERR_RETRY, "kafka watermarks of %s/%d: %s", k->cfg->ks.topic,
			        p[i].partition, rd_kafka_err2str(e));
			goto out;
		}
		rd_kafka_topic_partition_list_add(ask, k->cfg->ks.topic, p[i].partition)->offset =
		    from_ms;
	}
	e = rd_kafka_offsets_for_times(k->rk, ask, KAFKA_META_TIMEOUT_MS);
	if (e)
		log_warn("kafka", "timestamp lookup failed; scanning from the earliest offsets",
		         "topic=%s error=%s", k->cfg->ks.topic, rd_kafka_err2name(e));
	for (i = 0; !e && i < n; i++) {
		const rd_kafka_topic_partition_t *a =
		    rd_kafka_topic_partition_list_find(ask, k->cfg->ks.topic, p[i].partition);

		need[i] = a && !a->err && a->offset == -1 && p[i].high > p[i].low;
	}
	if (!e)
		peek_last(k, p, need, n);
	reading = kafka_backfill_plan(e ? NULL : ask, from_ms, p, n);

	go = rd_kafka_topic_partition_list_new(n);
	pthread_mutex_lock(&k->lock);
	for (i = 0; i < n; i++) {
		struct kpart *kp = part_get(k, p[i].partition);

		if (!kp) {
			pthread_mutex_unlock(&k->lock);
			err_set(err, ERR_FATAL, "out of memory");
			goto out;
		}
		part_reset(kp, 0);
		kp->assigned = 1;
		kp->bound = p[i].high;
		kp->done = p[i].start >= p[i].high;
		scans += p[i].scan;
		if (!kp->done)
			rd_kafka_topic_partition_list_add(go, k->cfg->ks.topic, p[i].partition)
			    ->offset = p[i].start;
		log_debug(LOGC_KAFKA, "kafka", "backfill start",
		          "partition=%d low=%" PRId64 " high=%" PRId64 " start=%" PRId64 " scan=%d",
		          p[i].partition, p[i].low, p[i].high, p[i].start, p[i].scan);
	}
	k->assigned_once = 1;
	pthread_mutex_unlock(&k->lock);
	log_info("kafka", "backfill positions found",
	         "topic=%s partitions=%d reading=%d "
	         "scanned_from_earliest=%d",
	         k->cfg->ks.topic, n, reading, scans);
	e = rd_kafka_assign(k->rk, go);
	if (e) {
		err_set(err, ERR_RETRY, "kafka assign %s: %s", k->cfg->ks.topic,
		        rd_kafka_err2str(e));
		goto out;
	}
	ret = 0;
out:
	if (go)
		rd_kafka_topic_partition_list_destroy(go);
	if (ask)
		rd_kafka_topic_partition_list_destroy(ask);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	free(need);
	free(p);
	return ret;
}

/* ---- reading ---- */

/* LIMIT: a process ends once the partitions it holds are done; partitions a
 * later rebalance would hand it (a member left) wait for the next run. */
static int all_done(struct source_kafka *k)
{
	int i;

	if (!k->assigned_once)
		return 0;
	for (i = 0; i < k->nparts; i++)
		if (k->parts[i].assigned && !k->parts[i].done)
			return 0;
	return 1;
}

static void mark_done(struct source_kafka *k, int32_t p, struct kpart *kp)
{
	rd_kafka_topic_partition_list_t *l;

	if (kp->done)
		return;
	kp->done = 1;
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, k->cfg->ks.topic, p);
	rd_kafka_pause_partitions(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
}

static void dead_letter(struct source_kafka *k, const rd_kafka_message_t *m, const char *reason,
                        const char *where)
{
	rd_kafka_resp_err_t e;

	if (!k->dlq)
		return;
	e = rd_kafka_producev(
	    k->dlq, RD_KAFKA_V_TOPIC(k->cfg->ks.dead_letter_topic),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m->key, m->key_len),
	    RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_HEADER("pipeline.reason", reason, -1),
	    RD_KAFKA_V_HEADER("pipeline.source", where, -1), RD_KAFKA_V_END);
	if (e) {
		k->dlq_failed++;
		log_warn("kafka", "dead-letter produce failed", "source=%s error=%s", where,
		         rd_kafka_err2name(e));
	}
	rd_kafka_poll(k->dlq, 0);
}

static void on_dlq_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct source_kafka *k = opaque;

	if (m->err) {
		k->dlq_failed++;
		log_warn("kafka", "dead-letter message not delivered", "error=%s",
		         rd_kafka_err2name(m->err));
	}
}

/* Turn message M into item IT. Returns 1 when IT is to be handed out, 0
 * when the message is outside the backfill window. */
static int message_item(struct source_kafka *k, const rd_kafka_message_t *m, struct kpart *kp,
                        struct item *it)
{
	struct event ev;
	char reason[EVENT_REASON_MAX];
	int64_t ts = rd_kafka_message_timestamp(m, NULL);
	int ok;

	memset(it, 0, sizeof(*it));
	snprintf(it->source, sizeof(it->source), "%s/%d@%" PRId64, k->cfg->ks.topic,
	         (int)m->partition, m->offset);
	ok = !event_parse(m->payload, m->len, m->key, m->key_len,
	                  (size_t)k->cfg->ks.max_event_bytes, &ev, reason);
	if (k->backfill) {
		/* good events by their created_at; bad ones by the message time */
		time_t t = ok ? ev.created : (time_t)(ts >= 0 ? ts / 1000 : -1);

		if (t < k->win.since || t >= k->win.until)
			return 0;
	}
	it->ok = 1;
	it->has_pos = 1;
	it->part = m->partition;
	it->offset = m->offset;
	it->gen = kp->gen;
	it->has_identity = ev.has_identity;
	snprintf(it->ad_id, sizeof(it->ad_id), "%s", ev.ad_id);
	snprintf(it->image_id, sizeof(it->image_id), "%s", ev.image_id);
	if (ok) {
		snprintf(it->url, sizeof(it->url), "%s", ev.url);
		snprintf(it->created_at, sizeof(it->created_at), "%s", ev.created_at);
	} else {
		k->bad++;
		item_fail(it, "source", reason);
		dead_letter(k, m, reason, it->source);
	}
	return 1;
}

static int kafka_next(struct source *src, struct item *it, struct err *err)
{
	struct source_kafka *k = (struct source_kafka *)src;
	const struct kafka_source_config *ks = &k->cfg->ks;

	for (;;) {
		rd_kafka_message_t *m;
		struct kpart *kp;
		int got = 0, done;

		if (k->fatal)
			return err_set(err, ERR_FATAL, "kafka client failed: %s", k->fatal_msg);
		if (k->base.stop && *k->base.stop)
			return 0;
		pthread_mutex_lock(&k->lock);
		done =
		    all_done(k) || (!k->backfill && ks->max_events && k->taken >= ks->max_events);
		pthread_mutex_unlock(&k->lock);
		if (done)
			return 0;
		if (since_s(&k->last_progress) > ks->wait_timeout_s)
			return err_set(err, ERR_RETRY, "kafka: %s from topic %s for %d s",
			               k->assigned_once ? "no progress" : "no partition assignment",
			               ks->topic, ks->wait_timeout_s);
		m = rd_kafka_consumer_poll(k->rk, ks->poll_timeout_ms);
		if (!m)
			continue;
		pthread_mutex_lock(&k->lock);
		kp = m->partition < k->nparts && m->partition >= 0 ? &k->parts[m->partition] : NULL;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (kp && kp->assigned && m->offset >= kp->bound)
				mark_done(k, m->partition, kp);
			progress(k);
		} else if (m->err) {
			log_warn("kafka", "consume error",
			         "topic=%s partition=%d error=%s detail=\"%s\"", ks->topic,
			         (int)m->partition, rd_kafka_err2name(m->err),
			         rd_kafka_message_errstr(m));
			if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
			    m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
			    m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
			    m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
				err_set(err, ERR_FATAL, "kafka topic %s: %s", ks->topic,
				        rd_kafka_err2str(m->err));
				got = -1;
			}
		} else if (kp && kp->assigned && !kp->done) {
			progress(k);
			/* LIMIT: a backfill stops a partition at the first message
			 * stamped past the window plus the margin, so producer
			 * timestamps must follow created_at within the margin */
			int64_t ts = rd_kafka_message_timestamp(m, NULL);

			if (m->offset >= kp->bound || (k->backfill && ts > k->stop_ms)) {
				if (m->offset < kp->bound && !k->late_parts++) {
					k->late_part = m->partition;
					k->late_offset = m->offset;
					k->late_ms = ts;
				}
				mark_done(k, m->partition, kp);
			} else if (message_item(k, m, kp, it)) {
				got = 1;
				if (!k->backfill && pend_push(kp, m->offset)) {
					err_set(err, ERR_FATAL, "out of memory");
					got = -1;
				}
				k->taken++;
			} else {
				k->skipped++;
				kp->next = m->offset + 1;
			}
			if (m->offset + 1 >= kp->bound)
				mark_done(k, m->partition, kp);
		}
		pthread_mutex_unlock(&k->lock);
		rd_kafka_message_destroy(m);
		if (got)
			return got;
	}
}

static void kafka_close(struct source *src)
{
	struct source_kafka *k = (struct source_kafka *)src;
	int i;

	if (k->rk && k->backfill && k->taken == 0 && k->late_parts) {
		/* the usual cause: events produced (stamped) long after their created_at */
		time_t t = (time_t)(k->late_ms / 1000);
		struct tm tm;
		char when[32] = "?";

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		log_warn(
		    "kafka", "backfill found no events: messages are stamped after the window",
		    "topic=%s partitions=%d first_partition=%d first_offset=%" PRId64
		    " first_timestamp=%s clock_skew_s=%d hint=\"a backfill reads messages stamped"
		    " up to clock_skew_s after the window; raise kafka_source.clock_skew_s, or use"
		    " --from-db for photos already recorded\"",
		    k->cfg->ks.topic, k->late_parts, (int)k->late_part, k->late_offset, when,
		    k->cfg->ks.clock_skew_s);
	}
	if (k->rk) {
		log_info("kafka", "source closed",
		         "topic=%s mode=%s events=%lld bad=%lld "
		         "outside_window=%lld stamped_after_window=%d commits=%d commit_errors=%d "
		         "dead_letter_failed=%lld",
		         k->cfg->ks.topic, k->backfill ? "backfill" : "group", k->taken, k->bad,
		         k->skipped, k->late_parts, k->commits, k->commit_errors, k->dlq_failed);
		/* leaves the group; the end of the run has committed, or has
		 * decided not to */
		k->closing = 1;
		rd_kafka_consumer_close(k->rk);
		rd_kafka_destroy(k->rk);
	}
	if (k->dlq) {
		dlq_flush(k);
		rd_kafka_destroy(k->dlq);
	}
	for (i = 0; i < k->nparts; i++) {
		free(k->parts[i].pend);
		free(k->parts[i].acked);
	}
	free(k->parts);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static const struct source_ops kafka_ops = {kafka_next, kafka_close, kafka_ack, kafka_commit};

struct source *source_kafka_open(const struct config *cfg, const struct source_window *win,
                                 struct err *err)
{
	struct source_kafka *k = calloc(1, sizeof(*k));
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *sub = NULL;
	char errstr[512];
	rd_kafka_resp_err_t e;

	if (!k) {
		err_set(err, ERR_FATAL, "out of memory");
		return NULL;
	}
	k->base.ops = &kafka_ops;
	k->cfg = cfg;
	k->win = *win;
	k->backfill = win->since || win->until;
	k->stop_ms = ((int64_t)win->until + cfg->ks.clock_skew_s) * 1000;
	pthread_mutex_init(&k->lock, NULL);
	progress(k);

	if (cfg->ks.dead_letter_topic[0]) {
		conf = client_conf(k, 0, err);
		if (!conf)
			goto fail;
		rd_kafka_conf_set_dr_msg_cb(conf, on_dlq_delivery);
		k->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
		if (!k->dlq) {
			rd_kafka_conf_destroy(conf);
			err_set(err, ERR_FATAL, "kafka producer: %s", errstr);
			goto fail;
		}
	}
	conf = client_conf(k, 1, err);
	if (!conf)
		goto fail;
	k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (!k->rk) {
		rd_kafka_conf_destroy(conf);
		err_set(err, ERR_FATAL, "kafka consumer: %s", errstr);
		goto fail;
	}
	rd_kafka_poll_set_consumer(k->rk);
	if (k->backfill) {
		if (backfill_start(k, err))
			goto fail;
	} else {
		/* LIMIT: a nightly --dry-run joins the consumer group like a real run (it commits
		 * nothing), so workers running at that moment go through a rebalance */
		sub = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(sub, cfg->ks.topic, RD_KAFKA_PARTITION_UA);
		e = rd_kafka_subscribe(k->rk, sub);
		rd_kafka_topic_partition_list_destroy(sub);
		if (e) {
			err_set(err, ERR_FATAL, "kafka subscribe to %s: %s", cfg->ks.topic,
			        rd_kafka_err2str(e));
			goto fail;
		}
	}
	log_info("kafka", "source opened", "topic=%s group=%s mode=%s", cfg->ks.topic,
	         cfg->ks.group_id, k->backfill ? "backfill" : "group");
	return &k->base;
fail:
	kafka_close(&k->base);
	return NULL;
}
