# A real run with failed photos: the metrics file counts them by stage and
# kind of reason, `pipeline-run status` shows the run, the active model and
# the pending failures; lines carry <N> priorities only when stderr is the
# journal stream; a terminal gets a progress bar.
. "$(dirname "$0")/../lib/common.sh"

mkdir -p "$T/img" "$T/metrics"
H="$SHARED/data/hostile-images"
for i in 0 1 2; do cp "$DATA/images/bicycle_final/111085122871_$i.JPG" "$T/img/good$i.jpg"; done
cp "$H/truncated-half.jpg" "$H/empty.jpg" "$H/bomb-header.png" "$T/img/"
cat >"$T/ads.csv" <<EOC
ad_id,image_id,image,created_at
600,1,good0.jpg,2026-11-30T10:00:00Z
600,2,good1.jpg,2026-11-30T10:00:01Z
600,3,good2.jpg,2026-11-30T10:00:02Z
600,4,truncated-half.jpg,2026-11-30T10:00:03Z
601,5,empty.jpg,2026-11-30T10:00:04Z
601,6,missing.jpg,2026-11-30T10:00:05Z
601,7,bomb-header.png,2026-11-30T10:00:06Z
EOC
write_config "$T/ads.csv" "$T/img" "metrics:
    textfile_dir: $T/metrics"

# a dry run leaves the metrics file alone: its success would hide a run that did not happen
run_pipeline 3 --config "$CFG" --date 2026-11-30 --dry-run
[ ! -e "$T/metrics/pipeline-run-backfill.prom" ] || fail "a dry run wrote the metrics file"

# stderr is the journal when JOURNAL_STREAM names its device and inode
rc=0
JOURNAL_STREAM=$(stat -L -c '%d:%i' "$T") "$BIN" --config "$CFG" --date 2026-11-30 \
	2>"$T/plain.log" || rc=$?
expect_eq "$rc" 3 "exit code with failed photos"
grep -q "^<" "$T/plain.log" && fail "priority prefixes although stderr is a file"
touch "$T/journal.log"
rc=0
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/journal.log") "$BIN" --config "$CFG" --date 2026-11-30 \
	2>>"$T/journal.log" || rc=$?
expect_eq "$rc" 3 "exit code of the second run"
grep -q '^<6>level=info stage=run msg="run finished"' "$T/journal.log" || fail "no <6> on info"
grep -q '^<4>level=warn ' "$T/journal.log" || fail "no <4> on warnings"
grep -v -q '^<[3467]>level=' "$T/journal.log" && fail "a line without a priority"

m="$T/metrics/pipeline-run-backfill.prom"
cat "$m"
by_reason='pipeline_run_photos_failed_by_reason{kind="backfill"'
metric() { awk -v k="$1" '$1 == k { print $2 }' "$m"; }
expect_eq "$(metric 'pipeline_run_photos_processed{kind="backfill"}')" 7 "processed"
expect_eq "$(metric 'pipeline_run_photos_embedded{kind="backfill"}')" 3 "embedded"
expect_eq "$(metric 'pipeline_run_photos_failed{kind="backfill"}')" 4 "failed"
expect_eq "$(metric "$by_reason,stage=\"resize\",reason=\"truncated\"}")" \
	1 "truncated"
expect_eq "$(metric "$by_reason,stage=\"resize\",reason=\"too_many_pixels\"}")" \
	1 "too many pixels"
expect_eq "$(metric "$by_reason,stage=\"fetch\",reason=\"cannot_open_photo\"}")" \
	1 "missing file"
expect_eq "$(metric 'pipeline_run_exit_code{kind="backfill"}')" 3 "exit code metric"
expect_eq "$(metric 'pipeline_run_running{kind="backfill"}')" 0 "not running"
expect_eq "$(metric 'pipeline_run_model_id{kind="backfill"}')" "$(q 'select id from models')" \
	"model id"
last=$(metric 'pipeline_run_last_success_timestamp_seconds{kind="backfill"}')
end=$(q 'select extract(epoch from finished_at) from pipeline_runs where id = 2')
awk -v a="$last" -v b="$end" 'BEGIN { d = a - b; exit !(d < 1 && d > -1) }' ||
	fail "last success $last is not the run's end $end"
for s in resize embed store group; do
	v=$(metric "pipeline_run_stage_seconds{kind=\"backfill\",stage=\"$s\"}")
	awk -v v="$v" 'BEGIN { exit !(v > 0) }' || fail "stage $s seconds: '$v'"
done
[ "$(stat -c %a "$m")" = 644 ] || fail "metrics file mode $(stat -c %a "$m")"
label='[a-z_]+="[^"]*"'
sample="[a-z_]+(\\{$label(,$label)*\\})? -?[0-9.e+]+"
promtool_like=$(grep -v -E "^(# (HELP|TYPE) [a-z_]+ .*|$sample)\$" "$m" || true)
expect_eq "$promtool_like" "" "every line is in the text exposition format"

"$BIN" status --config "$CFG" >"$T/status.txt"
cat "$T/status.txt"
grep -q -E "^ +2  backfill  2026-11-30  partial .* +7 +3 +4 +1 +1$" "$T/status.txt" ||
	fail "status lacks the second run"
grep -q "^active model: id=1 backbone=mobilenetv2_100 " "$T/status.txt" || fail "active model"
grep -q "^pending failures: 4 (resize=3 fetch=1)$" "$T/status.txt" || fail "pending failures"
grep -q "1 x resize: truncated (last recorded by run 1)" "$T/status.txt" || fail "top reasons"
grep -q "^running now: 0$" "$T/status.txt" || fail "running now"

# a terminal gets a bar redrawn in place, cleared before the summary line
TERM=xterm script -q -e -c "$BIN --config $CFG --date 2026-11-30" /dev/null >"$T/tty.out" || true
grep -a -q $'\r\033\\[K\\[#*\\.*\\] [0-9]*/7 photos' "$T/tty.out" || fail "no progress bar on a tty"
