/* registry.c - a registered model's inference settings to and from JSON, and
 * the commands that change the active model. */
#include "registry.h"

#include "log.h"
#include "run.h"
#include "sha256.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const norm_names[] = {"Simple", "ImageNet", "Custom"};

char *registry_inference_json(const struct model_config *mc)
{
	cJSON *o = cJSON_CreateObject();
	char *out = NULL;
	float mean[3], std[3];
	int i;

	if (!o)
		return NULL;
	for (i = 0; i < 3; i++) {
		mean[i] = mc->mean[i];
		std[i] = mc->std[i];
	}
	if (cJSON_AddStringToObject(o, "pool", mc->pool == POOL_GEM ? "GeM" : "Average") &&
	    cJSON_AddNumberToObject(o, "gem_p", mc->gem_p) &&
	    cJSON_AddStringToObject(o, "normalization", norm_names[mc->norm]) &&
	    cJSON_AddItemToObject(o, "mean", cJSON_CreateFloatArray(mean, 3)) &&
	    cJSON_AddItemToObject(o, "std", cJSON_CreateFloatArray(std, 3)))
		out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}

static int read_float3(const cJSON *o, const char *key, float *v)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key), *x;
	int n = 0;

	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
		return -1;
	cJSON_ArrayForEach(x, a)
	{
		if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
			return -1;
		v[n++] = (float)x->valuedouble;
	}
	return 0;
}

int registry_model_config(const struct store_model_info *info, const struct model_config *base,
                          struct model_config *out, struct err *err)
{
	cJSON *o = NULL, *x;
	int ret = -1, i;

	*out = *base;
	snprintf(out->backbone, sizeof(out->backbone), "%s", info->backbone);
	out->image_height = info->image_height;
	out->image_width = info->image_width;
	out->embedding_size = info->embedding_dim;
	if (!info->inference_json)
		return 0;
	o = cJSON_Parse(info->inference_json);
	if (!o)
		goto bad;
	x = cJSON_GetObjectItemCaseSensitive(o, "pool");
	if (!cJSON_IsString(x) ||
	    (strcmp(x->valuestring, "Average") && strcmp(x->valuestring, "GeM")))
		goto bad;
	out->pool = strcmp(x->valuestring, "GeM") ? POOL_AVERAGE : POOL_GEM;
	x = cJSON_GetObjectItemCaseSensitive(o, "gem_p");
	if (cJSON_IsNumber(x))
		out->gem_p = x->valuedouble;
	x = cJSON_GetObjectItemCaseSensitive(o, "normalization");
	if (!cJSON_IsString(x))
		goto bad;
	for (i = 0; i < 3 && strcmp(x->valuestring, norm_names[i]); i++)
		;
	if (i == 3)
		goto bad;
	out->norm = (enum resize_norm)i;
	if (read_float3(o, "mean", out->mean) || read_float3(o, "std", out->std) ||
	    out->std[0] * out->std[1] * out->std[2] == 0)
		goto bad;
	ret = 0;
	goto out;
bad:
	err_set(err, ERR_FATAL, "model %lld: unreadable inference settings in the registry: %s",
	        (long long)info->id, info->inference_json);
out:
	cJSON_Delete(o);
	return ret;
}

void registry_model_opts(const struct model_config *mc, const char *weights, const char *device,
                         int threads, int channels_last, struct model_opts *out)
{
	memset(out, 0, sizeof(*out));
	out->backbone = mc->backbone;
	out->weights = weights;
	out->pool = mc->pool == POOL_GEM ? MODEL_POOL_GEM : MODEL_POOL_AVG;
	out->gem_p = (float)mc->gem_p;
	out->embedding_size = mc->embedding_size;
	out->device = device;
	out->threads = threads;
	out->channels_last = channels_last;
}

void registry_resize_opts(const struct model_config *mc, const struct config *cfg,
                          struct resize_opts *out)
{
	memset(out, 0, sizeof(*out));
	out->width = mc->image_width;
	out->height = mc->image_height;
	out->norm = mc->norm;
	memcpy(out->mean, mc->mean, sizeof(out->mean));
	memcpy(out->std, mc->std, sizeof(out->std));
	if (cfg) {
		out->max_bytes = (size_t)cfg->max_bytes;
		out->max_pixels = (uint64_t)cfg->max_pixels;
	}
}

int registry_check_weights(const struct store_model_info *info, struct err *err)
{
	char sha[SHA256_HEX_SIZE];

	if (sha256_file(info->weights_path, sha, err))
		return err_prefix(err, "model %lld", (long long)info->id);
	if (strcmp(sha, info->weights_sha256))
		return err_set(err, ERR_FATAL,
		               "model %lld: %s has checksum %s, registered %s (weights replaced?)",
		               (long long)info->id, info->weights_path, sha, info->weights_sha256);
	return 0;
}

/* ---- commands ---- */

int registry_promote(const struct config *cfg, int64_t id)
{
	struct err err = {0};
	struct store *s = store_open(cfg->db_conninfo, &err);
	struct store_model_info info = {0};
	int64_t previous = 0;
	int code = RUN_FAILED, applied = 0;

	if (!s || store_migrate(s, cfg->sql_dir, &applied, &err))
		goto out;
	if (store_model_get(s, id, &info, &err)) {
		code = RUN_USAGE;
		goto out;
	}
	if (registry_check_weights(&info, &err))
		goto out;
	if (store_model_activate(s, id, "manual", 0, "--promote", &previous, &err))
		goto out;
	log_info("registry", previous == id ? "model already active" : "model promoted",
	         "model_id=%lld previous_model_id=%lld weights=%s", (long long)id,
	         (long long)previous, info.weights_path);
	code = RUN_OK;
out:
	if (code != RUN_OK)
		log_error("registry", "promotion failed", "model_id=%lld error=\"%s\"",
		          (long long)id, err.msg);
	store_model_info_free(&info);
	store_close(s);
	return code;
}

int registry_rollback(const struct config *cfg)
{
	struct err err = {0};
	struct store *s = store_open(cfg->db_conninfo, &err);
	int64_t now_active = 0, undone = 0;
	int code = RUN_FAILED, applied = 0;

	if (s && !store_migrate(s, cfg->sql_dir, &applied, &err) &&
	    !store_model_rollback(s, &now_active, &undone, &err)) {
		log_info("registry", "rolled back", "model_id=%lld retired_model_id=%lld",
		         (long long)now_active, (long long)undone);
		code = RUN_OK;
	} else {
		log_error("registry", "rollback failed", "error=\"%s\"", err.msg);
	}
	store_close(s);
	return code;
}
