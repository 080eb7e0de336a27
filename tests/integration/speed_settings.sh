# How a run uses the CPU: libtorch's OpenMP threads wait passively unless the environment
# chose a policy, resize threads take turns with CPU forward passes when configured (the
# embeddings do not change), and a line says where the run's time went.
. "$(dirname "$0")/../lib/common.sh"

head -n 17 "$DATA/ads.csv" >"$T/ads.csv"
write_config "$T/ads.csv" "$DATA/images"

times_line() {
	grep 'msg="stage times"' "$T/run.log" || fail "no stage times line"
}
embeddings() {
	q "select md5(string_agg(image_id || embedding::text, '|' order by image_id))
	   from image_embeddings"
}

env -u OMP_WAIT_POLICY "$BIN" --config "$CFG" 2>"$T/run.log" || fail "run failed"
line=$(times_line)
echo "$line" | grep -q "omp_wait_policy=PASSIVE" || fail "OpenMP policy not passive: $line"
echo "$line" | grep -q "cpu_turns=0" || fail "cpu turns on by default: $line"
forward=$(echo "$line" | sed 's/.* forward_s=\([0-9.]*\).*/\1/')
calls=$(echo "$line" | sed 's/.* embed_calls_s=\([0-9.]*\).*/\1/')
awk -v f="$forward" -v c="$calls" 'BEGIN { exit !(f > 0 && c >= f) }' ||
	fail "forward_s $forward not within embed_calls_s $calls"
expect_eq "$(q "select count(*) from image_embeddings")" 16 "photos embedded"
without_turns=$(embeddings)

sed -i 's/queue_depth: 32/queue_depth: 32\n    cpu_turns: true/' "$CFG"
OMP_WAIT_POLICY=ACTIVE "$BIN" --config "$CFG" 2>"$T/run.log" || fail "run with turns failed"
line=$(times_line)
echo "$line" | grep -q "omp_wait_policy=ACTIVE" || fail "the environment's policy was replaced"
echo "$line" | grep -q "cpu_turns=1" || fail "cpu_turns: true ignored: $line"
expect_eq "$(embeddings)" "$without_turns" "embeddings with turns equal those without"
echo "ok: speed settings"
