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
# NaN would have meant "auto", silently
run_pipeline 2 --config "$CFG" --threshold nan
grep -q -- "--threshold: 'nan' is not a number" "$T/run.log" || fail "--threshold nan message"
run_pipeline 2 --config "$CFG" --date 2026-02-29
grep -q "bad date '2026-02-29'" "$T/run.log" || fail "no such day"
run_pipeline 2 --config "$CFG" --date 2026-11-30 --since 2026-11-29
# an option that does not go with the command is refused, never ignored: --dry-run does not
# turn --promote into a dry run
run_pipeline 2 --config "$CFG" --promote 1 --dry-run
grep -q -- "--dry-run does not go with --promote" "$T/run.log" || fail "--promote --dry-run"
run_pipeline 2 --config "$CFG" --rollback --since 2026-11-30
run_pipeline 2 migrate --config "$CFG" --dry-run
grep -q -- "--dry-run does not go with the migrate command" "$T/run.log" || fail "migrate"
run_pipeline 2 status --config "$CFG" --date 2026-11-30
run_pipeline 2 retrain --config "$CFG" --since 2026-11-30
run_pipeline 2 --config "$CFG" --limit 3
expect_eq "$(q "select count(*) from pg_tables where tablename = 'ad_images'")" 0 \
	"nothing written by refused command lines"
# a database never migrated: status says what to do; a migrations folder without
# migrations is named as such (not as tables missing later)
run_pipeline 1 status --config "$CFG"
grep -q "hint: pipeline-run migrate creates the pipeline's tables" "$T/run.log" ||
	fail "status on a database without tables: no hint"
mkdir "$T/nosql"
sed "s|sql_dir: .*|sql_dir: $T/nosql|" "$CFG" >"$T/nosql.yaml"
run_pipeline 1 migrate --config "$T/nosql.yaml"
grep -q "migrations dir $T/nosql holds no migrations" "$T/run.log" || fail "empty sql_dir"
# the command after the options: say where it goes
run_pipeline 2 --config "$CFG" status
grep -q "the command goes first: pipeline-run status" "$T/run.log" || fail "command order"

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
