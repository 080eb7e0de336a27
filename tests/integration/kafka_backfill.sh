# Backfills from Kafka: --date takes exactly that day's events (the mock
# cannot look offsets up by time, so each partition is scanned from its
# earliest offset and filtered) and leaves the group's committed offsets as
# they were; --since/--until take a range; --from-db processes a recorded
# date again from the database and changes no row.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kafka.sh"

kafka_start -b 2 -t ad-images:4 -t late:1
sop_events | kafka_produce ad-images

# the nightly group has a position somewhere in the middle
write_kafka_config bf-nightly "max_events: 60"
main_db=$PGDATABASE
export PGDATABASE="${main_db}_n"
createdb "$PGDATABASE"
run_pipeline 0 --config "$CFG"
dropdb "$PGDATABASE"
export PGDATABASE=$main_db
kafka_committed bf-nightly >"$T/offsets.before"
expect_eq "$(kafka_committed_sum bf-nightly)" 60 "nightly position before the backfills"

run_pipeline 0 --config "$CFG" --date 2026-11-29
grep -q "scanned_from_earliest=4" "$T/run.log" || fail "the scan fallback was not used"
expect_eq "$(q 'select count(*) from ad_images')" "$(day_photos 2026-11-29)" "photos of the day"
expect_eq "$(q "select count(*) from ad_images where created_at < '2026-11-29T00:00:00Z'
	or created_at >= '2026-11-30T00:00:00Z'")" 0 "photos outside the day"
expect_eq "$(q 'select count(*) from image_groups')" "$(day_photos 2026-11-29)" "grouped"
expect_eq "$(q "select kind || ':' || date from pipeline_runs")" "backfill:2026-11-29" "run row"
kafka_committed bf-nightly >"$T/offsets.after"
diff "$T/offsets.before" "$T/offsets.after" || fail "the backfill moved the group's offsets"
echo "ok: group offsets unchanged"

# the recorded day again, from the database: nothing changes
tables="ad_images image_embeddings image_groups failures"
before=""
for t in $tables; do before="$before $t=$(table_digest $t)"; done
groups() {
	q "select md5(string_agg(image_id || '=' || group_id, ',' order by image_id))
		from image_groups"
}
groups_before=$(groups)
run_pipeline 0 --config "$CFG" --date 2026-11-29 --from-db
grep -q "source=db" "$T/run.log" || fail "not the db source"
grep -q "photos_in=$(day_photos 2026-11-29) " "$T/run.log" || fail "from-db photo count"
after=""
for t in $tables; do after="$after $t=$(table_digest $t)"; done
expect_eq "$after" "$before" "tables after --from-db"

# from the database into a fresh database state: the same rows as the first
# backfill made (embeddings and groups rebuilt from the urls)
q "delete from image_groups; delete from image_embeddings"
ad_images_before=$(table_digest ad_images)
run_pipeline 0 --config "$CFG" --date 2026-11-29 --from-db
expect_eq "$(table_digest ad_images)" "$ad_images_before" "photos after a rebuild from the database"
expect_eq "$(groups)" "$groups_before" "groups rebuilt from the database"
expect_eq "$(q 'select count(*) from image_embeddings')" "$(day_photos 2026-11-29)" "embeddings"
# a date nothing was recorded for: said, not a silent "ok" with no photos
run_pipeline 0 --config "$CFG" --date 2026-01-01 --from-db
grep -q 'msg="no photos recorded in ad_images for the window" since=2026-01-01T00:00:00Z' \
	"$T/run.log" || fail "empty --from-db window not reported"
# a range across two days
run_pipeline 0 --config "$CFG" --since 2026-11-29T12:00:00Z --until 2026-11-30T06:00:00Z
range=$(awk -F, 'NR > 1 && $4 >= "2026-11-29T12:00:00Z" && $4 < "2026-11-30T06:00:00Z"' \
	"$DATA/ads.csv" | wc -l)
grep -q "photos_in=$range " "$T/run.log" || fail "range run read other than $range photos"
expect_eq "$(q "select count(*) from ad_images where created_at >= '2026-11-30T00:00:00Z'")" \
	"$(awk -F, 'NR > 1 && $4 >= "2026-11-30T00:00:00Z" && $4 < "2026-11-30T06:00:00Z"' \
		"$DATA/ads.csv" | wc -l)" "photos of the range's second day"

# events produced (stamped) days after their created_at, as a test event made with kcat
# today is: the backfill cannot find them, and says why instead of a silent zero
sop_events 2026-11-29 >"$T/late.txt"
awk -F'\t' -v OFS='\t' 'NR <= 5 { $2 = 0; print }' "$T/late.txt" | kafka_produce late
KAFKA_TOPIC=late write_kafka_config bf-late
run_pipeline 0 --config "$CFG" --date 2026-11-29
grep -q "photos_in=0 " "$T/run.log" || fail "late events were read"
grep -q 'msg="backfill found no events: messages are stamped after the window"' "$T/run.log" ||
	fail "no hint for a backfill that found nothing"
grep -q "stamped_after_window=1 " "$T/run.log" || fail "late partitions not counted"
write_kafka_config bf-nightly "max_events: 60"

# windows are checked before any work
run_pipeline 2 --config "$CFG" --from-db
grep -q "from-db needs --date or --since/--until" "$T/run.log" || fail "--from-db without a window"
run_pipeline 2 --config "$CFG" --date 2026-11-29 --since 2026-11-28
run_pipeline 2 --config "$CFG" --since 2026-11-30 --until 2026-11-29
grep -q "until must be after --since" "$T/run.log" || fail "empty range message"
run_pipeline 2 --config "$CFG" --since yesterday
grep -q "bad --since 'yesterday'" "$T/run.log" || fail "bad --since message"
kafka_committed bf-nightly >"$T/offsets.after"
diff "$T/offsets.before" "$T/offsets.after" || fail "backfills moved the group's offsets"
