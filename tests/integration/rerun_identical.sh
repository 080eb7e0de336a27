# Running the same date twice leaves every result table identical; migrations
# apply once; each run leaves a pipeline_runs row.
. "$(dirname "$0")/../lib/common.sh"

write_config "$DATA/ads.csv" "$DATA/images"
run_pipeline 0 migrate --config "$CFG"
nmig=$(ls "$ROOT"/sql/[0-9][0-9][0-9]_*.sql | wc -l)
expect_eq "$(q 'select count(*) from schema_migrations')" "$nmig" "migrations recorded"
run_pipeline 0 migrate --config "$CFG"
grep -q "applied_now=0" "$T/run.log" || fail "second migrate applied something"

run_pipeline 0 --config "$CFG" --date 2026-11-30
expect_eq "$(q 'select count(*) from ad_images')" 113 "photos of 2026-11-30"
expect_eq "$(q "select count(*) from ad_images where status = 'embedded'")" 113 "embedded"
expect_eq "$(q 'select count(*) from image_embeddings')" 113 "embeddings"
expect_eq "$(q 'select count(*) from image_groups')" 113 "grouped photos"
expect_eq "$(q "select count(distinct image_id) from image_groups")" 113 "one group per photo"
expect_eq "$(q 'select count(*) from image_groups g join ad_images i using (image_id)
	where g.ad_id <> i.ad_id')" 0 "groups stay inside their ad"
expect_eq "$(q "select count(*) from image_groups where group_id not like ad_id || '/%'")" 0 \
	"group ids are ad/first-image"

tables="ad_images image_embeddings image_groups failures models"
before=""
for t in $tables; do before="$before $t=$(table_digest $t)"; done
run_pipeline 0 --config "$CFG" --date 2026-11-30
after=""
for t in $tables; do after="$after $t=$(table_digest $t)"; done
expect_eq "$after" "$before" "tables after a second run of the same date"
expect_eq "$(q "select string_agg(status || ':' || photos_in || ':' || photos_embedded, ','
	order by id) from pipeline_runs")" "ok:113:113,ok:113:113" "runs recorded"
