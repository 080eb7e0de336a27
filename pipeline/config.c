/* config.c - the configuration schema and its YAML loader.
 *
 * A YAML file is flattened into dotted keys ("pipeline.batch_size") with the
 * line each value sits on; every key is then looked up in a schema table that
 * says its type, default, range and meaning. Defaults go through the same
 * parser as file values, so a default can never be out of range. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <yaml.h>

#include "log.h"

enum key_type {
	T_STR,         /* char[] */
	T_PATH,        /* char[], resolved against the file's directory */
	T_SECRET,      /* char[], masked when printed */
	T_INT,         /* int */
	T_LL,          /* long long */
	T_DOUBLE,      /* double */
	T_DOUBLE_AUTO, /* double, "auto" = NaN */
	T_BOOL,        /* int 0/1 */
	T_ENUM,        /* int, index into choices */
	T_CHOICE,      /* char[], one of choices */
	T_FLOAT3,      /* float[3] */
	T_RESIZE,      /* a Hydrogen Torch augmentation string that must be a plain resize */
	T_LIST,        /* char[]: a scalar or a list of scalars, stored comma-joined;
	                * each one of choices when choices is set */
	T_IGNORED,     /* accepted, does not apply: warned about */
	T_PROPS,       /* struct config_props: every "prefix.*" key, passed through */
};

struct key_def {
	const char *key;
	enum key_type type;
	size_t offset;
	size_t size;     /* for char[] fields */
	const char *def; /* default as YAML text; NULL = none (required when REQ) */
	double min, max;
	const char *const *choices;
	const char *help;
	int required;
};

#define F(st, field) offsetof(struct st, field), sizeof(((struct st *)0)->field)
#define NONE         0, 0

static const char *const source_kinds[] = {"dir", "kafka", "db", NULL};
static const char *const linkages[] = {"average", "single", "complete", NULL};
static const char *const pools[] = {"Average", "GeM", NULL};
static const char *const norms[] = {"Simple", "ImageNet", "Custom", NULL};
static const char *const backbones[] = {"tf_efficientnet_b0_ns", "mobilenetv2_100", NULL};
static const char *const schedules[] = {"Cosine", "Linear", "Constant", NULL};
static const char *const lr_layers[] = {"backbone", "head", NULL};
static const char *const strategies[] = {"automatic", "kfold", NULL};
static const char *const promote_modes[] = {"never", "if_better", NULL};
static const char *const augs[] = {"Soft", "None", NULL};
static const char *const optimizers[] = {"AdamW", NULL};
static const char *const losses[] = {"ArcFace", NULL};
static const char *const metrics[] = {"mAP", NULL};
static const char *const channels[] = {"3", NULL};
static const char *const precisions[] = {"fp32", "fp16", NULL};
static const char *const log_prefixes[] = {"auto", "always", "never", NULL};

static const struct key_def pipeline_keys[] = {
    {"database.conninfo", T_SECRET, F(config, db_conninfo), "", 0, 0, NULL,
     "libpq connection string or service=NAME (empty: libpq's PG* environment)", 0},
    {"database.sql_dir", T_PATH, F(config, sql_dir), "../sql", 0, 0, NULL,
     "folder of numbered migrations applied at start", 0},
    {"database.retries", T_INT, F(config, db_retries), "6", 1, 100, NULL,
     "attempts at a database write before the run gives up (0.5 s, doubling to 8 s apart)", 0},
    {"source.kind", T_ENUM, F(config, source), "dir", 0, 0, source_kinds,
     "where photos come from: dir (a CSV of ads), kafka, or db (photos recorded in "
     "ad_images, re-fetched)",
     0},
    {"source.csv", T_PATH, F(config, source_csv), "", 0, 0, NULL,
     "CSV with columns ad_id,image_id,image,created_at", 0},
    {"source.images_root", T_PATH, F(config, images_root), "", 0, 0, NULL,
     "folder the CSV's image paths are relative to, and the one folder file:// urls of "
     "events may read; no path may leave it",
     0},
    {"limits.max_bytes", T_LL, F(config, max_bytes), "52428800", 1, 2147483647, NULL,
     "largest photo file accepted, bytes", 0},
    {"limits.max_pixels", T_LL, F(config, max_pixels), "100000000", 1, 1e12, NULL,
     "largest width x height accepted, checked from the header before decoding", 0},
    {"kafka.*", T_PROPS, F(config, kafka), NULL, 0, 0, NULL,
     "librdkafka client properties (bootstrap.servers, security.protocol, sasl.*, ssl.*)", 0},
    {"kafka_source.topic", T_STR, F(config, ks.topic), "", 0, 0, NULL,
     "topic of photo events (key ad id, JSON value)", 0},
    {"kafka_source.group_id", T_STR, F(config, ks.group_id), "pipeline-run", 0, 0, NULL,
     "consumer group of the nightly runs", 0},
    {"kafka_source.dead_letter_topic", T_STR, F(config, ks.dead_letter_topic), "", 0, 0, NULL,
     "bad events are also produced here, unchanged (empty: off)", 0},
    {"kafka_source.poll_timeout_ms", T_INT, F(config, ks.poll_timeout_ms), "500", 1, 60000, NULL,
     "longest wait for one message", 0},
    {"kafka_source.wait_timeout_s", T_INT, F(config, ks.wait_timeout_s), "120", 1, 86400, NULL,
     "longest wait for a partition assignment, or for the next message while partitions "
     "are unfinished (then the run fails and commits nothing more)",
     0},
    {"kafka_source.max_events", T_LL, F(config, ks.max_events), "0", 0, 1e15, NULL,
     "nightly runs: events taken per run, at most (0: up to the high-water marks seen at start)",
     0},
    {"kafka_source.max_event_bytes", T_LL, F(config, ks.max_event_bytes), "65536", 64, 16777216,
     NULL, "larger event values are recorded as failures unread", 0},
    {"kafka_source.clock_skew_s", T_INT, F(config, ks.clock_skew_s), "3600", 0, 604800, NULL,
     "backfills: read message timestamps this far outside the window", 0},
    {"kafka_source.commit_timeout_s", T_INT, F(config, ks.commit_timeout_s), "30", 1, 3600, NULL,
     "longest wait for an offset commit", 0},
    {"fetch.timeout_s", T_INT, F(config, fetch.timeout_s), "30", 1, 3600, NULL,
     "http(s): longest time for one photo, connecting included", 0},
    {"fetch.connect_timeout_s", T_INT, F(config, fetch.connect_timeout_s), "10", 1, 600, NULL,
     "http(s): longest time to connect", 0},
    {"fetch.max_redirects", T_INT, F(config, fetch.max_redirects), "3", 0, 20, NULL,
     "http(s): redirects followed (to http or https only)", 0},
    {"fetch.low_speed_bytes", T_LL, F(config, fetch.low_speed_bytes), "1024", 0, 1e12, NULL,
     "http(s): a transfer slower than this many bytes/s ...", 0},
    {"fetch.low_speed_s", T_INT, F(config, fetch.low_speed_s), "10", 1, 3600, NULL,
     "... for this many seconds is abandoned", 0},
    {"fetch.allow_private_networks", T_BOOL, F(config, fetch.allow_private), "false", 0, 0, NULL,
     "http(s): allow loopback, private and link-local addresses (off: urls from "
     "events cannot reach internal services)",
     0},
    {"pipeline.batch_size", T_INT, F(config, batch_size), "16", 1, 1024, NULL,
     "photos per forward pass and per database transaction", 0},
    {"pipeline.queue_depth", T_INT, F(config, queue_depth), "64", 1, 65536, NULL,
     "resized photos waiting for the model, at most (bounds memory)", 0},
    {"pipeline.resize_threads", T_INT, F(config, resize_threads), "0", 0, 256, NULL,
     "decode/resize threads; 0 = one per CPU core", 0},
    {"pipeline.torch_threads", T_INT, F(config, torch_threads), "0", 0, 256, NULL,
     "libtorch intra-op threads; 0 = one per CPU core", 0},
    {"pipeline.cpu_turns", T_BOOL, F(config, cpu_turns), "false", 0, 0, NULL,
     "on a CPU device, resize threads pause while a forward pass runs", 0},
    {"run.lock_wait_s", T_INT, F(config, lock_wait_s), "0", 0, 86400, NULL,
     "seconds to wait while another run of the same date (or nightly, retrain) holds the "
     "lock; then exit 5",
     0},
    {"metrics.textfile_dir", T_PATH, F(config, metrics_dir), "", 0, 0, NULL,
     "node-exporter textfile folder for pipeline-run-KIND.prom; empty: no metrics file", 0},
    {"metrics.interval_s", T_INT, F(config, metrics_interval_s), "15", 1, 3600, NULL,
     "seconds between metrics file updates during a run", 0},
    {"progress.log_interval_s", T_INT, F(config, progress_interval_s), "60", 0, 86400, NULL,
     "seconds between progress lines when stderr is not a terminal; 0: none", 0},
    {"log.priority_prefix", T_ENUM, F(config, log_prefix), "auto", 0, 0, log_prefixes,
     "<N> syslog priority on each line: auto (when stderr is the journal), always, never", 0},
    {"report.thumb_px", T_INT, F(config, report_thumb_px), "160", 32, 1024, NULL,
     "longest side of the report's thumbnails, pixels", 0},
    {"report.max_photos", T_INT, F(config, report_max_photos), "20000", 1, 1000000, NULL,
     "most photos one report shows (it embeds every thumbnail)", 0},
    {"model.config", T_PATH, F(config, model_config), NULL, 0, 0, NULL,
     "model configuration in the Hydrogen Torch format", 1},
    {"model.weights", T_PATH, F(config, model_weights), NULL, 0, 0, NULL,
     ".safetensors weights with timm key names", 1},
    {"model.device", T_STR, F(config, device), "cpu", 0, 0, NULL, "cpu, cuda or cuda:N", 0},
    {"model.channels_last", T_BOOL, F(config, channels_last), "true", 0, 0, NULL,
     "run convolutions in channels-last layout (faster on CPU)", 0},
    {"model.precision", T_ENUM, F(config, precision), "fp32", 0, 0, precisions,
     "fp32, or fp16: mixed precision (autocast) on a CUDA device", 0},
    {"retrain.labels_csv", T_PATH, F(config, retrain_labels_csv), "", 0, 0, NULL,
     "labelled photos for retraining: CSV with image and label columns", 0},
    {"retrain.labels_query", T_STR, F(config, retrain_labels_query), "", 0, 0, NULL,
     "or: SQL on the database returning (image, label) rows", 0},
    {"retrain.images_root", T_PATH, F(config, retrain_images_root), "", 0, 0, NULL,
     "folder the labelled images are relative to; no path may leave it", 0},
    {"retrain.ads_csv", T_PATH, F(config, retrain_ads_csv), "", 0, 0, NULL,
     "ads (ad_id,image_id,image) whose validation photos tune the threshold; "
     "empty: synthetic ads of 1-3 validation labels",
     0},
    {"retrain.model_config", T_PATH, F(config, retrain_model_config), "", 0, 0, NULL,
     "model configuration to train (empty: model.config)", 0},
    {"retrain.init_weights", T_PATH, F(config, retrain_init_weights), "", 0, 0, NULL,
     "weights training starts from (empty: model.weights)", 0},
    {"retrain.model_dir", T_PATH, F(config, retrain_model_dir), "", 0, 0, NULL,
     "folder trained models (.safetensors + .json) are written to", 0},
    {"retrain.checkpoint_dir", T_PATH, F(config, retrain_checkpoint_dir), "", 0, 0, NULL,
     "per-epoch checkpoints for --resume (empty: model_dir/checkpoints)", 0},
    {"retrain.cache_mb", T_INT, F(config, retrain_cache_mb), "4096", 0, 1048576, NULL,
     "decoded training photos kept in memory, MiB; the rest are decoded per use", 0},
    {"retrain.max_photos", T_INT, F(config, retrain_max_photos), "1000000", 2, 100000000, NULL,
     "labelled photos read at most", 0},
    {"retrain.promote", T_ENUM, F(config, retrain_promote), "if_better", 0, 0, promote_modes,
     "if_better: the gate promotes a better model; never: keep it candidate", 0},
    {"retrain.imprint", T_BOOL, F(config, retrain_imprint), "true", 0, 0, NULL,
     "start each ArcFace class at the mean embedding of its photos (false: random)", 0},
    {"grouping.threshold", T_DOUBLE_AUTO, F(config, threshold), "auto", -1, 1, NULL,
     "cosine similarity to join a group; auto = the active model's tuned value", 0},
    {"grouping.default_threshold", T_DOUBLE, F(config, default_threshold), "0.45", -1, 1, NULL,
     "threshold when neither the config nor the model record has one", 0},
    {"grouping.linkage", T_ENUM, F(config, linkage), "average", 0, 0, linkages,
     "agglomerative linkage: average, single or complete", 0},
};

static const struct key_def model_keys[] = {
    {"architecture.backbone", T_CHOICE, F(model_config, backbone), NULL, 0, 0, backbones,
     "timm backbone name", 1},
    {"architecture.embedding_size", T_INT, F(model_config, embedding_size), "512", 1, 8192, NULL,
     "embedding width of a trained head", 0},
    {"architecture.pool", T_ENUM, F(model_config, pool), "Average", 0, 0, pools,
     "pooling of the backbone's feature map", 0},
    {"architecture.gem_p", T_DOUBLE, F(model_config, gem_p), "3", 1, 16, NULL, "GeM exponent", 0},
    {"architecture.dropout", T_DOUBLE, F(model_config, dropout), "0", 0, 0.99, NULL,
     "dropout before the head (training only)", 0},
    {"architecture.pretrained", T_BOOL, F(model_config, pretrained), "true", 0, 0, NULL,
     "start training from the weights file", 0},
    {"image.image_channels", T_CHOICE, NONE, "3", 0, 0, channels, "colour channels", 0},
    {"image.image_height", T_INT, F(model_config, image_height), "224", 16, 4096, NULL,
     "model input height", 0},
    {"image.image_width", T_INT, F(model_config, image_width), "224", 16, 4096, NULL,
     "model input width", 0},
    {"image.image_normalization", T_ENUM, F(model_config, norm), "Simple", 0, 0, norms,
     "Simple (x/255), ImageNet mean/std, or Custom (image_mean/image_std)", 0},
    {"image.image_mean", T_FLOAT3, F(model_config, mean), "[0, 0, 0]", -1000, 1000, NULL,
     "per-channel mean in pixel units, for Custom", 0},
    {"image.image_std", T_FLOAT3, F(model_config, std), "[1, 1, 1]", 1e-6, 1000, NULL,
     "per-channel std in pixel units, for Custom", 0},
    {"prediction.top_k_similar", T_INT, F(model_config, top_k), "50", 1, 100000, NULL,
     "k of the retrieval metric mAP@k", 0},
    {"prediction.metric", T_CHOICE, NONE, "mAP", 0, 0, metrics, "evaluation metric", 0},
    {"prediction.test_time_augmentations", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"augmentation.augmentations_strategy", T_CHOICE, F(model_config, train.augmentations), "Soft",
     0, 0, augs, "training augmentations", 0},
    {"augmentation.custom_inference_augmentations", T_RESIZE, NONE, NULL, 0, 0, NULL,
     "must be a plain Resize to the image size", 0},
    {"augmentation.custom_train_augmentations", T_RESIZE, NONE, NULL, 0, 0, NULL,
     "must be a plain Resize to the image size", 0},
    {"training.epochs", T_INT, F(model_config, train.epochs), "5", 1, 1000, NULL, "", 0},
    {"training.batch_size", T_INT, F(model_config, train.batch_size), "16", 2, 4096, NULL, "", 0},
    {"training.grad_accumulation", T_INT, F(model_config, train.grad_accumulation), "1", 1, 1024,
     NULL, "", 0},
    {"training.learning_rate", T_DOUBLE, F(model_config, train.learning_rate), "0.001", 0, 10, NULL,
     "head learning rate", 0},
    {"training.differential_learning_rate", T_DOUBLE,
     F(model_config, train.differential_learning_rate), "0.001", 0, 10, NULL,
     "learning rate of the layers in differential_learning_rate_layers", 0},
    {"training.differential_learning_rate_layers", T_LIST, F(model_config, train.diff_lr_layers),
     "[]", 0, 0, lr_layers, "layers (backbone, head) that learn at differential_learning_rate", 0},
    {"training.weight_decay", T_DOUBLE, F(model_config, train.weight_decay), "0", 0, 10, NULL, "",
     0},
    {"training.warmup_epochs", T_DOUBLE, F(model_config, train.warmup_epochs), "0", 0, 1000, NULL,
     "", 0},
    {"training.gradient_clip", T_DOUBLE, F(model_config, train.gradient_clip), "0", 0, 1e6, NULL,
     "0 = off", 0},
    {"training.arcface_margin", T_DOUBLE, F(model_config, train.arcface_margin), "0.1", 0, 1.5,
     NULL, "radians", 0},
    {"training.arcface_scale", T_DOUBLE, F(model_config, train.arcface_scale), "45", 1, 256, NULL,
     "", 0},
    {"training.drop_last_batch", T_BOOL, F(model_config, train.drop_last_batch), "true", 0, 0, NULL,
     "", 0},
    {"training.evaluation_epochs", T_INT, F(model_config, train.evaluation_epochs), "1", 1, 1000,
     NULL, "", 0},
    {"training.schedule", T_CHOICE, F(model_config, train.schedule), "Cosine", 0, 0, schedules, "",
     0},
    {"training.optimizer", T_CHOICE, NONE, "AdamW", 0, 0, optimizers, "", 0},
    {"training.loss_function", T_CHOICE, NONE, "ArcFace", 0, 0, losses, "", 0},
    {"training.automatically_adjust_batch_size", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"training.build_scoring_pipelines", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"training.calculate_train_metric", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"training.save_best_checkpoint", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"training.train_validation_data", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"dataset.validation_size", T_DOUBLE, F(model_config, train.validation_size), "0.2", 0.01, 0.9,
     NULL, "share of labels held out for validation", 0},
    {"dataset.validation_strategy", T_CHOICE, F(model_config, train.validation_strategy),
     "automatic", 0, 0, strategies,
     "automatic: validation_size of the labels; kfold: the listed folds", 0},
    {"dataset.folds", T_LIST, F(model_config, train.folds), "[0]", 0, 0, NULL,
     "kfold: validation folds, numbered from 0", 0},
    {"dataset.data_sample", T_DOUBLE, F(model_config, train.data_sample), "1", 0.001, 1, NULL,
     "share of the labels used (drawn with the seed)", 0},
    {"dataset.image_column", T_STR, F(model_config, train.image_column), "image", 0, 0, NULL,
     "labels CSV: column of the image path", 0},
    {"dataset.label_columns", T_LIST, F(model_config, train.label_column), "label", 0, 0, NULL,
     "labels CSV: column of the label (one)", 0},
    {"dataset.data_folder", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"dataset.data_folder_test", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"dataset.data_sample_choice", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"dataset.group_fold_column", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"dataset.test_dataframe", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"dataset.train_dataframe", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"dataset.validation_dataframe", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"environment.seed", T_INT, F(model_config, train.seed), "-1", -1, INT_MAX, NULL,
     "-1 = random (recorded)", 0},
    {"environment.mixed_precision_training", T_BOOL, F(model_config, train.mixed_precision),
     "false", 0, 0, NULL, "bf16/fp16 autocast where the device supports it", 0},
    {"environment.mixed_precision_inference", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"environment.gpus", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"environment.number_of_workers", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"experiment_name", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"logging.logger", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"logging.neptune_project", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
    {"logging.number_of_images", T_IGNORED, NONE, NULL, 0, 0, NULL, "", 0},
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

/* One flattened YAML value. */
struct flat {
	char key[160];
	yaml_node_t *node;
	int line;
};

struct flat_list {
	struct flat *v;
	size_t n, cap;
};

/* Far above any real file; an alias counts once per use, so a small file of aliases to one
 * big mapping cannot make the flattened list (and the duplicate check) explode. */
#define CONFIG_MAX_KEYS 4096

static int flat_add(struct flat_list *l, const char *key, yaml_node_t *node)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct flat *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	snprintf(l->v[l->n].key, sizeof(l->v[l->n].key), "%s", key);
	l->v[l->n].node = node;
	l->v[l->n].line = (int)node->start_mark.line + 1;
	l->n++;
	return 0;
}

/* Walk mapping NODE, adding "prefix.key" for every scalar or sequence. Only
 * known maps are descended into; a mapping where a value is expected is
 * flattened too and then reported as an unknown key. */
static int flatten(yaml_document_t *doc, yaml_node_t *node, const char *prefix, struct flat_list *l,
                   const char *file, struct err *err)
{
	yaml_node_pair_t *pair;

	for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(doc, pair->value);
		char key[160];

		if (!k || k->type != YAML_SCALAR_NODE || !v)
			return err_set(err, ERR_FATAL, "%s:%d: keys must be plain scalars", file,
			               k ? (int)k->start_mark.line + 1 : 0);
		snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "",
		         (const char *)k->data.scalar.value);
		if (l->n >= CONFIG_MAX_KEYS)
			return err_set(err, ERR_FATAL,
			               "%s:%d: more than %d keys (each use of an alias counts)",
			               file, (int)k->start_mark.line + 1, CONFIG_MAX_KEYS);
		if (v->type == YAML_MAPPING_NODE && strlen(prefix) == 0) {
			if (flatten(doc, v, key, l, file, err))
				return -1;
		} else if (strlen(prefix) == 0 && v->type == YAML_SCALAR_NODE &&
		           v->data.scalar.length == 0 &&
		           v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
			continue; /* a section left empty ("pipeline:" with its keys commented out)
			           */
		} else if (flat_add(l, key, v)) {
			return err_set(err, ERR_FATAL, "out of memory");
		}
	}
	return 0;
}

static int resolve_path(const char *file, const char *value, char *out, size_t cap)
{
	const char *slash;
	int n;

	if (value[0] == '\0' || value[0] == '/') {
		n = snprintf(out, cap, "%s", value);
	} else {
		slash = strrchr(file, '/');
		if (slash)
			n = snprintf(out, cap, "%.*s/%s", (int)(slash - file), file, value);
		else
			n = snprintf(out, cap, "%s", value);
	}
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end != '\0' || !isfinite(*out) ? -1 : 0;
}

static int choice_index(const char *const *choices, const char *s)
{
	int i;

	for (i = 0; choices[i]; i++)
		if (!strcmp(choices[i], s))
			return i;
	return -1;
}

static void choices_list(const char *const *choices, char *out, size_t cap)
{
	size_t at = 0;
	int i;

	out[0] = '\0';
	for (i = 0; choices[i] && at < cap; i++) {
		int n = snprintf(out + at, cap - at, "%s%s", i ? ", " : "", choices[i]);

		if (n < 0)
			break;
		at += (size_t)n;
	}
}

/* A Hydrogen Torch augmentation string is accepted only when every transform
 * it names is Compose or Resize: the resize itself is done by the resize
 * stage, so anything else would silently not happen. */
static int check_plain_resize(const char *s)
{
	const char *tag = "\"__class_fullname__\"";
	const char *p = s;

	while ((p = strstr(p, tag))) {
		p += strlen(tag);
		while (*p == ' ' || *p == ':')
			p++;
		if (strncmp(p, "\"Compose\"", 9) && strncmp(p, "\"Resize\"", 8))
			return -1;
	}
	return 0;
}

/* Properties the pipeline sets itself: its offset handling depends on them. */
static const char *const owned_props[] = {"group.id",
                                          "enable.auto.commit",
                                          "enable.auto.offset.store",
                                          "enable.partition.eof",
                                          "auto.commit.enable",
                                          NULL};

int config_key_is_secret(const char *key)
{
	return strcasestr(key, "password") || strcasestr(key, "secret") ||
	       strcasestr(key, "key.pem") || strcasestr(key, "oauthbearer.config") ||
	       strcasestr(key, "sasl.jaas");
}

/* Add the client property KEY ("kafka.bootstrap.servers") of NODE at WHERE.
 * librdkafka checks the name and value itself, so that a typo is an error
 * with file:line instead of a failure at run time. */
static int set_prop(const struct key_def *def, void *base, const char *where, const char *key,
                    yaml_node_t *node, struct err *err)
{
	struct config_props *props = (struct config_props *)((char *)base + def->offset);
	const char *name = key + strlen(def->key) - 1;
	const char *value;
	rd_kafka_conf_t *conf;
	char errstr[256];
	int i, r;

	if (node->type != YAML_SCALAR_NODE)
		return err_set(err, ERR_FATAL, "%s: %s: expected a single value", where, key);
	value = (const char *)node->data.scalar.value;
	for (i = 0; owned_props[i]; i++)
		if (!strcmp(name, owned_props[i]))
			return err_set(err, ERR_FATAL,
			               "%s: %s: set by the pipeline (the group is "
			               "kafka_source.group_id; offsets are committed after the "
			               "database)",
			               where, key);
	if (props->n == CONFIG_KAFKA_PROPS_MAX)
		return err_set(err, ERR_FATAL, "%s: %s: more than %d client properties", where, key,
		               CONFIG_KAFKA_PROPS_MAX);
	if (strlen(name) >= sizeof(props->v[0].key) || strlen(value) >= sizeof(props->v[0].value))
		return err_set(err, ERR_FATAL, "%s: %s: name or value too long", where, key);
	conf = rd_kafka_conf_new();
	r = rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
	rd_kafka_conf_destroy(conf);
	if (r != RD_KAFKA_CONF_OK)
		return err_set(err, ERR_FATAL, "%s: %s: %s", where, key,
		               config_key_is_secret(name) ? "invalid value" : errstr);
	snprintf(props->v[props->n].key, sizeof(props->v[0].key), "%s", name);
	snprintf(props->v[props->n].value, sizeof(props->v[0].value), "%s", value);
	props->n++;
	return 0;
}

/* Append ITEM to the comma-joined list in FIELD, checking it against the
 * choices of DEF. */
static int list_add(const struct key_def *def, char *field, const char *where, const char *item,
                    struct err *err)
{
	size_t len = strlen(field);
	char list[256];

	if (!*item || strchr(item, ','))
		return err_set(err, ERR_FATAL, "%s: %s: '%s' is not a list item", where, def->key,
		               item);
	if (def->choices && choice_index(def->choices, item) < 0) {
		choices_list(def->choices, list, sizeof(list));
		return err_set(err, ERR_FATAL, "%s: %s: '%s' is not supported (one of: %s)", where,
		               def->key, item, list);
	}
	if ((size_t)snprintf(field + len, def->size - len, "%s%s", len ? "," : "", item) >=
	    def->size - len)
		return err_set(err, ERR_FATAL, "%s: %s: list longer than %zu bytes", where,
		               def->key, def->size - 1);
	return 0;
}

/* A list: a YAML sequence of scalars, one scalar, or (for defaults) the
 * text "[a, b]". */
static int set_list(const struct key_def *def, char *field, const char *where, yaml_document_t *doc,
                    yaml_node_t *node, const char *value, struct err *err)
{
	char buf[256], *tok, *save = NULL;

	field[0] = '\0';
	if (node && node->type == YAML_SEQUENCE_NODE) {
		yaml_node_item_t *it;

		for (it = node->data.sequence.items.start; it < node->data.sequence.items.top;
		     it++) {
			yaml_node_t *x = yaml_document_get_node(doc, *it);

			if (!x || x->type != YAML_SCALAR_NODE)
				return err_set(err, ERR_FATAL, "%s: %s: expected a list of values",
				               where, def->key);
			if (list_add(def, field, where, (const char *)x->data.scalar.value, err))
				return -1;
		}
		return 0;
	}
	if (node && node->type != YAML_SCALAR_NODE)
		return err_set(err, ERR_FATAL, "%s: %s: expected a list of values", where,
		               def->key);
	if (value[0] != '[')
		return list_add(def, field, where, value, err);
	snprintf(buf, sizeof(buf), "%s", value + 1);
	if (strchr(buf, ']'))
		*strchr(buf, ']') = '\0';
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		if (list_add(def, field, where, tok, err))
			return -1;
	return 0;
}

/* Parse VALUE (text) for DEF into BASE. LINE is 0 for defaults. */
static int set_value(const struct key_def *def, void *base, const char *file, int line,
                     yaml_document_t *doc, yaml_node_t *node, const char *value, struct err *err)
{
	char *field = (char *)base + def->offset;
	char where[CONFIG_PATH_MAX + 32];
	double d;

	if (line > 0)
		snprintf(where, sizeof(where), "%s:%d", file, line);
	else
		snprintf(where, sizeof(where), "%s: default", file);

	if (node && node->type != YAML_SCALAR_NODE && def->type != T_FLOAT3 &&
	    def->type != T_IGNORED && def->type != T_LIST)
		return err_set(err, ERR_FATAL, "%s: %s: expected a single value", where, def->key);

	switch (def->type) {
	case T_STR:
	case T_SECRET:
	case T_PATH:
		if (def->type == T_PATH) {
			if (resolve_path(file, value, field, def->size))
				return err_set(err, ERR_FATAL, "%s: %s: path too long", where,
				               def->key);
		} else if ((size_t)snprintf(field, def->size, "%s", value) >= def->size) {
			return err_set(err, ERR_FATAL, "%s: %s: value longer than %zu bytes", where,
			               def->key, def->size - 1);
		}
		break;
	case T_INT:
	case T_LL: {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(value, &end, 10);
		if (errno || end == value || *end != '\0')
			return err_set(err, ERR_FATAL, "%s: %s: '%s' is not a whole number", where,
			               def->key, value);
		if ((double)v < def->min || (double)v > def->max)
			return err_set(err, ERR_FATAL, "%s: %s: %lld is out of range [%.0f, %.0f]",
			               where, def->key, v, def->min, def->max);
		if (def->type == T_INT)
			*(int *)field = (int)v;
		else
			*(long long *)field = v;
		break;
	}
	case T_DOUBLE_AUTO:
		if (!strcmp(value, "auto")) {
			*(double *)field = NAN;
			break;
		}
		/* fall through */
	case T_DOUBLE:
		if (parse_double(value, &d))
			return err_set(err, ERR_FATAL, "%s: %s: '%s' is not a number", where,
			               def->key, value);
		if (d < def->min || d > def->max)
			return err_set(err, ERR_FATAL, "%s: %s: %g is out of range [%g, %g]", where,
			               def->key, d, def->min, def->max);
		*(double *)field = d;
		break;
	case T_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "True"))
			*(int *)field = 1;
		else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "False"))
			*(int *)field = 0;
		else
			return err_set(err, ERR_FATAL, "%s: %s: '%s' is not true or false", where,
			               def->key, value);
		break;
	case T_ENUM:
	case T_CHOICE: {
		int i = choice_index(def->choices, value);
		char list[256];

		if (i < 0) {
			choices_list(def->choices, list, sizeof(list));
			return err_set(err, ERR_FATAL, "%s: %s: '%s' is not supported (one of: %s)",
			               where, def->key, value, list);
		}
		if (def->type == T_ENUM)
			*(int *)field = i;
		else if (def->size)
			snprintf(field, def->size, "%s", value);
		break;
	}
	case T_FLOAT3: {
		float v[3];
		int n = 0;

		if (node) {
			yaml_node_item_t *it;

			if (node->type != YAML_SEQUENCE_NODE)
				return err_set(err, ERR_FATAL,
				               "%s: %s: expected a list of 3 numbers", where,
				               def->key);
			for (it = node->data.sequence.items.start;
			     it < node->data.sequence.items.top; it++) {
				yaml_node_t *x = yaml_document_get_node(doc, *it);

				if (n == 3 || !x || x->type != YAML_SCALAR_NODE ||
				    parse_double((const char *)x->data.scalar.value, &d))
					return err_set(err, ERR_FATAL,
					               "%s: %s: expected a list of 3 numbers",
					               where, def->key);
				if (d < def->min || d > def->max)
					return err_set(err, ERR_FATAL,
					               "%s: %s: %g is out of range [%g, %g]", where,
					               def->key, d, def->min, def->max);
				v[n++] = (float)d;
			}
		} else if (sscanf(value, "[%f, %f, %f]", &v[0], &v[1], &v[2]) == 3) {
			n = 3;
		}
		if (n != 3)
			return err_set(err, ERR_FATAL, "%s: %s: expected a list of 3 numbers",
			               where, def->key);
		memcpy(field, v, sizeof(v));
		break;
	}
	case T_RESIZE:
		if (check_plain_resize(value))
			return err_set(err, ERR_FATAL,
			               "%s: %s: only a plain Resize to the image size is supported",
			               where, def->key);
		break;
	case T_LIST:
		return set_list(def, field, where, doc, node, value, err);
	case T_IGNORED:
		break;
	case T_PROPS:
		break;
	}
	return 0;
}

static const struct key_def *find_def(const struct key_def *defs, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++) {
		size_t len = strlen(defs[i].key);

		if (!strcmp(defs[i].key, key))
			return &defs[i];
		/* "kafka.*" takes every key below kafka */
		if (defs[i].type == T_PROPS && !strncmp(defs[i].key, key, len - 1) &&
		    key[len - 1] != '\0')
			return &defs[i];
	}
	return NULL;
}

/* True when KEY ("pipeline") is a section: some declared key starts with "KEY.". */
static int is_section(const struct key_def *defs, size_t n, const char *key)
{
	size_t i, len = strlen(key);

	for (i = 0; i < n; i++)
		if (!strncmp(defs[i].key, key, len) && defs[i].key[len] == '.')
			return 1;
	return 0;
}

static int apply_defaults(const struct key_def *defs, size_t n, void *base, const char *file,
                          struct err *err)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (defs[i].def && defs[i].size &&
		    set_value(&defs[i], base, file, 0, NULL, NULL, defs[i].def, err))
			return -1;
	return 0;
}

/* Parse FILE into DOC and flatten its keys into FLAT. On success the caller frees both,
 * with yaml_document_delete() and free(FLAT->v). */
static int read_flat(const char *file, yaml_document_t *doc, struct flat_list *flat,
                     struct err *err)
{
	yaml_parser_t parser;
	yaml_node_t *root;
	struct stat st;
	FILE *fp;
	int fd, loaded = 0, ret = -1;

	memset(flat, 0, sizeof(*flat));
	/* O_NONBLOCK: a FIFO given as the config would block the open until a writer came */
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return err_set(err, ERR_FATAL, "%s: cannot open: %s", file, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(err, ERR_FATAL, "%s: not a regular file", file);
	}
	fp = fdopen(fd, "rb");
	if (!fp) {
		close(fd);
		return err_set(err, ERR_FATAL, "%s: cannot open: %s", file, strerror(errno));
	}
	if (!yaml_parser_initialize(&parser)) {
		fclose(fp);
		return err_set(err, ERR_FATAL, "%s: yaml parser: out of memory", file);
	}
	yaml_parser_set_input_file(&parser, fp);
	if (!yaml_parser_load(&parser, doc)) {
		err_set(err, ERR_FATAL, "%s:%zu: invalid YAML: %s", file,
		        parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
		goto out;
	}
	loaded = 1;
	root = yaml_document_get_root_node(doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		err_set(err, ERR_FATAL, "%s: expected a mapping of sections at the top", file);
		goto out;
	}
	{
		/* a second document ("---") would be silently left unread */
		yaml_document_t next;
		yaml_node_t *next_root;

		if (!yaml_parser_load(&parser, &next)) {
			err_set(err, ERR_FATAL, "%s:%zu: invalid YAML: %s", file,
			        parser.problem_mark.line + 1,
			        parser.problem ? parser.problem : "?");
			goto out;
		}
		next_root = yaml_document_get_root_node(&next);
		if (next_root &&
		    !(next_root->type == YAML_SCALAR_NODE && next_root->data.scalar.length == 0)) {
			err_set(err, ERR_FATAL,
			        "%s:%d: a second YAML document ('---'): put every key in one", file,
			        (int)next.start_mark.line + 1);
			yaml_document_delete(&next);
			goto out;
		}
		yaml_document_delete(&next);
	}
	if (flatten(doc, root, "", flat, file, err))
		goto out;
	ret = 0;
out:
	if (ret) {
		free(flat->v);
		flat->v = NULL;
		if (loaded)
			yaml_document_delete(doc);
	}
	yaml_parser_delete(&parser);
	fclose(fp);
	return ret;
}

/* Load FILE against DEFS into BASE. */
static int load_file(const char *file, const struct key_def *defs, size_t ndefs, void *base,
                     struct err *err)
{
	yaml_document_t doc;
	struct flat_list flat;
	char ignored[1024] = "";
	size_t ignored_len = 0;
	int ret = -1;
	size_t i, j;

	if (read_flat(file, &doc, &flat, err))
		return -1;
	for (i = 0; i < flat.n; i++) {
		const struct flat *f = &flat.v[i];
		const struct key_def *def = find_def(defs, ndefs, f->key);
		const char *value = "";

		for (j = 0; j < i; j++)
			if (!strcmp(flat.v[j].key, f->key)) {
				err_set(err, ERR_FATAL, "%s:%d: %s: given twice (first on line %d)",
				        file, f->line, f->key, flat.v[j].line);
				goto out;
			}
		if (!def) {
			if (is_section(defs, ndefs, f->key))
				err_set(err, ERR_FATAL, "%s:%d: %s: expected a mapping of keys",
				        file, f->line, f->key);
			else
				err_set(err, ERR_FATAL, "%s:%d: %s: unknown key", file, f->line,
				        f->key);
			goto out;
		}
		if (def->type == T_IGNORED) {
			int n = snprintf(ignored + ignored_len, sizeof(ignored) - ignored_len,
			                 "%s%s", ignored_len ? "," : "", f->key);

			if (n > 0 && (size_t)n < sizeof(ignored) - ignored_len)
				ignored_len += (size_t)n;
			continue;
		}
		if (def->type == T_PROPS) {
			char where[CONFIG_PATH_MAX + 32];

			snprintf(where, sizeof(where), "%s:%d", file, f->line);
			if (set_prop(def, base, where, f->key, f->node, err))
				goto out;
			continue;
		}
		if (f->node->type == YAML_SCALAR_NODE)
			value = (const char *)f->node->data.scalar.value;
		if (set_value(def, base, file, f->line, &doc, f->node, value, err))
			goto out;
	}
	for (j = 0; j < ndefs; j++) {
		int found = 0;

		if (!defs[j].required)
			continue;
		for (i = 0; i < flat.n && !found; i++)
			found = !strcmp(flat.v[i].key, defs[j].key);
		if (!found) {
			err_set(err, ERR_FATAL, "%s: %s: required key missing (%s)", file,
			        defs[j].key, defs[j].help);
			goto out;
		}
	}
	if (ignored_len)
		log_warn("config", "keys that do not apply here are ignored", "file=%s keys=%s",
		         file, ignored);
	ret = 0;
out:
	free(flat.v);
	yaml_document_delete(&doc);
	return ret;
}

/* The line KEY ("model.weights") sits on in the YAML file PATH, or 0 when it is not there
 * or the file cannot be read. Parses the file again: only for error messages. */
static int key_line(const char *path, const char *key)
{
	yaml_document_t doc;
	struct flat_list flat;
	struct err ignored;
	int line = 0;
	size_t i;

	if (read_flat(path, &doc, &flat, &ignored))
		return 0;
	for (i = 0; i < flat.n && !line; i++)
		if (!strcmp(flat.v[i].key, key))
			line = flat.v[i].line;
	free(flat.v);
	yaml_document_delete(&doc);
	return line;
}

int config_blame(const struct config *cfg, const char *key, struct err *err)
{
	int line = key_line(cfg->path, key);

	if (line > 0)
		return err_prefix(err, "%s:%d: %s", cfg->path, line, key);
	return err_prefix(err, "%s: %s", cfg->path, key);
}

int config_load_model(struct model_config *mc, const char *path, struct err *err)
{
	memset(mc, 0, sizeof(*mc));
	snprintf(mc->path, sizeof(mc->path), "%s", path);
	if (apply_defaults(model_keys, NKEYS(model_keys), mc, path, err))
		return -1;
	mc->gem_p = 3.0;
	if (load_file(path, model_keys, NKEYS(model_keys), mc, err))
		return -1;
	if (mc->norm == RESIZE_NORM_CUSTOM && mc->std[0] * mc->std[1] * mc->std[2] == 0)
		return err_set(err, ERR_FATAL, "%s: image.image_std: must be non-zero", path);
	if (!mc->train.label_column[0] || strchr(mc->train.label_column, ','))
		return err_set(err, ERR_FATAL, "%s: dataset.label_columns: give exactly one column",
		               path);
	if (config_folds(&mc->train, NULL, NULL) < 0)
		return err_set(err, ERR_FATAL,
		               "%s: dataset.folds: '%s' are not fold numbers "
		               "below %d (1 / validation_size)",
		               path, mc->train.folds, config_fold_count(&mc->train));
	return 0;
}

int config_fold_count(const struct train_config *t)
{
	int k = (int)lround(1.0 / t->validation_size);

	return k < 2 ? 2 : k;
}

int config_folds(const struct train_config *t, int *folds, int *n)
{
	char buf[sizeof(t->folds)], *tok, *save = NULL, *end;
	int count = 0, k = config_fold_count(t);

	snprintf(buf, sizeof(buf), "%s", t->folds);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long f = strtol(tok, &end, 10);

		if (end == tok || *end || f < 0 || f >= k)
			return -1;
		if (folds)
			folds[count] = (int)f;
		count++;
	}
	if (count == 0 || count >= k)
		return -1;
	if (n)
		*n = count;
	return 0;
}

void config_defaults(struct config *cfg)
{
	struct err err;

	memset(cfg, 0, sizeof(*cfg));
	if (apply_defaults(pipeline_keys, NKEYS(pipeline_keys), cfg, "", &err))
		log_error("config", "bad built-in default", "error=\"%s\"", err.msg);
}

int config_load(struct config *cfg, const char *path, struct err *err)
{
	config_defaults(cfg);
	snprintf(cfg->path, sizeof(cfg->path), "%s", path);
	if (apply_defaults(pipeline_keys, NKEYS(pipeline_keys), cfg, path, err))
		return -1;
	if (load_file(path, pipeline_keys, NKEYS(pipeline_keys), cfg, err))
		return -1;

	/* rules that span several keys */
	if (cfg->source == SOURCE_DIR && (!cfg->source_csv[0] || !cfg->images_root[0]))
		return err_set(err, ERR_FATAL,
		               "%s: source.kind dir needs source.csv and "
		               "source.images_root",
		               path);
	if (cfg->source == SOURCE_KAFKA && !cfg->ks.topic[0])
		return err_set(err, ERR_FATAL, "%s: source.kind kafka needs kafka_source.topic",
		               path);
	if (cfg->source == SOURCE_KAFKA && !config_prop(cfg, "bootstrap.servers"))
		return err_set(err, ERR_FATAL,
		               "%s: source.kind kafka needs kafka.bootstrap.servers", path);
	if (cfg->queue_depth < cfg->batch_size)
		return err_set(err, ERR_FATAL,
		               "%s: pipeline.queue_depth (%d) must be at least "
		               "pipeline.batch_size (%d)",
		               path, cfg->queue_depth, cfg->batch_size);
	if (config_load_model(&cfg->model, cfg->model_config, err))
		return config_blame(cfg, "model.config", err);
	return 0;
}

int config_check_weights(const struct config *cfg, struct err *err)
{
	if (access(cfg->model_weights, R_OK)) {
		err_set(err, ERR_FATAL, "cannot read %s: %s", cfg->model_weights, strerror(errno));
		return config_blame(cfg, "model.weights", err);
	}
	return 0;
}

void config_mask_conninfo(const char *conninfo, char *out, size_t cap)
{
	const char *p = conninfo;
	size_t at = 0;

	/* key=value pairs, values possibly quoted; URIs carry user:password@ */
	while (*p && at + 1 < cap) {
		if (!strncasecmp(p, "password", 8)) {
			const char *q = p + 8;

			while (*q == ' ')
				q++;
			if (*q == '=') {
				int n = snprintf(out + at, cap - at, "password=***");

				at += n > 0 ? (size_t)n : 0;
				q++;
				while (*q == ' ')
					q++;
				if (*q == '\'') {
					for (q++; *q && *q != '\''; q++)
						if (*q == '\\' && q[1])
							q++;
					if (*q)
						q++;
				} else {
					while (*q && *q != ' ')
						q++;
				}
				p = q;
				continue;
			}
		}
		if (!strncmp(p, "://", 3)) {
			const char *at_sign = strchr(p + 3, '@');
			const char *colon = strchr(p + 3, ':');

			if (at_sign && colon && colon < at_sign) {
				int n = snprintf(out + at, cap - at, "://%.*s:***@",
				                 (int)(colon - (p + 3)), p + 3);

				at += n > 0 ? (size_t)n : 0;
				p = at_sign + 1;
				continue;
			}
		}
		out[at++] = *p++;
	}
	out[at < cap ? at : cap - 1] = '\0';
}

const char *config_prop(const struct config *cfg, const char *key)
{
	int i;

	for (i = 0; i < cfg->kafka.n; i++)
		if (!strcmp(cfg->kafka.v[i].key, key))
			return cfg->kafka.v[i].value;
	return NULL;
}

const char *config_source_name(enum source_kind k)
{
	return source_kinds[k];
}

const char *config_linkage_name(enum linkage l)
{
	return linkages[l];
}

static void print_value(const struct key_def *def, const void *base, FILE *out)
{
	const char *field = (const char *)base + def->offset;

	switch (def->type) {
	case T_SECRET: {
		char masked[1024];

		config_mask_conninfo(field, masked, sizeof(masked));
		fprintf(out, "\"%s\"", masked);
		break;
	}
	case T_STR:
	case T_PATH:
		fprintf(out, "\"%s\"", field);
		break;
	case T_CHOICE:
		fprintf(out, "%s", def->size ? field : def->def);
		break;
	case T_INT:
		fprintf(out, "%d", *(const int *)field);
		break;
	case T_LL:
		fprintf(out, "%lld", *(const long long *)field);
		break;
	case T_DOUBLE:
	case T_DOUBLE_AUTO:
		if (isnan(*(const double *)field))
			fprintf(out, "auto");
		else
			fprintf(out, "%g", *(const double *)field);
		break;
	case T_BOOL:
		fprintf(out, "%s", *(const int *)field ? "true" : "false");
		break;
	case T_ENUM:
		fprintf(out, "%s", def->choices[*(const int *)field]);
		break;
	case T_FLOAT3: {
		const float *v = (const float *)field;

		fprintf(out, "[%g, %g, %g]", v[0], v[1], v[2]);
		break;
	}
	case T_LIST: {
		const char *p;

		fputc('[', out);
		for (p = field; *p; p++) {
			if (*p == ',')
				fputs(", ", out);
			else
				fputc(*p, out);
		}
		fputc(']', out);
		break;
	}
	default:
		break;
	}
}

static void print_props(const struct key_def *def, const void *base, FILE *out, const char *indent)
{
	const struct config_props *p =
	    (const struct config_props *)((const char *)base + def->offset);
	int i;

	fprintf(out, "%s%.*s:%s\n", indent, (int)(strlen(def->key) - 2), def->key,
	        p->n ? "" : " {}");
	for (i = 0; i < p->n; i++)
		fprintf(out, "%s  %s: \"%s\"\n", indent, p->v[i].key,
		        config_key_is_secret(p->v[i].key) ? "***" : p->v[i].value);
}

static void print_table(const struct key_def *defs, size_t n, const void *base, FILE *out,
                        const char *indent)
{
	char section[64] = "";
	size_t i;

	for (i = 0; i < n; i++) {
		const char *dot = strchr(defs[i].key, '.');
		size_t len = dot ? (size_t)(dot - defs[i].key) : 0;

		if (defs[i].type == T_IGNORED || defs[i].type == T_RESIZE || !dot)
			continue;
		if (defs[i].type == T_PROPS) {
			print_props(&defs[i], base, out, indent);
			section[0] = '\0';
			continue;
		}
		if (strlen(section) != len || strncmp(section, defs[i].key, len)) {
			snprintf(section, sizeof(section), "%.*s", (int)len, defs[i].key);
			fprintf(out, "%s%s:\n", indent, section);
		}
		fprintf(out, "%s  %s: ", indent, dot + 1);
		print_value(&defs[i], base, out);
		fprintf(out, "\n");
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	fprintf(out, "# effective configuration of %s\n", cfg->path);
	print_table(pipeline_keys, NKEYS(pipeline_keys), cfg, out, "");
	fprintf(out, "# model configuration from %s\n", cfg->model.path);
	fprintf(out, "model_config:\n");
	print_table(model_keys, NKEYS(model_keys), &cfg->model, out, "  ");
}
