# Faults around a Kafka run. PostgreSQL stopped during a run: the run exits 1
# having committed no offset past what is written, and the next run completes.
# SIGTERM: the run finishes what it took, commits exactly that and exits 4.
# Broker faults injected through the mock cluster (failing fetches, refused
# offset commits, a broker down for a while, every broker down): the run
# recovers, or fails cleanly; committed offsets never pass the database and
# the tables end as an undisturbed run leaves them.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kafka.sh"

kafka_start -b 3 -t ad-images:3 -t small:3
sop_events 2026-11-30 >"$T/events.txt"
kafka_produce ad-images <"$T/events.txt"
head -n 30 "$T/events.txt" | kafka_produce small
day=$(wc -l <"$T/events.txt")
suite_host=$PGHOST

# 1. PostgreSQL stops in the middle of a run
scripts_pg="$ROOT/scripts/pg-local"
"$scripts_pg" start "$T/pg" >/dev/null
export PGHOST="$T/pg/sock"
createdb "$PGDATABASE"
write_kafka_config pg-down
"$BIN" --config "$CFG" 2>"$T/pgdown.log" &
pid=$!
wait_rows "select count(*) from ad_images" 16 "$pid" 120
"$scripts_pg" stop "$T/pg"
rc=0
wait "$pid" || rc=$?
cat "$T/pgdown.log" >&2
expect_eq "$rc" 1 "exit code with the database gone"
grep -q "database still failing" "$T/pgdown.log" || fail "no database failure reported"
"$scripts_pg" start "$T/pg" >/dev/null
stored=$(q 'select count(*) from ad_images')
committed=$(kafka_committed_sum pg-down)
echo "stored=$stored committed=$committed"
[ "$committed" -le "$stored" ] || fail "offsets committed past the database"
run_pipeline 0 --config "$CFG"
expect_eq "$(q 'select count(*) from image_groups')" "$day" "photos after the next run"
expect_eq "$(kafka_committed_sum pg-down)" "$day" "offsets after the next run"
reference=$(result_digest)
"$scripts_pg" stop "$T/pg"
export PGHOST=$suite_host

# 2. SIGTERM: what was taken is finished, written and committed
fresh_db
write_kafka_config sigterm
"$BIN" --config "$CFG" 2>"$T/term.log" &
pid=$!
wait_rows "select count(*) from ad_images" 16 "$pid" 120
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
cat "$T/term.log" >&2
expect_eq "$rc" 4 "exit code after SIGTERM (stopped)"
grep -q "stopped_early=1" "$T/term.log" || fail "the run did not stop early"
stored=$(q 'select count(*) from ad_images')
[ "$stored" -lt "$day" ] || fail "the run finished before SIGTERM"
expect_eq "$(kafka_committed_sum sigterm)" "$stored" "offsets committed after SIGTERM"
expect_eq "$(q 'select count(*) from image_groups')" "$stored" "photos grouped after SIGTERM"
run_pipeline 0 --config "$CFG"
expect_eq "$(result_digest)" "$reference" "tables after SIGTERM and a rerun"

# 3. fetch requests fail for a while: the client retries, the run completes
fresh_db
write_kafka_config fetch-errors
kafka_ctl "fail Fetch 20 NOT_LEADER_FOR_PARTITION"
kafka_ctl "fail ListOffsets 3 LEADER_NOT_AVAILABLE"
run_pipeline 0 --config "$CFG"
expect_eq "$(result_digest)" "$reference" "tables after failing fetches"
expect_eq "$(kafka_committed_sum fetch-errors)" "$day" "offsets after failing fetches"

# 4. offset commits refused: the rows are kept, nothing is committed, and
# the next run reads the events again without changing a row
fresh_db
write_kafka_config commit-errors "commit_timeout_s: 5"
kafka_ctl "fail OffsetCommit 20 NOT_COORDINATOR"
run_pipeline 0 --config "$CFG"
grep -q "source position not committed" "$T/run.log" || fail "refused commit not reported"
[ "$(kafka_committed_sum commit-errors)" -le "$(q 'select count(*) from ad_images')" ] ||
	fail "offsets past the database"
kafka_ctl "clear OffsetCommit"
before=$(result_digest)
run_pipeline 0 --config "$CFG"
expect_eq "$(result_digest)" "$before" "tables after re-reading uncommitted events"
expect_eq "$(result_digest)" "$reference" "tables after refused commits"
expect_eq "$(kafka_committed_sum commit-errors)" "$day" "offsets once commits work"

# 5. a broker is down when the run starts and comes back during it
fresh_db
write_kafka_config broker-bounce
kafka_ctl "down 2"
"$BIN" --config "$CFG" 2>"$T/bounce.log" &
pid=$!
sleep 4
kafka_ctl "up 2"
rc=0
wait "$pid" || rc=$?
cat "$T/bounce.log" >&2
expect_eq "$rc" 0 "exit code with a broker down for a while"
expect_eq "$(result_digest)" "$reference" "tables after a broker went down"

# 6. every broker down: the run gives up after wait_timeout_s, exits 1 and
# writes and commits nothing
fresh_db
KAFKA_TOPIC=small write_kafka_config all-down "wait_timeout_s: 4"
for b in 1 2 3; do kafka_ctl "down $b"; done
run_pipeline 1 --config "$CFG"
grep -q "no partition assignment from topic small for 4 s" "$T/run.log" ||
	fail "no timeout reported"
# SIGTERM while the run waits for the brokers ends it at once
KAFKA_TOPIC=small write_kafka_config all-down "wait_timeout_s: 120"
"$BIN" --config "$CFG" 2>"$T/wait.log" &
pid=$!
wait_for 60 "source opened in the run's log" grep -q 'msg="source opened"' "$T/wait.log"
t0=$SECONDS
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
cat "$T/wait.log" >&2
expect_eq "$rc" 4 "exit code of SIGTERM while waiting (stopped)"
[ $((SECONDS - t0)) -le 10 ] || fail "SIGTERM took $((SECONDS - t0)) s to end the wait"
grep -q "photos_in=0 .*stopped_early=1" "$T/wait.log" || fail "summary after SIGTERM"
for b in 1 2 3; do kafka_ctl "up $b"; done
expect_eq "$(q 'select count(*) from ad_images')" 0 "photos written with every broker down"
expect_eq "$(kafka_committed_sum all-down small)" 0 "offsets committed with every broker down"
