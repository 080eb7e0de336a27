# Photos that are truncated, empty, not images, missing, outside the images
# folder or not regular files (a FIFO would block a read forever, a folder) are
# recorded as failed with a reason, and so are rows whose created_at the database
# would refuse (alone, not failing their whole batch); the others are embedded and
# grouped, and the run exits 3.
. "$(dirname "$0")/../lib/common.sh"

mkdir -p "$T/img"
H="$SHARED/data/hostile-images"
cp "$DATA/images/bicycle_final/111085122871_0.JPG" "$T/img/good0.jpg"
cp "$DATA/images/bicycle_final/111085122871_1.JPG" "$T/img/good1.jpg"
cp "$H/truncated-half.jpg" "$H/empty.jpg" "$H/text-named.jpg" "$T/img/"
ln -s /etc/passwd "$T/img/escape.jpg"
mkfifo "$T/img/fifo.jpg"
mkdir "$T/img/folder.jpg"
# a spreadsheet's byte order mark before the header
printf '\357\273\277' >"$T/ads.csv"
cat >>"$T/ads.csv" <<EOC
ad_id,image_id,image,created_at
500,1,good0.jpg,2026-11-30T10:00:00Z
500,2,good1.jpg,2026-11-30T10:00:01Z
500,3,truncated-half.jpg,2026-11-30T10:00:02Z
500,4,empty.jpg,2026-11-30T10:00:03Z
501,5,text-named.jpg,2026-11-30T10:00:04Z
501,6,missing.jpg,2026-11-30T10:00:05Z
501,7,escape.jpg,2026-11-30T10:00:06Z
501,8,../../etc/passwd,2026-11-30T10:00:07Z
501,,good0.jpg,2026-11-30T10:00:08Z
501,9,fifo.jpg,2026-11-30T10:00:09Z
501,10,folder.jpg,2026-11-30T10:00:10Z
501,11,good1.jpg,2026-02-30T10:00:11Z
501,12,good1.jpg,2026-11-30T10:00:12+16:00
EOC
write_config "$T/ads.csv" "$T/img"
RUN_TIMEOUT=60 run_pipeline 3 --config "$CFG"
grep -q 'photos_in=13 embedded=2 failed=11' "$T/run.log" || fail "summary counts"

reason() {
	q "select failure_stage || ': ' || failure_reason from ad_images where image_id = '$1'"
}
expect_eq "$(q "select string_agg(image_id, ',' order by image_id) from ad_images
	where status = 'embedded'")" "1,2" "embedded photos"
reason 3 | grep -q "resize: .*truncated" || fail "truncated: $(reason 3)"
reason 4 | grep -q "empty" || fail "empty: $(reason 4)"
reason 5 | grep -q "not an image\|not a known" || fail "text: $(reason 5)"
reason 6 | grep -q "fetch: cannot open photo" || fail "missing: $(reason 6)"
reason 7 | grep -q "fetch: file url outside the allowed folders" || fail "symlink: $(reason 7)"
reason 8 | grep -q "source: .*leaves the images folder" || fail "dotdot: $(reason 8)"
expect_eq "$(reason 9)" "fetch: not a regular file" "fifo"
expect_eq "$(reason 10)" "fetch: not a regular file" "folder"
expect_eq "$(reason 11)" "source: created_at is not an RFC 3339 timestamp" "no such day"
expect_eq "$(reason 12)" "source: created_at is not an RFC 3339 timestamp" "offset of 16 h"
expect_eq "$(q "select stage || ': ' || reason from failures where key = 'ads.csv:10'")" \
	"source: missing image_id" "row without an image id"
expect_eq "$(q 'select count(*) from failures')" 11 "failure rows"
expect_eq "$(q "select count(*) from image_groups")" 2 "only good photos are grouped"
expect_eq "$(q "select status from pipeline_runs")" "partial" "run status"

# Every hostile kind that tests/tools/make_hostile writes, through the real binary: each is
# embedded or recorded with the reason its manifest names, in ad_images and in failures.
mkdir -p "$T/hostile"
"$ROOT/$BUILD/tools/make_hostile" "$T/hostile"
{
	echo "ad_id,image_id,image,created_at"
	tail -n +2 "$T/hostile/manifest.csv" | while IFS=, read -r file expect; do
		echo "600,h-$file,$file,2026-11-30T11:00:00Z"
	done
} >"$T/hostile.csv"
write_config "$T/hostile.csv" "$T/hostile" "limits:
    max_bytes: 2000000"
run_pipeline 3 --config "$CFG"
n_files=$(($(wc -l <"$T/hostile/manifest.csv") - 1))
n_ok=$(grep -c ',ok$' "$T/hostile/manifest.csv")
grep -q "photos_in=$n_files embedded=$n_ok failed=$((n_files - n_ok))" "$T/run.log" ||
	fail "summary counts for $n_files hostile files"
checked=0
while IFS=, read -r file expect; do
	got=$(q "select case when status = 'embedded' then 'ok'
		else failure_stage || ': ' || failure_reason end from ad_images
		where image_id = 'h-$file'")
	case "$got" in
	"$expect"*) ;;
	*) fail "$file: got '$got', expected '$expect'" ;;
	esac
	if [ "$expect" != ok ]; then
		expect_eq "$(q "select stage || ': ' || reason from failures
			where key = 'image:h-$file'")" "$got" "$file: failures row"
	else
		[ "$(q "select width > 0 and height > 0 from ad_images
			where image_id = 'h-$file'")" = t ] || fail "$file: no size recorded"
	fi
	checked=$((checked + 1))
done < <(tail -n +2 "$T/hostile/manifest.csv")
expect_eq "$checked" "$n_files" "hostile files checked"
expect_eq "$(q "select count(*) from image_groups where ad_id = '600'")" "$n_ok" \
	"every decoded hostile photo grouped"
