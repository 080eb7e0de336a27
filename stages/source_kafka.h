/* source_kafka.h - the Kafka source's pieces that are tested without a broker.
 *
 * The source itself is opened through source_open() (source.h). */
#ifndef STAGES_SOURCE_KAFKA_H
#define STAGES_SOURCE_KAFKA_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a backfill knows about one partition before it reads it. */
struct kafka_backfill_part {
	int32_t partition;
	int64_t low, high;  /* watermarks */
	int64_t last_ts_ms; /* timestamp of the message at high - 1; -1: unknown */
	int64_t start;      /* out: first offset to read (high: nothing to read) */
	int scan;           /* out: the broker's answer was unusable; read from low and
	                     * filter by timestamp */
};

/* Decide where a backfill starts in each of the N partitions of P, from the
 * broker's offsetsForTimes ANSWER for the time FROM_MS (the window's start
 * minus the clock-skew margin). A partition the answer lacks or reports an
 * error for is scanned from its low watermark. An answer of "no message at or
 * after FROM_MS" (offset -1) is believed only when the partition's last
 * message is older than FROM_MS (LAST_TS_MS known): brokers that do not
 * implement the lookup give that answer for every time. Returns how many
 * partitions need reading. */
int kafka_backfill_plan(const rd_kafka_topic_partition_list_t *answer, int64_t from_ms,
                        struct kafka_backfill_part *p, int n);

#ifdef __cplusplus
}
#endif

#endif
