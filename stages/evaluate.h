/* evaluate.h - how good the grouping and the embeddings are.
 *
 * Grouping is scored on pairs of photos inside the same ad: a pair is
 * positive in the truth when both photos show the same item, and predicted
 * positive when both sit in the same group. Precision, recall and F1 are
 * micro-averaged over all such pairs; an ad is "exact" when its predicted
 * partition equals the true one.
 *
 * Retrieval is scored as mAP@k over a labelled set: each photo queries all
 * the others ranked by cosine similarity; with R the number of other photos
 * sharing its label, AP@k = (1 / min(R, k)) * sum over ranks r <= k of
 * precision@r * rel(r); queries with R = 0 are left out; mAP@k is the mean. */
#ifndef STAGES_EVALUATE_H
#define STAGES_EVALUATE_H

#include <stddef.h>

#include "config.h"
#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

struct eval_photo {
	const char *image_id;
	const char *ad_id;
	const char *truth; /* true item of the photo */
	const char *pred;  /* predicted group; NULL: not grouped (its own group) */
};

struct eval_grouping {
	long tp, fp, fn, tn;
	double precision, recall, f1;
	long ads, ads_exact;
	double exact_share;
	long photos, photos_ungrouped;
};

/* Score N photos (reordered in place by ad). */
int eval_grouping(struct eval_photo *p, size_t n, struct eval_grouping *out, struct err *err);

/* mAP@K of N L2-normalised embeddings (N x DIM) with integer LABELS.
 * *QUERIES (may be NULL) receives the number of queries that counted. */
int eval_map_at_k(const float *emb, size_t n, int dim, const int *labels, int k, double *map,
                  size_t *queries, struct err *err);

/* `pipeline-run evaluate`: score the active model's stored groups against TRUTH_CSV
 * (image_id,ad_id,item) and, when LABELS_CSV (image,label) is given, its stored embeddings
 * by mAP@top_k (a stored photo is labelled when its url ends in "/IMAGE"). Either CSV may be
 * NULL. Prints one line per score to stdout. Returns an exit code (RUN_OK, RUN_FAILED). */
int eval_stored(const struct config *cfg, const char *truth_csv, const char *labels_csv);

#ifdef __cplusplus
}
#endif

#endif
