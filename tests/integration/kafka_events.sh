# Bad events from Kafka, produced with kcat next to good ones: malformed JSON,
# wrong types, missing fields, an oversized value, NUL, invalid UTF-8, a key
# that is not the ad id, a disallowed scheme, file:// urls that leave the
# allowed folder by "..", by a symlink or by an absolute path, an image id already
# taken by another ad. Each is a
# failure row with its origin and reason (and a dead letter when it is bad as
# an event); the good events, SQL-looking and unicode ids, FILE:// and
# file://localhost/ urls included, are
# stored verbatim; the run exits 3.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kafka.sh"

kafka_start -b 1 -t ad-images:3 -t ad-images-dlq:1
mkdir -p "$T/img" "$T/outside"
cp "$DATA/images/bicycle_final/111085122871_0.JPG" "$T/img/good0.jpg"
cp "$DATA/images/bicycle_final/111085122871_1.JPG" "$T/img/good1.jpg"
cp "$DATA/images/bicycle_final/111085122871_2.JPG" "$T/img/good2.jpg"
cp "$T/img/good0.jpg" "$T/outside/x.jpg"
ln -s "$T/outside/x.jpg" "$T/img/escape.jpg"
sql_id="x'); drop table ad_images; --"
at='"created_at": "2026-11-30T10:00:00Z"'
pad=$(printf '%*s' 2000 '')
img="file://$T/img"
{
	printf '700\t{"ad_id": "700", "image_id": "702", "url": "%s/good1.jpg", %s,' "$img" "$at"
	printf ' "extra": {"a": [1, 2]}}\n'
	printf '%s\t{"ad_id": "%s", "image_id": "%s", "url": "%s/good2.jpg", %s}\n' \
		"$sql_id" "$sql_id" "$sql_id" "$img" "$at"
	printf '\t{"ad_id": "v\\u00e9lo", "image_id": "v\xc3\xa9lo-\xf0\x9f\x9a\xb2",'
	printf ' "url": "%s/good0.jpg", %s}\n' "$img" "$at"
	printf '703\t{"ad_id": "703", "image_id": \n'
	printf '703\t{"ad_id": 703, "image_id": "704", "url": "file:///x", %s}\n' "$at"
	printf '705\t{"ad_id": "705", "image_id": "706", %s}\n' "$at"
	printf '707\t{"ad_id": "707", "image_id": "708", "url": "file:///x", %s, "pad": "%s"}\n' \
		"$at" "$pad"
	printf '709\t{"ad_id": "709\\u0000; drop", "image_id": "710", "url": "file:///x", %s}\n' "$at"
	printf '711\t{"ad_id": "711", "image_id": "712", "url": "%s/../outside/x.jpg", %s}\n' \
		"$img" "$at"
	printf '711\t{"ad_id": "711", "image_id": "713", "url": "%s/escape.jpg", %s}\n' "$img" "$at"
	printf '711\t{"ad_id": "711", "image_id": "714", "url": "file:///etc/passwd", %s}\n' "$at"
	printf '711\t{"ad_id": "711", "image_id": "715", "url": "gopher://h/x.jpg", %s}\n' "$at"
	printf '999\t{"ad_id": "716", "image_id": "717", "url": "file:///x", %s}\n' "$at"
	printf '718\t{"ad_id": "\xff\xfe", "image_id": "719", "url": "file:///x", %s}\n' "$at"
	printf '720\t{"ad_id": "720", "image_id": "721", "url": "FILE://%s/img/good0.jpg", %s}\n' "$T" "$at"
	printf '720\t{"ad_id": "720", "image_id": "722", "url": "file://localhost%s/img/good1.jpg", %s}\n' "$T" "$at"
} >"$T/events.txt"
kcat -b "$BOOTSTRAP" -t ad-images -P -K $'\t' -l "$T/events.txt"
# image id 701 for ad 700, then the same id for ad 723: one partition, so the order is fixed
{
	printf '700\t{"ad_id": "700", "image_id": "701", "url": "%s/good0.jpg", %s}\n' "$img" "$at"
	printf '723\t{"ad_id": "723", "image_id": "701", "url": "file://%s/img/good2.jpg", %s}\n' "$T" "$at"
} | kcat -b "$BOOTSTRAP" -t ad-images -p 0 -P -K $'\t'

write_kafka_config events "max_event_bytes: 1024
dead_letter_topic: ad-images-dlq"
sed -i "s|images_root: .*|images_root: $T/img|" "$CFG"
# a dry run first: it sends no dead letters and commits nothing
run_pipeline 3 --config "$CFG" --dry-run
expect_eq "$("$KMOCK" consume "$BOOTSTRAP" ad-images-dlq | wc -l)" 0 "dead letters of a dry run"
expect_eq "$(kafka_committed_sum events)" 0 "offsets committed by a dry run"
run_pipeline 3 --config "$CFG"
grep -q 'photos_in=18 embedded=6 failed=12' "$T/run.log" || fail "summary counts"

velo="v$(printf '\xc3\xa9')lo-$(printf '\xf0\x9f\x9a\xb2')"
expect_eq "$(q "select string_agg(image_id, ',' order by image_id collate \"C\") from ad_images
	where status = 'embedded'")" "701,702,721,722,$velo,$sql_id" \
	"embedded photos, ids verbatim"
expect_eq "$(q "select ad_id from ad_images where image_id = \$\$$sql_id\$\$")" "$sql_id" \
	"SQL-looking ad id stored verbatim"
expect_eq "$(q "select group_id from image_groups where ad_id = \$\$$sql_id\$\$")" \
	"$sql_id/$sql_id" "SQL-looking ids grouped"
expect_eq "$(q "select count(*) from pg_tables where tablename = 'ad_images'")" 1 \
	"ad_images still there"

reason() { q "select stage || ': ' || reason from failure_sources where image_id = '$1'"; }
expect_eq "$(reason 706)" "source: missing field url" "missing url"
expect_eq "$(reason 712)" "fetch: file url outside the allowed folders" "escape by .."
expect_eq "$(reason 713)" "fetch: file url outside the allowed folders" "escape by symlink"
expect_eq "$(reason 714)" "fetch: file url outside the allowed folders" "absolute path"
expect_eq "$(reason 715)" "source: url scheme 'gopher' not allowed (file, http, https)" "scheme"
expect_eq "$(q "select count(*) from failure_sources where image_id is not null
	and (kafka_topic <> 'ad-images' or kafka_partition is null or kafka_offset is null)")" 0 \
	"failed photos carry topic/partition/offset"

# events without an identity are keyed by their origin
q "select reason from failure_sources where key ~ '^ad-images/[0-2]@[0-9]+$'
	and kafka_offset is not null order by reason" >"$T/reasons.txt"
cat >"$T/want.txt" <<EOW
event holds a NUL character
event of 2104 bytes is over the limit of 1024
field ad_id is not valid UTF-8 or holds control characters
field ad_id must be a string
image id belongs to another ad: 700
malformed JSON at byte 28
message key does not match ad_id
EOW
diff "$T/want.txt" "$T/reasons.txt" || fail "reasons of events without an identity"
expect_eq "$(q 'select count(*) from failures')" 12 "failure rows"
expect_eq "$(q "select ad_id from ad_images where image_id = '701'")" 700 "701 stays with its ad"

# bad events also went to the dead-letter topic, unchanged
"$KMOCK" consume "$BOOTSTRAP" ad-images-dlq >"$T/dlq.txt"
expect_eq "$(wc -l <"$T/dlq.txt")" 8 "dead letters"
grep -q '"image_id": "715", "url": "gopher' "$T/dlq.txt" || fail "dead letter value changed"
expect_eq "$(kafka_committed_sum events)" 18 "offsets committed past the bad events"
