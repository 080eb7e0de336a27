# Every configuration mistake exits 2 with a message naming the file, the line (where there
# is one) and the key, and writes nothing: the database stays without a single table. The
# other parse errors (lists for numbers, booleans, bad YAML, ...) are in unit/test_config.
. "$(dirname "$0")/../lib/common.sh"

WEIGHTS="$SHARED/models/mobilenetv2_100.coral_imagenet.safetensors"

# expect_config_error WHAT NEEDLE [ARGS...]: exit 2, NEEDLE in the output, database untouched
expect_config_error() {
	local what=$1 needle=$2
	shift 2
	run_pipeline 2 --config "$CFG" "$@"
	grep -qF -- "$needle" "$T/run.log" || fail "$what: message lacks '$needle'"
	expect_eq "$(q "select count(*) from pg_tables where schemaname = 'public'")" 0 \
		"$what: nothing written"
}

# base: write_config puts model.config on line 12 and model.weights on line 13
base() { write_config "$DATA/ads.csv" "$DATA/images" "${1:-}"; }

base "grouping:
    treshold: 0.5"
expect_config_error "unknown key" "pipeline.yaml:15: grouping.treshold: unknown key"
base
sed -i 's/batch_size: 8/batch_size: eight/' "$CFG"
expect_config_error "wrong type" \
	"pipeline.yaml:9: pipeline.batch_size: 'eight' is not a whole number"
base
sed -i 's/batch_size: 8/batch_size: 0/' "$CFG"
expect_config_error "out of range" \
	"pipeline.yaml:9: pipeline.batch_size: 0 is out of range [1, 1024]"
expect_config_error "missing file" "$T/none.yaml: cannot open: No such file or directory" \
	--config "$T/none.yaml"

# the model configuration
printf 'architecture:\n  backbone: mobilenetv2_100\n  embeding_size: 512\n' >"$T/model.yaml"
base
sed -i "s|config: .*|config: $T/model.yaml|" "$CFG"
expect_config_error "unknown key in the model config" \
	"pipeline.yaml:12: model.config: $T/model.yaml:3: architecture.embeding_size: unknown key"

# weights: missing, a folder, unreadable, garbage, cut short, another backbone, another size
set_weights() { base; sed -i "s|weights: .*|weights: $1|" "$CFG"; }
set_weights "$T/none.safetensors"
expect_config_error "missing weights" \
	"pipeline.yaml:13: model.weights: cannot read $T/none.safetensors: No such file"
mkdir "$T/weights-dir"
set_weights "$T/weights-dir"
expect_config_error "weights folder" \
	"pipeline.yaml:13: model.weights: $T/weights-dir: not a regular file"
head -c 4096 /dev/urandom >"$T/garbage.safetensors"
set_weights "$T/garbage.safetensors"
expect_config_error "garbage weights" "pipeline.yaml:13: model.weights: $T/garbage.safetensors: "
head -c 1000000 "$WEIGHTS" >"$T/cut.safetensors"
set_weights "$T/cut.safetensors"
expect_config_error "weights cut short" "pipeline.yaml:13: model.weights: $T/cut.safetensors: "
effnet="$SHARED/golden/tf_efficientnet_b0_ns/tf_efficientnet_b0_ns.random.safetensors"
set_weights "$effnet"
expect_config_error "weights of another backbone" \
	"pipeline.yaml:13: model.weights: $effnet does not fit mobilenetv2_100: 30 missing"
# the MobileNetV2 weights with a 16-d embedding head added, against embedding_size 512
python3 - "$WEIGHTS" "$T/head16.safetensors" <<'PY'
import json, struct, sys
src = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", src[:8])[0]
head = json.loads(src[8:8 + n])
data = src[8 + n:]
for name, shape in (("head.fc.weight", [16, 1280]), ("head.fc.bias", [16])):
    size = 4
    for d in shape:
        size *= d
    head[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + size]}
    data += b"\0" * size
text = json.dumps(head).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + data)
PY
printf 'architecture:\n  backbone: mobilenetv2_100\n  embedding_size: 512\n' >"$T/model512.yaml"
set_weights "$T/head16.safetensors"
sed -i "s|config: .*|config: $T/model512.yaml|" "$CFG"
where="pipeline.yaml:13: model.weights: $T/head16.safetensors"
expect_config_error "weights of another embedding size" \
	"$where: head.fc.weight gives 16-d embeddings, embedding_size is 512"

# unreadable for the user running it: as root, run as nobody (root reads anything)
cp "$WEIGHTS" "$T/locked.safetensors"
chmod 000 "$T/locked.safetensors"
set_weights "$T/locked.safetensors"
chmod 755 "$T"
chmod 644 "$CFG"
if [ "$(id -u)" -eq 0 ]; then
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" --config "$CFG" \
		2>"$T/run.log" || rc=$?
	cat "$T/run.log" >&2
	expect_eq "$rc" 2 "unreadable weights: exit code"
	locked="pipeline.yaml:13: model.weights: cannot read $T/locked.safetensors"
	grep -qF "$locked: Permission denied" "$T/run.log" || fail "unreadable weights: message"
else
	expect_config_error "unreadable weights" \
		"pipeline.yaml:13: model.weights: cannot read $T/locked.safetensors: Permission"
fi

# other keys checked when the run starts
base
sed -i "s|images_root: .*|images_root: $T/no-images|" "$CFG"
expect_config_error "missing images folder" "pipeline.yaml:7: source.images_root: "
base "model:
    device: tpu"
expect_config_error "unknown device" "pipeline.yaml:15: model.device: unknown device tpu"
expect_eq "$(q "select count(*) from pg_tables where schemaname = 'public'")" 0 \
	"nothing written by any of them"

# a database that already holds results: a bad config leaves every table as it was
head -n 3 "$DATA/ads.csv" >"$T/two.csv"
write_config "$T/two.csv" "$DATA/images"
run_pipeline 0 --config "$CFG"
tables="ad_images image_embeddings image_groups failures models pipeline_runs schema_migrations"
before=""
for t in $tables; do before="$before $t=$(table_digest $t)"; done
sed -i "s|weights: .*|weights: $effnet|" "$CFG"
run_pipeline 2 --config "$CFG"
grep -qF "pipeline.yaml:13: model.weights: $effnet does not fit" "$T/run.log" ||
	fail "wrong weights after a good run: message"
after=""
for t in $tables; do after="$after $t=$(table_digest $t)"; done
expect_eq "$after" "$before" "tables after a config error on a used database"
