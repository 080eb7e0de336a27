/* run.c - wires the stages of one run together. */
#include "run.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch.h"
#include "group.h"
#include "item.h"
#include "lock.h"
#include "log.h"
#include "model.h"
#include "observe.h"
#include "proc.h"
#include "queue.h"
#include "registry.h"
#include "resize.h"
#include "sha256.h"
#include "source.h"
#include "store.h"
#include "strset.h"

#define GROUP_ADS_PER_TX  256
#define UNGROUPED_ADS_MAX 100000

static volatile sig_atomic_t stop_requested;

void run_request_stop(void)
{
	stop_requested = 1;
}

const char *run_status_name(int code)
{
	return code == RUN_OK        ? "ok"
	       : code == RUN_PARTIAL ? "partial"
	       : code == RUN_STOPPED ? "stopped"
	       : code == RUN_BUSY    ? "busy"
	                             : "failed";
}

/* A batch of items on its way from the embed thread to the store. */
struct batch {
	struct item **items;
	size_t n;
};

struct run {
	const struct config *cfg;
	const struct run_opts *opts;
	struct source *src;
	pthread_mutex_t src_lock;
	struct fetch fetch;
	struct resize_opts ropts;
	struct model *model;
	struct store *store;
	struct run_lock *lock;
	struct observe obs;
	struct queue *q_embed; /* struct item * */
	struct queue *q_store; /* struct batch * */
	int64_t run_id, model_id;
	double threshold;
	int dim;

	/* set by any thread that hits a fatal error; guarded by err_lock */
	pthread_mutex_t err_lock;
	int failed;
	struct err err;

	/* CPU turns: while a forward pass runs on the CPU, resize threads wait between photos
	 * (see cpu_turn_wait); guarded by turn_lock */
	pthread_mutex_t turn_lock;
	pthread_cond_t turn_done;
	int turns, forward_running;
	/* stage times in seconds, guarded by turn_lock */
	double resize_s, embed_wait_s;

	/* store thread only */
	struct strset ads;
	long ads_grouped, groups; /* photos are counted in obs.metrics */
};

/* Record the first fatal error and stop every stage. */
static void run_fail(struct run *r, const struct err *e)
{
	pthread_mutex_lock(&r->err_lock);
	if (!r->failed) {
		r->failed = 1;
		r->err = *e;
	}
	pthread_mutex_unlock(&r->err_lock);
	queue_abort(r->q_embed);
	queue_abort(r->q_store);
}

static void batch_free(struct batch *b)
{
	size_t i;

	if (!b)
		return;
	for (i = 0; i < b->n; i++) {
		item_release(b->items[i]);
		free(b->items[i]);
	}
	free(b->items);
	free(b);
}

/* ---- CPU turns ----
 *
 * On a CPU device the resize threads and libtorch's intra-op threads compete for the same
 * cores. With both running at once, libtorch's threads wait at their barriers for a thread
 * the kernel has given to a resize. Taking turns gives each stage every core while it runs:
 * a forward pass starts at once (photos already being resized finish), and resizing resumes
 * when it ends. With a GPU the forward does not need the cores, so there are no turns.
 * Measured with passive OpenMP waits on 2 shared cores, turns used the same CPU per photo
 * and were slower in wall time, so they are off unless pipeline.cpu_turns asks. */

static void cpu_turn_wait(struct run *r)
{
	if (!r->turns)
		return;
	pthread_mutex_lock(&r->turn_lock);
	while (r->forward_running)
		pthread_cond_wait(&r->turn_done, &r->turn_lock);
	pthread_mutex_unlock(&r->turn_lock);
}

static void cpu_turn_set(struct run *r, int running)
{
	if (!r->turns)
		return;
	pthread_mutex_lock(&r->turn_lock);
	r->forward_running = running;
	if (!running)
		pthread_cond_broadcast(&r->turn_done);
	pthread_mutex_unlock(&r->turn_lock);
}

static void add_time(struct run *r, double *sum, double dt)
{
	pthread_mutex_lock(&r->turn_lock);
	*sum += dt;
	pthread_mutex_unlock(&r->turn_lock);
}

/* ---- resize workers ---- */

static void process_item(struct run *r, struct item *it)
{
	struct resize_info info;
	struct err e = {0};
	void *buf = NULL;
	size_t len = 0;
	size_t floats = 3 * (size_t)r->ropts.width * (size_t)r->ropts.height;

	if (fetch_url(&r->fetch, it->url, &buf, &len, &e)) {
		item_fail(it, "fetch", e.msg);
		goto out;
	}
	sha256_hex(buf, len, it->sha256);
	it->tensor = malloc(floats * sizeof(float));
	if (!it->tensor) {
		item_fail(it, "resize", "out of memory");
		goto out;
	}
	if (resize_buffer(&r->ropts, buf, len, it->tensor, &info, &e)) {
		item_fail(it, "resize", e.msg);
		free(it->tensor);
		it->tensor = NULL;
		goto out;
	}
	it->width = info.src_width;
	it->height = info.src_height;
out:
	free(buf);
}

static void *resize_worker(void *arg)
{
	struct run *r = arg;
	struct err e = {0};

	for (;;) {
		struct item *it = calloc(1, sizeof(*it));
		int got;

		if (!it) {
			err_set(&e, ERR_FATAL, "out of memory");
			run_fail(r, &e);
			break;
		}
		cpu_turn_wait(r);
		pthread_mutex_lock(&r->src_lock);
		got = stop_requested ? 0 : source_next(r->src, it, &e);
		pthread_mutex_unlock(&r->src_lock);
		if (got <= 0) {
			free(it);
			if (got < 0)
				run_fail(r, &e);
			break;
		}
		if (it->ok) {
			double t = proc_now_s();

			process_item(r, it);
			add_time(r, &r->resize_s, proc_now_s() - t);
			observe_stage(&r->obs, METRICS_RESIZE, t);
		}
		if (queue_push(r->q_embed, it)) {
			item_release(it);
			free(it);
			break;
		}
	}
	queue_producer_done(r->q_embed);
	return NULL;
}

/* ---- embed thread ---- */

static int embed_batch(struct run *r, struct batch *b, float *input, float *output)
{
	size_t floats = 3 * (size_t)r->ropts.width * (size_t)r->ropts.height;
	struct err e = {0};
	double t;
	size_t i;
	int n = 0;

	for (i = 0; i < b->n; i++)
		if (b->items[i]->ok)
			memcpy(input + (size_t)n++ * floats, b->items[i]->tensor,
			       floats * sizeof(float));
	if (n == 0)
		return 0;
	cpu_turn_set(r, 1);
	t = proc_now_s();
	if (model_embed(r->model, input, n, r->ropts.height, r->ropts.width, output, &e)) {
		cpu_turn_set(r, 0);
		run_fail(r, &e);
		return -1;
	}
	cpu_turn_set(r, 0);
	observe_stage(&r->obs, METRICS_EMBED, t);
	n = 0;
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];

		if (!it->ok)
			continue;
		it->embedding = malloc((size_t)r->dim * sizeof(float));
		if (!it->embedding) {
			err_set(&e, ERR_FATAL, "out of memory");
			run_fail(r, &e);
			return -1;
		}
		memcpy(it->embedding, output + (size_t)n++ * (size_t)r->dim,
		       (size_t)r->dim * sizeof(float));
		free(it->tensor);
		it->tensor = NULL;
	}
	return 0;
}

static void *embed_thread(void *arg)
{
	struct run *r = arg;
	size_t bs = (size_t)r->cfg->batch_size;
	size_t floats = 3 * (size_t)r->ropts.width * (size_t)r->ropts.height;
	float *input = malloc(bs * floats * sizeof(float));
	float *output = malloc(bs * (size_t)r->dim * sizeof(float));
	struct err e = {0};
	int done = 0;

	if (!input || !output) {
		err_set(&e, ERR_FATAL, "out of memory for a batch of %zu", bs);
		run_fail(r, &e);
		done = 1;
	}
	while (!done) {
		struct batch *b = calloc(1, sizeof(*b));
		double t0;
		void *p;
		int got = 0;

		if (!b || !(b->items = calloc(bs, sizeof(*b->items)))) {
			free(b);
			err_set(&e, ERR_FATAL, "out of memory");
			run_fail(r, &e);
			break;
		}
		t0 = proc_now_s();
		while (b->n < bs && (got = queue_pop(r->q_embed, &p)) == 1)
			b->items[b->n++] = p;
		add_time(r, &r->embed_wait_s, proc_now_s() - t0);
		if (got < 0 || (b->n > 0 && embed_batch(r, b, input, output)) ||
		    (b->n > 0 && queue_push(r->q_store, b))) {
			batch_free(b);
			break;
		}
		if (b->n == 0)
			batch_free(b);
		done = got == 0;
	}
	free(input);
	free(output);
	queue_producer_done(r->q_store);
	return NULL;
}

/* ---- store, with retries ---- */

typedef int (*store_op)(struct run *r, void *arg, struct err *err);

/* Run OP, reconnecting with backoff while it fails with ERR_RETRY, at most
 * database.retries attempts. ERR keeps the last failure's reason. */
static int store_retry(struct run *r, store_op op, void *arg, struct err *err)
{
	double delay = 0.5;
	int attempt;

	for (attempt = 1;; attempt++) {
		if (r->store) {
			err_clear(err);
			if (!op(r, arg, err))
				return 0;
			if (err->kind != ERR_RETRY)
				return -1;
		}
		if (attempt >= r->cfg->db_retries)
			return err_prefix(err, "database still failing after %d attempts", attempt);
		log_warn("store", "database unavailable, retrying",
		         "attempt=%d delay_s=%.1f "
		         "error=\"%s\"",
		         attempt, delay, err->msg);
		usleep((useconds_t)(delay * 1e6));
		delay = delay * 2 > 8 ? 8 : delay * 2;
		store_close(r->store);
		r->store = store_open(r->cfg->db_conninfo, err);
		if (!r->store && err->kind != ERR_RETRY)
			return -1;
	}
}

static int op_write_images(struct run *r, void *arg, struct err *err)
{
	struct batch *b = arg;
	struct store_image *imgs = calloc(b->n, sizeof(*imgs));
	char **owners = calloc(b->n, sizeof(*owners));
	struct item **at = calloc(b->n, sizeof(*at));
	size_t i, n = 0;
	int ret;

	if (!imgs || !owners || !at) {
		free(imgs);
		free(owners);
		free(at);
		return err_set(err, ERR_FATAL, "out of memory");
	}
	for (i = 0; i < b->n; i++) {
		const struct item *it = b->items[i];
		struct store_image *s = &imgs[n];

		if (!it->has_identity)
			continue;
		s->image_id = it->image_id;
		s->ad_id = it->ad_id;
		s->url = it->url;
		s->created_at = it->created_at[0] ? it->created_at : NULL;
		s->source = it->source;
		s->ok = it->ok;
		s->failure_stage = it->ok ? NULL : it->failure_stage;
		s->failure_reason = it->ok ? NULL : it->failure_reason;
		s->width = it->width;
		s->height = it->height;
		s->content_sha256 = it->sha256[0] ? it->sha256 : NULL;
		s->embedding = it->embedding;
		s->dim = it->ok ? r->dim : 0;
		at[n] = b->items[i];
		n++;
	}
	ret = n ? store_write_images(r->store, r->run_id, r->model_id, imgs, n, owners, err) : 0;
	for (i = 0; i < n; i++) {
		char reason[sizeof(at[i]->failure_reason)];

		if (!owners[i])
			continue;
		/* recorded as failed by the store; counted as such from here on */
		snprintf(reason, sizeof(reason), "image id belongs to another ad: %s", owners[i]);
		item_fail(at[i], "store", reason);
		free(owners[i]);
	}
	free(owners);
	free(at);
	free(imgs);
	return ret;
}

static int op_write_failure(struct run *r, void *arg, struct err *err)
{
	const struct item *it = arg;

	return store_write_failure(r->store, r->run_id, it->source, NULL, NULL, it->failure_stage,
	                           it->failure_reason, err);
}

static int store_batch(struct run *r, struct batch *b, struct err *err)
{
	size_t i;

	if (!r->opts->dry_run) {
		if (store_retry(r, op_write_images, b, err))
			return -1;
		for (i = 0; i < b->n; i++)
			if (!b->items[i]->has_identity &&
			    store_retry(r, op_write_failure, b->items[i], err))
				return -1;
	}
	for (i = 0; i < b->n; i++) {
		const struct item *it = b->items[i];

		/* durable now (or recorded as failed): the source may move past it */
		if (!r->opts->dry_run)
			source_ack(r->src, it);
		observe_item(&r->obs, it);
		if (!it->ok)
			log_debug(LOGC_ALL, "run", "photo failed",
			          "image_id=%s source=%s stage=%s "
			          "reason=\"%s\"",
			          it->image_id, it->source, it->failure_stage, it->failure_reason);
		if (it->has_identity && strset_add(&r->ads, it->ad_id) < 0)
			return err_set(err, ERR_FATAL, "out of memory");
	}
	return 0;
}

/* ---- grouping ---- */

/* The groups of a chunk of ads, written in one transaction. */
struct group_job {
	char **ads;
	size_t n;
	struct store_group *rows; /* image_id and group_id owned */
	size_t nrows, cap;
	long ads_grouped, groups;
};

static void job_clear(struct group_job *job)
{
	size_t i;

	for (i = 0; i < job->nrows; i++) {
		free((char *)job->rows[i].image_id);
		free((char *)job->rows[i].group_id);
	}
	job->nrows = 0;
	job->ads_grouped = 0;
	job->groups = 0;
}

static int job_add(struct group_job *job, const char *ad, const char *image_id,
                   const char *first_id, struct err *err)
{
	char gid[2 * ITEM_ID_MAX + 2];
	struct store_group *row;

	if (job->nrows == job->cap) {
		size_t cap = job->cap ? job->cap * 2 : 1024;
		struct store_group *rows = realloc(job->rows, cap * sizeof(*rows));

		if (!rows)
			return err_set(err, ERR_FATAL, "out of memory");
		job->rows = rows;
		job->cap = cap;
	}
	group_id_format(ad, first_id, gid, sizeof(gid));
	row = &job->rows[job->nrows];
	row->ad_id = ad;
	row->image_id = strdup(image_id);
	row->group_id = strdup(gid);
	job->nrows++;
	if (!row->image_id || !row->group_id)
		return err_set(err, ERR_FATAL, "out of memory");
	return 0;
}

/* Group every ad of JOB from its stored embeddings and write the groups.
 * LIMIT: an ad is grouped over the photos the model has embedded; after a
 * promotion, photos of the ad that arrived on other dates join its groups
 * once those dates are run again. */
static int group_ads(struct run *r, struct group_job *job, struct err *err)
{
	size_t a;

	job_clear(job);
	for (a = 0; a < job->n; a++) {
		struct store_emb_set set = {0};
		int *labels = NULL;
		size_t i;
		int g = 0;

		if (store_ad_embeddings(r->store, r->model_id, job->ads[a], &set, err))
			return -1;
		labels = malloc((set.n ? set.n : 1) * sizeof(*labels));
		if (!labels) {
			store_emb_set_free(&set);
			return err_set(err, ERR_FATAL, "out of memory");
		}
		if (set.n)
			g = group_cluster(set.emb, set.n, set.dim,
			                  (const char *const *)set.image_ids, r->threshold,
			                  r->cfg->linkage, labels, err);
		if (g < 0) {
			log_warn("group", "ad not grouped", "ad_id=%s error=\"%s\"", job->ads[a],
			         err->msg);
			err_clear(err);
		}
		for (i = 0; g > 0 && i < set.n; i++)
			if (job_add(job, job->ads[a], set.image_ids[i], set.image_ids[labels[i]],
			            err))
				g = -2;
		free(labels);
		store_emb_set_free(&set);
		if (g == -2)
			return -1;
		if (g > 0) {
			job->ads_grouped++;
			job->groups += g;
		}
	}
	return store_write_groups(r->store, r->run_id, r->model_id, job->rows, job->nrows, err);
}

/* Another process may be grouping the same ads (a rebalance moved their
 * partition, or it picked them up as ungrouped): the lock orders the two. */
static int op_group_ads(struct run *r, void *arg, struct err *err)
{
	struct err e2 = {0};
	int ret;

	if (store_groups_lock(r->store, 1, err))
		return -1;
	ret = group_ads(r, arg, err);
	if (store_groups_lock(r->store, 0, &e2) && !ret) {
		*err = e2;
		ret = -1;
	}
	return ret;
}

/* Ads whose photos an earlier run stored but did not group (it stopped in
 * between, after its source had moved past them) are grouped now too.
 * LIMIT: at most UNGROUPED_ADS_MAX of them per run; the rest the next run. */
static int op_add_ungrouped(struct run *r, void *arg, struct err *err)
{
	char **ads = NULL;
	size_t n = 0, i, added = 0;
	int ret = 0, a;

	if (store_ungrouped_ads(r->store, r->model_id, UNGROUPED_ADS_MAX, &ads, &n, err))
		return -1;
	for (i = 0; i < n; i++) {
		if (!ret && (a = strset_add(&r->ads, ads[i])) < 0)
			ret = err_set(err, ERR_FATAL, "out of memory");
		else if (!ret)
			added += (size_t)a;
		free(ads[i]);
	}
	free(ads);
	if (added)
		log_info("run", "ads left ungrouped by an earlier run are grouped too", "ads=%zu",
		         added);
	return ret;
}

static int group_touched(struct run *r, struct err *err)
{
	struct group_job job = {0};
	size_t n = 0, at;
	char **ads;
	int ret = -1;

	if (store_retry(r, op_add_ungrouped, NULL, err))
		return -1;
	ads = strset_sorted(&r->ads, group_id_cmp, &n);
	if (!ads)
		return err_set(err, ERR_FATAL, "out of memory");
	for (at = 0; at < n; at += GROUP_ADS_PER_TX) {
		job.ads = ads + at;
		job.n = n - at < GROUP_ADS_PER_TX ? n - at : GROUP_ADS_PER_TX;
		if (store_retry(r, op_group_ads, &job, err))
			goto out;
		r->ads_grouped += job.ads_grouped;
		r->groups += job.groups;
	}
	ret = 0;
out:
	job_clear(&job);
	free(job.rows);
	free(ads);
	return ret;
}

/* ---- the run ---- */

static int open_model(struct run *r, const struct model_config *mc, const char *weights,
                      struct err *err)
{
	struct model_opts mo;

	registry_model_opts(mc, weights, r->cfg->device,
	                    r->cfg->torch_threads ? r->cfg->torch_threads : proc_ncpu(),
	                    r->cfg->channels_last, &mo);
	mo.precision = r->cfg->precision ? MODEL_PREC_FP16 : MODEL_PREC_FP32;
	r->model = model_open(&mo, err);
	if (!r->model)
		return -1;
	r->dim = model_dim(r->model);
	registry_resize_opts(mc, r->cfg, &r->ropts);
	return 0;
}

/* Embed with the active model: the one in the registry, as it was trained
 * (backbone, size, normalisation), from its weights file, which must still
 * have the registered checksum. */
static int switch_to_active(struct run *r, int64_t active, struct err *err)
{
	struct store_model_info info;
	struct model_config mc;
	int ret = -1;

	if (store_model_get(r->store, active, &info, err))
		return -1;
	if (registry_model_config(&info, &r->cfg->model, &mc, err) ||
	    registry_check_weights(&info, err)) {
		err_prefix(err, "the active model cannot be run (promote another one)");
		goto out;
	}
	model_close(r->model);
	r->model = NULL;
	if (open_model(r, &mc, info.weights_path, err))
		goto out;
	log_info("run", "embedding with the active model",
	         "model_id=%lld backbone=%s "
	         "weights=%s size=%dx%d dim=%d",
	         (long long)active, mc.backbone, info.weights_path, mc.image_width, mc.image_height,
	         r->dim);
	ret = 0;
out:
	store_model_info_free(&info);
	return ret;
}

/* The configured weights are registered (the first model becomes active);
 * once another model is active, the run embeds with that one instead. */
static int open_store(struct run *r, struct err *err)
{
	struct store_model sm = {0};
	char sha[SHA256_HEX_SIZE];
	char *inference = NULL;
	int64_t active = 0;
	double active_threshold = NAN;
	int applied = 0, ret = -1;

	if (sha256_file(r->cfg->model_weights, sha, err))
		return err_prefix(err, "model.weights");
	r->store = store_open(r->cfg->db_conninfo, err);
	if (!r->store)
		return -1;
	if (store_migrate(r->store, r->cfg->sql_dir, &applied, err))
		return -1;
	if (applied)
		log_info("store", "migrations applied", "count=%d", applied);
	if (store_model_active(r->store, &active, &active_threshold, err))
		return -1;
	inference = registry_inference_json(&r->cfg->model);
	if (!inference)
		return err_set(err, ERR_FATAL, "out of memory");
	sm.backbone = r->cfg->model.backbone;
	sm.weights_path = r->cfg->model_weights;
	sm.weights_sha256 = sha;
	sm.embedding_dim = r->dim;
	sm.image_height = r->cfg->model.image_height;
	sm.image_width = r->cfg->model.image_width;
	sm.threshold = NAN;
	sm.status = active ? "candidate" : "active";
	sm.inference_json = inference;
	if (store_model_register(r->store, &sm, &r->model_id, err))
		goto out;
	if (active && active != r->model_id) {
		log_info("run", "configured weights are registered but not active",
		         "model_id=%lld active_model_id=%lld hint=\"pipeline-run --promote %lld\"",
		         (long long)r->model_id, (long long)active, (long long)r->model_id);
		if (switch_to_active(r, active, err))
			goto out;
		r->model_id = active;
	}
	if (isnan(r->threshold) && active == r->model_id && !isnan(active_threshold))
		r->threshold = active_threshold;
	ret = 0;
out:
	free(inference);
	return ret;
}

static int start_stages(struct run *r, pthread_t *workers, int nworkers, pthread_t *embedder,
                        struct err *err)
{
	int i;

	r->q_embed = queue_new((size_t)r->cfg->queue_depth, nworkers);
	r->q_store = queue_new(4, 1);
	if (!r->q_embed || !r->q_store)
		return err_set(err, ERR_FATAL, "out of memory");
	for (i = 0; i < nworkers; i++)
		if (pthread_create(&workers[i], NULL, resize_worker, r))
			return err_set(err, ERR_FATAL, "cannot start resize thread");
	if (pthread_create(embedder, NULL, embed_thread, r))
		return err_set(err, ERR_FATAL, "cannot start embed thread");
	return 0;
}

/* Drain the store queue on this thread until the embed thread is done. */
static void store_loop(struct run *r)
{
	struct err e = {0};
	void *p;
	int got;

	while ((got = queue_pop(r->q_store, &p)) == 1) {
		struct batch *b = p;
		double t = proc_now_s();

		if (store_batch(r, b, &e))
			run_fail(r, &e);
		observe_stage(&r->obs, METRICS_STORE, t);
		batch_free(b);
		observe_tick(&r->obs, stop_requested);
		if (r->lock && lock_check(r->lock, &e) > 0)
			run_fail(r, &e);
	}
}

/* Free what an aborted run left in the queues (all threads have stopped). */
static void drain(struct run *r)
{
	void *p;

	while (r->q_embed && queue_steal(r->q_embed, &p)) {
		item_release(p);
		free(p);
	}
	while (r->q_store && queue_steal(r->q_store, &p))
		batch_free(p);
}

/* Where the run's time went: photo decoding summed over the resize threads, the embed
 * thread's wait for photos, and model_embed() calls with the network's share of them. */
static void log_stage_times(struct run *r, double elapsed)
{
	struct model_stats ms = {0};
	const char *omp = getenv("OMP_WAIT_POLICY");

	if (r->model)
		model_stats_get(r->model, &ms);
	log_info("run", "stage times",
	         "elapsed_s=%.2f cpu_s=%.2f resize_s=%.2f "
	         "embed_wait_s=%.2f embed_calls_s=%.2f forward_s=%.2f cpu_turns=%d "
	         "omp_wait_policy=%s",
	         elapsed, proc_cpu_s(), r->resize_s, r->embed_wait_s, ms.call_s, ms.forward_s,
	         r->turns, omp ? omp : "default");
}

/* One run per scope: returns RUN_OK with the lock held, RUN_BUSY or
 * RUN_FAILED. */
static int take_lock(struct run *r, const char *kind, struct err *err)
{
	int rc = lock_take(r->store, r->cfg->db_conninfo, kind, r->opts->date, r->cfg->lock_wait_s,
	                   &stop_requested, &r->lock, err);

	return rc > 0 ? RUN_BUSY : rc < 0 ? RUN_FAILED : RUN_OK;
}

int run_nightly(const struct config *cfg, const struct run_opts *o)
{
	struct run r = {0};
	struct source_window win = {0};
	struct err err = {0};
	pthread_t workers[256];
	pthread_t embedder;
	int nworkers = cfg->resize_threads ? cfg->resize_threads : proc_ncpu();
	int started = 0, embed_started = 0, i;
	double t0 = proc_now_s(), tg;
	const char *status;
	const char *kind = o->date || o->since || o->until ? "backfill" : "nightly";
	int code = RUN_FAILED;
	char host[256] = "";
	char user_agent[64];

	if (nworkers > (int)(sizeof(workers) / sizeof(workers[0])))
		nworkers = (int)(sizeof(workers) / sizeof(workers[0]));
	r.cfg = cfg;
	r.opts = o;
	r.threshold = cfg->threshold;
	pthread_mutex_init(&r.src_lock, NULL);
	pthread_mutex_init(&r.err_lock, NULL);
	pthread_mutex_init(&r.turn_lock, NULL);
	pthread_cond_init(&r.turn_done, NULL);
	gethostname(host, sizeof(host) - 1);
	observe_begin(&r.obs, cfg, kind, o->date, o->version);

	if (source_window_parse(o->date, o->since, o->until, &win, &err)) {
		code = RUN_USAGE;
		goto out;
	}
	r.fetch.max_bytes = (size_t)cfg->max_bytes;
	r.fetch.timeout_s = cfg->fetch.timeout_s;
	r.fetch.connect_timeout_s = cfg->fetch.connect_timeout_s;
	r.fetch.max_redirects = cfg->fetch.max_redirects;
	r.fetch.low_speed_bytes = cfg->fetch.low_speed_bytes;
	r.fetch.low_speed_s = cfg->fetch.low_speed_s;
	r.fetch.allow_private = cfg->fetch.allow_private;
	snprintf(user_agent, sizeof(user_agent), "pipeline-run/%s", o->version ? o->version : "");
	r.fetch.user_agent = user_agent;
	if (fetch_global_init(&err))
		goto out;

	/* an unusable images folder or weights file is a configuration error.
	 * LIMIT: file:// urls may read one folder, source.images_root (fetch takes
	 * up to FETCH_MAX_ROOTS, the config names one). */
	if (cfg->images_root[0] && fetch_add_root(&r.fetch, cfg->images_root, &err)) {
		config_blame(cfg, "source.images_root", &err);
		code = RUN_USAGE;
		goto out;
	}
	/* LIMIT: the configured weights are loaded (to register them) even when another model
	 * is active and embeds instead: about a second and a warning about unused weights */
	if (open_model(&r, &cfg->model, cfg->model_weights, &err)) {
		/* the model's device errors start with "unknown device" or "device " */
		int device =
		    !strncmp(err.msg, "device ", 7) || !strncmp(err.msg, "unknown device", 14);

		config_blame(cfg, device ? "model.device" : "model.weights", &err);
		code = RUN_USAGE;
		goto out;
	}
	r.turns = cfg->cpu_turns && !strcmp(model_device(r.model), "cpu");
	if (!o->dry_run && open_store(&r, &err))
		goto out;
	/* Nightly Kafka workers share the partitions through their consumer
	 * group, so several run side by side (scale-out) instead of locking.
	 * LIMIT: without a lock, a Kafka nightly run that died stays 'running'
	 * in pipeline_runs and status cannot tell a live one from a dead one. */
	if (!o->dry_run && !(cfg->source == SOURCE_KAFKA && !strcmp(kind, "nightly")) &&
	    (code = take_lock(&r, kind, &err)) != RUN_OK)
		goto out;
	code = RUN_FAILED;
	if (isnan(r.threshold))
		r.threshold = cfg->default_threshold;
	if (!o->dry_run) {
		struct store_run sr = {kind, o->date, host, o->version, r.model_id};

		if (store_run_begin(r.store, &sr, &r.run_id, &err))
			goto out;
	}
	r.src = source_open(cfg, &win, &err);
	if (!r.src)
		goto out;
	source_set_stop(r.src, &stop_requested);
	observe_ready(&r.obs, r.store, r.run_id, r.model_id, observe_count_source(cfg, &win));
	log_info("run", "run started",
	         "run_id=%lld source=%s date=%s since=%s until=%s "
	         "model_id=%lld threshold=%.3f linkage=%s resize_threads=%d batch=%d dry_run=%d",
	         (long long)r.run_id, config_source_name(cfg->source), o->date ? o->date : "all",
	         o->since ? o->since : "-", o->until ? o->until : "-", (long long)r.model_id,
	         r.threshold, config_linkage_name(cfg->linkage), nworkers, cfg->batch_size,
	         o->dry_run);

	if (start_stages(&r, workers, nworkers, &embedder, &err)) {
		run_fail(&r, &err);
	} else {
		started = nworkers;
		embed_started = 1;
		store_loop(&r);
	}
	for (i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	if (embed_started)
		pthread_join(embedder, NULL);
	drain(&r);

	if (r.failed) {
		err = r.err;
		goto out;
	}
	observe_phase(&r.obs, "grouping %zu ads", r.ads.len);
	tg = proc_now_s();
	if (!o->dry_run && group_touched(&r, &err))
		goto out;
	observe_stage(&r.obs, METRICS_GROUP, tg);
	/* every acknowledged row is written and grouped: the source may commit.
	 * A refused commit loses nothing (the next run reads those events
	 * again and its writes change nothing), so it does not fail the run. */
	if (!o->dry_run && source_commit(r.src, &err)) {
		log_warn("run",
		         "source position not committed; the next run reads those events "
		         "again",
		         "error=\"%s\"", err.msg);
		err_clear(&err);
	}
	code = stop_requested ? RUN_STOPPED : r.obs.metrics.failed ? RUN_PARTIAL : RUN_OK;
out:
	status = run_status_name(code);
	if (code == RUN_FAILED || code == RUN_USAGE)
		log_error("run", "run failed", "kind=%s error=\"%s\"", err_kind_name(err.kind),
		          err.msg);
	if (code == RUN_STOPPED)
		err_set(&err, ERR_FATAL,
		        "stopped by a signal after %ld photos; what was processed "
		        "is written",
		        r.obs.metrics.photos_in);
	if (r.store && r.run_id) {
		struct store_run_counts c = {r.obs.metrics.photos_in, r.obs.metrics.embedded,
		                             r.obs.metrics.failed, r.ads_grouped,
		                             proc_now_s() - t0};
		struct err e2 = {0};

		if (store_run_finish(r.store, r.run_id, status, &c, &e2))
			log_error("run", "could not record the run's end", "error=\"%s\"", e2.msg);
	}
	log_stage_times(&r, proc_now_s() - t0);
	/* a run turned away by the lock leaves the running one's metrics alone */
	if (code != RUN_BUSY)
		observe_end(&r.obs, r.store, r.run_id, status, code, r.ads_grouped, r.groups,
		            code == RUN_OK || code == RUN_PARTIAL ? NULL : err.msg);
	log_info("run", "run finished",
	         "run_id=%lld status=%s photos_in=%ld embedded=%ld "
	         "failed=%ld ads_grouped=%ld groups=%ld elapsed_s=%.2f peak_rss_mb=%ld%s",
	         (long long)r.run_id, status, r.obs.metrics.photos_in, r.obs.metrics.embedded,
	         r.obs.metrics.failed, r.ads_grouped, r.groups, proc_now_s() - t0,
	         proc_peak_rss_kb() / 1024, stop_requested ? " stopped_early=1" : "");
	source_close(r.src);
	model_close(r.model);
	lock_release(r.lock);
	store_close(r.store);
	fetch_free(&r.fetch);
	queue_free(r.q_embed);
	queue_free(r.q_store);
	strset_free(&r.ads);
	pthread_mutex_destroy(&r.src_lock);
	pthread_mutex_destroy(&r.err_lock);
	pthread_mutex_destroy(&r.turn_lock);
	pthread_cond_destroy(&r.turn_done);
	return code;
}

int run_migrate(const struct config *cfg)
{
	struct err err = {0};
	struct store *s = store_open(cfg->db_conninfo, &err);
	int applied = 0;
	int code = RUN_FAILED;

	if (s && !store_migrate(s, cfg->sql_dir, &applied, &err)) {
		log_info("store", "migrations up to date", "applied_now=%d", applied);
		code = RUN_OK;
	} else {
		log_error("store", "migration failed", "error=\"%s\"", err.msg);
	}
	store_close(s);
	return code;
}
