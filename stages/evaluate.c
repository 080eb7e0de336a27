/* evaluate.c - pairwise grouping scores and retrieval mAP@k, and the evaluate command that
 * scores what the database holds. */
#include "evaluate.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "group.h"
#include "log.h"
#include "run.h"
#include "store.h"

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
			if (j == q)
				continue;
			row[m].sim =
			    group_cosine(emb + q * (size_t)dim, emb + j * (size_t)dim, dim);
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

/* ---- the evaluate command ---- */

/* A CSV loaded whole: the rows' fields point into one buffer per line. */
struct table {
	char **lines;
	char ***fields;
	size_t n;
	int col[4];
};

static void table_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->lines[i]);
		free(t->fields[i]);
	}
	free(t->lines);
	free(t->fields);
	memset(t, 0, sizeof(*t));
}

/* Room for twice as many rows; the table stays whole on failure. */
static int table_grow(struct table *t, size_t *cap)
{
	size_t want = *cap ? *cap * 2 : 256;
	char **lines = realloc(t->lines, want * sizeof(*lines));
	char ***fields;

	if (!lines)
		return -1;
	t->lines = lines;
	fields = realloc(t->fields, want * sizeof(*fields));
	if (!fields)
		return -1;
	t->fields = fields;
	*cap = want;
	return 0;
}

/* Load PATH requiring the NCOL columns named in COLS. */
static int table_load(const char *path, const char *const *cols, int ncol, struct table *t,
                      struct err *err)
{
	struct csv_file c;
	size_t cap = 0, row;
	int ret = -1, n, k, r;

	memset(t, 0, sizeof(*t));
	if (csv_open(&c, path, cols, ncol, t->col, err))
		goto out;
	while ((r = csv_next(&c, err)) > 0) {
		if (r == 2 || !c.line[0])
			continue;
		if (t->n == cap && table_grow(t, &cap)) {
			err_set(err, ERR_FATAL, "out of memory");
			goto out;
		}
		row = t->n++;
		t->lines[row] = strdup(c.line);
		t->fields[row] = malloc(CSV_FIELDS_MAX * sizeof(char *));
		if (!t->lines[row] || !t->fields[row]) {
			err_set(err, ERR_FATAL, "out of memory");
			goto out;
		}
		n = csv_split(t->lines[row], t->fields[row], CSV_FIELDS_MAX);
		for (k = 0; k < ncol && n >= 0; k++)
			if (t->col[k] >= n)
				n = -1;
		if (n < 0) {
			err_set(err, ERR_FATAL, "%s:%ld: malformed line", path, c.lineno);
			goto out;
		}
	}
	ret = r < 0 ? -1 : 0;
out:
	csv_close(&c);
	if (ret)
		table_free(t);
	return ret;
}

#define CELL(t, row, c) ((t)->fields[row][(t)->col[c]])

static int eval_groups(struct store *s, int64_t model_id, const char *truth_csv, struct err *err)
{
	static const char *const cols[] = {"image_id", "ad_id", "item"};
	struct store_group_set gs = {0};
	struct eval_photo *p = NULL;
	struct eval_grouping g;
	GHashTable *pred = NULL;
	struct table t;
	size_t i;
	int ret = -1;

	if (table_load(truth_csv, cols, 3, &t, err))
		return -1;
	if (store_fetch_groups(s, model_id, &gs, err))
		goto out;
	p = calloc(t.n ? t.n : 1, sizeof(*p));
	if (!p) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	pred = g_hash_table_new(g_str_hash, g_str_equal);
	for (i = 0; i < gs.n; i++)
		g_hash_table_insert(pred, (gpointer)gs.rows[i].image_id,
		                    (gpointer)gs.rows[i].group_id);
	for (i = 0; i < t.n; i++) {
		p[i].image_id = CELL(&t, i, 0);
		p[i].ad_id = CELL(&t, i, 1);
		p[i].truth = CELL(&t, i, 2);
		p[i].pred = g_hash_table_lookup(pred, p[i].image_id);
	}
	eval_grouping(p, t.n, &g, err);
	printf("grouping: pairs_precision=%.4f pairs_recall=%.4f pairs_f1=%.4f "
	       "ads_exact=%ld/%ld (%.3f) photos=%ld ungrouped=%ld\n",
	       g.precision, g.recall, g.f1, g.ads_exact, g.ads, g.exact_share, g.photos,
	       g.photos_ungrouped);
	ret = 0;
out:
	if (pred)
		g_hash_table_destroy(pred);
	free(p);
	store_groups_free(&gs);
	table_free(&t);
	return ret;
}

static int eval_retrieval(struct store *s, int64_t model_id, const char *labels_csv, int k,
                          struct err *err)
{
	static const char *const cols[] = {"image", "label"};
	struct store_emb_set es = {0};
	GHashTable *by_image = NULL, *label_ids = NULL;
	struct table t;
	int *labels = NULL;
	float *emb = NULL;
	size_t i, j, n = 0, queries = 0;
	double map = 0;
	int ret = -1;

	if (table_load(labels_csv, cols, 2, &t, err))
		return -1;
	if (store_all_embeddings(s, model_id, &es, err))
		goto out;
	labels = malloc((es.n ? es.n : 1) * sizeof(*labels));
	emb = malloc((es.n ? es.n : 1) * (size_t)(es.dim ? es.dim : 1) * sizeof(*emb));
	if (!labels || !emb) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	/* a stored photo is labelled when its url ends with "/<image>"; labels
	 * become small integers by first appearance */
	by_image = g_hash_table_new(g_str_hash, g_str_equal);
	label_ids = g_hash_table_new(g_str_hash, g_str_equal);
	for (j = 0; j < t.n; j++) {
		const char *label = CELL(&t, j, 1);
		gpointer id;

		if (!g_hash_table_lookup_extended(label_ids, label, NULL, &id)) {
			id = GINT_TO_POINTER(g_hash_table_size(label_ids));
			g_hash_table_insert(label_ids, (gpointer)label, id);
		}
		g_hash_table_insert(by_image, (gpointer)CELL(&t, j, 0), id);
	}
	for (i = 0; i < es.n; i++) {
		const char *path = es.urls[i];
		gpointer id = NULL;
		int found = 0;

		/* try every suffix after a '/' */
		for (const char *q = strchr(path, '/'); q && !found; q = strchr(q + 1, '/'))
			found = g_hash_table_lookup_extended(by_image, q + 1, NULL, &id);
		if (!found)
			continue;
		labels[n] = GPOINTER_TO_INT(id);
		memcpy(emb + n * (size_t)es.dim, es.emb + i * (size_t)es.dim,
		       (size_t)es.dim * sizeof(float));
		n++;
	}
	if (eval_map_at_k(emb, n, es.dim, labels, k, &map, &queries, err))
		goto out;
	printf("retrieval: map_at_%d=%.4f photos=%zu queries=%zu\n", k, map, n, queries);
	ret = 0;
out:
	if (by_image)
		g_hash_table_destroy(by_image);
	if (label_ids)
		g_hash_table_destroy(label_ids);
	free(labels);
	free(emb);
	store_emb_set_free(&es);
	table_free(&t);
	return ret;
}

int eval_stored(const struct config *cfg, const char *truth_csv, const char *labels_csv)
{
	struct err err = {0};
	struct store *s = store_open(cfg->db_conninfo, &err);
	int64_t model_id = 0;
	double thr;
	int code = RUN_FAILED;

	if (!s || store_model_active(s, &model_id, &thr, &err))
		goto out;
	if (!model_id) {
		err_set(&err, ERR_FATAL, "no active model: run the pipeline first");
		goto out;
	}
	if (truth_csv && eval_groups(s, model_id, truth_csv, &err))
		goto out;
	if (labels_csv && eval_retrieval(s, model_id, labels_csv, cfg->model.top_k, &err))
		goto out;
	code = RUN_OK;
out:
	if (code != RUN_OK)
		log_error("evaluate", "evaluation failed", "error=\"%s\"", err.msg);
	store_close(s);
	return code;
}
