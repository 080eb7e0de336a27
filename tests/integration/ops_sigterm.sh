# systemd's protocol and a stop in the middle of a run: with NOTIFY_SOCKET and
# WATCHDOG_USEC set the run sends READY=1, STATUS= progress and WATCHDOG=1;
# SIGTERM after the first batch makes it send STOPPING=1, write and group the
# photos in flight, record itself as 'stopped' and exit 4, with every stored
# photo embedded and grouped (nothing half-done).
. "$(dirname "$0")/../lib/common.sh"

write_config "$DATA/ads.csv" "$DATA/images" "metrics:
    textfile_dir: $T/metrics"
mkdir -p "$T/metrics"
run_pipeline 0 migrate --config "$CFG"

# a stand-in for systemd's notification socket: logs each message, sends
# SIGTERM to the run at the first watchdog ping (which follows a batch)
cat >"$T/listen.py" <<'EOP'
import os, signal, socket, sys
path, log, pidfile = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(path + ".ready", "w").close()
sent = False
with open(log, "w") as out:
    while True:
        msg = s.recv(65536).decode()
        out.write(msg.replace("\n", " | ") + "\n")
        out.flush()
        if "WATCHDOG=1" in msg and not sent:
            os.kill(int(open(pidfile).read()), signal.SIGTERM)
            sent = True
EOP
python3 "$T/listen.py" "$T/notify.sock" "$T/notify.log" "$T/run.pid" &
listener=$!
wait_for 10 "notification socket" test -e "$T/notify.sock.ready"

rc=0
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=1000000 "$BIN" --config "$CFG" 2>"$T/run.log" &
pid=$!
echo "$pid" >"$T/run.pid"
wait "$pid" || rc=$?
# the listener logs what the run sent before it exited
wait_for 10 "STOPPING=1 in the listener's log" grep -q "STOPPING=1" "$T/notify.log"
kill "$listener"
cat "$T/run.log" >&2
cat "$T/notify.log"
expect_eq "$rc" 4 "exit code of a stopped run"

# the first of each message, in order (pings go on while the run winds down)
order=$(grep -o -E "READY=1|WATCHDOG=1|STOPPING=1" "$T/notify.log" | awk '!seen[$0]++' |
	tr '\n' ' ')
expect_eq "$order" "READY=1 WATCHDOG=1 STOPPING=1 " "notification order"
grep -q "^READY=1 | STATUS=run 1: 0/396 photos" "$T/notify.log" || fail "READY without STATUS"
grep -q "stop requested: finishing the photos in flight" "$T/run.log" || fail "no stop line"
grep -q "systemd watchdog on" "$T/run.log" || fail "watchdog not seen"

n=$(q "select photos_in from pipeline_runs")
[ "$n" -gt 0 ] && [ "$n" -lt 396 ] || fail "stopped run processed $n of 396 photos"
echo "ok: stopped after $n photos"
expect_eq "$(q "select status from pipeline_runs")" "stopped" "run status"
q "select error from pipeline_runs" | grep -q "^stopped by a signal after $n photos" ||
	fail "run error: $(q "select error from pipeline_runs")"
expect_eq "$(q 'select count(*) from ad_images')" "$n" "photos stored = photos processed"
expect_eq "$(q "select count(*) from ad_images i left join image_embeddings e using (image_id)
	where e.image_id is null")" 0 "every stored photo has its embedding"
expect_eq "$(q "select count(*) from ad_images i left join image_groups g using (image_id)
	where g.image_id is null")" 0 "every stored photo is grouped"

m="$T/metrics/pipeline-run-nightly.prom"
grep -q 'status="stopped"' "$m" || fail "metrics status"
grep -q '^pipeline_run_exit_code{kind="nightly"} 4$' "$m" || fail "metrics exit code"
grep -q "^pipeline_run_photos_processed{kind=\"nightly\"} $n\$" "$m" || fail "metrics count"
expect_eq "$(ls -A "$T/metrics" | tr '\n' ' ')" "pipeline-run-nightly.prom " \
	"only the metrics file is left (no temporary file)"
