/* dataset.h - labelled photos for retraining: loading, decoding, the split
 * by label, and the validation ads the grouping threshold is tuned on.
 *
 * Photos are read from a CSV (image and label columns) or added one by one
 * (rows of a SQL query), then decoded once with the resize stage to find
 * the unusable ones; decoded tensors are kept in memory up to a byte cap and
 * the rest are decoded again on every use. Not thread-safe, except that
 * dataset_tensor() may run on several threads once dataset_decode() is done.
 * Every bad row (empty image or label, missing file, unreadable image) is
 * kept in the bad list with its line and reason and is never used. */
#ifndef STAGES_DATASET_H
#define STAGES_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "fetch.h"
#include "resize.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ds_photo {
	char *image; /* path under the images root, as labelled */
	char *label;
	long line;     /* CSV line or query row */
	int label_id;  /* index into dataset.labels, set by dataset_decode() */
	float *cached; /* decoded tensor, or NULL when over the cache cap */
};

struct ds_bad {
	long line;
	char *image;
	char reason[160];
};

struct dataset {
	char source[256];        /* "labels.csv" or "labels query", for messages */
	struct ds_photo *photos; /* usable photos, in source order */
	size_t n, cap;
	struct ds_bad *bad;
	size_t nbad, bad_cap;
	char **labels; /* distinct labels in byte order */
	size_t nlabels;
	struct resize_opts ropts;
	struct fetch fetch;
	char root[4096]; /* resolved images root */
	size_t floats;   /* per tensor: 3 x H x W */
	size_t cached_bytes;
	long rows; /* rows read, bad ones included */
};

/* Start an empty dataset named SOURCE. Free with dataset_free(). */
void dataset_init(struct dataset *ds, const char *source);

/* Add one labelled photo; an empty IMAGE or LABEL becomes a bad row. Only
 * running out of memory fails. */
int dataset_add(struct dataset *ds, const char *image, const char *label, long line,
                struct err *err);

/* Read CSV with the columns IMAGE_COL and LABEL_COL (others ignored), at
 * most MAX_ROWS rows (more is ERR_FATAL). Malformed lines become bad rows. */
int dataset_load_csv(struct dataset *ds, const char *csv, const char *image_col,
                     const char *label_col, long max_rows, struct err *err);

/* Decode every photo under ROOT with RO (THREADS at once), keep tensors while
 * CACHE_BYTES allows, move unusable photos to the bad list, and number the
 * labels of the usable ones. ERR_FATAL when ROOT is unusable. */
int dataset_decode(struct dataset *ds, const char *root, const struct resize_opts *ro,
                   size_t cache_bytes, int threads, struct err *err);

/* The tensor of photo I (ds->floats floats) into OUT: the cached copy, or a
 * new decode. A photo that decoded once and fails now is ERR_INPUT. */
int dataset_tensor(const struct dataset *ds, size_t i, float *out, struct err *err);

/* Decode photo I with other options (another model's size) into OUT, which
 * holds 3 x RO->height x RO->width floats. */
int dataset_tensor_as(const struct dataset *ds, size_t i, const struct resize_opts *ro, float *out,
                      struct err *err);

/* The split by label. STATE receives for each label (ds->nlabels) 0 when it
 * is a training label, 1 for validation, -1 when data_sample left it out.
 * Deterministic in SEED; one label never sits on both sides. ERR_FATAL when
 * either side would be empty, or when no validation label has two photos
 * (retrieval needs a second photo of the label). */
int dataset_split(const struct dataset *ds, const struct train_config *tc, uint64_t seed,
                  signed char *state, struct err *err);

/* Validation ads: AD (ds->n ints) receives for each validation photo the
 * number of its ad, -1 for photos in no ad; *NADS the number of ads. With
 * ADS_CSV (columns ad_id, image), an ad holds its photos whose label is a
 * validation label; otherwise the validation labels, shuffled with SEED,
 * are dealt into ads of 1 to 3 labels each with all their photos. */
int dataset_val_ads(const struct dataset *ds, const signed char *state, const char *ads_csv,
                    uint64_t seed, int *ad, int *nads, struct err *err);

void dataset_free(struct dataset *ds);

#ifdef __cplusplus
}
#endif

#endif
