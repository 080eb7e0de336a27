# Sourced by the integration and end-to-end tests: a database of their own on
# the suite's throwaway PostgreSQL, a temp folder, a config, small asserts.
set -euo pipefail
: "${ROOT:?run through tests/run-all}" "${SHARED:?}" "${PGHOST:?}"
BIN="$ROOT/bin/pipeline-run"
DATA="$SHARED/data/sop-ads"
T=$(mktemp -d /tmp/pipeline-test.XXXXXX)
export PGDATABASE="t_$(basename "$0" .sh | tr -c 'a-z0-9_\n' _)_$$"

cleanup() {
	dropdb --if-exists "$PGDATABASE" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
createdb "$PGDATABASE"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
	echo "ok: $3 = $2"
}

q() {
	psql -X -Atq -v ON_ERROR_STOP=1 -c "$1"
}

# write_config CSV IMAGES_ROOT [EXTRA_YAML]: a pipeline config in $T/pipeline.yaml
write_config() {
	cat >"$T/pipeline.yaml" <<EOC
database:
    conninfo: ""
    sql_dir: $ROOT/sql
source:
    kind: dir
    csv: $1
    images_root: $2
pipeline:
    batch_size: 8
    queue_depth: 32
model:
    config: $ROOT/configs/models/mobilenetv2_100-coral.yaml
    weights: $SHARED/models/mobilenetv2_100.coral_imagenet.safetensors
${3:-}
EOC
	CFG="$T/pipeline.yaml"
}

# run_pipeline EXPECTED_EXIT ARGS...: run the binary, check its exit code
run_pipeline() {
	local want=$1 rc=0
	shift
	"$BIN" "$@" 2>"$T/run.log" || rc=$?
	cat "$T/run.log" >&2
	[ "$rc" -eq "$want" ] || fail "pipeline-run $* exited $rc, expected $want"
}

# table_digest TABLE: one md5 over every row, in a stable order
table_digest() {
	q "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from $1 t"
}
