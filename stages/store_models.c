/* store_models.c - the model registry's tables: models (one row per weights file, with how
 * to run it and how it scored) and model_promotions (every change of the active model).
 * Registration and every change of the active model hold one advisory lock, so that two
 * processes never both make a model active. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

/* Advisory lock key: "pipemod" in ASCII. */
#define STORE_LOCK_MODELS INT64_C(0x706970656d6f64)

/* Caller holds a transaction and the models lock. */
static int model_retire_active(struct store *s, struct err *err)
{
	return store_exec(s, "retire active model in models",
	                  "UPDATE models SET status = 'retired' WHERE status = 'active'", 0, NULL,
	                  0, NULL, err);
}

static int models_lock(struct store *s, struct err *err)
{
	char key[24];
	const char *params[1] = {key};

	store_fmt_i64(key, sizeof(key), STORE_LOCK_MODELS);
	return store_exec(s, "take models lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1,
	                  params, 0, NULL, err);
}

static int model_valid(const struct store_model *m, struct err *err)
{
	static const char *const states[] = {"active", "candidate", "retired"};
	size_t i;

	if (!m || !m->backbone || !*m->backbone || !m->weights_path || !m->weights_sha256 ||
	    !*m->weights_sha256)
		return err_set(err, ERR_FATAL, "store: model needs backbone, weights and checksum");
	if (m->embedding_dim <= 0 || m->embedding_dim > STORE_DIM_MAX || m->image_height <= 0 ||
	    m->image_width <= 0)
		return err_set(err, ERR_FATAL, "store: model %s has bad sizes (dim %d, %dx%d)",
		               m->backbone, m->embedding_dim, m->image_height, m->image_width);
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (m->status && !strcmp(m->status, states[i]))
			return 0;
	return err_set(err, ERR_FATAL, "store: model status \"%s\" is not active/candidate/retired",
	               m->status ? m->status : "(null)");
}

/* The active model's id (0: none), read under the models lock. */
static int model_active_locked(struct store *s, int64_t *id, struct err *err)
{
	PGresult *res = NULL;

	*id = 0;
	if (store_exec(s, "read active model from models",
	               "SELECT id FROM models WHERE status = 'active'", 0, NULL, 0, &res, err))
		return -1;
	if (PQntuples(res) > 0 && store_parse_i64(PQgetvalue(res, 0, 0), id) != 0) {
		PQclear(res);
		return err_set(err, ERR_FATAL, "store: bad id from models");
	}
	PQclear(res);
	return 0;
}

/* Caller holds a transaction and the models lock: retire the active model,
 * make ID active, and record the change. */
static int model_switch(struct store *s, int64_t id, int64_t previous, const char *kind,
                        int64_t run_id, const char *reason, struct err *err)
{
	char idbuf[24], prevbuf[24], runbuf[24];
	const char *params[5];

	params[0] = store_fmt_id(idbuf, sizeof(idbuf), id);
	params[1] = store_fmt_id(prevbuf, sizeof(prevbuf), previous);
	params[2] = kind;
	params[3] = reason;
	params[4] = store_fmt_id(runbuf, sizeof(runbuf), run_id);
	if (model_retire_active(s, err) ||
	    store_exec(s, "promote model in models",
	               "UPDATE models SET status = 'active', promoted_at = now()"
	               " WHERE id = $1::bigint",
	               1, params, 0, NULL, err))
		return -1;
	return store_exec(s, "insert into model_promotions",
	                  "INSERT INTO model_promotions (model_id, previous_model_id, kind, reason,"
	                  " run_id) VALUES ($1::bigint, $2::bigint, $3, $4, $5::bigint)",
	                  5, params, 0, NULL, err);
}

int store_model_register(struct store *s, const struct store_model *m, int64_t *id, struct err *err)
{
	char dim[16], height[16], width[16], threshold[40], parent[24], run[24];
	const char *params[14];
	PGresult *res = NULL;
	int64_t previous = 0;
	int inserted = 0, rc = -1;

	if (model_valid(m, err) || store_ready(s, err))
		return -1;
	snprintf(dim, sizeof(dim), "%d", m->embedding_dim);
	snprintf(height, sizeof(height), "%d", m->image_height);
	snprintf(width, sizeof(width), "%d", m->image_width);
	snprintf(threshold, sizeof(threshold), "%.17g", m->threshold);
	params[0] = m->backbone;
	params[1] = m->weights_sha256;
	params[2] = m->weights_path;
	params[3] = dim;
	params[4] = height;
	params[5] = width;
	params[6] = isfinite(m->threshold) ? threshold : NULL;
	params[7] = m->metrics_json;
	params[8] = "candidate";
	params[9] = m->inference_json;
	params[10] = m->training_json;
	params[11] = m->sidecar_path;
	params[12] = store_fmt_id(parent, sizeof(parent), m->parent_id);
	params[13] = store_fmt_id(run, sizeof(run), m->run_id);

	if (store_begin(s, err) || models_lock(s, err) ||
	    store_exec(s, "find model in models",
	               "SELECT id FROM models WHERE backbone = $1 AND weights_sha256 = $2", 2,
	               params, 0, &res, err))
		goto out;
	if (PQntuples(res) == 0) {
		PQclear(res);
		res = NULL;
		/* inserted as a candidate, then switched, so that the promotion is
		 * recorded like any other */
		if (store_exec(s, "insert into models",
		               "INSERT INTO models (backbone, weights_sha256, weights_path,"
		               " embedding_dim, image_height, image_width, threshold, metrics,"
		               " status, inference, training, sidecar_path, parent_id, run_id)"
		               " VALUES ($1, $2, $3, $4::int, $5::int, $6::int, $7::float8,"
		               " $8::jsonb, $9, $10::jsonb, $11::jsonb, $12, $13::bigint,"
		               " $14::bigint)"
		               " RETURNING id",
		               14, params, 0, &res, err))
			goto out;
		inserted = 1;
	}
	if (store_parse_i64(PQgetvalue(res, 0, 0), id) != 0) {
		err_set(err, ERR_FATAL, "store: bad id from models");
		goto out;
	}
	if (inserted && !strcmp(m->status, "retired") &&
	    store_exec(s, "retire model in models",
	               "UPDATE models SET status = 'retired' WHERE id = $1", 1,
	               (const char *const[]){PQgetvalue(res, 0, 0)}, 0, NULL, err))
		goto out;
	if (inserted && !strcmp(m->status, "active")) {
		if (model_active_locked(s, &previous, err) ||
		    model_switch(s, *id, previous, previous ? "manual" : "first", m->run_id,
		                 "registered as active", err))
			goto out;
	}
	if (store_commit(s, "commit model registration", err))
		goto out;
	rc = 0;
out:
	if (rc)
		store_rollback(s);
	PQclear(res);
	return rc;
}

int store_model_activate(struct store *s, int64_t id, const char *kind, int64_t run_id,
                         const char *reason, int64_t *previous, struct err *err)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	PGresult *res = NULL;
	int64_t prev = 0;
	int rc = -1;

	if (store_ready(s, err))
		return -1;
	store_fmt_i64(idbuf, sizeof(idbuf), id);
	if (store_begin(s, err) || models_lock(s, err) ||
	    store_exec(s, "find model in models", "SELECT status FROM models WHERE id = $1::bigint",
	               1, params, 0, &res, err))
		goto out;
	if (PQntuples(res) == 0) {
		err_set(err, ERR_FATAL, "store: no model with id %" PRId64 " to promote", id);
		goto out;
	}
	if (model_active_locked(s, &prev, err) ||
	    (prev != id && model_switch(s, id, prev, kind, run_id, reason, err)) ||
	    store_commit(s, "commit model promotion", err))
		goto out;
	if (previous)
		*previous = prev;
	rc = 0;
out:
	if (rc)
		store_rollback(s);
	PQclear(res);
	return rc;
}

int store_model_promote(struct store *s, int64_t id, struct err *err)
{
	return store_model_activate(s, id, "manual", 0, NULL, NULL, err);
}

int store_model_rollback(struct store *s, int64_t *now_active, int64_t *undone, struct err *err)
{
	PGresult *res = NULL;
	int64_t active = 0, last_model = 0, previous = 0;
	char rowid[24];
	const char *params[1] = {rowid};
	int rc = -1;

	if (store_ready(s, err))
		return -1;
	if (store_begin(s, err) || models_lock(s, err) || model_active_locked(s, &active, err) ||
	    store_exec(s, "read model_promotions",
	               "SELECT id, model_id, coalesce(previous_model_id, 0) FROM model_promotions"
	               " WHERE kind <> 'rollback' AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
	               0, NULL, 0, &res, err))
		goto out;
	if (PQntuples(res) == 0 || store_parse_i64(PQgetvalue(res, 0, 1), &last_model) ||
	    store_parse_i64(PQgetvalue(res, 0, 2), &previous) || previous == 0) {
		err_set(err, ERR_FATAL, "store: no earlier active model to roll back to");
		goto out;
	}
	if (last_model != active) {
		err_set(err, ERR_FATAL,
		        "store: the active model %" PRId64 " was not made active by the newest "
		        "recorded promotion (of model %" PRId64 "); use --promote ID",
		        active, last_model);
		goto out;
	}
	snprintf(rowid, sizeof(rowid), "%s", PQgetvalue(res, 0, 0));
	if (store_exec(s, "undo promotion in model_promotions",
	               "UPDATE model_promotions SET undone_at = now() WHERE id = $1::bigint", 1,
	               params, 0, NULL, err) ||
	    model_switch(s, previous, active, "rollback", 0, "rollback", err) ||
	    store_commit(s, "commit model rollback", err))
		goto out;
	if (now_active)
		*now_active = previous;
	if (undone)
		*undone = active;
	rc = 0;
out:
	if (rc)
		store_rollback(s);
	PQclear(res);
	return rc;
}

static char *field_dup_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

int store_model_get(struct store *s, int64_t id, struct store_model_info *out, struct err *err)
{
	char idbuf[24];
	const char *params[1] = {idbuf};
	PGresult *res = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	out->threshold = NAN;
	if (store_ready(s, err))
		return -1;
	store_fmt_i64(idbuf, sizeof(idbuf), id);
	if (store_exec(s, "read model from models",
	               "SELECT backbone, weights_path, weights_sha256, embedding_dim, image_height,"
	               " image_width, threshold, status, inference::text, metrics::text"
	               " FROM models WHERE id = $1::bigint",
	               1, params, 0, &res, err))
		return -1;
	if (PQntuples(res) == 0) {
		err_set(err, ERR_FATAL, "store: no model with id %" PRId64, id);
		goto out;
	}
	out->id = id;
	snprintf(out->backbone, sizeof(out->backbone), "%s", PQgetvalue(res, 0, 0));
	snprintf(out->weights_path, sizeof(out->weights_path), "%s", PQgetvalue(res, 0, 1));
	snprintf(out->weights_sha256, sizeof(out->weights_sha256), "%s", PQgetvalue(res, 0, 2));
	out->embedding_dim = (int)strtol(PQgetvalue(res, 0, 3), NULL, 10);
	out->image_height = (int)strtol(PQgetvalue(res, 0, 4), NULL, 10);
	out->image_width = (int)strtol(PQgetvalue(res, 0, 5), NULL, 10);
	if (!PQgetisnull(res, 0, 6))
		out->threshold = strtod(PQgetvalue(res, 0, 6), NULL);
	snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(res, 0, 7));
	out->inference_json = field_dup_or_null(res, 0, 8);
	out->metrics_json = field_dup_or_null(res, 0, 9);
	if ((!PQgetisnull(res, 0, 8) && !out->inference_json) ||
	    (!PQgetisnull(res, 0, 9) && !out->metrics_json)) {
		store_model_info_free(out);
		err_set(err, ERR_FATAL, "store: out of memory");
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

void store_model_info_free(struct store_model_info *m)
{
	if (!m)
		return;
	free(m->inference_json);
	free(m->metrics_json);
	m->inference_json = m->metrics_json = NULL;
}

int store_model_by_sha(struct store *s, const char *sha256, int64_t *id, struct err *err)
{
	const char *params[1] = {sha256};
	PGresult *res = NULL;
	int rc = 0;

	*id = 0;
	if (store_ready(s, err) ||
	    store_exec(s, "find model in models",
	               "SELECT id FROM models WHERE weights_sha256 = $1 ORDER BY id LIMIT 1", 1,
	               params, 0, &res, err))
		return -1;
	if (PQntuples(res) > 0 && store_parse_i64(PQgetvalue(res, 0, 0), id) != 0)
		rc = err_set(err, ERR_FATAL, "store: bad id from models");
	PQclear(res);
	return rc;
}

int store_model_active(struct store *s, int64_t *id, double *threshold, struct err *err)
{
	PGresult *res = NULL;
	int64_t found = 0;
	double thr = NAN;

	if (store_ready(s, err) ||
	    store_exec(s, "read active model from models",
	               "SELECT id, threshold FROM models WHERE status = 'active'", 0, NULL, 0, &res,
	               err))
		return -1;
	if (PQntuples(res) > 0) {
		if (store_parse_i64(PQgetvalue(res, 0, 0), &found) != 0) {
			PQclear(res);
			return err_set(err, ERR_FATAL, "store: bad id from models");
		}
		if (!PQgetisnull(res, 0, 1))
			thr = strtod(PQgetvalue(res, 0, 1), NULL);
	}
	PQclear(res);
	if (id)
		*id = found;
	if (threshold)
		*threshold = thr;
	return 0;
}
