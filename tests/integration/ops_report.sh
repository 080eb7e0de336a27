# `pipeline-run report` on a real run, loaded in headless Chromium: the ad
# with a stray chair shows two groups and ten decoded thumbnails, a similarity
# table, failed photos with their reasons, and ids from the data stay text.
# A screenshot goes to var/test-logs/ops_report.png.
. "$(dirname "$0")/../lib/common.sh"

mkdir -p "$T/img"
awk -F, 'NR > 1 && $1 == "9000003" { print $3 }' "$DATA/ads.csv" | while read -r f; do
	cp "$DATA/images/$f" "$T/img/$(basename "$f")"
done
cp "$DATA/images/bicycle_final/111085122871_0.JPG" "$T/img/b0.jpg"
cp "$DATA/images/bicycle_final/111085122871_1.JPG" "$T/img/b1.jpg"
cp "$SHARED/data/hostile-images/truncated-half.jpg" "$T/img/"
{
	echo "ad_id,image_id,image,created_at"
	awk -F, 'NR > 1 && $1 == "9000003" { n = split($3, p, "/"); print $1 "," $2 "," p[n] "," $4 }' \
		"$DATA/ads.csv"
	echo "888,801,b0.jpg,2026-11-30T08:00:00Z"
	echo "888,x<i>y</i>,b1.jpg,2026-11-30T08:00:01Z"
	echo "888,803,truncated-half.jpg,2026-11-30T08:00:02Z"
} >"$T/ads.csv"
write_config "$T/ads.csv" "$T/img"
run_pipeline 3 --config "$CFG" --date 2026-11-30
run_pipeline 0 report --config "$CFG" --date 2026-11-30 --out "$T/report"
grep -q 'report written" .*photos=13 thumbnails=12 without_preview=0' "$T/run.log" ||
	fail "report summary line"

chrome() {
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$T/chrome" "$@" "file://$T/report/index.html" 2>"$T/chrome.err"
}
chrome --dump-dom >"$T/dom.html" || { cat "$T/chrome.err" >&2; fail "chromium --dump-dom"; }
chrome --screenshot="$ROOT/var/test-logs/ops_report.png" --window-size=1200,1800 ||
	fail "chromium --screenshot"
[ "$(stat -c %s "$ROOT/var/test-logs/ops_report.png")" -gt 10000 ] || fail "screenshot too small"

# the rendered page, one element per line
sed 's/></>\n</g' "$T/dom.html" >"$T/dom.txt"
section() {
	awk -v id="id=\"ad-$1\"" 'index($0, id) { on = 1 } on { print } on && /<\/section>/ { exit }' \
		"$T/dom.txt"
}
section 9000003 >"$T/ad3.txt"
section 888 >"$T/ad888.txt"
grep -q 'data-ad="9000003" data-groups="2" data-photos="10" data-failed="0"' "$T/ad3.txt" ||
	fail "ad 9000003 header"
expect_eq "$(grep -c '<div class="group"' "$T/ad3.txt")" 2 "group blocks of ad 9000003"
expect_eq "$(grep -c '<img ' "$T/ad3.txt")" 10 "images of ad 9000003"
grep -q '<div class="group" data-group="9000003/297" data-photos="1">' "$T/ad3.txt" ||
	fail "the chair is a group of its own"
grep -q '<table class="sim">' "$T/ad3.txt" || fail "no similarity table"
expect_eq "$(grep -c '<img ' "$T/dom.txt")" 12 "images on the page"
expect_eq "$(grep -o 'data-images-decoded="[0-9]*"' "$T/dom.txt")" 'data-images-decoded="12"' \
	"images decoded by the browser"
grep -q 'data-natural-width="0"' "$T/dom.txt" && fail "an image did not decode"
grep -q '<figure class="photo failed new" data-image="803"' "$T/ad888.txt" || fail "failed photo"
grep -q '<div class="reason">resize: truncated</div>' "$T/ad888.txt" || fail "failure reason"
grep -q '<figcaption>x&lt;i&gt;y&lt;/i&gt;</figcaption>' "$T/ad888.txt" || fail "id not escaped"
grep -q '<i>' "$T/dom.txt" && fail "an id from the data became markup"
echo "ok: report rendered; screenshot in var/test-logs/ops_report.png"
