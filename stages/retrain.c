/* retrain.c - the retraining stage: data, split, epochs with checkpoints,
 * evaluation and the promotion gate. */
#include "retrain.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <glib.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "augment.h"
#include "checkpoint.h"
#include "dataset.h"
#include "evaluate.h"
#include "file.h"
#include "group.h"
#include "lock.h"
#include "log.h"
#include "model.h"
#include "observe.h"
#include "proc.h"
#include "registry.h"
#include "rng.h"
#include "run.h"
#include "schedule.h"
#include "sha256.h"
#include "store.h"
#include "train.h"

#define SWEEP_STEPS   100 /* threshold candidates: 0.00, 0.01, ... 0.99 */
#define PROGRESS_SECS 0.25
#define CALIB_PHOTOS  256

static volatile sig_atomic_t stop_requested;

void retrain_request_stop(void)
{
	stop_requested = 1;
}

/* Scores of one model on the validation photos. */
struct val_score {
	double map;
	double threshold;       /* the one the model runs with */
	struct eval_grouping g; /* grouping at that threshold */
	double best_threshold;  /* the best of the sweep, and its scores */
	struct eval_grouping best;
};

struct rt {
	const struct config *cfg;
	const struct retrain_opts *opts;
	struct model_config mc;
	char init_weights[CONFIG_PATH_MAX];
	char init_sha[65];
	char ckpt_dir[CONFIG_PATH_MAX];
	struct store *store;
	int64_t run_id;
	int threads;
	char host[256];

	struct dataset ds;
	signed char *state; /* per label: 0 train, 1 validation, -1 unused */
	int *cls;           /* per label: training class, or -1 */
	int nclasses;
	int *train_idx, *val_idx; /* photo indices */
	size_t ntrain, nval;
	int *val_labels; /* label id per validation photo */
	int *val_ad;     /* ad number per validation photo, -1: none */
	int nads;

	const char **val_names; /* the validation labels, borrowed from ds */
	size_t nval_names;

	struct checkpoint_state ck; /* seed, fingerprint, scores and history so far */
	struct trainer *tr;
	int lock_fd;           /* flock on the checkpoint folder; 0: none */
	struct run_lock *lock; /* the "retrain" scope in the database */
	struct observe obs;    /* systemd status, metrics file */
};

/* ---- setup ---- */

static int check_config(struct rt *r, struct err *err)
{
	const struct config *cfg = r->cfg;
	const struct train_config *t = &r->mc.train;

	if (!cfg->retrain_model_dir[0])
		return err_set(err, ERR_FATAL, "%s: retrain.model_dir is required for retraining",
		               cfg->path);
	if (!cfg->retrain_labels_csv[0] == !cfg->retrain_labels_query[0])
		return err_set(err, ERR_FATAL,
		               "%s: give one of retrain.labels_csv and retrain.labels_query",
		               cfg->path);
	if (!cfg->retrain_images_root[0])
		return err_set(err, ERR_FATAL, "%s: retrain.images_root is required", cfg->path);
	if (t->batch_size < 2)
		return err_set(err, ERR_FATAL, "%s: training.batch_size must be at least 2",
		               r->mc.path);
	if (!r->mc.pretrained)
		r->init_weights[0] = '\0';
	else if (access(r->init_weights, R_OK))
		return err_set(err, ERR_FATAL, "%s: retrain.init_weights: cannot read %s: %s",
		               cfg->path, r->init_weights, strerror(errno));
	if (t->mixed_precision && !strncmp(cfg->device, "cpu", 3))
		log_warn("retrain", "mixed_precision_training is not used on the cpu",
		         "device=%s reason=\"bf16 is slower than float32 on this cpu\"",
		         cfg->device);
	return 0;
}

static int load_labels_row(void *arg, long n, const char *image, const char *label, struct err *err)
{
	struct rt *r = arg;

	if (r->ds.rows >= r->cfg->retrain_max_photos)
		return err_set(err, ERR_FATAL,
		               "labels query: more than %d rows (retrain.max_photos)",
		               r->cfg->retrain_max_photos);
	return dataset_add(&r->ds, image, label, n, err);
}

static int load_data(struct rt *r, struct err *err)
{
	const struct config *cfg = r->cfg;
	struct resize_opts ro;
	double t0 = proc_now_s();
	size_t i;

	if (cfg->retrain_labels_csv[0]) {
		const char *base = strrchr(cfg->retrain_labels_csv, '/');

		dataset_init(&r->ds, base ? base + 1 : cfg->retrain_labels_csv);
		if (dataset_load_csv(&r->ds, cfg->retrain_labels_csv, r->mc.train.image_column,
		                     r->mc.train.label_column, cfg->retrain_max_photos, err))
			return -1;
	} else {
		/* bounded on the server: libpq holds a whole result in memory */
		int len = (int)strlen(cfg->retrain_labels_query), rc;
		char *sql;

		while (len > 0 && strchr("; \t\r\n", cfg->retrain_labels_query[len - 1]))
			len--;
		sql = g_strdup_printf("SELECT * FROM (%.*s) AS labels LIMIT %d", len,
		                      cfg->retrain_labels_query, cfg->retrain_max_photos + 1);

		dataset_init(&r->ds, "labels query");
		rc = store_query_pairs(r->store, sql, load_labels_row, r, err);
		g_free(sql);
		if (rc)
			return err_prefix(err, "retrain.labels_query");
	}
	registry_resize_opts(&r->mc, cfg, &ro);
	if (dataset_decode(&r->ds, cfg->retrain_images_root, &ro,
	                   (size_t)cfg->retrain_cache_mb << 20, r->threads, err))
		return -1;
	for (i = 0; i < r->ds.nbad && r->run_id; i++) {
		char key[512];
		struct err e = {0};

		snprintf(key, sizeof(key), "retrain:%s:%ld", r->ds.source, r->ds.bad[i].line);
		if (store_write_failure(r->store, r->run_id, key, NULL, NULL, "retrain",
		                        r->ds.bad[i].reason, &e))
			log_warn("retrain", "could not record a bad row", "error=\"%s\"", e.msg);
	}
	log_info("retrain", "labelled photos decoded",
	         "source=%s rows=%ld photos=%zu bad=%zu labels=%zu size=%dx%d cached_mb=%zu "
	         "seconds=%.1f",
	         r->ds.source, r->ds.rows, r->ds.n, r->ds.nbad, r->ds.nlabels, ro.width, ro.height,
	         r->ds.cached_bytes >> 20, proc_now_s() - t0);
	return 0;
}

/* A hash of everything that decides the weights: settings, start weights,
 * seed and the labelled photos. A checkpoint only resumes the same. */
static void fingerprint(struct rt *r)
{
	const struct model_config *m = &r->mc;
	const struct train_config *t = &m->train;
	GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
	char buf[2048];
	size_t i;

	snprintf(buf, sizeof(buf),
	         "v1|%s|%d|%d|%g|%g|%d|%d|%d|%g,%g,%g|%g,%g,%g|%d|%d|%d|%.17g|%.17g|%s|%.17g|"
	         "%.17g|%.17g|%.17g|%.17g|%d|%d|%s|%s|%s|%s|%.17g|%.17g|%s|%llu|%d",
	         m->backbone, m->embedding_size, (int)m->pool, m->gem_p, m->dropout,
	         m->image_height, m->image_width, (int)m->norm, m->mean[0], m->mean[1], m->mean[2],
	         m->std[0], m->std[1], m->std[2], t->epochs, t->batch_size, t->grad_accumulation,
	         t->learning_rate, t->differential_learning_rate, t->diff_lr_layers,
	         t->weight_decay, t->warmup_epochs, t->gradient_clip, t->arcface_margin,
	         t->arcface_scale, t->drop_last_batch, t->evaluation_epochs, t->schedule,
	         t->augmentations, t->validation_strategy, t->folds, t->validation_size,
	         t->data_sample, r->init_sha, (unsigned long long)r->ck.seed, m->top_k);
	g_checksum_update(ck, (const guchar *)buf, (gssize)strlen(buf));
	for (i = 0; i < r->ds.n; i++) {
		g_checksum_update(ck, (const guchar *)r->ds.photos[i].image, -1);
		g_checksum_update(ck, (const guchar *)"\t", 1);
		g_checksum_update(ck, (const guchar *)r->ds.photos[i].label, -1);
		g_checksum_update(ck, (const guchar *)"\n", 1);
	}
	snprintf(r->ck.fingerprint, sizeof(r->ck.fingerprint), "%s", g_checksum_get_string(ck));
	g_checksum_free(ck);
}

static int make_split(struct rt *r, struct err *err)
{
	const struct dataset *ds = &r->ds;
	size_t i, nl = ds->nlabels ? ds->nlabels : 1, np = ds->n ? ds->n : 1, nval_labels = 0;
	int *val_ad_all = NULL;

	r->state = malloc(nl);
	r->cls = malloc(nl * sizeof(*r->cls));
	r->train_idx = malloc(np * sizeof(*r->train_idx));
	r->val_idx = malloc(np * sizeof(*r->val_idx));
	r->val_labels = malloc(np * sizeof(*r->val_labels));
	r->val_ad = malloc(np * sizeof(*r->val_ad));
	val_ad_all = malloc(np * sizeof(*val_ad_all));
	if (!r->state || !r->cls || !r->train_idx || !r->val_idx || !r->val_labels || !r->val_ad ||
	    !val_ad_all) {
		free(val_ad_all);
		return err_set(err, ERR_FATAL, "out of memory");
	}
	if (dataset_split(ds, &r->mc.train, r->ck.seed, r->state, err) ||
	    dataset_val_ads(ds, r->state, r->cfg->retrain_ads_csv, r->ck.seed, val_ad_all, &r->nads,
	                    err)) {
		free(val_ad_all);
		return -1;
	}
	/* classes are numbered in label (byte) order */
	r->nclasses = 0;
	for (i = 0; i < ds->nlabels; i++)
		r->cls[i] = r->state[i] == 0 ? r->nclasses++ : -1;
	r->ntrain = r->nval = 0;
	for (i = 0; i < ds->n; i++) {
		int l = ds->photos[i].label_id;

		if (r->state[l] == 0) {
			r->train_idx[r->ntrain++] = (int)i;
		} else if (r->state[l] == 1) {
			r->val_labels[r->nval] = l;
			r->val_ad[r->nval] = val_ad_all[i];
			r->val_idx[r->nval++] = (int)i;
		}
	}
	free(val_ad_all);
	r->val_names = malloc(nl * sizeof(*r->val_names));
	if (!r->val_names)
		return err_set(err, ERR_FATAL, "out of memory");
	for (i = 0; i < ds->nlabels; i++)
		if (r->state[i] == 1)
			r->val_names[nval_labels++] = ds->labels[i];
	r->nval_names = nval_labels;
	log_info("retrain", "split by label",
	         "seed=%llu strategy=%s train_photos=%zu train_labels=%d val_photos=%zu "
	         "val_labels=%zu val_ads=%d ads=%s",
	         (unsigned long long)r->ck.seed, r->mc.train.validation_strategy, r->ntrain,
	         r->nclasses, r->nval, nval_labels, r->nads,
	         r->cfg->retrain_ads_csv[0] ? "csv" : "synthetic");
	return 0;
}

/* ---- evaluation ---- */

typedef int (*embed_fn)(void *ctx, const float *x, int n, int h, int w, float *out,
                        struct err *err);

static int embed_model(void *ctx, const float *x, int n, int h, int w, float *out, struct err *err)
{
	return model_embed(ctx, x, n, h, w, out, err);
}

static int embed_trainer(void *ctx, const float *x, int n, int h, int w, float *out,
                         struct err *err)
{
	return train_embed(ctx, x, n, h, w, out, err);
}

/* Embed every validation photo (decoded with RO, or from the dataset when RO
 * is NULL) with FN into OUT (nval x DIM). */
static int embed_val(struct rt *r, embed_fn fn, void *ctx, int dim, const struct resize_opts *ro,
                     float *out, struct err *err)
{
	const struct resize_opts *o = ro ? ro : &r->ds.ropts;
	size_t floats = 3 * (size_t)o->width * (size_t)o->height;
	size_t bs = (size_t)r->cfg->batch_size, at = 0;
	float *in = malloc(bs * floats * sizeof(float));
	int ret = -1;

	if (!in)
		return err_set(err, ERR_FATAL, "out of memory");
	while (at < r->nval) {
		size_t n = r->nval - at < bs ? r->nval - at : bs, i;

		for (i = 0; i < n; i++) {
			int rc = ro ? dataset_tensor_as(&r->ds, (size_t)r->val_idx[at + i], ro,
			                                in + i * floats, err)
			            : dataset_tensor(&r->ds, (size_t)r->val_idx[at + i],
			                             in + i * floats, err);

			if (rc) {
				err->kind = ERR_FATAL;
				err_prefix(err, "validation photo %s",
				           r->ds.photos[r->val_idx[at + i]].image);
				goto out;
			}
		}
		if (fn(ctx, in, (int)n, o->height, o->width, out + at * (size_t)dim, err))
			goto out;
		at += n;
	}
	ret = 0;
out:
	free(in);
	return ret;
}

/* Pairwise grouping scores on the validation ads at THRESHOLD. */
static int grouping_at(struct rt *r, const float *emb, int dim, double threshold,
                       struct eval_grouping *g, struct err *err)
{
	struct eval_photo *p = calloc(r->nval ? r->nval : 1, sizeof(*p));
	char(*adname)[16] = calloc(r->nads ? (size_t)r->nads : 1, sizeof(*adname));
	const char **ids = malloc((r->nval ? r->nval : 1) * sizeof(*ids));
	float *e = malloc((r->nval ? r->nval : 1) * (size_t)dim * sizeof(float));
	int *pos = malloc((r->nval ? r->nval : 1) * sizeof(*pos));
	int *lab = malloc((r->nval ? r->nval : 1) * sizeof(*lab));
	size_t np = 0, i;
	int a, ret = -1;

	if (!p || !adname || !ids || !e || !pos || !lab) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	for (a = 0; a < r->nads; a++) {
		size_t n = 0;

		snprintf(adname[a], sizeof(adname[a]), "ad%d", a);
		for (i = 0; i < r->nval; i++) {
			if (r->val_ad[i] != a)
				continue;
			pos[n] = (int)i;
			ids[n] = r->ds.photos[r->val_idx[i]].image;
			memcpy(e + n * (size_t)dim, emb + i * (size_t)dim,
			       (size_t)dim * sizeof(float));
			n++;
		}
		if (n == 0)
			continue;
		if (group_cluster(e, n, dim, ids, threshold, r->cfg->linkage, lab, err) < 0)
			goto out;
		for (i = 0; i < n; i++) {
			const struct ds_photo *ph = &r->ds.photos[r->val_idx[pos[i]]];

			p[np].image_id = ph->image;
			p[np].ad_id = adname[a];
			p[np].truth = ph->label;
			p[np].pred = ids[lab[i]];
			np++;
		}
	}
	ret = eval_grouping(p, np, g, err);
out:
	free(p);
	free(adname);
	free(ids);
	free(e);
	free(pos);
	free(lab);
	return ret;
}

/* The threshold with the best F1: the middle of the first run of candidate
 * thresholds that reach it, so that a plateau is not left at its edge. */
static int tune_threshold(struct rt *r, const float *emb, int dim, struct val_score *s,
                          struct err *err)
{
	double best = -1;
	int k, first = 0, last = 0;

	for (k = 0; k < SWEEP_STEPS; k++) {
		struct eval_grouping g;

		if (grouping_at(r, emb, dim, k / (double)SWEEP_STEPS, &g, err))
			return -1;
		if (g.f1 > best + 1e-12) {
			best = g.f1;
			first = last = k;
		} else if (fabs(g.f1 - best) <= 1e-12 && last == k - 1) {
			last = k;
		}
	}
	s->best_threshold = ((first + last) / 2) / (double)SWEEP_STEPS;
	return grouping_at(r, emb, dim, s->best_threshold, &s->best, err);
}

/* mAP@k of N embeddings of the validation photos. */
static int score_map(struct rt *r, const float *emb, int dim, double *map, struct err *err)
{
	return eval_map_at_k(emb, r->nval, dim, r->val_labels, r->mc.top_k, map, NULL, err);
}

/* Open weights as the inference model would run them with MC, embed the
 * validation photos (decoded for MC) and score them. THRESHOLD: NaN tunes
 * it, otherwise the grouping is scored at that value. */
static int score_weights(struct rt *r, const struct model_config *mc, const char *weights,
                         double threshold, struct val_score *s, struct err *err)
{
	struct model_opts mo;
	struct resize_opts ro;
	struct model *m = NULL;
	float *emb = NULL;
	int dim, same, ret = -1;

	registry_model_opts(mc, weights, r->cfg->device, r->threads, r->cfg->channels_last, &mo);
	registry_resize_opts(mc, r->cfg, &ro);
	same = ro.width == r->ds.ropts.width && ro.height == r->ds.ropts.height &&
	       ro.norm == r->ds.ropts.norm && !memcmp(ro.mean, r->ds.ropts.mean, sizeof(ro.mean)) &&
	       !memcmp(ro.std, r->ds.ropts.std, sizeof(ro.std));
	m = model_open(&mo, err);
	if (!m)
		return -1;
	dim = model_dim(m);
	emb = malloc((r->nval ? r->nval : 1) * (size_t)dim * sizeof(float));
	if (!emb) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	if (embed_val(r, embed_model, m, dim, same ? NULL : &ro, emb, err) ||
	    score_map(r, emb, dim, &s->map, err))
		goto out;
	if (tune_threshold(r, emb, dim, s, err))
		goto out;
	if (isnan(threshold)) {
		s->threshold = s->best_threshold;
		s->g = s->best;
	} else {
		s->threshold = threshold;
		if (grouping_at(r, emb, dim, threshold, &s->g, err))
			goto out;
	}
	ret = 0;
out:
	free(emb);
	model_close(m);
	return ret;
}

/* ---- training ---- */

/* The epoch's bar on a terminal, drawn like the nightly run's (see observe.h). */
static void progress(int epoch, int epochs, size_t done, size_t total, double loss, double ips,
                     double eta)
{
	char bar[31];
	size_t i, fill = total ? done * 30 / total : 30;

	char line[160];

	for (i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = '\0';
	snprintf(line, sizeof(line), "epoch %d/%d [%s] %zu/%zu loss %.4f %.1f img/s ETA %d:%02d",
	         epoch, epochs, bar, done, total, loss, ips, (int)eta / 60, (int)eta % 60);
	log_status_line(line);
}

static long batches_per_epoch(const struct rt *r)
{
	long bs = r->mc.train.batch_size, n = (long)r->ntrain;

	return r->mc.train.drop_last_batch ? n / bs : (n + bs - 1) / bs;
}

static int open_trainer(struct rt *r, struct err *err)
{
	const struct train_config *t = &r->mc.train;
	struct train_opts o = {0};
	long steps_per_epoch =
	    (batches_per_epoch(r) + t->grad_accumulation - 1) / t->grad_accumulation;

	if (batches_per_epoch(r) < 1)
		return err_set(err, ERR_FATAL, "%zu training photos make no batch of %d", r->ntrain,
		               t->batch_size);
	o.backbone = r->mc.backbone;
	o.init_weights = r->init_weights[0] ? r->init_weights : NULL;
	o.pool = r->mc.pool == POOL_GEM ? MODEL_POOL_GEM : MODEL_POOL_AVG;
	o.gem_p = (float)r->mc.gem_p;
	o.embedding_size = r->mc.embedding_size;
	o.dropout = r->mc.dropout;
	o.classes = r->nclasses;
	o.arcface_margin = t->arcface_margin;
	o.arcface_scale = t->arcface_scale;
	o.lr_backbone = strstr(t->diff_lr_layers, "backbone") ? t->differential_learning_rate
	                                                      : t->learning_rate;
	o.lr_head =
	    strstr(t->diff_lr_layers, "head") ? t->differential_learning_rate : t->learning_rate;
	o.weight_decay = t->weight_decay;
	o.gradient_clip = t->gradient_clip;
	o.grad_accumulation = t->grad_accumulation;
	o.schedule = (enum schedule_kind)schedule_parse(t->schedule);
	o.total_steps = steps_per_epoch * t->epochs;
	o.warmup_steps = lround(t->warmup_epochs * (double)steps_per_epoch);
	o.seed = rng_derive(r->ck.seed, 5, 0);
	o.device = r->cfg->device;
	o.threads = r->threads;
	o.channels_last = r->cfg->channels_last;
	o.mixed_precision = t->mixed_precision;
	r->tr = train_open(&o, err);
	if (!r->tr)
		return -1;
	log_info("retrain", "training set up",
	         "backbone=%s init=%s classes=%d embedding=%d lr_backbone=%g lr_head=%g "
	         "schedule=%s steps=%ld warmup_steps=%ld batch=%d accumulation=%d threads=%d",
	         o.backbone, o.init_weights ? o.init_weights : "random", o.classes,
	         o.embedding_size, o.lr_backbone, o.lr_head, t->schedule, o.total_steps,
	         o.warmup_steps, t->batch_size, t->grad_accumulation, r->threads);
	return 0;
}

/* mAP@k of the network being trained, in evaluation mode. */
static int trainer_map(struct rt *r, double *map, struct err *err)
{
	int dim = train_dim(r->tr), ret;
	float *emb = malloc((r->nval ? r->nval : 1) * (size_t)dim * sizeof(float));

	if (!emb)
		return err_set(err, ERR_FATAL, "out of memory");
	ret = embed_val(r, embed_trainer, r->tr, dim, NULL, emb, err) ||
	      score_map(r, emb, dim, map, err);
	free(emb);
	return ret ? -1 : 0;
}

/* The mAP of the weights training starts from, on the validation photos at
 * the training size: what retraining has to beat. Weights without a head
 * embed with their pooled features, as the nightly run would. */
static int baseline(struct rt *r, struct err *err)
{
	struct val_score s;

	if (r->init_weights[0]) {
		struct model_config mc = r->mc;

		mc.embedding_size = 0;
		if (score_weights(r, &mc, r->init_weights, r->cfg->default_threshold, &s, err))
			return -1;
		r->ck.baseline_map = s.map;
		return 0;
	}
	return trainer_map(r, &r->ck.baseline_map, err);
}

static int run_epoch(struct rt *r, int epoch, struct err *err)
{
	const struct train_config *t = &r->mc.train;
	struct epoch_stat *st = &r->ck.hist[r->ck.nhist];
	size_t floats = r->ds.floats, bs = (size_t)t->batch_size, b, i;
	long nb = batches_per_epoch(r);
	struct augment_norm norm;
	float *x = malloc(bs * floats * sizeof(float));
	float *raw = malloc(floats * sizeof(float));
	int *labels = malloc(bs * sizeof(int));
	int *order = malloc(r->ntrain * sizeof(int));
	int tty = r->obs.progress.tty, ret = -1;
	double t0 = proc_now_s(), last_draw = 0, loss_sum = 0, lr = 0;
	size_t seen = 0;
	struct rng rng;

	if (!x || !raw || !labels || !order) {
		err_set(err, ERR_FATAL, "out of memory for a batch of %zu", bs);
		goto out;
	}
	resize_pixel_norm(&r->ds.ropts, norm.mean, norm.std);
	observe_phase(&r->obs, "epoch %d of %d", epoch, t->epochs);
	train_reseed(r->tr, rng_derive(r->ck.seed, 3, (uint64_t)epoch));
	memcpy(order, r->train_idx, r->ntrain * sizeof(int));
	rng_seed(&rng, rng_derive(r->ck.seed, 1, (uint64_t)epoch));
	rng_shuffle(&rng, order, r->ntrain);
	train_current_lr(r->tr, NULL, &lr);

	for (b = 0; b < (size_t)nb; b++) {
		size_t n = r->ntrain - b * bs < bs ? r->ntrain - b * bs : bs;
		double loss = 0;

		if (stop_requested) {
			err_set(err, ERR_FATAL,
			        "stopped by a signal in epoch %d; the checkpoint of "
			        "epoch %d stays for --resume",
			        epoch, epoch - 1);
			goto out;
		}
		rng_seed(&rng, rng_derive(r->ck.seed, 2, ((uint64_t)epoch << 32) | b));
		for (i = 0; i < n; i++) {
			int idx = order[b * bs + i];
			float *dst = x + i * floats;

			if (dataset_tensor(&r->ds, (size_t)idx,
			                   strcmp(t->augmentations, "Soft") ? dst : raw, err)) {
				err->kind = ERR_FATAL;
				err_prefix(err, "training photo %s", r->ds.photos[idx].image);
				goto out;
			}
			if (!strcmp(t->augmentations, "Soft")) {
				struct augment_draw d;

				augment_draw_soft(&rng, r->ds.ropts.height, r->ds.ropts.width, &d);
				augment_apply(&d, &norm, raw, dst, r->ds.ropts.height,
				              r->ds.ropts.width);
			}
			labels[i] = r->cls[r->ds.photos[idx].label_id];
		}
		if (train_batch(r->tr, x, labels, (int)n, r->ds.ropts.height, r->ds.ropts.width,
		                &loss, err))
			goto out;
		loss_sum += loss * (double)n;
		seen += n;
		if (tty && (proc_now_s() - last_draw >= PROGRESS_SECS || b + 1 == (size_t)nb)) {
			double el = proc_now_s() - t0, ips = (double)seen / (el > 0 ? el : 1e-9);

			last_draw = proc_now_s();
			progress(epoch, t->epochs, b + 1, (size_t)nb, loss_sum / (double)seen, ips,
			         ips > 0 ? (double)((size_t)nb * bs - seen) / ips : 0);
		}
	}
	if (train_flush(r->tr, err))
		goto out;
	if (tty)
		log_status_line(NULL);

	memset(st, 0, sizeof(*st));
	st->epoch = epoch;
	st->loss = seen ? loss_sum / (double)seen : NAN;
	st->lr = lr;
	st->img_per_s = (double)seen / (proc_now_s() - t0);
	st->map = NAN;
	if (epoch % t->evaluation_epochs == 0 || epoch == t->epochs) {
		if (trainer_map(r, &st->map, err))
			goto out;
		st->evaluated = 1;
	}
	st->seconds = proc_now_s() - t0;
	r->ck.nhist++;
	r->ck.epoch = epoch;
	if (checkpoint_save(r->ckpt_dir, r->tr, &r->ck, r->val_names, r->nval_names, err))
		goto out;
	if (r->lock && lock_check(r->lock, err) > 0)
		goto out;
	if (st->evaluated)
		log_info("retrain", "epoch done",
		         "epoch=%d epochs=%d loss=%.4f lr=%.3g map_at_%d=%.4f seconds=%.1f "
		         "img_per_s=%.1f",
		         epoch, t->epochs, st->loss, st->lr, r->mc.top_k, st->map, st->seconds,
		         st->img_per_s);
	else
		log_info("retrain", "epoch done",
		         "epoch=%d epochs=%d loss=%.4f lr=%.3g seconds=%.1f img_per_s=%.1f", epoch,
		         t->epochs, st->loss, st->lr, st->seconds, st->img_per_s);
	ret = 0;
out:
	if (ret && tty)
		log_status_line(NULL);
	free(x);
	free(raw);
	free(labels);
	free(order);
	return ret;
}

/* ---- the model's files and its registry row ---- */

static cJSON *config_json(const struct rt *r)
{
	const struct train_config *t = &r->mc.train;
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "model_config", r->mc.path);
	cJSON_AddNumberToObject(o, "epochs", t->epochs);
	cJSON_AddNumberToObject(o, "batch_size", t->batch_size);
	cJSON_AddNumberToObject(o, "grad_accumulation", t->grad_accumulation);
	cJSON_AddNumberToObject(o, "learning_rate", t->learning_rate);
	cJSON_AddNumberToObject(o, "differential_learning_rate", t->differential_learning_rate);
	cJSON_AddStringToObject(o, "differential_learning_rate_layers", t->diff_lr_layers);
	cJSON_AddNumberToObject(o, "weight_decay", t->weight_decay);
	cJSON_AddStringToObject(o, "schedule", t->schedule);
	cJSON_AddNumberToObject(o, "warmup_epochs", t->warmup_epochs);
	cJSON_AddNumberToObject(o, "gradient_clip", t->gradient_clip);
	cJSON_AddNumberToObject(o, "arcface_margin", t->arcface_margin);
	cJSON_AddNumberToObject(o, "arcface_scale", t->arcface_scale);
	cJSON_AddBoolToObject(o, "drop_last_batch", t->drop_last_batch);
	cJSON_AddStringToObject(o, "augmentations", t->augmentations);
	cJSON_AddNumberToObject(o, "dropout", r->mc.dropout);
	cJSON_AddStringToObject(o, "validation_strategy", t->validation_strategy);
	cJSON_AddNumberToObject(o, "validation_size", t->validation_size);
	cJSON_AddStringToObject(o, "folds", t->folds);
	cJSON_AddNumberToObject(o, "data_sample", t->data_sample);
	cJSON_AddNumberToObject(o, "top_k_similar", r->mc.top_k);
	cJSON_AddStringToObject(o, "device", r->cfg->device);
	cJSON_AddBoolToObject(o, "mixed_precision", t->mixed_precision);
	return o;
}

static cJSON *data_json(const struct rt *r)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "source",
	                        r->cfg->retrain_labels_csv[0] ? r->cfg->retrain_labels_csv
	                                                      : r->cfg->retrain_labels_query);
	cJSON_AddStringToObject(o, "images_root", r->cfg->retrain_images_root);
	cJSON_AddNumberToObject(o, "rows", (double)r->ds.rows);
	cJSON_AddNumberToObject(o, "photos", (double)r->ds.n);
	cJSON_AddNumberToObject(o, "bad_rows", (double)r->ds.nbad);
	cJSON_AddNumberToObject(o, "labels", (double)r->ds.nlabels);
	cJSON_AddNumberToObject(o, "train_photos", (double)r->ntrain);
	cJSON_AddNumberToObject(o, "train_labels", r->nclasses);
	cJSON_AddNumberToObject(o, "validation_photos", (double)r->nval);
	cJSON_AddNumberToObject(o, "validation_ads", r->nads);
	cJSON_AddStringToObject(o, "validation_ads_from",
	                        r->cfg->retrain_ads_csv[0] ? r->cfg->retrain_ads_csv : "synthetic");
	cJSON_AddStringToObject(o, "fingerprint", r->ck.fingerprint);
	return o;
}

static cJSON *metrics_json(const struct rt *r, const struct val_score *cand,
                           const struct val_score *act, int64_t active_id)
{
	cJSON *o = cJSON_CreateObject();
	char key[32];

	if (!o)
		return NULL;
	snprintf(key, sizeof(key), "map_at_%d", r->mc.top_k);
	cJSON_AddNumberToObject(o, key, cand->map);
	cJSON_AddNumberToObject(o, "grouping_f1", cand->g.f1);
	cJSON_AddNumberToObject(o, "grouping_precision", cand->g.precision);
	cJSON_AddNumberToObject(o, "grouping_recall", cand->g.recall);
	cJSON_AddNumberToObject(o, "threshold", cand->threshold);
	cJSON_AddNumberToObject(o, "baseline_map", r->ck.baseline_map);
	cJSON_AddNumberToObject(o, "start_map", r->ck.start_map);
	if (active_id) {
		cJSON_AddNumberToObject(o, "active_model_id", (double)active_id);
		cJSON_AddNumberToObject(o, "active_map", act->map);
		cJSON_AddNumberToObject(o, "active_grouping_f1", act->g.f1);
		cJSON_AddNumberToObject(o, "active_threshold", act->threshold);
		cJSON_AddNumberToObject(o, "active_best_grouping_f1", act->best.f1);
		cJSON_AddNumberToObject(o, "active_best_threshold", act->best_threshold);
	}
	cJSON_AddItemToObject(o, "epochs", checkpoint_history_json(&r->ck));
	return o;
}

/* "<dir>/<backbone>-<UTC time>" that names no existing file. */
static int model_base(const struct rt *r, char *out, size_t cap, struct err *err)
{
	char stamp[32], probe[CONFIG_PATH_MAX + 32];
	time_t now = time(NULL);
	struct tm tm;
	int k;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (k = 1; k < 100; k++) {
		int n = k == 1 ? snprintf(out, cap, "%s/%s-%s", r->cfg->retrain_model_dir,
		                          r->mc.backbone, stamp)
		               : snprintf(out, cap, "%s/%s-%s-%d", r->cfg->retrain_model_dir,
		                          r->mc.backbone, stamp, k);

		if (n < 0 || (size_t)n >= cap)
			return err_set(err, ERR_FATAL, "retrain.model_dir: path too long");
		snprintf(probe, sizeof(probe), "%s.safetensors", out);
		if (access(probe, F_OK))
			return 0;
	}
	return err_set(err, ERR_FATAL, "retrain.model_dir: no free model name for %s", stamp);
}

struct outcome {
	char weights[CONFIG_PATH_MAX + 32], sidecar[CONFIG_PATH_MAX + 32];
	char sha[65];
	struct val_score cand, act;
	int64_t active_id, model_id, parent_id;
	int promoted;
	char verdict[160];
};

static int save_model(struct rt *r, struct outcome *oc, struct err *err)
{
	char base[CONFIG_PATH_MAX], dim[16], k[16];
	const char *meta[10];

	if (file_mkdirs(r->cfg->retrain_model_dir, err) || model_base(r, base, sizeof(base), err))
		return -1;
	snprintf(oc->weights, sizeof(oc->weights), "%s.safetensors", base);
	snprintf(oc->sidecar, sizeof(oc->sidecar), "%s.json", base);
	snprintf(dim, sizeof(dim), "%d", r->mc.embedding_size);
	snprintf(k, sizeof(k), "%d", r->mc.top_k);
	meta[0] = "format";
	meta[1] = "pt";
	meta[2] = "backbone";
	meta[3] = r->mc.backbone;
	meta[4] = "embedding_size";
	meta[5] = dim;
	meta[6] = "training_fingerprint";
	meta[7] = r->ck.fingerprint;
	meta[8] = "top_k_similar";
	meta[9] = k;
	if (train_save_weights(r->tr, oc->weights, meta, 5, err))
		return -1;
	return sha256_file(oc->weights, oc->sha, err);
}

static int write_sidecar(struct rt *r, const struct outcome *oc, struct err *err)
{
	cJSON *o = cJSON_CreateObject(), *img, *init;
	char *inf = registry_inference_json(&r->mc), *text = NULL;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	const char *slash = strrchr(oc->weights, '/');
	int ret = -1;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!o || !inf)
		goto oom;
	cJSON_AddStringToObject(o, "weights", slash ? slash + 1 : oc->weights);
	cJSON_AddStringToObject(o, "sha256", oc->sha);
	cJSON_AddStringToObject(o, "backbone", r->mc.backbone);
	cJSON_AddNumberToObject(o, "embedding_size", r->mc.embedding_size);
	img = cJSON_AddObjectToObject(o, "image");
	if (!img)
		goto oom;
	cJSON_AddNumberToObject(img, "height", r->mc.image_height);
	cJSON_AddNumberToObject(img, "width", r->mc.image_width);
	cJSON_AddItemToObject(o, "inference", cJSON_Parse(inf));
	cJSON_AddNumberToObject(o, "threshold", oc->cand.threshold);
	cJSON_AddItemToObject(o, "metrics", metrics_json(r, &oc->cand, &oc->act, oc->active_id));
	cJSON_AddNumberToObject(o, "seed", (double)r->ck.seed);
	cJSON_AddBoolToObject(o, "seed_was_random", r->ck.seed_random);
	cJSON_AddItemToObject(o, "data", data_json(r));
	cJSON_AddItemToObject(o, "config", config_json(r));
	init = cJSON_AddObjectToObject(o, "init_weights");
	if (!init)
		goto oom;
	cJSON_AddStringToObject(init, "path", r->init_weights[0] ? r->init_weights : "random");
	cJSON_AddStringToObject(init, "sha256", r->init_sha);
	if (oc->parent_id)
		cJSON_AddNumberToObject(o, "parent_model_id", (double)oc->parent_id);
	else
		cJSON_AddNullToObject(o, "parent_model_id");
	cJSON_AddNumberToObject(o, "run_id", (double)r->run_id);
	cJSON_AddStringToObject(o, "created_at", stamp);
	cJSON_AddStringToObject(o, "version", r->opts->version ? r->opts->version : "");
	text = cJSON_Print(o);
	if (!text)
		goto oom;
	ret = file_write_atomic(oc->sidecar, text, err);
	goto out;
oom:
	err_set(err, ERR_FATAL, "out of memory");
out:
	cJSON_free(text);
	free(inf);
	cJSON_Delete(o);
	return ret;
}

static char *json_text(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	return s;
}

static int register_model(struct rt *r, struct outcome *oc, struct err *err)
{
	struct store_model sm = {0};
	cJSON *tj = cJSON_CreateObject();
	char *inf = registry_inference_json(&r->mc);
	char *metrics = json_text(metrics_json(r, &oc->cand, &oc->act, oc->active_id));
	char *training = NULL;
	int ret = -1;

	if (tj) {
		cJSON_AddNumberToObject(tj, "seed", (double)r->ck.seed);
		cJSON_AddBoolToObject(tj, "seed_was_random", r->ck.seed_random);
		cJSON_AddItemToObject(tj, "data", data_json(r));
		cJSON_AddItemToObject(tj, "config", config_json(r));
		cJSON_AddStringToObject(tj, "init_weights",
		                        r->init_weights[0] ? r->init_weights : "random");
	}
	training = json_text(tj);
	if (!inf || !metrics || !training) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	sm.backbone = r->mc.backbone;
	sm.weights_path = oc->weights;
	sm.weights_sha256 = oc->sha;
	sm.embedding_dim = r->mc.embedding_size;
	sm.image_height = r->mc.image_height;
	sm.image_width = r->mc.image_width;
	sm.threshold = oc->cand.threshold;
	sm.metrics_json = metrics;
	sm.status = "candidate";
	sm.inference_json = inf;
	sm.training_json = training;
	sm.sidecar_path = oc->sidecar;
	sm.parent_id = oc->parent_id;
	sm.run_id = r->run_id;
	if (store_model_register(r->store, &sm, &oc->model_id, err))
		goto out;

	if (oc->model_id == oc->active_id) {
		snprintf(oc->verdict, sizeof(oc->verdict), "same weights as the active model");
	} else if (!r->cfg->retrain_promote) {
		snprintf(oc->verdict, sizeof(oc->verdict),
		         "kept as candidate (retrain.promote: "
		         "never)");
	} else if (oc->active_id && !(oc->cand.map > oc->act.map)) {
		snprintf(oc->verdict, sizeof(oc->verdict), "not better: map %.4f <= active %.4f",
		         oc->cand.map, oc->act.map);
	} else {
		char reason[160];

		if (oc->active_id)
			snprintf(reason, sizeof(reason), "map %.4f > active %.4f", oc->cand.map,
			         oc->act.map);
		else
			snprintf(reason, sizeof(reason), "no active model");
		if (store_model_activate(r->store, oc->model_id, "gate", r->run_id, reason, NULL,
		                         err))
			goto out;
		oc->promoted = 1;
		snprintf(oc->verdict, sizeof(oc->verdict), "promoted: %s", reason);
	}
	ret = 0;
out:
	free(inf);
	cJSON_free(metrics);
	cJSON_free(training);
	return ret;
}

/* Score the active model on the same validation photos, as it runs. */
static int score_active(struct rt *r, struct outcome *oc, struct err *err)
{
	struct store_model_info info;
	struct model_config mc;
	double thr = NAN;
	int ret;

	if (store_model_active(r->store, &oc->active_id, &thr, err))
		return -1;
	if (!oc->active_id)
		return 0;
	if (store_model_get(r->store, oc->active_id, &info, err))
		return -1;
	ret = registry_model_config(&info, &r->cfg->model, &mc, err);
	if (!ret)
		ret = score_weights(r, &mc, info.weights_path,
		                    isnan(thr) ? r->cfg->default_threshold : thr, &oc->act, err);
	store_model_info_free(&info);
	if (ret)
		return err_prefix(err, "evaluating the active model %lld",
		                  (long long)oc->active_id);
	return 0;
}

/* ---- the stage ---- */

static int setup_paths(struct rt *r, struct err *err)
{
	const struct config *cfg = r->cfg;

	if (cfg->retrain_model_config[0]) {
		if (config_load_model(&r->mc, cfg->retrain_model_config, err))
			return err_prefix(err, "%s: retrain.model_config", cfg->path);
	} else {
		r->mc = cfg->model;
	}
	snprintf(r->init_weights, sizeof(r->init_weights), "%s",
	         cfg->retrain_init_weights[0] ? cfg->retrain_init_weights : cfg->model_weights);
	if (cfg->retrain_checkpoint_dir[0])
		snprintf(r->ckpt_dir, sizeof(r->ckpt_dir), "%s", cfg->retrain_checkpoint_dir);
	else if (file_join(r->ckpt_dir, sizeof(r->ckpt_dir), cfg->retrain_model_dir, "checkpoints",
	                   err))
		return -1;
	return check_config(r, err);
}

static int choose_seed(struct rt *r, struct err *err)
{
	if (r->opts->resume)
		return checkpoint_read_seed(r->ckpt_dir, &r->ck.seed, &r->ck.seed_random, err);
	if (r->mc.train.seed >= 0) {
		r->ck.seed = (uint64_t)r->mc.train.seed;
		return 0;
	}
	/* -1: a random seed, recorded with the checkpoint and the model */
	if (getrandom(&r->ck.seed, sizeof(r->ck.seed), 0) != (ssize_t)sizeof(r->ck.seed))
		r->ck.seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
	r->ck.seed &= (UINT64_C(1) << 52) - 1; /* exact in JSON numbers */
	r->ck.seed_random = 1;
	return 0;
}

/* Weights with folded BatchNorm get running statistics measured on up to
 * CALIB_PHOTOS training photos (in a seeded order, not augmented). */
static int calibrate(struct rt *r, struct err *err)
{
	size_t bs = (size_t)r->mc.train.batch_size, n = r->ntrain, at, i;
	float *x = malloc(bs * r->ds.floats * sizeof(float));
	int *order = malloc((n ? n : 1) * sizeof(int));
	struct rng rng;
	int changed = -1;

	if (!x || !order) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	memcpy(order, r->train_idx, n * sizeof(int));
	rng_seed(&rng, rng_derive(r->ck.seed, 6, 0));
	rng_shuffle(&rng, order, n);
	if (n > CALIB_PHOTOS)
		n = CALIB_PHOTOS;
	for (at = 0; at < n; at += bs) {
		size_t m = n - at < bs ? n - at : bs;

		for (i = 0; i < m; i++)
			if (dataset_tensor(&r->ds, (size_t)order[at + i], x + i * r->ds.floats,
			                   err))
				goto out;
		if (train_bn_calibrate(r->tr, x, (int)m, r->ds.ropts.height, r->ds.ropts.width,
		                       err))
			goto out;
	}
	changed = train_bn_calibrate_end(r->tr, err);
	if (changed >= 0)
		log_info("retrain", "batchnorm recalibrated",
		         "reason=\"the weights have their batchnorm folded into the convs\" "
		         "layers=%d photos=%zu",
		         changed, n);
out:
	free(x);
	free(order);
	return changed < 0 ? -1 : 0;
}

/* Every training photo once, not augmented, to imprint the class weights. */
static int imprint(struct rt *r, struct err *err)
{
	size_t bs = (size_t)r->mc.train.batch_size, at, i;
	float *x = malloc(bs * r->ds.floats * sizeof(float));
	int *labels = malloc(bs * sizeof(int));
	int classes = -1;

	if (!x || !labels) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	for (at = 0; at < r->ntrain; at += bs) {
		size_t m = r->ntrain - at < bs ? r->ntrain - at : bs;

		for (i = 0; i < m; i++) {
			int idx = r->train_idx[at + i];

			if (dataset_tensor(&r->ds, (size_t)idx, x + i * r->ds.floats, err))
				goto out;
			labels[i] = r->cls[r->ds.photos[idx].label_id];
		}
		if (train_imprint(r->tr, x, labels, (int)m, r->ds.ropts.height, r->ds.ropts.width,
		                  err))
			goto out;
	}
	classes = train_imprint_end(r->tr, err);
	if (classes >= 0)
		log_info("retrain", "arcface weights imprinted", "classes=%d photos=%zu", classes,
		         r->ntrain);
out:
	free(x);
	free(labels);
	return classes < 0 ? -1 : 0;
}

static int train_all(struct rt *r, struct err *err)
{
	int epoch;

	if (checkpoint_lock(r->ckpt_dir, &r->lock_fd, err) || open_trainer(r, err))
		return -1;
	if (r->opts->resume) {
		if (checkpoint_resume(r->ckpt_dir, r->tr, &r->ck, r->val_names, r->nval_names, err))
			return -1;
	} else {
		if (checkpoint_exists(r->ckpt_dir))
			log_warn("retrain", "an unfinished retrain's checkpoint is replaced",
			         "checkpoint_dir=%s hint=\"--resume continues it\"", r->ckpt_dir);
		checkpoint_clear(r->ckpt_dir);
		if (baseline(r, err))
			return err_prefix(err, "scoring the starting weights");
		log_info("retrain", "starting weights scored", "map_at_%d=%.4f val_photos=%zu",
		         r->mc.top_k, r->ck.baseline_map, r->nval);
	}
	if (!r->opts->resume && train_bn_folded(r->tr) && calibrate(r, err))
		return err_prefix(err, "recalibrating BatchNorm");
	if (!r->opts->resume && r->cfg->retrain_imprint && imprint(r, err))
		return err_prefix(err, "imprinting the ArcFace weights");
	if (!r->opts->resume) {
		/* the network as training starts: with a new head, if the weights
		 * had none, it is not the model the baseline scored */
		if (trainer_map(r, &r->ck.start_map, err))
			return -1;
		log_info("retrain", "training starts", "map_at_%d=%.4f", r->mc.top_k,
		         r->ck.start_map);
	}
	for (epoch = r->ck.epoch + 1; epoch <= r->mc.train.epochs; epoch++)
		if (run_epoch(r, epoch, err))
			return -1;
	return 0;
}

/* One retrain at a time (scope "retrain"): RUN_OK with the lock held,
 * RUN_BUSY or RUN_FAILED. A retrain row still 'running' then belongs to a
 * process that died and is closed as failed. */
static int take_lock(struct rt *r, struct err *err)
{
	int rc = lock_take(r->store, r->cfg->db_conninfo, "retrain", NULL, r->cfg->lock_wait_s,
	                   &stop_requested, &r->lock, err);

	return rc > 0 ? RUN_BUSY : rc < 0 ? RUN_FAILED : RUN_OK;
}

static void free_rt(struct rt *r)
{
	train_close(r->tr);
	dataset_free(&r->ds);
	free(r->state);
	free(r->cls);
	free(r->train_idx);
	free(r->val_idx);
	free(r->val_labels);
	free(r->val_ad);
	free(r->val_names);
	lock_release(r->lock);
	store_close(r->store);
	if (r->lock_fd > 0)
		close(r->lock_fd);
}

int retrain_run(const struct config *cfg, const struct retrain_opts *opts)
{
	struct rt *r = calloc(1, sizeof(*r));
	struct outcome oc;
	struct err err = {0};
	double t0 = proc_now_s();
	int code = RUN_FAILED, applied = 0;
	const char *status;

	memset(&oc, 0, sizeof(oc));
	oc.cand.map = oc.act.map = NAN;
	oc.act.threshold = oc.act.best_threshold = NAN;
	if (!r) {
		log_error("retrain", "out of memory", NULL);
		return RUN_FAILED;
	}
	r->cfg = cfg;
	r->opts = opts;
	observe_begin(&r->obs, cfg, "retrain", NULL, opts->version);
	r->threads = cfg->torch_threads ? cfg->torch_threads : proc_ncpu();
	r->ck.baseline_map = r->ck.start_map = NAN;
	gethostname(r->host, sizeof(r->host) - 1);
	if (setup_paths(r, &err)) {
		code = RUN_USAGE;
		goto out;
	}
	if (r->init_weights[0] && sha256_file(r->init_weights, r->init_sha, &err))
		goto out;
	r->store = store_open(cfg->db_conninfo, &err);
	if (!r->store || store_migrate(r->store, cfg->sql_dir, &applied, &err))
		goto out;
	if ((code = take_lock(r, &err)) != RUN_OK)
		goto out;
	code = RUN_FAILED;
	{
		struct store_run sr = {"retrain", NULL, r->host, opts->version, 0};

		if (store_run_begin(r->store, &sr, &r->run_id, &err))
			goto out;
	}
	observe_ready(&r->obs, r->store, r->run_id, 0, -1);
	log_info("retrain", "retrain started",
	         "run_id=%lld model_config=%s backbone=%s "
	         "size=%dx%d epochs=%d resume=%d",
	         (long long)r->run_id, r->mc.path, r->mc.backbone, r->mc.image_width,
	         r->mc.image_height, r->mc.train.epochs, opts->resume);
	observe_phase(&r->obs, "reading and decoding the labelled photos");
	if (load_data(r, &err) || choose_seed(r, &err) || make_split(r, &err))
		goto out;
	fingerprint(r);
	if (train_all(r, &err))
		goto out;

	observe_phase(&r->obs, "scoring the new and the active model");
	if (save_model(r, &oc, &err) || score_weights(r, &r->mc, oc.weights, NAN, &oc.cand, &err) ||
	    score_active(r, &oc, &err))
		goto out;
	if (r->init_sha[0] && store_model_by_sha(r->store, r->init_sha, &oc.parent_id, &err))
		goto out;
	if (write_sidecar(r, &oc, &err) || register_model(r, &oc, &err))
		goto out;
	checkpoint_clear(r->ckpt_dir);
	code = r->ds.nbad ? RUN_PARTIAL : RUN_OK;
out:
	if (code == RUN_FAILED && stop_requested)
		code = RUN_STOPPED;
	status = run_status_name(code);
	if (code == RUN_FAILED || code == RUN_USAGE)
		log_error("retrain", "retrain failed", "kind=%s error=\"%s\"",
		          err_kind_name(err.kind), err.msg);
	if (code == RUN_STOPPED)
		log_warn("retrain", "retrain stopped", "error=\"%s\"", err.msg);
	if (r->store && r->run_id) {
		struct store_run_counts c = {r->ds.rows, (long)r->ds.n, (long)r->ds.nbad, 0,
		                             proc_now_s() - t0};
		struct err e2 = {0};

		if (store_run_finish(r->store, r->run_id, status, &c, &e2))
			log_error("retrain", "could not record the run's end", "error=\"%s\"",
			          e2.msg);
	}
	/* a run turned away by the lock leaves the running one's metrics alone */
	if (code != RUN_BUSY) {
		r->obs.metrics.photos_in = r->ds.rows;
		r->obs.metrics.embedded = (long)r->ds.n;
		r->obs.metrics.failed = (long)r->ds.nbad;
		r->obs.metrics.model_id = oc.model_id;
		observe_end(&r->obs, r->store, r->run_id, status, code, 0, 0,
		            code == RUN_OK || code == RUN_PARTIAL ? NULL : err.msg);
	}
	if (code == RUN_OK || code == RUN_PARTIAL)
		log_info("retrain", "retrain finished",
		         "run_id=%lld status=%s model_id=%lld promoted=%d verdict=\"%s\" "
		         "map_at_%d=%.4f baseline_map=%.4f start_map=%.4f active_model_id=%lld "
		         "active_map=%.4f threshold=%.2f grouping_f1=%.4f active_threshold=%.2f "
		         "active_grouping_f1=%.4f active_best_threshold=%.2f "
		         "active_best_grouping_f1=%.4f seed=%llu weights=%s elapsed_s=%.1f",
		         (long long)r->run_id, status, (long long)oc.model_id, oc.promoted,
		         oc.verdict, r->mc.top_k, oc.cand.map, r->ck.baseline_map, r->ck.start_map,
		         (long long)oc.active_id, oc.act.map, oc.cand.threshold, oc.cand.g.f1,
		         oc.act.threshold, oc.act.g.f1, oc.act.best_threshold, oc.act.best.f1,
		         (unsigned long long)r->ck.seed, oc.weights, proc_now_s() - t0);
	free_rt(r);
	free(r);
	return code;
}
