# Full disks. The database's disk fills up in the middle of a run: the run exits 1 naming the
# cause, with only whole batches committed, and completes once there is room again, leaving
# the tables of an uninterrupted run. A full temporary folder (TMPDIR) does not matter: the
# pipeline keeps photos and tensors in memory and writes no temporary files. A read-only or
# full metrics folder costs a warning, not the run.
# The disks are small tmpfs mounts (root, or sudo, is needed to mount them).
. "$(dirname "$0")/../lib/common.sh"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
mounts=()
own="$T/dbdisk/pg"
finish() {
	[ -f "$own/data/PG_VERSION" ] && "$ROOT/scripts/pg-local" stop "$own"
	for m in "${mounts[@]}"; do $SUDO umount "$m" || true; done
	cleanup
}
trap finish EXIT
# small_disk DIR SIZE: a tmpfs of SIZE at DIR, writable by this user
small_disk() {
	mkdir -p "$1"
	$SUDO mount -t tmpfs -o "size=$2,mode=0777" tmpfs "$1" ||
		fail "cannot mount a tmpfs at $1 (needs root or sudo)"
	mounts+=("$1")
}
# fill DIR KEEP_KB: a filler file that leaves KEEP_KB free
fill() {
	local avail
	avail=$(df -k --output=avail "$1" | tail -n 1)
	[ "$avail" -gt "$2" ] && head -c $(((avail - $2) * 1024)) /dev/zero >"$1/filler"
	echo "$1: $(df -k --output=avail "$1" | tail -n 1) KiB free"
}

write_config "$DATA/ads.csv" "$DATA/images"
date=2026-11-30
photos=$(day_photos $date)

# a full TMPDIR: the run is not affected
small_disk "$T/tmpdisk" 256k
fill "$T/tmpdisk" 0
TMPDIR="$T/tmpdisk" run_pipeline 0 --config "$CFG" --date $date
want=$(content_digest)
expect_eq "$(q 'select count(*) from ad_images')" $photos "photos with a full TMPDIR"

# the metrics folder (the one place the pipeline writes files) read-only, then full: the run
# says so in a warning and completes; no half-written file is left behind
small_disk "$T/ro" 256k
$SUDO mount -o remount,ro "$T/ro"
small_disk "$T/full" 256k
fill "$T/full" 0
for dir in "$T/ro" "$T/full"; do
	cp "$CFG" "$T/metrics.yaml"
	printf 'metrics:\n    textfile_dir: %s\n' "$dir" >>"$T/metrics.yaml"
	run_pipeline 0 --config "$T/metrics.yaml" --date $date
	grep -q 'msg="could not write the metrics file" error="metrics: cannot write' "$T/run.log" ||
		fail "$dir: no warning about the metrics file"
	expect_eq "$(content_digest)" "$want" "$dir: tables with an unwritable metrics folder"
	expect_eq "$(find "$dir" -name '*.prom' -o -name '*.tmp*' | wc -l)" 0 \
		"$dir: no metrics file, whole or half"
done
grep -q 'Read-only file system' "$T/run.log" && fail "last run should have met a full disk"
grep -q 'No space left on device' "$T/run.log" || fail "the full folder's reason"

# the database on a disk with room for the schema and a few batches
small_disk "$T/dbdisk" 100m
"$ROOT/scripts/pg-local" start "$own" >/dev/null
PGHOST="$own/sock"
createdb "$PGDATABASE"
run_pipeline 0 migrate --config "$CFG"
psql -X -q -c checkpoint
fill "$T/dbdisk" 512
run_pipeline 1 --config "$CFG" --date $date
grep -q 'msg="run failed".*sqlstate 53100: could not extend file.*(hint: Check free disk space.)' \
	"$T/run.log" || fail "the disk-full reason is not in the log"
stored=$(q "select count(*) from ad_images")
echo "stored before the disk filled: $stored photos"
expect_eq "$((stored % 8))" 0 "only whole batches of 8 committed"
expect_eq "$(q "select count(*) from ad_images a left join image_embeddings e using (image_id)
	where e.image_id is null")" 0 "every stored photo has its embedding"

rm "$T/dbdisk/filler"
run_pipeline 0 --config "$CFG" --date $date
expect_eq "$(content_digest)" "$want" "tables after the rerun with room again"
