/* group.c - agglomerative clustering of one ad's photos. */
#include "group.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

double group_cosine(const float *a, const float *b, int dim)
{
	double dot = 0;
	int k;

	for (k = 0; k < dim; k++)
		dot += (double)a[k] * (double)b[k];
	return dot;
}

int group_id_cmp(const char *a, const char *b)
{
	if (all_digits(a) && all_digits(b)) {
		size_t la, lb;

		while (*a == '0' && a[1])
			a++;
		while (*b == '0' && b[1])
			b++;
		la = strlen(a);
		lb = strlen(b);
		if (la != lb)
			return la < lb ? -1 : 1;
	}
	return strcmp(a, b);
}

void group_id_format(const char *ad_id, const char *first_image_id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", ad_id, first_image_id);
}

static const char *const *sort_ids;

static int cmp_index(const void *pa, const void *pb)
{
	int a = *(const int *)pa, b = *(const int *)pb;
	int c = group_id_cmp(sort_ids[a], sort_ids[b]);

	return c ? c : (a > b) - (a < b);
}

int group_cluster(const float *emb, size_t n, int dim, const char *const *image_ids,
                  double threshold, enum linkage linkage, int *labels, struct err *err)
{
	int *order = NULL;   /* position -> caller index, in image-id order */
	int *cluster = NULL; /* position -> cluster representative position */
	int *size = NULL;    /* cluster size, by representative */
	double *sim = NULL;  /* linkage similarity between representatives */
	size_t i, j;
	int groups = -1;

	if (n == 0)
		return 0;
	if (n > GROUP_MAX_PHOTOS)
		return err_set(err, ERR_INPUT,
		               "ad has %zu photos, more than the %d grouped at most", n,
		               GROUP_MAX_PHOTOS);
	order = malloc(n * sizeof(*order));
	cluster = malloc(n * sizeof(*cluster));
	size = malloc(n * sizeof(*size));
	sim = malloc(n * n * sizeof(*sim));
	if (!order || !cluster || !size || !sim) {
		err_set(err, ERR_FATAL, "out of memory grouping %zu photos", n);
		goto out;
	}

	/* a static comparator context is fine: grouping runs on one thread */
	for (i = 0; i < n; i++)
		order[i] = (int)i;
	sort_ids = image_ids;
	qsort(order, n, sizeof(*order), cmp_index);

	for (i = 0; i < n; i++) {
		const float *a = emb + (size_t)order[i] * (size_t)dim;

		cluster[i] = (int)i;
		size[i] = 1;
		sim[i * n + i] = 1.0;
		for (j = i + 1; j < n; j++) {
			const float *b = emb + (size_t)order[j] * (size_t)dim;

			sim[i * n + j] = sim[j * n + i] = group_cosine(a, b, dim);
		}
	}

	/* Merge the most similar pair of live clusters while it reaches the
	 * threshold. Ties go to the pair with the smallest positions, which are
	 * image-id order, so the result is independent of the input order. */
	for (;;) {
		double best = -INFINITY;
		size_t bi = 0, bj = 0;

		for (i = 0; i < n; i++) {
			if (cluster[i] != (int)i)
				continue;
			for (j = i + 1; j < n; j++) {
				if (cluster[j] != (int)j)
					continue;
				if (sim[i * n + j] > best) {
					best = sim[i * n + j];
					bi = i;
					bj = j;
				}
			}
		}
		if (best == -INFINITY || best < threshold)
			break;

		/* fold bj into bi; update linkage similarity to every other cluster */
		for (i = 0; i < n; i++) {
			double a, b, v;

			if (cluster[i] != (int)i || i == bi || i == bj)
				continue;
			a = sim[bi * n + i];
			b = sim[bj * n + i];
			if (linkage == LINKAGE_SINGLE)
				v = a > b ? a : b;
			else if (linkage == LINKAGE_COMPLETE)
				v = a < b ? a : b;
			else
				v = (a * size[bi] + b * size[bj]) / (size[bi] + size[bj]);
			sim[bi * n + i] = sim[i * n + bi] = v;
		}
		size[bi] += size[bj];
		for (i = 0; i < n; i++)
			if (cluster[i] == (int)bj)
				cluster[i] = (int)bi;
	}

	/* the representative is the smallest position, i.e. the smallest id */
	groups = 0;
	for (i = 0; i < n; i++) {
		if (cluster[i] == (int)i)
			groups++;
		labels[order[i]] = order[cluster[i]];
	}
out:
	free(order);
	free(cluster);
	free(size);
	free(sim);
	return groups;
}
