# Sourced after common.sh by the Kafka tests: a mock Kafka cluster of the
# test's own (librdkafka's mock brokers on loopback, random ports), events
# made from the sample ads, configs for the Kafka source, offset checks.
case "$BUILD" in
/*) KMOCK="$BUILD/tools/kafka_mock" ;;
*) KMOCK="$ROOT/$BUILD/tools/kafka_mock" ;;
esac
[ -x "$KMOCK" ] || fail "$KMOCK not built (make unit)"
KAFKA_PID=""
KAFKA_HOLD=""

kafka_stop() {
	[ -n "$KAFKA_PID" ] && kill "$KAFKA_PID" 2>/dev/null && wait "$KAFKA_PID" 2>/dev/null
	[ -n "$KAFKA_HOLD" ] && kill "$KAFKA_HOLD" 2>/dev/null
	KAFKA_PID=""
	KAFKA_HOLD=""
}
trap 'kafka_stop; cleanup' EXIT

# kafka_start ARGS...: start the cluster (kafka_mock serve ARGS); sets BOOTSTRAP.
# Commands for it (faults) go through kafka_ctl.
kafka_start() {
	mkfifo "$T/kafka.ctl"
	# a writer that never writes keeps the control pipe open
	sleep 100000 >"$T/kafka.ctl" &
	KAFKA_HOLD=$!
	"$KMOCK" serve "$@" <"$T/kafka.ctl" >"$T/kafka.addr" 2>"$T/kafka.log" &
	KAFKA_PID=$!
	wait_for 10 "mock cluster address: $(cat "$T/kafka.log")" test -s "$T/kafka.addr"
	BOOTSTRAP=$(head -n 1 "$T/kafka.addr")
	[ -n "$BOOTSTRAP" ] || fail "mock cluster did not start: $(cat "$T/kafka.log")"
	echo "mock cluster at $BOOTSTRAP"
}

kafka_ctl() {
	echo "$*" >"$T/kafka.ctl"
}

# sop_events [DATE]: one event line per sample photo ("KEY<TAB>TS_MS<TAB>JSON",
# timestamps from created_at), all or those of DATE, in created_at order as a
# platform would produce them
sop_events() {
	python3 - "$DATA" "${1:-}" <<'PY'
import csv, datetime, json, sys
data, day = sys.argv[1], sys.argv[2]
for r in sorted(csv.DictReader(open(data + "/ads.csv")), key=lambda r: r["created_at"]):
    if day and not r["created_at"].startswith(day):
        continue
    ts = datetime.datetime.fromisoformat(r["created_at"].replace("Z", "+00:00"))
    ev = {"ad_id": r["ad_id"], "image_id": r["image_id"],
          "url": "file://" + data + "/images/" + r["image"], "created_at": r["created_at"]}
    print("%s\t%d\t%s" % (r["ad_id"], int(ts.timestamp() * 1000), json.dumps(ev)))
PY
}

# kafka_produce TOPIC < lines
kafka_produce() {
	"$KMOCK" produce "$BOOTSTRAP" "$1"
}

# kafka_committed GROUP [TOPIC]: "partition offset" lines
kafka_committed() {
	"$KMOCK" committed "$BOOTSTRAP" "$1" "${2:-ad-images}"
}

# kafka_committed_sum GROUP: the sum of the committed offsets (none = 0)
kafka_committed_sum() {
	kafka_committed "$1" | awk '{ if ($2 > 0) s += $2 } END { print s + 0 }'
}

# write_kafka_config GROUP [KAFKA_SOURCE_LINES] [EXTRA_YAML]: a Kafka-source
# config in $CFG; KAFKA_SOURCE_LINES ("key: value" lines) join its section;
# the topic is $KAFKA_TOPIC (default ad-images)
write_kafka_config() {
	local ks="" line
	# the defaults below, less the keys the caller sets
	for line in "group_id: $1" "poll_timeout_ms: 200" "wait_timeout_s: 60"; do
		printf '%s\n' "${2:-}" | grep -q "^${line%%:*}:" || ks="$ks$line"$'\n'
	done
	ks="$ks${2:-}"
	write_config_yaml "source:
    kind: kafka
    images_root: $DATA/images
kafka:
    bootstrap.servers: \"$BOOTSTRAP\"
    session.timeout.ms: 6000
    heartbeat.interval.ms: 500
    topic.metadata.refresh.interval.ms: 1000
kafka_source:
    topic: ${KAFKA_TOPIC:-ad-images}
$(printf '%s\n' "$ks" | sed '/^$/d; s/^/    /')" "${3:-}" "    retries: 3"
}

# result_digest: the photos, their groups and the failures as one md5, without
# the columns that name runs (those differ between equivalent histories)
result_digest() {
	q "select md5(
	  (select coalesce(string_agg(concat_ws('|', image_id, ad_id, url, created_at, source,
	     status, failure_stage, failure_reason, width, height, content_sha256), ','
	     order by image_id), '') from ad_images) ||
	  (select coalesce(string_agg(image_id || '=' || group_id, ',' order by image_id), '')
	     from image_groups) ||
	  (select count(*) from image_embeddings)::text ||
	  (select coalesce(string_agg(concat_ws('|', key, image_id, ad_id, stage, reason), ','
	     order by key), '') from failures))"
}

# image_rows: the photo rows without run ids, one a line, sorted
image_rows() {
	q "select concat_ws('|', image_id, ad_id, url, created_at, source, status, failure_stage,
	   failure_reason, width, height, content_sha256) from ad_images" | LC_ALL=C sort
}

