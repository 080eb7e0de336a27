# PostgreSQL restarted in the middle of a run: the run reconnects with backoff and finishes
# with the same tables as an uninterrupted run. PostgreSQL down for longer than the retries
# last: the run exits 1 with every committed batch whole, and a rerun completes. The server
# here is a throwaway cluster of this test's own, so the rest of the suite is not disturbed.
. "$(dirname "$0")/../lib/common.sh"

write_config "$DATA/ads.csv" "$DATA/images" "pipeline:
    resize_threads: 1
    torch_threads: 1"
date=2026-11-30
photos=$(day_photos $date)

run_pipeline 0 --config "$CFG" --date $date
want=$(content_digest)

# this test's own server; the suite's database is dropped by common.sh as usual
own="$T/pg"
"$ROOT/scripts/pg-local" start "$own" >/dev/null
trap '"$ROOT/scripts/pg-local" stop "$own"; cleanup' EXIT
suite_pghost=$PGHOST
PGHOST="$own/sock"
createdb "$PGDATABASE"

# a restart after the first batches
"$BIN" --config "$CFG" --date $date 2>"$T/restart.log" &
pid=$!
wait_rows "select count(*) from ad_images" 16 $pid
"$ROOT/scripts/pg-local" stop "$own"
sleep 1
"$ROOT/scripts/pg-local" start "$own" >/dev/null
rc=0
wait $pid || rc=$?
cat "$T/restart.log" >&2
expect_eq "$rc" 0 "exit code of the run that saw the restart"
grep -q 'msg="database unavailable, retrying"' "$T/restart.log" || fail "no retry logged"
expect_eq "$(content_digest)" "$want" "tables after a restart mid-run"
expect_eq "$(q "select status || ':' || photos_in from pipeline_runs")" "ok:$photos" \
	"the run is recorded once, complete"

# down for good: after database.retries attempts the run gives up with exit 1, keeping only
# whole batches
dropdb "$PGDATABASE"
createdb "$PGDATABASE"
sed 's/^database:$/database:\n    retries: 3/' "$CFG" >"$T/few-retries.yaml"
"$BIN" --config "$T/few-retries.yaml" --date $date 2>"$T/down.log" &
pid=$!
wait_rows "select count(*) from ad_images" 16 $pid
"$ROOT/scripts/pg-local" stop "$own"
rc=0
wait $pid || rc=$?
cat "$T/down.log" >&2
expect_eq "$rc" 1 "exit code of the run whose database stayed down"
grep -q 'msg="run failed".*database still failing after 3 attempts: store: cannot connect' \
	"$T/down.log" || fail "no clear reason for giving up"
"$ROOT/scripts/pg-local" start "$own" >/dev/null
stored=$(q "select count(*) from ad_images")
expect_eq "$((stored % 8))" 0 "only whole batches of 8 committed ($stored photos)"
expect_eq "$(q "select count(*) from ad_images a left join image_embeddings e using (image_id)
	where e.image_id is null")" 0 "every stored photo has its embedding"
run_pipeline 0 --config "$CFG" --date $date
expect_eq "$(content_digest)" "$want" "tables after the rerun"
PGHOST=$suite_pghost
