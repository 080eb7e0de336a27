# make install: the documented tree under DESTDIR, configs kept when present,
# make uninstall; the units pass `systemd-analyze verify` (the verifier is
# shown to catch a typo) and their exposure level is measured. Then the
# README's fresh-host steps on an install under a temporary prefix: migrate,
# roles, a backfill, status, metrics, report, with the installed binary.
. "$(dirname "$0")/../lib/common.sh"

D="$T/root"
make -s -C "$ROOT" install DESTDIR="$D" >/dev/null
( cd "$D" && find . -mindepth 1 | sort ) >"$T/tree.txt"
cat "$T/tree.txt"
for f in usr/local/bin/pipeline-run usr/local/share/pipeline-run/sql/001_schema.sql \
	usr/local/share/pipeline-run/sql/005_operations.sql usr/local/share/pipeline-run/sql/roles.sql \
	usr/local/share/pipeline-run/configs/pipeline.yaml \
	usr/local/share/pipeline-run/configs/models/mobilenetv2_100-coral.yaml \
	etc/pipeline-run/pipeline.yaml etc/pipeline-run/model.yaml etc/pipeline-run/pgpass \
	usr/local/lib/systemd/system/pipeline-nightly.service \
	usr/local/lib/systemd/system/pipeline-nightly.timer \
	usr/local/lib/systemd/system/pipeline-retrain.service \
	usr/local/lib/systemd/system/pipeline-retrain.timer \
	usr/local/lib/systemd/system/pipeline-backfill@.service \
	usr/local/lib/sysusers.d/pipeline-run.conf usr/local/lib/tmpfiles.d/pipeline-run.conf \
	var/lib/pipeline-run/models; do
	[ -e "$D/$f" ] || fail "install lacks $f"
done
expect_eq "$(stat -c %a "$D/etc/pipeline-run/pgpass")" 600 "pgpass mode"
expect_eq "$(stat -c %a "$D/var/lib/pipeline-run")" 750 "state directory mode"
exec_start="/usr/local/bin/pipeline-run run --config /etc/pipeline-run/pipeline.yaml --date %i"
grep -q -F -x "ExecStart=$exec_start" \
	"$D/usr/local/lib/systemd/system/pipeline-backfill@.service" || fail "backfill ExecStart"
grep -q "sql_dir: /usr/local/share/pipeline-run/sql" "$D/etc/pipeline-run/pipeline.yaml" ||
	fail "installed config names the sql folder"
grep -rIq "@[A-Z]*@" "$D" && fail "a placeholder left in the installed files"

# configs survive a reinstall; uninstall leaves configs and state
echo "# edited" >>"$D/etc/pipeline-run/pipeline.yaml"
make -s -C "$ROOT" install DESTDIR="$D" >/dev/null
tail -n 1 "$D/etc/pipeline-run/pipeline.yaml" | grep -q "^# edited$" || fail "config overwritten"
make -s -C "$ROOT" uninstall DESTDIR="$D" >/dev/null
left=$(cd "$D" && find . -type f | sort | tr '\n' ' ')
e=./etc/pipeline-run
expect_eq "$left" "$e/model.yaml $e/pgpass $e/pipeline.yaml " \
	"files left after uninstall"

# an install under a prefix of its own, so that ExecStart names a real file
P="$T/prefix"
make -s -C "$ROOT" install PREFIX="$P" CONFDIR="$P/etc/pipeline-run" \
	STATEDIR="$P/var/lib/pipeline-run" >/dev/null
U="$P/lib/systemd/system"
for u in "$U"/*.service "$U"/*.timer; do
	out=$(systemd-analyze verify "$u" 2>&1) || fail "verify $(basename "$u"): $out"
	[ -z "$out" ] || fail "verify $(basename "$u"): $out"
	echo "ok: systemd-analyze verify $(basename "$u")"
done
sed 's/^ProtectHome=yes/ProtectHom=yes/' "$U/pipeline-nightly.service" >"$T/typo.service"
[ -n "$(systemd-analyze verify "$T/typo.service" 2>&1)" ] || fail "verify misses a typo"
for u in pipeline-nightly.service pipeline-backfill@.service pipeline-retrain.service; do
	systemd-analyze security --offline=yes "$U/$u" >"$T/sec.txt" 2>&1 || true
	level=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' "$T/sec.txt")
	echo "exposure $u: $level"
	awk -v l="${level%% *}" 'BEGIN { exit !(l != "" && l <= 2.0) }' ||
		{ cat "$T/sec.txt"; fail "$u exposure level '$level' above 2.0"; }
done

# the fresh-host guide, with the installed binary and config
mkdir -p "$P/var/lib/pipeline-run/incoming" "$P/metrics"
awk -F, 'NR == 1 || $1 == "9000003" || $1 == "9000001"' "$DATA/ads.csv" \
	>"$P/var/lib/pipeline-run/incoming/ads.csv"
ln -s "$DATA/images" "$P/var/lib/pipeline-run/incoming/images"
db="${PGDATABASE}_host"
owner="pipe_host_$$"
trap 'dropdb --if-exists "$db" 2>/dev/null || true; psql -X -q -c "DROP ROLE IF EXISTS $owner"
	psql -X -q -c "DROP ROLE IF EXISTS pipeline_analyst_$$"; cleanup' EXIT
createuser "$owner"
createdb -O "$owner" "$db"
C="$P/etc/pipeline-run/pipeline.yaml"
sed -i -e "s|conninfo: \"dbname=bikes\"|conninfo: \"dbname=$db user=$owner\"|" \
	-e "s|textfile_dir: .*|textfile_dir: $P/metrics|" "$C"
# in the README's order: the database before the weights are in place (the commands that
# do not load the model work without them)
"$P/bin/pipeline-run" migrate --config "$C"
psql -X -q -d "$db" -v pipeline_role="$owner" -v analyst_role="pipeline_analyst_$$" \
	-f "$P/share/pipeline-run/sql/roles.sql" >/dev/null
"$P/bin/pipeline-run" status --config "$C" | grep -q "^active model: none" ||
	fail "status before the weights are in place"
rc=0
"$P/bin/pipeline-run" --config "$C" --date 2026-11-30 2>"$T/noweights.log" || rc=$?
expect_eq "$rc" 2 "a run without the weights"
grep -q "model.weights: cannot read .*current.safetensors" "$T/noweights.log" ||
	fail "a run without the weights: message"
cp "$SHARED/models/mobilenetv2_100.coral_imagenet.safetensors" \
	"$P/var/lib/pipeline-run/models/current.safetensors"
rc=0
"$P/bin/pipeline-run" --config "$C" --date 2026-11-30 || rc=$?
expect_eq "$rc" 0 "backfill with the installed binary"
"$P/bin/pipeline-run" status --config "$C" | grep -q "backfill  2026-11-30  ok" || fail "status"
grep -q '^pipeline_run_photos_processed{kind="backfill"} 12$' \
	"$P/metrics/pipeline-run-backfill.prom" ||
	fail "metrics of the installed run"
"$P/bin/pipeline-run" report --config "$C" --date 2026-11-30 --out "$T/report"
grep -q 'data-ad="9000003" data-groups="2"' "$T/report/index.html" || fail "report"
echo "ok: fresh-host steps"
