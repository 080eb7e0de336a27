# The run killed with SIGKILL at several points (while loading the model, after the first
# batch, halfway, three quarters in) and run again: the tables hold exactly what an
# uninterrupted run leaves, with no photo lost or stored twice.
. "$(dirname "$0")/../lib/common.sh"

# one thread each and a short queue, so that the run lasts long enough to be caught at each
# point
write_config "$DATA/ads.csv" "$DATA/images" "pipeline:
    resize_threads: 1
    torch_threads: 1"
sed -i 's/queue_depth: 32/queue_depth: 8/' "$CFG"
date=2026-11-30
photos=$(day_photos $date)

run_pipeline 0 --config "$CFG" --date $date
want=$(content_digest)
expect_eq "$(q 'select count(*) from ad_images')" $photos "photos in the uninterrupted run"

# kill_at WHAT SQL N: start a run, SIGKILL it once SQL reaches N, run again, compare
kill_at() {
	local what=$1 sql=$2 n=$3 pid rc=0
	fresh_db
	"$BIN" --config "$CFG" --date $date 2>"$T/killed.log" &
	pid=$!
	if [ "$n" -gt 0 ]; then
		wait_rows "$sql" "$n" $pid
	else
		sleep 0.3
	fi
	kill -KILL $pid
	wait $pid || rc=$?
	expect_eq "$rc" 137 "$what: the run was killed"
	expect_eq "$(q "select count(*) from pipeline_runs where status <> 'running'" 2>/dev/null ||
		echo 0)" 0 "$what: killed before it finished"
	echo "killed $what with $(q 'select count(*) from ad_images') photos stored"
	run_pipeline 0 --config "$CFG" --date $date
	expect_eq "$(content_digest)" "$want" "$what: tables after the rerun"
	expect_eq "$(q "select count(*) from ad_images")" $photos "$what: photos"
	expect_eq "$(q "select count(*) from pipeline_runs where status = 'ok'")" 1 \
		"$what: the rerun is recorded"
	# the rerun closes the killed run's row, once it had one
	[ "$n" -gt 0 ] && expect_eq "$(q "select count(*) from pipeline_runs
		where status = 'failed' and error like 'abandoned%'")" 1 "$what: killed run closed"
	expect_eq "$(q "select count(*) from pipeline_runs where status = 'running'")" 0 \
		"$what: no run left running"
}

kill_at "while starting" "" 0
kill_at "after the first batch" "select count(*) from ad_images" 1
kill_at "halfway" "select count(*) from ad_images" $((photos / 2))
kill_at "three quarters in" "select count(*) from ad_images" $((photos * 3 / 4))
