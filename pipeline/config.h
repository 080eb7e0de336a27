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

enum source_kind { SOURCE_DIR = 0, SOURCE_KAFKA };
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
	char schedule[16];		/* "Cosine", "Constant" */
	char augmentations[16];		/* "Soft", "None" */
	double validation_size;
	int seed;			/* -1: random */
	int mixed_precision;
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

	enum source_kind source;
	char source_csv[CONFIG_PATH_MAX];
	char images_root[CONFIG_PATH_MAX];

	long long max_bytes;
	long long max_pixels;

	int batch_size;
	int queue_depth;
	int resize_threads;
	int torch_threads;
	int cpu_turns;			/* resize pauses during CPU forwards */

	int lock_wait_s;		/* wait for another run of the same scope */
	char metrics_dir[CONFIG_PATH_MAX]; /* textfile collector folder; "" = off */
	int metrics_interval_s;
	int progress_interval_s;	/* progress lines when not on a terminal; 0 = off */
	int log_prefix;			/* enum log_prefix */
	int report_thumb_px;
	int report_max_photos;

	char model_config[CONFIG_PATH_MAX];
	char model_weights[CONFIG_PATH_MAX];
	char device[32];
	int channels_last;
	int precision;			/* 0 fp32, 1 fp16 (enum model_precision) */

	double threshold;		/* NaN: take it from the active model's record */
	double default_threshold;	/* when neither config nor model has one */
	enum linkage linkage;

	struct model_config model;
};

/* Load PATH and the model config it names into CFG (defaults first).
 * Warnings (keys that do not apply) are logged; errors fill ERR with
 * "file:line: key: reason" and return -1. */
int config_load(struct config *cfg, const char *path, struct err *err);

/* Only the model config (Hydrogen Torch YAML) into MC. */
int config_load_model(struct model_config *mc, const char *path, struct err *err);

/* Set defaults in CFG without reading a file. */
void config_defaults(struct config *cfg);

/* Print the effective configuration as YAML; secrets (password=...) masked. */
void config_print(const struct config *cfg, FILE *out);

/* Copy CONNINFO into OUT with any password value replaced by "***". */
void config_mask_conninfo(const char *conninfo, char *out, size_t cap);

const char *config_linkage_name(enum linkage l);

#ifdef __cplusplus
}
#endif

#endif
