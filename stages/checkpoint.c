/* checkpoint.c - a retrain's state after each epoch, and resuming from it. */
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "file.h"
#include "log.h"

#define STATE_FILE     "state.json"
#define STATE_MAX_SIZE (64 << 20)

static void epoch_file(char *out, size_t cap, int epoch)
{
	snprintf(out, cap, "epoch-%03d.pt", epoch);
}

cJSON *checkpoint_history_json(const struct checkpoint_state *st)
{
	cJSON *a = cJSON_CreateArray();
	int i;

	for (i = 0; a && i < st->nhist; i++) {
		const struct epoch_stat *h = &st->hist[i];
		cJSON *e = cJSON_CreateObject();

		if (!e)
			break;
		cJSON_AddNumberToObject(e, "epoch", h->epoch);
		cJSON_AddNumberToObject(e, "loss", h->loss);
		cJSON_AddNumberToObject(e, "lr", h->lr);
		if (h->evaluated)
			cJSON_AddNumberToObject(e, "map", h->map);
		cJSON_AddNumberToObject(e, "seconds", h->seconds);
		cJSON_AddNumberToObject(e, "img_per_s", h->img_per_s);
		cJSON_AddItemToArray(a, e);
	}
	return a;
}

static cJSON *labels_json(const char *const *labels, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	size_t i;

	for (i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(labels[i]));
	return a;
}

int checkpoint_lock(const char *dir, int *fd, struct err *err)
{
	char path[CONFIG_PATH_MAX];

	if (file_mkdirs(dir, err) || file_join(path, sizeof(path), dir, "lock", err))
		return -1;
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (*fd < 0)
		return err_set(err, ERR_FATAL, "cannot open %s: %s", path, strerror(errno));
	if (flock(*fd, LOCK_EX | LOCK_NB))
		return err_set(err, ERR_FATAL, "another retrain is using %s (%s)", dir,
		               strerror(errno));
	return 0;
}

int checkpoint_exists(const char *dir)
{
	char path[CONFIG_PATH_MAX];
	struct stat sb;
	struct err e;

	return !file_join(path, sizeof(path), dir, STATE_FILE, &e) && !stat(path, &sb);
}

int checkpoint_save(const char *dir, struct trainer *tr, const struct checkpoint_state *st,
                    const char *const *val_labels, size_t n, struct err *err)
{
	char name[32], path[CONFIG_PATH_MAX], state[CONFIG_PATH_MAX];
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	int ret = -1;

	epoch_file(name, sizeof(name), st->epoch);
	if (!o || file_join(path, sizeof(path), dir, name, err) ||
	    file_join(state, sizeof(state), dir, STATE_FILE, err))
		goto out;
	if (train_checkpoint_save(tr, path, err))
		goto out;
	cJSON_AddStringToObject(o, "fingerprint", st->fingerprint);
	cJSON_AddNumberToObject(o, "seed", (double)st->seed);
	cJSON_AddBoolToObject(o, "seed_was_random", st->seed_random);
	cJSON_AddNumberToObject(o, "epoch", st->epoch);
	cJSON_AddNumberToObject(o, "steps", (double)train_steps(tr));
	cJSON_AddStringToObject(o, "checkpoint", name);
	cJSON_AddNumberToObject(o, "baseline_map", st->baseline_map);
	cJSON_AddNumberToObject(o, "start_map", st->start_map);
	cJSON_AddItemToObject(o, "validation_labels", labels_json(val_labels, n));
	cJSON_AddItemToObject(o, "history", checkpoint_history_json(st));
	text = cJSON_Print(o);
	if (!text) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	if (file_write_atomic(state, text, err))
		goto out;
	/* the older epoch's checkpoint is not needed once the state names this one */
	if (st->epoch > 1) {
		epoch_file(name, sizeof(name), st->epoch - 1);
		if (!file_join(path, sizeof(path), dir, name, err))
			unlink(path);
	}
	ret = 0;
out:
	cJSON_free(text);
	cJSON_Delete(o);
	return ret;
}

/* The parsed state.json of DIR into *OUT (NULL when it is not JSON; free with
 * cJSON_Delete()); PATH receives its path. -1 when it cannot be read. */
static int read_state(const char *dir, char path[CONFIG_PATH_MAX], cJSON **out, struct err *err)
{
	char *text;

	*out = NULL;
	if (file_join(path, CONFIG_PATH_MAX, dir, STATE_FILE, err))
		return -1;
	text = file_read_text(path, STATE_MAX_SIZE, err);
	if (!text)
		return -1;
	*out = cJSON_Parse(text);
	free(text);
	return 0;
}

int checkpoint_read_seed(const char *dir, uint64_t *seed, int *seed_random, struct err *err)
{
	char path[CONFIG_PATH_MAX];
	cJSON *o, *x;
	int ret = -1;

	if (read_state(dir, path, &o, err))
		return err_prefix(err, "--resume: no checkpoint to resume");
	x = cJSON_GetObjectItemCaseSensitive(o, "seed");
	if (!cJSON_IsNumber(x)) {
		err_set(err, ERR_FATAL, "--resume: %s is not a checkpoint state", path);
	} else {
		*seed = (uint64_t)x->valuedouble;
		*seed_random = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "seed_was_random"));
		ret = 0;
	}
	cJSON_Delete(o);
	return ret;
}

/* The number KEY of O, or DFLT when there is none. */
static double num(const cJSON *o, const char *key, double dflt)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

/* The history array HIST into ST. */
static void read_history(const cJSON *hist, struct checkpoint_state *st)
{
	const cJSON *h;

	st->nhist = 0;
	cJSON_ArrayForEach(h, hist)
	{
		struct epoch_stat *s = &st->hist[st->nhist];

		if (st->nhist == CHECKPOINT_MAX_EPOCHS)
			break;
		s->epoch = (int)num(h, "epoch", 0);
		s->loss = num(h, "loss", NAN);
		s->lr = num(h, "lr", NAN);
		s->seconds = num(h, "seconds", NAN);
		s->img_per_s = num(h, "img_per_s", NAN);
		s->map = num(h, "map", NAN);
		s->evaluated = !isnan(s->map);
		st->nhist++;
	}
}

/* LIMIT: a resumed run matches an uninterrupted one bit for bit only with
 * the same libtorch, CPU and thread count, which decide how sums round. */
int checkpoint_resume(const char *dir, struct trainer *tr, struct checkpoint_state *st,
                      const char *const *val_labels, size_t n, struct err *err)
{
	char path[CONFIG_PATH_MAX], ckpt[CONFIG_PATH_MAX];
	cJSON *o = NULL, *x, *v;
	char *mine = NULL, *theirs = NULL;
	int ret = -1;

	if (read_state(dir, path, &o, err))
		return -1;
	x = cJSON_GetObjectItemCaseSensitive(o, "fingerprint");
	if (!cJSON_IsString(x) || strcmp(x->valuestring, st->fingerprint)) {
		err_set(err, ERR_FATAL,
		        "--resume: the checkpoint in %s was made with other "
		        "settings, weights or labelled photos; start again without --resume",
		        dir);
		goto out;
	}
	v = labels_json(val_labels, n);
	mine = v ? cJSON_PrintUnformatted(v) : NULL;
	cJSON_Delete(v);
	x = cJSON_GetObjectItemCaseSensitive(o, "validation_labels");
	theirs = x ? cJSON_PrintUnformatted(x) : NULL;
	if (!mine || !theirs || strcmp(mine, theirs)) {
		err_set(err, ERR_FATAL,
		        "--resume: the validation labels differ from the checkpoint's");
		goto out;
	}
	st->epoch = (int)num(o, "epoch", 0);
	st->baseline_map = num(o, "baseline_map", NAN);
	st->start_map = num(o, "start_map", NAN);
	read_history(cJSON_GetObjectItemCaseSensitive(o, "history"), st);
	x = cJSON_GetObjectItemCaseSensitive(o, "checkpoint");
	if (!cJSON_IsString(x) || strchr(x->valuestring, '/') ||
	    file_join(ckpt, sizeof(ckpt), dir, x->valuestring, err) ||
	    train_checkpoint_load(tr, ckpt, err))
		goto out;
	log_info("retrain", "resumed from a checkpoint", "checkpoint=%s epoch=%d steps=%ld", ckpt,
	         st->epoch, train_steps(tr));
	ret = 0;
out:
	if (ret && !err->msg[0])
		err_set(err, ERR_FATAL, "--resume: unreadable checkpoint state %s", path);
	cJSON_free(mine);
	cJSON_free(theirs);
	cJSON_Delete(o);
	return ret;
}

void checkpoint_clear(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[CONFIG_PATH_MAX];

	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (strcmp(e->d_name, STATE_FILE) &&
		    !(len > 9 && !strncmp(e->d_name, "epoch-", 6) &&
		      !strcmp(e->d_name + len - 3, ".pt")))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < sizeof(path))
			unlink(path);
	}
	closedir(d);
}
