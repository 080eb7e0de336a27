# Retraining end to end on the sample labels (128 px MobileNetV2 from the
# ImageNet weights, 2 epochs, seed 7): the loss falls, validation mAP beats
# the starting weights on the same split and the gate promotes the model; a
# run killed after epoch 1 and resumed gives the same weights; a worse model
# stays a candidate; rollback and --promote move the active model; the
# nightly run then embeds with the active model's weights and size.
. "$(dirname "$0")/../lib/common.sh"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

# the ImageNet weights at the training size, so that the active model the
# gate compares with is the starting point of training
cat >"$T/model.yaml" <<EOC
architecture:
    backbone: mobilenetv2_100
    embedding_size: 512
    pool: Average
    pretrained: true
image:
    image_height: 128
    image_width: 128
    image_normalization: Custom
    image_mean: [128, 128, 128]
    image_std: [128, 128, 128]
prediction:
    top_k_similar: 50
    metric: mAP
training:
    arcface_margin: 0.1
    arcface_scale: 45
    batch_size: 16
    epochs: 2
    learning_rate: 0.001
    differential_learning_rate: 0.0001
    differential_learning_rate_layers: [backbone]
    schedule: Cosine
    warmup_epochs: 0
    drop_last_batch: true
dataset:
    validation_size: 0.25
environment:
    seed: 7
    number_of_workers: 4
EOC
# the sample labels and two bad rows, which are skipped and counted
cp "$DATA/labels.csv" "$T/labels.csv"
printf 'bicycle_final/missing.JPG,1,bicycle\nbicycle_final/111085122871_0.JPG,,bicycle\n' \
	>>"$T/labels.csv"
write_config "$DATA/ads.csv" "$DATA/images" "retrain:
    labels_csv: $T/labels.csv
    images_root: $DATA/images
    ads_csv: $DATA/ads.csv
    model_dir: $T/models"
sed -i "s|config: .*model.*yaml|config: $T/model.yaml|" "$CFG"

# no model yet, nothing to roll back to; a bad id is a usage error
run_pipeline 1 --rollback --config "$CFG"
run_pipeline 2 --promote x --config "$CFG"
run_pipeline 2 --stage weekly --config "$CFG"
run_pipeline 2 --stage retrain --date 2026-11-30 --config "$CFG"

# labels from a SQL query (read-only, cut at retrain.max_photos): five rows,
# one of them bad, are read and decoded; two labels are too few to split
q "create table photo_labels (image text, label text)"
q "insert into photo_labels values ('bicycle_final/111085122871_0.JPG', 'a'),
	('bicycle_final/111085122871_1.JPG', 'a'), ('bicycle_final/nope.JPG', 'b'),
	('chair_final/110917205598_0.JPG', 'b'), ('chair_final/110917205598_1.JPG', 'b')"
sed "s|labels_csv: .*|labels_query: \"select image, label from photo_labels order by image;\"|" \
	"$CFG" >"$T/query.yaml"
run_pipeline 1 --stage retrain --config "$T/query.yaml"
grep -q 'msg="labelled photos decoded" source=labels query rows=5 photos=4 bad=1' \
	"$T/run.log" || fail "labels query not read"
grep -q 'labels query: 2 labels in use give 2 for training and 0 for validation' \
	"$T/run.log" || fail "no split error"
sed -i 's|    model_dir:|    max_photos: 3\n    model_dir:|' "$T/query.yaml"
run_pipeline 1 --stage retrain --config "$T/query.yaml"
grep -q "more than 3 rows (retrain.max_photos)" "$T/run.log" || fail "labels query not bounded"

# the ImageNet weights become the first active model
run_pipeline 0 --config "$CFG" --date 2026-11-30
imagenet=$(q "select id from models where status = 'active'")
expect_eq "$(q "select kind from model_promotions")" first "first promotion recorded"

# ---- a training run: loss falls, mAP beats the start, promoted ----
run_pipeline 3 --stage retrain --config "$CFG"
cp "$T/run.log" "$T/train1.log"
grep -q 'msg="training set up".*classes=' "$T/train1.log" || fail "no training line"
grep -q 'keys=.*environment.number_of_workers' "$T/train1.log" ||
	fail "an unsupported model key was not named in the warning"
losses=$(sed -n 's/.*msg="epoch done" epoch=\([0-9]*\) .* loss=\([0-9.]*\) .*/\2/p' "$T/train1.log")
expect_eq "$(echo "$losses" | wc -l)" 2 "one line per epoch"
first=$(echo "$losses" | head -n 1)
last=$(echo "$losses" | tail -n 1)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "loss did not fall: $losses"
base=$(sed -n 's/.*msg="starting weights scored" map_at_50=\([0-9.]*\).*/\1/p' "$T/train1.log")
final=$(sed -n 's/.*msg="retrain finished".* map_at_50=\([0-9.]*\) .*/\1/p' "$T/train1.log")
awk -v a="$base" -v b="$final" 'BEGIN { exit !(b > a) }' ||
	fail "validation mAP $final is not above the starting weights' $base"
echo "ok: loss $first -> $last, validation mAP@50 $base -> $final"
grep -q 'verdict="promoted: map' "$T/train1.log" || fail "better model not promoted"
m1=$(q "select id from models where status = 'active'")
[ "$m1" != "$imagenet" ] || fail "the active model did not change"
expect_eq "$(q "select parent_id from models where id = $m1")" "$imagenet" "parent model"
expect_eq "$(q "select kind || ':' || previous_model_id from model_promotions
	order by id desc limit 1")" "gate:$imagenet" "gate promotion recorded"
expect_eq "$(q "select threshold between 0 and 1 and (metrics->>'map_at_50')::float > 0
	and training->'data'->>'bad_rows' = '2' and inference->>'normalization' = 'Custom'
	from models where id = $m1")" t "registry row"
# status sums the model up on one line: scalar metrics, rounded, no per-epoch history
"$BIN" status --config "$CFG" >"$T/status.txt"
metrics=$(sed -n 's/^  metrics: //p' "$T/status.txt")
echo "$metrics" | grep -Eq "(^| )map_at_50=0\.[0-9]{1,4}( |$)" || fail "status metrics: $metrics"
case "$metrics" in *epoch* | *"{"*) fail "status metrics carry the history: $metrics" ;; esac
w1=$(q "select weights_path from models where id = $m1")
expect_eq "$(sha256sum "$w1" | cut -d' ' -f1)" "$(q "select weights_sha256 from models
	where id = $m1")" "weights checksum"
sidecar=$(q "select sidecar_path from models where id = $m1")
grep -q '"seed":	7' "$sidecar" || fail "sidecar lacks the seed"
grep -q '"threshold":' "$sidecar" || fail "sidecar lacks the threshold"
expect_eq "$(q "select kind || ':' || status || ':' || photos_failed from pipeline_runs
	order by id desc limit 1")" retrain:partial:2 "retrain run row"
expect_eq "$(q "select count(*) from failures where key like 'retrain:labels.csv:%'")" 2 \
	"bad rows recorded"

# ---- killed after epoch 1, resumed: the same weights ----
ckpt="$T/models/checkpoints"
"$BIN" --stage retrain --config "$CFG" 2>"$T/killed.log" &
pid=$!
wait_for 300 "checkpoint after epoch 1" test -f "$ckpt/state.json"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
done_epoch=$(sed -n 's/.*"epoch":[^0-9]*\([0-9]*\).*/\1/p' "$ckpt/state.json" | head -n 1)
[ "$done_epoch" -lt 2 ] || fail "the run finished before it was killed"
run_pipeline 3 --stage retrain --resume --config "$CFG"
grep -q "msg=\"resumed from a checkpoint\".* epoch=$done_epoch" "$T/run.log" ||
	fail "did not resume from epoch $done_epoch"
grep -q 'verdict="same weights as the active model"' "$T/run.log" ||
	fail "resumed run did not give the uninterrupted run's weights"
expect_eq "$(q "select count(*) from models")" 2 "resumed run registered no new model"
[ ! -e "$ckpt/state.json" ] || fail "checkpoint left after a finished run"
run_pipeline 1 --stage retrain --resume --config "$CFG"
grep -q "no checkpoint to resume" "$T/run.log" || fail "resume without a checkpoint"

# ---- a worse model (random start, one epoch) stays a candidate ----
sed -e 's/pretrained: true/pretrained: false/' -e 's/epochs: 2/epochs: 1/' \
	"$T/model.yaml" >"$T/worse.yaml"
sed "s|model_dir:|model_config: $T/worse.yaml\n    model_dir:|" "$CFG" >"$T/worse-pipeline.yaml"
rc=0
script -qec "$BIN --stage retrain --config $T/worse-pipeline.yaml" /dev/null \
	>"$T/worse.log" 2>&1 || rc=$?
cat "$T/worse.log" >&2
expect_eq "$rc" 3 "worse run exit code"
grep -q "img/s ETA" "$T/worse.log" || fail "no progress bar on a terminal"
grep -q 'verdict="not better' "$T/worse.log" || fail "worse model promoted"
worse=$(q "select max(id) from models")
expect_eq "$(q "select status from models where id = $worse")" candidate "worse model status"
expect_eq "$(q "select id from models where status = 'active'")" "$m1" "active model kept"

# ---- rollback and manual promotion ----
run_pipeline 0 --rollback --config "$CFG"
expect_eq "$(q "select id from models where status = 'active'")" "$imagenet" "rolled back"
run_pipeline 0 --promote "$m1" --config "$CFG"
run_pipeline 0 --promote "$worse" --config "$CFG"
expect_eq "$(q "select id from models where status = 'active'")" "$worse" "manual promotion"
run_pipeline 0 --rollback --config "$CFG"
expect_eq "$(q "select id from models where status = 'active'")" "$m1" "rollback restores"
run_pipeline 2 --promote 999999 --config "$CFG"

# ---- the nightly run embeds with the active model ----
thr=$(q "select round(threshold::numeric, 3) from models where id = $m1")
run_pipeline 0 --config "$CFG" --date 2026-11-30
grep -q "msg=\"embedding with the active model\" model_id=$m1 .*size=128x128 dim=512" \
	"$T/run.log" || fail "nightly run did not embed with the active model"
grep -q "threshold=$thr" "$T/run.log" || fail "nightly run did not use the model's threshold"
expect_eq "$(q "select count(*) || ':' || min(dim) from image_embeddings where model_id = $m1")" \
	113:512 "embeddings of the active model"
expect_eq "$(q "select count(*) from image_groups where model_id = $m1")" 113 \
	"groups of the active model"
expect_eq "$(q "select count(distinct model_id) from ad_groups")" 1 "the view shows one model"
expect_eq "$(q "select min(model_id) from ad_groups")" "$m1" "the view shows the active model"
echo "ok: retrain"
