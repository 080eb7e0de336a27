# Sourced by the integration and end-to-end tests: a database of their own on
# the suite's throwaway PostgreSQL, a temp folder, a config, small asserts.
set -euo pipefail
: "${ROOT:?run through tests/run-all}" "${SHARED:?}" "${PGHOST:?}"
BIN=${BIN:-$ROOT/bin/pipeline-run}
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

# day_photos DATE: how many sample photos were created on DATE (from ads.csv)
day_photos() {
	awk -F, -v d="$1" 'NR > 1 && substr($4, 1, 10) == d' "$DATA/ads.csv" | wc -l
}

# write_config_yaml SOURCE_YAML [EXTRA_YAML] [DATABASE_LINES]: a pipeline config in
# $T/pipeline.yaml, $CFG: the suite's database (and DATABASE_LINES), SOURCE_YAML (the
# source's sections), small batches, the sample MobileNetV2 model, then EXTRA_YAML
write_config_yaml() {
	{
		printf 'database:\n    conninfo: ""\n    sql_dir: %s\n' "$ROOT/sql"
		if [ -n "${3:-}" ]; then printf '%s\n' "$3"; fi
		printf '%s\n' "$1"
		cat <<EOC
pipeline:
    batch_size: 8
    queue_depth: 32
model:
    config: $ROOT/configs/models/mobilenetv2_100-coral.yaml
    weights: $SHARED/models/mobilenetv2_100.coral_imagenet.safetensors
${2:-}
EOC
	} >"$T/pipeline.yaml"
	CFG="$T/pipeline.yaml"
}

# write_config CSV IMAGES_ROOT [EXTRA_YAML]: a config for the directory source
write_config() {
	write_config_yaml "source:
    kind: dir
    csv: $1
    images_root: $2" "${3:-}"
}

# run_pipeline EXPECTED_EXIT ARGS...: run the binary, check its exit code; a run that hangs
# is stopped after RUN_TIMEOUT seconds (default 600; SIGTERM, then SIGKILL) and fails
run_pipeline() {
	local want=$1 rc=0
	shift
	timeout -k 10 "${RUN_TIMEOUT:-600}" "$BIN" "$@" 2>"$T/run.log" || rc=$?
	cat "$T/run.log" >&2
	[ "$rc" -eq "$want" ] || fail "pipeline-run $* exited $rc, expected $want"
}

# table_digest TABLE: one md5 over every row, in a stable order
table_digest() {
	q "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from $1 t"
}

# content_digest: one md5 per result table over the columns that say what was stored, not
# which run stored it (run ids and timestamps left out), so that two databases that went
# through different runs can be compared. Embeddings are rounded to 1e-5.
content_digest() {
	q "select 'ad_images=' || md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
		from (select image_id, ad_id, url, created_at, source, status, failure_stage,
		failure_reason, width, height, content_sha256 from ad_images) t"
	q "select 'image_embeddings=' ||
		md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
		from (select image_id, model_id, dim, content_sha256,
		(select array_agg(round(v::numeric, 5) order by o)
		 from unnest(embedding) with ordinality u(v, o)) from image_embeddings) t"
	q "select 'image_groups=' || md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
		from (select image_id, model_id, ad_id, group_id from image_groups) t"
	q "select 'failures=' || md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
		from (select key, image_id, ad_id, stage, reason from failures) t"
	q "select 'models=' || md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
		from (select id, backbone, weights_path, weights_sha256, embedding_dim,
		image_height, image_width, threshold, status from models) t"
}

# fresh_db: drop and create this test's database again
fresh_db() {
	dropdb --if-exists "$PGDATABASE"
	createdb "$PGDATABASE"
}

# wait_rows SQL N [PID] [SECONDS]: until SQL (a count) reaches N; fails if PID exits first
# or after SECONDS (default 60)
wait_rows() {
	local i n
	for ((i = 0; i < ${4:-60} * 20; i++)); do
		n=$(q "$1" 2>/dev/null || echo 0)
		[ "${n:-0}" -ge "$2" ] && return 0
		[ -z "${3:-}" ] || kill -0 "$3" 2>/dev/null ||
			fail "the run ended before '$1' reached $2"
		sleep 0.05
	done
	fail "'$1' did not reach $2 in ${4:-60} s"
}

# wait_for SECONDS WHAT COMMAND...: run COMMAND every 0.1 s until it succeeds; fails naming
# WHAT after SECONDS. For a state another process reaches, instead of a guessed sleep.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	fail "no $what after $secs s"
}
