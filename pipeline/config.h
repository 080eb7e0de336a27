/* config.h - the pipeline's configuration: a typed schema filled from YAML.
 *
 * Two files: the pipeline config (configs/pipeline.yaml) and the model config
 * it names, in the Hydrogen Torch format (architecture/image/training/...).
 * Each key is declared once in a table with its type, default, range and
 * description (config.c); unknown keys and bad values are errors naming
 * file:line and the key. Relative paths are resolved against the directory
 * of the file that holds them. */
#ifndef PIPELINE_CONFIG_H
#define PIPELINE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "resize.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CONFIG_PATH_MAX 4096

enum source_kind { SOURCE_DIR = 0, SOURCE_KAFKA, SOURCE_DB };
enum linkage { LINKAGE_AVERAGE = 0, LINKAGE_SINGLE, LINKAGE_COMPLETE };
enum pool_kind { POOL_AVERAGE = 0, POOL_GEM };

/* Training settings (the model config's training/augmentation/dataset keys). */
struct train_config {
	int epochs;
	int batch_size;
	int grad_accumulation;
	double learning_rate;
	double differential_learning_rate;
	double weight_decay;
	double warmup_epochs;
	double gradient_clip;
	double arcface_margin;
	double arcface_scale;
	int drop_last_batch;
	int evaluation_epochs;
	char schedule[16];            /* "Cosine", "Linear", "Constant" */
	char augmentations[16];       /* "Soft", "None" */
	char diff_lr_layers[64];      /* comma list of "backbone", "head": layers that
	                               * learn at differential_learning_rate */
	char validation_strategy[16]; /* "automatic": validation_size of the labels;
	                               * "kfold": the folds listed, of round(1/validation_size) */
	char folds[64];               /* comma list of fold numbers (kfold) */
	double validation_size;
	double data_sample;    /* share of the labels used, (0, 1] */
	char image_column[64]; /* columns of the labels CSV */
	char label_column[64];
	int seed; /* -1: random */
	int mixed_precision;
};

/* Client properties passed key by key to librdkafka (the `kafka:` map). */
#define CONFIG_KAFKA_PROPS_MAX 64

struct config_prop {
	char key[128];
	char value[1024];
};

struct config_props {
	struct config_prop v[CONFIG_KAFKA_PROPS_MAX];
	int n;
};

/* The pipeline's own settings for reading events from Kafka. */
struct kafka_source_config {
	char topic[250];
	char group_id[256];
	char dead_letter_topic[250]; /* "" = none */
	int poll_timeout_ms;
	int wait_timeout_s;   /* for an assignment, or the next message */
	long long max_events; /* per run; 0 = no limit */
	long long max_event_bytes;
	int clock_skew_s; /* backfills: margin around the window */
	int commit_timeout_s;
};

struct fetch_config {
	int timeout_s; /* whole transfer */
	int connect_timeout_s;
	int max_redirects;
	long long low_speed_bytes; /* abort below this many bytes/s ... */
	int low_speed_s;           /* ... for this long */
	int allow_private;         /* may reach loopback/private addresses */
};

struct model_config {
	char path[CONFIG_PATH_MAX];
	char backbone[64];
	int embedding_size;
	enum pool_kind pool;
	double gem_p;
	double dropout;
	int pretrained;
	int image_height, image_width;
	enum resize_norm norm;
	float mean[3], std[3];
	int top_k;
	struct train_config train;
};

struct config {
	char path[CONFIG_PATH_MAX];

	char db_conninfo[1024];
	char sql_dir[CONFIG_PATH_MAX];
	int db_retries;

	enum source_kind source;
	char source_csv[CONFIG_PATH_MAX];
	char images_root[CONFIG_PATH_MAX];

	long long max_bytes;
	long long max_pixels;

	struct config_props kafka;
	struct kafka_source_config ks;
	struct fetch_config fetch;

	int batch_size;
	int queue_depth;
	int resize_threads;
	int torch_threads;
	int cpu_turns; /* resize pauses during CPU forwards */

	int lock_wait_s;                   /* wait for another run of the same scope */
	char metrics_dir[CONFIG_PATH_MAX]; /* textfile collector folder; "" = off */
	int metrics_interval_s;
	int progress_interval_s; /* progress lines when not on a terminal; 0 = off */
	int log_prefix;          /* enum log_prefix */
	int report_thumb_px;
	int report_max_photos;

	char model_config[CONFIG_PATH_MAX];
	char model_weights[CONFIG_PATH_MAX];
	char device[32];
	int channels_last;
	int precision; /* 0 fp32, 1 fp16 (enum model_precision) */

	/* retraining (pipeline-run --stage retrain) */
	char retrain_labels_csv[CONFIG_PATH_MAX]; /* image,label CSV; or: */
	char retrain_labels_query[2048];          /* SQL returning image, label */
	char retrain_images_root[CONFIG_PATH_MAX];
	char retrain_ads_csv[CONFIG_PATH_MAX];      /* validation ads; "": synthetic */
	char retrain_model_config[CONFIG_PATH_MAX]; /* "": model.config */
	char retrain_init_weights[CONFIG_PATH_MAX]; /* "": model.weights */
	char retrain_model_dir[CONFIG_PATH_MAX];
	char retrain_checkpoint_dir[CONFIG_PATH_MAX]; /* "": model_dir/checkpoints */
	int retrain_cache_mb;
	int retrain_max_photos;
	int retrain_promote; /* 1: gate; 0: never promote */
	int retrain_imprint; /* ArcFace classes start at their photos' mean embedding */

	double threshold;         /* NaN: take it from the active model's record */
	double default_threshold; /* when neither config nor model has one */
	enum linkage linkage;

	struct model_config model;
};

/* Load PATH and the model config it names into CFG (defaults first).
 * Warnings (keys that do not apply) are logged; errors fill ERR with
 * "file:line: key: reason" and return -1. */
int config_load(struct config *cfg, const char *path, struct err *err);

/* model.weights is a readable file, or ERR says where it was set. Apart from config_load():
 * only the commands that load the model need it, so that status, migrate and the others
 * work before the weights are in place (or after they are lost). */
int config_check_weights(const struct config *cfg, struct err *err);

/* Prefix ERR's message with where KEY was set: "FILE:LINE: KEY: " (or "FILE: KEY: " for a
 * default), for errors found after loading, such as weights that do not fit. Returns -1. */
int config_blame(const struct config *cfg, const char *key, struct err *err);

/* Only the model config (Hydrogen Torch YAML) into MC. */
int config_load_model(struct model_config *mc, const char *path, struct err *err);

/* Folds of a kfold split: round(1 / validation_size), at least 2. */
int config_fold_count(const struct train_config *t);

/* The validation fold numbers of T->folds into FOLDS (room for 64; may be
 * NULL) and their count into *N (may be NULL). -1 when one is not a number
 * below config_fold_count() or every fold would be held out. */
int config_folds(const struct train_config *t, int *folds, int *n);

/* Set defaults in CFG without reading a file. */
void config_defaults(struct config *cfg);

/* Print the effective configuration as YAML; secrets (password=...) masked. */
void config_print(const struct config *cfg, FILE *out);

/* The value of client property KEY of the kafka map, or NULL. */
const char *config_prop(const struct config *cfg, const char *key);

/* 1 when a client property named KEY holds a credential (never printed). */
int config_key_is_secret(const char *key);

/* Copy CONNINFO into OUT with any password value replaced by "***". */
void config_mask_conninfo(const char *conninfo, char *out, size_t cap);

const char *config_linkage_name(enum linkage l);
const char *config_source_name(enum source_kind k);

#ifdef __cplusplus
}
#endif

#endif
