# Ids and file names from the CSV source that look like SQL, carry quotes, semicolons,
# backslashes, tabs or any Unicode are stored verbatim and harm nothing; a line with a NUL
# byte or bytes that are not UTF-8 is refused with a reason on that CSV line.
. "$(dirname "$0")/../lib/common.sh"

mkdir -p "$T/img"
good="$DATA/images/bicycle_final/111085122871_0.JPG"
cp "$good" "$T/img/plain.jpg"
cp "$good" "$T/img/50%25 off #1?.jpg"
cp "$good" "$T/img/it's; \"quoted\".jpg"
cp "$good" "$T/img/vélo 🚲.jpg"

# ad id, image id and file of each good row; printf keeps the bytes exact
printf '%s\n' \
	"x'); drop table ad_images; --|y'); drop table failures; --|plain.jpg" \
	"1; delete from image_groups|\"quoted\" 'single' \\N \\. back\\slash|plain.jpg" \
	"vélo-ünïcødé-自転車-🚲|‮rtl-override|vélo 🚲.jpg" \
	"tab	ad|semi;colon,comma|it's; \"quoted\".jpg" \
	"percent|50%25 off #1?|50%25 off #1?.jpg" >"$T/want.txt"

csv_field() { printf '"%s"' "${1//\"/\"\"}"; }
when=2026-11-30T10:00:00Z
{
	echo "ad_id,image_id,image,created_at"
	while IFS='|' read -r ad img file; do
		echo "$(csv_field "$ad"),$(csv_field "$img"),$(csv_field "$file"),$when"
	done <"$T/want.txt"
	printf '900,nul\0byte,plain.jpg,2026-11-30T10:00:00Z\n'
	printf '901,latin1-caf\xe9,plain.jpg,2026-11-30T10:00:00Z\n'
	printf '902,after-the-bad-lines,plain.jpg,2026-11-30T10:00:00Z\n'
} >"$T/ads.csv"
write_config "$T/ads.csv" "$T/img"
run_pipeline 3 --config "$CFG"
grep -q 'photos_in=8 embedded=6 failed=2' "$T/run.log" || fail "summary counts"

# every table is still there and every id came back byte for byte
expect_eq "$(q "select count(*) from pg_tables where tablename in
	('ad_images', 'image_embeddings', 'image_groups', 'failures', 'models',
	 'pipeline_runs', 'schema_migrations')")" 7 "tables intact"
# psql variables (:'name') quote the values as literals, so the check itself is safe
while IFS='|' read -r ad img file; do
	got=$(psql -X -Atq -v ON_ERROR_STOP=1 -v img="$img" -v file="$file" <<<"
		select ad_id || '|' || status || '|' || case when url = 'file://$T/img/' ||
		replace(replace(replace(:'file', '%', '%25'), '#', '%23'), '?', '%3F')
		then 'url' else url end from ad_images where image_id = :'img'")
	expect_eq "$got" "$ad|embedded|url" "row of image id [$img]"
done <"$T/want.txt"
expect_eq "$(q "select count(*) from image_groups g join ad_images i using (image_id)
	where g.ad_id = i.ad_id")" 6 "groups keep the ids"
expect_eq "$(q "select string_agg(key || ' ' || stage || ': ' || reason, ',' order by key)
	from failures")" \
	"ads.csv:7 source: NUL byte in line,ads.csv:8 source: line is not valid UTF-8" \
	"bad lines recorded by CSV line"
expect_eq "$(q "select status from ad_images where image_id = 'after-the-bad-lines'")" \
	"embedded" "lines after the bad ones"
