# The analyst views on a real run (an ad with a stray chair, a failed photo),
# then their plans on a million generated photos: the per-ad and per-run
# questions use indexes, never a sequential scan of a big table. The plans
# are saved to var/test-logs/ops_views_plans.txt.
. "$(dirname "$0")/../lib/common.sh"

awk -F, 'NR == 1 || $1 == "9000003"' "$DATA/ads.csv" >"$T/ads.csv"
echo "9000003,9999,bicycle_final/missing.JPG,2026-11-30T12:00:00Z" >>"$T/ads.csv"
write_config "$T/ads.csv" "$DATA/images"
run_pipeline 3 --config "$CFG" --date 2026-11-30

expect_eq "$(q "select count(*) || ' photos, ' || count(distinct group_id) || ' groups'
	from ad_group_photos where ad_id = '9000003'")" "10 photos, 2 groups" "ad_group_photos"
expect_eq "$(q "select group_photos || '/' || ad_photos from ad_group_photos
	where image_id = '297'")" "1/10" "the chair's group and ad sizes"
q "select url from ad_group_photos where image_id = '21'" | grep -q '^file:///.*\.JPG$' ||
	fail "ad_group_photos lacks the url"
expect_eq "$(q "select string_agg(image_id, ',') from stray_photos")" "297" "stray_photos"
expect_eq "$(q "select ad_id || ':' || bikes || ':' || photos from multi_bike_ads")" \
	"9000003:2:10" "multi_bike_ads"
expect_eq "$(q "select stage || ': ' || reason || ' ' || run_kind from run_failures
	where run_id = 1")" "fetch: cannot open photo: No such file or directory backfill" \
	"run_failures"
expect_eq "$(q "select status || ' ' || photos_in || ' ' || photos_failed || ' ' ||
	failures_recorded || ' ' || (duration_s > 0) from run_history")" "partial 11 1 1 true" \
	"run_history"
expect_eq "$(q "select status || ' ' || runs || ' ' || backbone from model_history")" \
	"active 1 mobilenetv2_100" "model_history"

# ---- a million photos ----
big="${PGDATABASE}_big"
createdb "$big"
trap 'dropdb --if-exists "$big" 2>/dev/null || true; cleanup' EXIT
sed -i "s|conninfo: \"\"|conninfo: \"dbname=$big\"|" "$CFG"
run_pipeline 0 migrate --config "$CFG"
t0=$SECONDS
psql -X -q -v ON_ERROR_STOP=1 -d "$big" <<'EOSQL'
-- the checks that would fire a million times are off while loading, and the
-- secondary indexes are built once afterwards (as the migrations define them)
SET session_replication_role = replica;
SET maintenance_work_mem = '256MB';
CREATE TEMP TABLE saved_indexes AS
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename IN ('ad_images', 'image_groups', 'failures') AND indexname NOT LIKE '%_pkey';
DO $$
DECLARE r record;
BEGIN
	FOR r IN SELECT indexname FROM saved_indexes LOOP
		EXECUTE 'DROP INDEX ' || quote_ident(r.indexname);
	END LOOP;
END
$$;
INSERT INTO models (backbone, weights_path, weights_sha256, embedding_dim, image_height,
                    image_width, status)
VALUES ('mobilenetv2_100', '/m/a', 'a', 1280, 224, 224, 'retired'),
       ('mobilenetv2_100', '/m/b', 'b', 1280, 224, 224, 'active');
INSERT INTO pipeline_runs (kind, date, started_at, finished_at, status, photos_in,
                           photos_embedded, photos_failed, ads_grouped, elapsed_s, model_id)
SELECT 'backfill', date '2026-01-01' + d, timestamptz '2026-01-01' + d * interval '1 day',
       timestamptz '2026-01-01' + d * interval '1 day' + interval '1 hour', 'partial',
       10000, 9900, 100, 2500, 3600, 2
FROM generate_series(0, 99) d;
-- 4 photos per ad, one in a hundred failed, every third ad with a stray
INSERT INTO ad_images (image_id, ad_id, url, created_at, source, status, failure_stage,
                       failure_reason, first_run_id, changed_run_id)
SELECT i::text, (i / 4)::text, 'file:///data/' || i || '.jpg',
       timestamptz '2026-01-01' + (i / 10000) * interval '1 day' + (i % 10000) * interval '1 s',
       'ads.csv:' || i, CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'embedded' END,
       CASE WHEN i % 100 = 0 THEN 'resize' END, CASE WHEN i % 100 = 0 THEN 'truncated' END,
       i / 10000 + 1, i / 10000 + 1
FROM generate_series(0, 999999) i;
INSERT INTO image_groups (image_id, model_id, ad_id, group_id, run_id)
SELECT i::text, 2, (i / 4)::text,
       (i / 4)::text || '/' || CASE WHEN i % 4 = 3 AND (i / 4) % 3 = 0 THEN i ELSE (i / 4) * 4 END,
       i / 10000 + 1
FROM generate_series(0, 999999) i WHERE i % 100 <> 0;
INSERT INTO failures (key, image_id, ad_id, stage, reason, run_id)
SELECT 'image:' || i, i::text, (i / 4)::text, 'resize', 'truncated', i / 10000 + 1
FROM generate_series(0, 999999, 100) i;
DO $$
DECLARE r record;
BEGIN
	FOR r IN SELECT indexdef FROM saved_indexes LOOP
		EXECUTE r.indexdef;
	END LOOP;
END
$$;
SET session_replication_role = DEFAULT;
ANALYZE;
EOSQL
echo "generated 1M photos in $((SECONDS - t0)) s"

plans="$ROOT/var/test-logs/ops_views_plans.txt"
: >"$plans"
# explain WHAT SQL: save the plan; no sequential scan of the big tables
explain() {
	local plan
	plan=$(psql -X -At -d "$big" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) $2")
	printf '== %s\n%s\n%s\n\n' "$1" "$2" "$plan" >>"$plans"
	if echo "$plan" | grep -E "Seq Scan on (ad_images|image_groups|failures|image_embeddings)"; then
		fail "$1: sequential scan of a big table"
	fi
	echo "$plan" | grep -q "Index" || fail "$1: no index used"
	echo "ok: $1 uses an index ($(echo "$plan" | sed -n 's/^Execution Time: //p'))"
}
explain "groups of an ad" "SELECT * FROM ad_group_photos WHERE ad_id = '12345'"
explain "strays of an ad" "SELECT * FROM stray_photos WHERE ad_id = '12345'"
explain "bikes of an ad" "SELECT * FROM multi_bike_ads WHERE ad_id = '12345'"
explain "ad_groups of an ad" "SELECT * FROM ad_groups WHERE ad_id = '12345'"
explain "failures of a run" "SELECT * FROM run_failures WHERE run_id = 42"
explain "a run" "SELECT * FROM run_history WHERE run_id = 42"
explain "last runs" "SELECT * FROM run_history ORDER BY run_id DESC LIMIT 10"
explain "photos a run stored first" "SELECT count(*) FROM ad_images WHERE first_run_id = 42"
explain "photos of a day" "SELECT count(*) FROM ad_images
	WHERE created_at >= '2026-01-05' AND created_at < '2026-01-06'"
explain "pending failures of an ad" "SELECT * FROM failures WHERE ad_id = '12345'"
# a question over every ad reads the (model, ad, group) index in order
plan=$(psql -X -At -d "$big" -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM multi_bike_ads")
printf '== all ads with several bikes\n%s\n' "$plan" >>"$plans"
echo "$plan" | grep -q "Seq Scan on image_groups" && fail "multi_bike_ads scans image_groups"
expect_eq "$(psql -X -At -d "$big" -c "SELECT count(*) FROM multi_bike_ads")" 83334 \
	"ads with a stray among a million photos"
cat "$plans"
