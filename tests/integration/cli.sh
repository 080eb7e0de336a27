# The command line: help, version, usage errors and config errors exit 2,
# --print-config shows the effective config with secrets masked.
. "$(dirname "$0")/../lib/common.sh"

"$BIN" --help | grep -q -- "--date YYYY-MM-DD" || fail "--help lacks --date"
"$BIN" --help | grep -q "3  finished, but some photos failed" || fail "--help lacks exit codes"
"$BIN" --version | grep -q "^pipeline-run " || fail "--version"

write_config "$DATA/ads.csv" "$DATA/images" "grouping:
    threshold: 0.42"
run_pipeline 2 --config "$CFG" --date 2026-13-01
grep -q "bad date '2026-13-01'" "$T/run.log" || fail "bad date message"
run_pipeline 2 --config "$CFG" --bogus
run_pipeline 2 --config "$CFG" frobnicate
run_pipeline 2 --config "$CFG" evaluate
run_pipeline 2 --config "$T/missing.yaml"
grep -q "missing.yaml: cannot open" "$T/run.log" || fail "missing config message"
run_pipeline 2 --config "$CFG" --threshold abc

sed -i 's|conninfo: ""|conninfo: "dbname=x password=topsecret"|' "$CFG"
out=$("$BIN" --config "$CFG" --print-config)
echo "$out" | grep -q "threshold: 0.42" || fail "print-config lacks the threshold"
echo "$out" | grep -q "backbone: mobilenetv2_100" || fail "print-config lacks the model"
echo "$out" | grep -q "topsecret" && fail "print-config shows the password"
echo "$out" | grep -q 'password=\*\*\*' || fail "print-config does not mask the password"

echo "$out" >"$T/printed.yaml"
echo "ok: cli"

# weights of the other backbone: a configuration error, nothing written
eff="$SHARED/golden/tf_efficientnet_b0_ns/tf_efficientnet_b0_ns.random.safetensors"
sed -i "s|weights: .*|weights: $eff|" "$CFG"
sed -i 's|conninfo: .*|conninfo: ""|' "$CFG"
run_pipeline 2 --config "$CFG" --date 2026-11-30
grep -q "missing" "$T/run.log" || fail "wrong-backbone weights: no list of missing keys"
expect_eq "$(q "select count(*) from pg_tables where tablename = 'ad_images'")" 0 \
	"nothing written for a config error"
