# Two real processes over the same date: the second exits 5 naming the
# holder, or waits (run.lock_wait_s) and runs after the first; another date
# runs alongside; a run killed while holding the lock leaves a 'running' row
# that `status` flags and the next run of its date marks failed.
. "$(dirname "$0")/../lib/common.sh"

# a few photos of each date keep the runs short
awk -F, 'NR == 1 || n[substr($4, 1, 10)]++ < 6' "$DATA/ads.csv" >"$T/ads.csv"
write_config "$T/ads.csv" "$DATA/images"
run_pipeline 0 migrate --config "$CFG"

# start_held LOG ARGS...: a run that is stopped (SIGSTOP) once it holds its lock
start_held() {
	local log=$1
	shift
	"$BIN" --config "$CFG" "$@" 2>"$log" &
	HELD=$!
	for _ in $(seq 1 300); do
		grep -q "lock=acquired" "$log" && break
		kill -0 "$HELD" 2>/dev/null || fail "held run ended early: $(cat "$log")"
		sleep 0.1
	done
	grep -q "lock=acquired" "$log" || fail "held run never took its lock"
	kill -STOP "$HELD"
}

start_held "$T/a.log" --date 2026-11-30
a=$HELD
run_pipeline 5 --date 2026-11-30 --config "$CFG"
holder="holder=\"pipeline-run date:2026-11-30 pid=$a@"
grep -q "lock=busy scope=date:2026-11-30 .*holder_pid=[0-9]* $holder" \
	"$T/run.log" || fail "busy line does not name the holder (pid $a)"
expect_eq "$(q "select count(*) from pipeline_runs where status = 'running'")" 1 \
	"the busy run recorded no run"

# another date is another scope
run_pipeline 0 --date 2026-11-29 --config "$CFG"

# a waiting run goes once the holder is done
sed -i '/^model:/i run:\n    lock_wait_s: 60' "$CFG"
"$BIN" --config "$CFG" --date 2026-11-30 2>"$T/c.log" &
c=$!
wait_for 30 "lock=waiting from the second run" grep -q "lock=waiting" "$T/c.log"
grep -q "lock=waiting scope=date:2026-11-30 wait_max_s=60 holder_pid=" "$T/c.log" ||
	fail "waiting run did not say whom it waits for: $(cat "$T/c.log")"
kill -CONT "$a"
wait "$a" || fail "the first run failed"
wait "$c" || fail "the waiting run failed: $(cat "$T/c.log")"
grep -q "lock=acquired scope=date:2026-11-30 waited_s=" "$T/c.log" || fail "no lock=acquired"
grep -q "lock=released" "$T/a.log" || fail "first run did not release"
expect_eq "$(q "select string_agg(status, ',' order by id) from pipeline_runs
	where date = '2026-11-30'")" "ok,ok" "both runs of the date ran, one after the other"

# a run killed while it holds the lock
start_held "$T/k.log" --date 2026-11-28
kill -KILL "$HELD"
wait "$HELD" 2>/dev/null || true
"$BIN" status --config "$CFG" >"$T/status.txt"
cat "$T/status.txt"
grep -q "2026-11-28 .*no process holds its lock" "$T/status.txt" ||
	fail "status does not flag the dead run"
run_pipeline 0 --date 2026-11-28 --config "$CFG"
grep -q "earlier run of this scope died" "$T/run.log" || fail "dead run not reported"
expect_eq "$(q "select status || ': ' || error from pipeline_runs where date = '2026-11-28'
	order by id limit 1")" "failed: abandoned: the process ended without recording its end" \
	"the dead run is marked failed"
expect_eq "$(q "select count(*) from pipeline_runs where status = 'running'")" 0 \
	"no run left running"
