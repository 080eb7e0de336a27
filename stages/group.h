/* group.h - group the photos of one ad by cosine similarity.
 *
 * Agglomerative clustering over cosine similarity: two clusters merge while
 * their linkage similarity (average, single or complete over all cross
 * pairs) is at least the threshold, most similar pair first. The input is
 * first put in image-id order and ties are broken by that order, so the
 * result does not depend on the order photos arrive in. */
#ifndef STAGES_GROUP_H
#define STAGES_GROUP_H

#include <stddef.h>

#include "config.h"
#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limit on photos in one ad: clustering is O(n^2) memory and O(n^3) time. */
#define GROUP_MAX_PHOTOS 2048

/* Cosine similarity of two L2-normalised embeddings of DIM floats: their dot product,
 * summed in double in index order (the same value wherever it is computed). */
double group_cosine(const float *a, const float *b, int dim);

/* Compare two image ids: numeric order when both are digit strings,
 * otherwise byte order. */
int group_id_cmp(const char *a, const char *b);

/* Cluster N embeddings (EMB, N x DIM, each L2-normalised) of one ad.
 * LABELS (N ints) receives for each photo the index (0..N-1, in the caller's
 * order) of the photo with the smallest image id in its group, so equal
 * labels mean one group. Returns the number of groups, or -1. */
int group_cluster(const float *emb, size_t n, int dim, const char *const *image_ids,
                  double threshold, enum linkage linkage, int *labels, struct err *err);

/* Write the group id for an ad and the smallest image id of the group into
 * OUT: "AD_ID/IMAGE_ID". */
void group_id_format(const char *ad_id, const char *first_image_id, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
