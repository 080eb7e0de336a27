# Nightly runs from Kafka over the sample ads on a 6-partition topic: a run
# processes every event and commits; a second run reads nothing and changes
# no row; a run killed with SIGKILL after some database commits and run again
# ends with the same tables; two processes in one group split the partitions
# and end with the same tables too.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kafka.sh"

kafka_start -b 3 -t ad-images:6
sop_events | kafka_produce ad-images
total=$(sop_events | wc -l)

# 1. one uninterrupted run, then a second one
write_kafka_config nightly-1
run_pipeline 0 --config "$CFG"
expect_eq "$(q "select count(*) from ad_images where status = 'embedded'")" "$total" "embedded"
expect_eq "$(q 'select count(*) from image_groups')" "$total" "grouped photos"
expect_eq "$(q "select count(*) from ad_images where source !~ '^ad-images/[0-5]@[0-9]+$'")" 0 \
	"sources are topic/partition@offset"
expect_eq "$(kafka_committed_sum nightly-1)" "$total" "offsets committed up to the end"
reference=$(result_digest)
image_rows >"$T/reference.rows"
tables="ad_images image_embeddings image_groups failures models"
before=""
for t in $tables; do before="$before $t=$(table_digest $t)"; done
run_pipeline 0 --config "$CFG"
grep -q "photos_in=0 " "$T/run.log" || fail "second run read events again"
after=""
for t in $tables; do after="$after $t=$(table_digest $t)"; done
expect_eq "$after" "$before" "tables after a second nightly run"
main_db=$PGDATABASE

# 2. killed with SIGKILL after some commits, then run again
export PGDATABASE="${main_db}_kill"
createdb "$PGDATABASE"
write_kafka_config nightly-kill
"$BIN" --config "$CFG" 2>"$T/killed.log" &
pid=$!
wait_rows "select count(*) from ad_images" 40 "$pid" 120
kill -9 "$pid"
wait "$pid" || true
stored=$(q 'select count(*) from ad_images')
[ "$stored" -lt "$total" ] || fail "the run finished before it was killed"
expect_eq "$(kafka_committed_sum nightly-kill)" 0 "offsets committed by the killed run"
run_pipeline 0 --config "$CFG"
expect_eq "$(result_digest)" "$reference" "tables after kill -9 and a rerun"
expect_eq "$(kafka_committed_sum nightly-kill)" "$total" "offsets after the rerun"
dropdb "$PGDATABASE"

# 3. two processes in one group
export PGDATABASE="${main_db}_two"
createdb "$PGDATABASE"
write_kafka_config nightly-two
PGDATABASE=$PGDATABASE "$BIN" migrate --config "$CFG" 2>/dev/null
"$BIN" --config "$CFG" 2>"$T/a.log" &
a=$!
"$BIN" --config "$CFG" 2>"$T/b.log" &
b=$!
rc_a=0 rc_b=0
wait "$a" || rc_a=$?
wait "$b" || rc_b=$?
cat "$T/a.log" "$T/b.log" >&2
expect_eq "$rc_a:$rc_b" "0:0" "exit codes of the two processes"
grep -h "run finished" "$T/a.log" "$T/b.log" | grep -q "photos_in=[1-9]" || fail "no process read"
[ "$(grep -h "partitions assigned" "$T/a.log" | tail -n 1 | sed 's/.*partitions=//')" != 6 ] ||
	[ "$(grep -h "partitions assigned" "$T/b.log" | tail -n 1 | sed 's/.*partitions=//')" != 6 ] ||
	fail "one process held every partition"
# Each photo row the two wrote is the reference's row. A process ends once
# the partitions it holds are done; a partition taken from it by a rebalance
# that ends after the other process finished waits for the next run.
image_rows >"$T/two.rows"
comm -23 "$T/two.rows" "$T/reference.rows" >"$T/extra.rows"
expect_eq "$(wc -l <"$T/extra.rows")" 0 "photo rows that differ from the reference"
stored=$(wc -l <"$T/two.rows")
[ "$stored" -ge $((total * 3 / 4)) ] || fail "the two processes stored only $stored photos"
# The mock refuses commits while the group rebalances (a real broker accepts
# them), so a process that ends as the other leaves may commit nothing: the
# next run reads those events again and changes nothing.
[ "$(kafka_committed_sum nightly-two)" -le "$total" ] || fail "offsets past the end"
run_pipeline 0 --config "$CFG"
expect_eq "$(result_digest)" "$reference" "tables after a run that follows the two"
expect_eq "$(kafka_committed_sum nightly-two)" "$total" "offsets of the group"
dropdb "$PGDATABASE"
export PGDATABASE=$main_db
