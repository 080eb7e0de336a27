# sql/roles.sql: the pipeline's role owns and writes its tables and runs the
# pipeline; an analyst reads every view and nothing else (no table, no write,
# no DDL). Running the script twice changes nothing.
. "$(dirname "$0")/../lib/common.sh"

owner="pipe_owner_$$"
analyst="pipe_analyst_$$"
person="pipe_person_$$"
db="${PGDATABASE}_roles"
cleanup_roles() {
	dropdb --if-exists "$db" 2>/dev/null || true
	for r in "$person" "$analyst" "$owner"; do
		psql -X -q -c "DROP ROLE IF EXISTS $r" 2>/dev/null || true
	done
	cleanup
}
trap cleanup_roles EXIT
createuser "$owner"
createdb -O "$owner" "$db"

awk -F, 'NR == 1 || $1 == "9000003"' "$DATA/ads.csv" >"$T/ads.csv"
write_config "$T/ads.csv" "$DATA/images"
sed -i "s|conninfo: \"\"|conninfo: \"dbname=$db user=$owner\"|" "$CFG"
run_pipeline 0 --config "$CFG" --date 2026-11-30

roles() {
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v pipeline_role="$owner" \
		-v analyst_role="$analyst" -f "$ROOT/sql/roles.sql"
}
roles >"$T/roles1.txt"
roles >"$T/roles2.txt"
cat "$T/roles1.txt"
expect_eq "$(cat "$T/roles2.txt")" "$(cat "$T/roles1.txt")" "second run of roles.sql"
expect_eq "$(grep -c '^ [a-z_]*$' "$T/roles1.txt")" \
	"$(psql -X -At -d "$db" -c "select count(*) from pg_views where schemaname = 'public'")" \
	"every view granted"
psql -X -q -c "CREATE ROLE $person LOGIN IN ROLE $analyst"

as_person() { psql -X -At -v ON_ERROR_STOP=1 -U "$person" -d "$db" -c "$1" 2>&1; }
denied() {
	local out
	out=$(as_person "$1") && fail "analyst may: $1 ($out)"
	echo "$out" | grep -q "permission denied" || fail "$1: $out"
	echo "ok: analyst may not: $1"
}
for v in ad_groups ad_summary ad_group_photos multi_bike_ads stray_photos run_failures \
	run_history model_history; do
	as_person "select count(*) from $v" >"$T/n" || fail "analyst cannot read $v: $(cat "$T/n")"
done
expect_eq "$(as_person "select count(*) from ad_group_photos where ad_id = '9000003'")" 10 \
	"analyst reads the groups"
denied "select count(*) from ad_images"
denied "select embedding from image_embeddings limit 1"
denied "select * from pipeline_runs"
denied "insert into failures (key, stage, reason) values ('x', 'y', 'z')"
denied "delete from image_groups"
denied "create table mine (a int)"
denied "update models set status = 'retired'"

# the owner keeps running the pipeline after the grants
run_pipeline 0 --config "$CFG" --date 2026-11-30
