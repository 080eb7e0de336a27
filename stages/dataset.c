/* dataset.c - labelled photos: CSV or query rows, decode once with a bounded
 * cache, split by label, validation ads. */
#include "dataset.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "log.h"
#include "rng.h"

/* Bad rows named one by one in the log before the rest are only counted. */
#define BAD_LOGGED     20
#define ADS_MAX_LABELS 3
#define URL_MAX        8192

void dataset_init(struct dataset *ds, const char *source)
{
	memset(ds, 0, sizeof(*ds));
	snprintf(ds->source, sizeof(ds->source), "%s", source);
}

static int bad_add(struct dataset *ds, long line, const char *image, const char *reason,
                   struct err *err)
{
	struct ds_bad *b;

	if (ds->nbad == ds->bad_cap) {
		size_t cap = ds->bad_cap ? ds->bad_cap * 2 : 64;
		struct ds_bad *v = realloc(ds->bad, cap * sizeof(*v));

		if (!v)
			return err_set(err, ERR_FATAL, "out of memory");
		ds->bad = v;
		ds->bad_cap = cap;
	}
	b = &ds->bad[ds->nbad];
	b->line = line;
	b->image = strdup(image ? image : "");
	if (!b->image)
		return err_set(err, ERR_FATAL, "out of memory");
	snprintf(b->reason, sizeof(b->reason), "%s", reason);
	if (ds->nbad < BAD_LOGGED)
		log_warn("retrain", "labelled photo skipped",
		         "source=%s:%ld image=\"%s\" "
		         "reason=\"%s\"",
		         ds->source, line, b->image, reason);
	ds->nbad++;
	return 0;
}

int dataset_add(struct dataset *ds, const char *image, const char *label, long line,
                struct err *err)
{
	struct ds_photo *p;

	ds->rows++;
	if (!image || !*image)
		return bad_add(ds, line, image, "empty image", err);
	if (!label || !*label)
		return bad_add(ds, line, image, "empty label", err);
	if (ds->n == ds->cap) {
		size_t cap = ds->cap ? ds->cap * 2 : 256;
		struct ds_photo *v = realloc(ds->photos, cap * sizeof(*v));

		if (!v)
			return err_set(err, ERR_FATAL, "out of memory");
		ds->photos = v;
		ds->cap = cap;
	}
	p = &ds->photos[ds->n];
	memset(p, 0, sizeof(*p));
	p->image = strdup(image);
	p->label = strdup(label);
	p->line = line;
	if (!p->image || !p->label) {
		free(p->image);
		free(p->label);
		return err_set(err, ERR_FATAL, "out of memory");
	}
	ds->n++;
	return 0;
}

int dataset_load_csv(struct dataset *ds, const char *csv, const char *image_col,
                     const char *label_col, long max_rows, struct err *err)
{
	const char *const names[2] = {image_col, label_col};
	struct csv_file c;
	char *f[CSV_FIELDS_MAX];
	int col[2], n, r, ret = -1;

	if (csv_open(&c, csv, names, 2, col, err))
		goto out;
	while ((r = csv_next(&c, err)) > 0) {
		if (r == 1 && !c.line[0])
			continue;
		if (ds->rows >= max_rows) {
			err_set(err, ERR_FATAL,
			        "%s: more than %ld labelled rows (retrain.max_photos)", csv,
			        max_rows);
			goto out;
		}
		n = r == 1 ? csv_split(c.line, f, CSV_FIELDS_MAX) : -1;
		if (n <= col[0] || n <= col[1]) {
			ds->rows++;
			if (bad_add(ds, c.lineno, "",
			            r == 2   ? "line too long"
			            : r == 3 ? "NUL byte in line"
			                     : "malformed line",
			            err))
				goto out;
			continue;
		}
		if (dataset_add(ds, f[col[0]], f[col[1]], c.lineno, err))
			goto out;
	}
	ret = r < 0 ? -1 : 0;
out:
	csv_close(&c);
	return ret;
}

/* ---- decoding ---- */

struct decode_job {
	struct dataset *ds;
	size_t next;
	size_t cache_left;
	char (*reason)[160]; /* per photo; "" when it decoded */
	pthread_mutex_t lock;
	int failed;
	struct err err;
};

int dataset_tensor_as(const struct dataset *ds, size_t i, const struct resize_opts *ro, float *out,
                      struct err *err)
{
	char url[URL_MAX];
	void *buf = NULL;
	size_t len = 0;
	int rc;

	if ((size_t)snprintf(url, sizeof(url), "file://%s/%s", ds->root, ds->photos[i].image) >=
	    sizeof(url))
		return err_set(err, ERR_INPUT, "path too long");
	if (fetch_url(&ds->fetch, url, &buf, &len, err))
		return -1;
	rc = resize_buffer(ro, buf, len, out, NULL, err);
	free(buf);
	return rc;
}

/* LIMIT: a photo over the cache cap is decoded on the caller's thread at
 * every use, with no read-ahead, so training waits for libvips. */
int dataset_tensor(const struct dataset *ds, size_t i, float *out, struct err *err)
{
	if (ds->photos[i].cached) {
		memcpy(out, ds->photos[i].cached, ds->floats * sizeof(float));
		return 0;
	}
	return dataset_tensor_as(ds, i, &ds->ropts, out, err);
}

static void *decode_worker(void *arg)
{
	struct decode_job *j = arg;
	struct dataset *ds = j->ds;
	size_t bytes = ds->floats * sizeof(float);
	float *t = malloc(bytes);

	for (;;) {
		struct err e = {0};
		size_t i;
		int keep = 0;

		pthread_mutex_lock(&j->lock);
		i = j->next++;
		if (!t && !j->failed) {
			j->failed = 1;
			err_set(&j->err, ERR_FATAL, "out of memory");
		}
		pthread_mutex_unlock(&j->lock);
		if (i >= ds->n || j->failed)
			break;
		if (dataset_tensor_as(ds, i, &ds->ropts, t, &e)) {
			if (e.kind == ERR_FATAL || e.kind == ERR_RETRY) {
				pthread_mutex_lock(&j->lock);
				if (!j->failed) {
					j->failed = 1;
					j->err = e;
				}
				pthread_mutex_unlock(&j->lock);
				break;
			}
			snprintf(j->reason[i], sizeof(j->reason[i]), "%s", e.msg);
			continue;
		}
		pthread_mutex_lock(&j->lock);
		if (j->cache_left >= bytes) {
			j->cache_left -= bytes;
			keep = 1;
		}
		pthread_mutex_unlock(&j->lock);
		if (keep) {
			ds->photos[i].cached = t;
			t = malloc(bytes);
		}
	}
	free(t);
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Distinct labels in byte order, and each photo's index into them. */
static int number_labels(struct dataset *ds, struct err *err)
{
	char **all = malloc((ds->n ? ds->n : 1) * sizeof(*all));
	size_t i, k = 0;

	if (!all)
		return err_set(err, ERR_FATAL, "out of memory");
	for (i = 0; i < ds->n; i++)
		all[i] = ds->photos[i].label;
	qsort(all, ds->n, sizeof(*all), cmp_str);
	for (i = 0; i < ds->n; i++)
		if (k == 0 || strcmp(all[k - 1], all[i]))
			all[k++] = all[i];
	ds->labels = all;
	ds->nlabels = k;
	for (i = 0; i < ds->n; i++) {
		char **hit = bsearch(&ds->photos[i].label, all, k, sizeof(*all), cmp_str);

		ds->photos[i].label_id = (int)(hit - all);
	}
	return 0;
}

int dataset_decode(struct dataset *ds, const char *root, const struct resize_opts *ro,
                   size_t cache_bytes, int threads, struct err *err)
{
	struct decode_job j;
	pthread_t th[64];
	size_t i, kept = 0;
	int t, started = 0, ret = -1;

	memset(&j, 0, sizeof(j));
	ds->ropts = *ro;
	ds->floats = 3 * (size_t)ro->width * (size_t)ro->height;
	ds->fetch.max_bytes = ro->max_bytes ? ro->max_bytes : RESIZE_DEFAULT_MAX_BYTES;
	if (fetch_add_root(&ds->fetch, root, err))
		return err_prefix(err, "retrain.images_root");
	snprintf(ds->root, sizeof(ds->root), "%s", ds->fetch.roots[ds->fetch.nroots - 1]);
	j.ds = ds;
	j.cache_left = cache_bytes;
	j.reason = calloc(ds->n ? ds->n : 1, sizeof(*j.reason));
	if (!j.reason)
		return err_set(err, ERR_FATAL, "out of memory");
	pthread_mutex_init(&j.lock, NULL);
	threads = threads < 1 ? 1 : threads > 64 ? 64 : threads;
	for (t = 0; t < threads; t++)
		if (!pthread_create(&th[t], NULL, decode_worker, &j))
			started++;
	for (t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	if (started == 0) {
		err_set(err, ERR_FATAL, "cannot start decode threads");
		goto out;
	}
	if (j.failed) {
		*err = j.err;
		goto out;
	}

	/* move the photos that did not decode to the bad list, keeping order */
	for (i = 0; i < ds->n; i++) {
		if (j.reason[i][0]) {
			if (bad_add(ds, ds->photos[i].line, ds->photos[i].image, j.reason[i], err))
				goto out;
			free(ds->photos[i].image);
			free(ds->photos[i].label);
			free(ds->photos[i].cached);
			continue;
		}
		if (ds->photos[i].cached)
			ds->cached_bytes += ds->floats * sizeof(float);
		ds->photos[kept++] = ds->photos[i];
	}
	ds->n = kept;
	if (ds->nbad > BAD_LOGGED)
		log_warn("retrain", "more labelled photos skipped", "source=%s not_named=%zu",
		         ds->source, ds->nbad - BAD_LOGGED);
	ret = number_labels(ds, err);
out:
	pthread_mutex_destroy(&j.lock);
	free(j.reason);
	return ret;
}

/* ---- split ---- */

int dataset_split(const struct dataset *ds, const struct train_config *tc, uint64_t seed,
                  signed char *state, struct err *err)
{
	int *order = malloc((ds->nlabels ? ds->nlabels : 1) * sizeof(*order));
	int *count = calloc(ds->nlabels ? ds->nlabels : 1, sizeof(*count));
	size_t i, used = 0, nval = 0, ntrain = 0, val_pairs = 0, want_val;
	int folds[64], nfolds = 0, k = config_fold_count(tc), ret = -1;
	struct rng r;

	if (!order || !count) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	for (i = 0; i < ds->n; i++)
		count[ds->photos[i].label_id]++;

	/* data_sample: a seeded share of the labels; the rest sit out */
	for (i = 0; i < ds->nlabels; i++) {
		order[i] = (int)i;
		state[i] = -1;
	}
	rng_seed(&r, rng_derive(seed, 10, 0));
	rng_shuffle(&r, order, ds->nlabels);
	used = (size_t)((double)ds->nlabels * tc->data_sample + 0.5);
	if (used > ds->nlabels)
		used = ds->nlabels;

	/* the labels in use, in a second seeded order, dealt to the two sides */
	rng_seed(&r, rng_derive(seed, 11, 0));
	rng_shuffle(&r, order, used);
	if (!strcmp(tc->validation_strategy, "kfold") && config_folds(tc, folds, &nfolds)) {
		err_set(err, ERR_FATAL, "dataset.folds: bad fold list '%s'", tc->folds);
		goto out;
	}
	want_val = (size_t)((double)used * tc->validation_size + 0.5);
	if (want_val < 1)
		want_val = 1;
	if (want_val + 2 > used)
		want_val = used > 2 ? used - 2 : 0;
	for (i = 0; i < used; i++) {
		int val, f;

		if (nfolds) {
			val = 0;
			for (f = 0; f < nfolds; f++)
				val |= (int)(i % (size_t)k) == folds[f];
		} else {
			val = i < want_val;
		}
		state[order[i]] = (signed char)val;
		nval += val;
		ntrain += !val;
		if (val && count[order[i]] >= 2)
			val_pairs++;
	}
	if (ntrain < 2 || nval < 1) {
		err_set(err, ERR_FATAL,
		        "%s: %zu labels in use give %zu for training and %zu for "
		        "validation; need at least 2 and 1",
		        ds->source, used, ntrain, nval);
		goto out;
	}
	if (val_pairs == 0) {
		err_set(err, ERR_FATAL,
		        "%s: no validation label has two photos, so retrieval "
		        "cannot be scored (more labelled photos per label needed)",
		        ds->source);
		goto out;
	}
	ret = 0;
out:
	free(order);
	free(count);
	return ret;
}

/* ---- validation ads ---- */

static int ads_from_csv(const struct dataset *ds, const signed char *state, const char *csv,
                        int *ad, int *nads, struct err *err)
{
	static const char *const names[2] = {"ad_id", "image"};
	GHashTable *by_image = g_hash_table_new(g_str_hash, g_str_equal);
	GHashTable *ad_ids = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
	struct csv_file c;
	char *f[CSV_FIELDS_MAX];
	int col[2], n, r, ret = -1;
	size_t i;

	for (i = 0; i < ds->n; i++)
		if (state[ds->photos[i].label_id] == 1)
			g_hash_table_insert(by_image, ds->photos[i].image, GSIZE_TO_POINTER(i + 1));
	if (csv_open(&c, csv, names, 2, col, err)) {
		err_prefix(err, "retrain.ads_csv");
		goto out;
	}
	while ((r = csv_next(&c, err)) > 0) {
		gpointer hit, id;

		if (r != 1 || (n = csv_split(c.line, f, CSV_FIELDS_MAX)) <= col[0] || n <= col[1])
			continue;
		hit = g_hash_table_lookup(by_image, f[col[1]]);
		if (!hit || ad[GPOINTER_TO_SIZE(hit) - 1] >= 0)
			continue;
		if (!g_hash_table_lookup_extended(ad_ids, f[col[0]], NULL, &id)) {
			char *key = strdup(f[col[0]]);

			if (!key) {
				err_set(err, ERR_FATAL, "out of memory");
				goto out;
			}
			id = GINT_TO_POINTER(g_hash_table_size(ad_ids));
			g_hash_table_insert(ad_ids, key, id);
		}
		ad[GPOINTER_TO_SIZE(hit) - 1] = GPOINTER_TO_INT(id);
	}
	if (r < 0)
		goto out;
	*nads = (int)g_hash_table_size(ad_ids);
	ret = 0;
out:
	csv_close(&c);
	g_hash_table_destroy(by_image);
	g_hash_table_destroy(ad_ids);
	return ret;
}

int dataset_val_ads(const struct dataset *ds, const signed char *state, const char *ads_csv,
                    uint64_t seed, int *ad, int *nads, struct err *err)
{
	int *order = NULL, *ad_of_label = NULL;
	size_t i, nval = 0, at = 0;
	struct rng r;
	int ads = 0;

	for (i = 0; i < ds->n; i++)
		ad[i] = -1;
	*nads = 0;
	if (ads_csv && *ads_csv)
		return ads_from_csv(ds, state, ads_csv, ad, nads, err);

	order = malloc((ds->nlabels ? ds->nlabels : 1) * sizeof(*order));
	ad_of_label = malloc((ds->nlabels ? ds->nlabels : 1) * sizeof(*ad_of_label));
	if (!order || !ad_of_label) {
		free(order);
		free(ad_of_label);
		return err_set(err, ERR_FATAL, "out of memory");
	}
	for (i = 0; i < ds->nlabels; i++) {
		ad_of_label[i] = -1;
		if (state[i] == 1)
			order[nval++] = (int)i;
	}
	rng_seed(&r, rng_derive(seed, 12, 0));
	rng_shuffle(&r, order, nval);
	while (at < nval) {
		size_t take = 1 + (size_t)rng_below(&r, ADS_MAX_LABELS);

		for (; take > 0 && at < nval; take--)
			ad_of_label[order[at++]] = ads;
		ads++;
	}
	for (i = 0; i < ds->n; i++)
		ad[i] = ad_of_label[ds->photos[i].label_id];
	*nads = ads;
	free(order);
	free(ad_of_label);
	return 0;
}

void dataset_free(struct dataset *ds)
{
	size_t i;

	for (i = 0; i < ds->n; i++) {
		free(ds->photos[i].image);
		free(ds->photos[i].label);
		free(ds->photos[i].cached);
	}
	for (i = 0; i < ds->nbad; i++)
		free(ds->bad[i].image);
	free(ds->photos);
	free(ds->bad);
	free(ds->labels);
	fetch_free(&ds->fetch);
	memset(ds, 0, sizeof(*ds));
}
