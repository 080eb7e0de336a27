/* evaluate.c - pairwise grouping scores and retrieval mAP@k. */
#include "evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "group.h"

static int cmp_photo(const void *pa, const void *pb)
{
	const struct eval_photo *a = pa, *b = pb;
	int c = strcmp(a->ad_id, b->ad_id);

	return c ? c : group_id_cmp(a->image_id, b->image_id);
}

static int same_pred(const struct eval_photo *a, const struct eval_photo *b)
{
	return a->pred && b->pred && !strcmp(a->pred, b->pred);
}

int eval_grouping(struct eval_photo *p, size_t n, struct eval_grouping *out, struct err *err)
{
	size_t start = 0, i, j;

	memset(out, 0, sizeof(*out));
	qsort(p, n, sizeof(*p), cmp_photo);
	while (start < n) {
		size_t end = start;
		int exact = 1;

		while (end < n && !strcmp(p[end].ad_id, p[start].ad_id))
			end++;
		for (i = start; i < end; i++) {
			if (!p[i].pred)
				out->photos_ungrouped++;
			for (j = i + 1; j < end; j++) {
				int t = !strcmp(p[i].truth, p[j].truth);
				int g = same_pred(&p[i], &p[j]);

				out->tp += t && g;
				out->fp += !t && g;
				out->fn += t && !g;
				out->tn += !t && !g;
				if (t != g)
					exact = 0;
			}
		}
		out->ads++;
		out->ads_exact += exact;
		start = end;
	}
	out->photos = (long)n;
	out->precision = out->tp + out->fp ? (double)out->tp / (double)(out->tp + out->fp) : 1.0;
	out->recall = out->tp + out->fn ? (double)out->tp / (double)(out->tp + out->fn) : 1.0;
	out->f1 = out->precision + out->recall > 0
	              ? 2 * out->precision * out->recall / (out->precision + out->recall)
	              : 0.0;
	out->exact_share = out->ads ? (double)out->ads_exact / (double)out->ads : 0.0;
	(void)err;
	return 0;
}

struct ranked {
	double sim;
	size_t idx;
};

static int cmp_ranked(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;

	if (a->sim != b->sim)
		return a->sim < b->sim ? 1 : -1;
	return (a->idx > b->idx) - (a->idx < b->idx);
}

int eval_map_at_k(const float *emb, size_t n, int dim, const int *labels, int k, double *map,
                  size_t *queries, struct err *err)
{
	struct ranked *row = NULL;
	double total = 0;
	size_t counted = 0, q, j;

	*map = 0;
	if (queries)
		*queries = 0;
	if (n < 2 || k < 1)
		return 0;
	row = malloc(n * sizeof(*row));
	if (!row)
		return err_set(err, ERR_FATAL, "out of memory ranking %zu photos", n);
	for (q = 0; q < n; q++) {
		size_t m = 0, relevant = 0, hits = 0, r, limit;
		double ap = 0;

		for (j = 0; j < n; j++) {
			double dot = 0;
			int d;

			if (j == q)
				continue;
			for (d = 0; d < dim; d++)
				dot += (double)emb[q * (size_t)dim + (size_t)d] *
				       (double)emb[j * (size_t)dim + (size_t)d];
			row[m].sim = dot;
			row[m].idx = j;
			relevant += labels[j] == labels[q];
			m++;
		}
		if (relevant == 0)
			continue;
		qsort(row, m, sizeof(*row), cmp_ranked);
		limit = m < (size_t)k ? m : (size_t)k;
		for (r = 0; r < limit; r++) {
			if (labels[row[r].idx] == labels[q]) {
				hits++;
				ap += (double)hits / (double)(r + 1);
			}
		}
		ap /= (double)(relevant < (size_t)k ? relevant : (size_t)k);
		total += ap;
		counted++;
	}
	free(row);
	*map = counted ? total / (double)counted : 0;
	if (queries)
		*queries = counted;
	return 0;
}
