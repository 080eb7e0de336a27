# Memory stays bounded: a run over ten times the photos (the same 40 sample photos listed ten
# times under other ids and ads) peaks at about the same resident memory as one over 40.
. "$(dirname "$0")/../lib/common.sh"

peak() { sed -n 's/.*msg="run finished".* peak_rss_mb=\([0-9]*\).*/\1/p' "$T/run.log"; }
head -n 41 "$DATA/ads.csv" >"$T/x1.csv"
{
	head -n 1 "$DATA/ads.csv"
	for k in 0 1 2 3 4 5 6 7 8 9; do
		tail -n +2 "$T/x1.csv" |
			awk -F, -v OFS=, -v k=$k '{ $1 = $1 "-" k; $2 = $2 "-" k; print }'
	done
} >"$T/x10.csv"

write_config "$T/x1.csv" "$DATA/images"
run_pipeline 0 --config "$CFG"
grep -q 'photos_in=40 embedded=40' "$T/run.log" || fail "1x run counts"
p1=$(peak)
fresh_db
write_config "$T/x10.csv" "$DATA/images"
run_pipeline 0 --config "$CFG"
grep -q 'photos_in=400 embedded=400' "$T/run.log" || fail "10x run counts"
p10=$(peak)
echo "peak rss: ${p1} MB for 40 photos, ${p10} MB for 400"
# generous (about 42 MB of slack), yet keeping anything near a photo's 600 kB tensor per
# photo would add over 200 MB; under AddressSanitizer freed memory waits in a quarantine of
# up to 256 MB first
slack=20
[ "${SANITIZE:-}" = 1 ] && slack=300
awk -v a="$p1" -v b="$p10" -v s=$slack 'BEGIN { exit !(b <= a * 1.05 + s) }' ||
	fail "peak rss grew from $p1 MB to $p10 MB with ten times the photos"
