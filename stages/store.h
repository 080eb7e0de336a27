/* store.h - PostgreSQL: migrations, runs, models, photos, embeddings, groups
 * (store.c; the models' tables in store_models.c).
 *
 * Every write is an idempotent upsert inside one transaction per call, and a
 * row is only rewritten when its content changed, so running the same input
 * twice leaves the tables (other than pipeline_runs) byte-for-byte the same.
 * All SQL goes through parameters. Connection failures and server restarts
 * are ERR_RETRY; constraint or data problems are ERR_FATAL. A store handle is
 * used by one thread at a time. */
#ifndef STAGES_STORE_H
#define STAGES_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

struct store;

/* Connect with a libpq conninfo string or "service=NAME". The password, if
 * any, never appears in messages. Returns NULL on failure (ERR_RETRY when the
 * server could not be reached). Free with store_close(). */
struct store *store_open(const char *conninfo, struct err *err);
void store_close(struct store *s);

/* Apply every SQL_DIR/NNN_*.sql not yet recorded in schema_migrations, in
 * order, each in its own transaction. *APPLIED (may be NULL) receives the
 * number applied now. Concurrent callers are serialised by an advisory lock. */
int store_migrate(struct store *s, const char *sql_dir, int *applied, struct err *err);

struct store_model {
	const char *backbone;
	const char *weights_path;
	const char *weights_sha256; /* hex */
	int embedding_dim;
	int image_height, image_width;
	double threshold;           /* NaN: none recorded */
	const char *metrics_json;   /* may be NULL */
	const char *status;         /* "active", "candidate", "retired" */
	const char *inference_json; /* how to run it (pool, normalisation); may be NULL */
	const char *training_json;  /* training data summary, seed, settings; may be NULL */
	const char *sidecar_path;   /* metadata file beside the weights; may be NULL */
	int64_t parent_id;          /* model training started from; 0: none */
	int64_t run_id;             /* retrain run that made it; 0: none */
};

/* Find the model with the same weights checksum and backbone, or insert it
 * with M->status (when M->status is "active" and another model is active,
 * the other one is retired; the change is recorded in model_promotions).
 * *ID receives its id. A model found keeps its status and fields:
 * registering is idempotent, promoting is store_model_activate(). */
int store_model_register(struct store *s, const struct store_model *m, int64_t *id,
                         struct err *err);

/* Make model ID the active one, retire the model active before and record
 * the change in model_promotions with KIND ("gate", "manual"), RUN_ID (0:
 * none) and REASON (may be NULL). No change and no record when ID is already
 * active. *PREVIOUS (may be NULL) receives the model active before (0: none).
 * ERR_FATAL when there is no such model. */
int store_model_activate(struct store *s, int64_t id, const char *kind, int64_t run_id,
                         const char *reason, int64_t *previous, struct err *err);

/* store_model_activate() with KIND "manual". */
int store_model_promote(struct store *s, int64_t id, struct err *err);

/* Undo the newest promotion not undone yet (which must have made the model
 * that is active now): its previous model becomes active again and a
 * "rollback" row is recorded. *NOW_ACTIVE and *UNDONE (may be NULL) receive
 * the model made active and the one retired. ERR_FATAL when there is nothing
 * to roll back to. */
int store_model_rollback(struct store *s, int64_t *now_active, int64_t *undone, struct err *err);

/* One registered model as read back. */
struct store_model_info {
	int64_t id;
	char backbone[64];
	char weights_path[4096];
	char weights_sha256[65];
	int embedding_dim;
	int image_height, image_width;
	double threshold; /* NaN: none */
	char status[16];
	char *inference_json; /* NULL when none; freed by store_model_info_free() */
	char *metrics_json;   /* NULL when none; freed by store_model_info_free() */
};

/* Read model ID into OUT. ERR_FATAL when there is no such model. */
int store_model_get(struct store *s, int64_t id, struct store_model_info *out, struct err *err);
void store_model_info_free(struct store_model_info *m);

/* The id of the model with weights checksum SHA256 (any backbone), or 0. */
int store_model_by_sha(struct store *s, const char *sha256, int64_t *id, struct err *err);

/* Run SQL (a query returning at least two text columns: image, label) in a
 * read-only transaction and call ROW for each row (NULL columns read as "").
 * ROW returns 0 to go on, -1 to stop with its error. */
int store_query_pairs(struct store *s, const char *sql,
                      int (*row)(void *arg, long n, const char *a, const char *b, struct err *err),
                      void *arg, struct err *err);

/* The active model's id and threshold (NaN if none). *ID = 0 when no model
 * is active. */
int store_model_active(struct store *s, int64_t *id, double *threshold, struct err *err);

struct store_run {
	const char *kind; /* "nightly", "backfill", "retrain" */
	const char *date; /* "YYYY-MM-DD" or NULL */
	const char *host;
	const char *version;
	int64_t model_id; /* 0: none */
};

int store_run_begin(struct store *s, const struct store_run *r, int64_t *run_id, struct err *err);

struct store_run_counts {
	long photos_in, photos_embedded, photos_failed, ads_grouped;
	double elapsed_s;
};

/* STATUS: "ok", "partial" (some photos failed), "failed". */
int store_run_finish(struct store *s, int64_t run_id, const char *status,
                     const struct store_run_counts *c, struct err *err);

/* A result read whole as text. CELLS[row * ncols + col] is NULL for SQL
 * NULL. The set owns everything; free with store_rows_free(). */
struct store_rows {
	size_t n;
	int ncols;
	char **cells;
};

/* Run one statement of the caller's (status, reports, locks) with text
 * parameters (NULL is SQL NULL) and read its rows into OUT (may be NULL when
 * no rows are wanted). More than MAX_ROWS rows is ERR_FATAL naming WHAT, as
 * is any SQL error; a lost connection is ERR_RETRY and is re-established by
 * the next call (session state such as advisory locks is then gone). */
int store_query(struct store *s, const char *what, const char *sql, int nparams,
                const char *const *params, size_t max_rows, struct store_rows *out,
                struct err *err);

/* The text of a cell; NULL for SQL NULL or a row/column out of range. */
const char *store_rows_get(const struct store_rows *r, size_t row, int col);
void store_rows_free(struct store_rows *r);

struct store_image {
	const char *image_id;
	const char *ad_id;
	const char *url;
	const char *created_at;     /* RFC 3339 */
	const char *source;         /* where it came from: "ads.csv:12", "topic/3@1042" */
	int ok;                     /* 1: embedded; 0: failed */
	const char *failure_stage;  /* when !ok: "fetch", "resize", "embed" */
	const char *failure_reason; /* when !ok */
	int width, height;          /* 0 when unknown */
	const char *content_sha256; /* hex, or NULL */
	const float *embedding;     /* dim floats when ok */
	int dim;
};

/* Upsert N photos in one transaction: ad_images for all, image_embeddings
 * (for MODEL_ID) for the ok ones, failures for the failed ones (a photo that
 * succeeds later has its failure row removed). An image id given twice for one
 * ad keeps its last entry. An image id belongs to the ad it was first recorded
 * with (of several ads in one batch: the smallest ad id): an entry of it for
 * another ad is left out, with a failure keyed by its source ("image id belongs
 * to another ad: AD"), and OWNERS[i] (when OWNERS, N entries, is not NULL) is set
 * to a malloc'd copy of the owning ad id for it; the caller frees them. A missing
 * id, a non-finite float or an embedding size other than the model's is ERR_FATAL
 * and nothing is written. */
int store_write_images(struct store *s, int64_t run_id, int64_t model_id,
                       const struct store_image *imgs, size_t n, char **owners, struct err *err);

/* A failure that is not tied to a stored photo (a bad CSV line, a poison
 * event). KEY identifies the item uniquely ("ads.csv:17", "topic/2@55");
 * IMAGE_ID and AD_ID may be NULL. Upserted by KEY. */
int store_write_failure(struct store *s, int64_t run_id, const char *key, const char *image_id,
                        const char *ad_id, const char *stage, const char *reason, struct err *err);

/* Embeddings of every embedded photo of AD_ID for MODEL_ID, ordered by image
 * id in byte order (strcmp). A photo without a url reads as "". Free with
 * store_emb_set_free(). */
struct store_emb_set {
	size_t n;
	int dim;
	char **image_ids;
	char **ad_ids;
	char **urls;
	float *emb; /* n x dim */
};

int store_ad_embeddings(struct store *s, int64_t model_id, const char *ad_id,
                        struct store_emb_set *out, struct err *err);

/* Every embedding stored for MODEL_ID (for evaluation), ordered by image id. */
int store_all_embeddings(struct store *s, int64_t model_id, struct store_emb_set *out,
                         struct err *err);

void store_emb_set_free(struct store_emb_set *set);

struct store_group {
	const char *image_id;
	const char *ad_id;
	const char *group_id;
};

/* Replace the groups of every ad named in G (N rows) for MODEL_ID in one
 * transaction: upsert each row, delete rows of those ads that are not in G
 * (so every photo of an ad goes in the same call). Photos must be in
 * ad_images already. An image id given twice keeps its last entry. */
int store_write_groups(struct store *s, int64_t run_id, int64_t model_id,
                       const struct store_group *g, size_t n, struct err *err);

/* Groups of MODEL_ID, ordered by ad id, group id, image id (each in byte
 * order). Strings are owned by the result; free with store_groups_free(). */
struct store_group_set {
	size_t n;
	struct store_group *rows;
	char *strings;
};

int store_fetch_groups(struct store *s, int64_t model_id, struct store_group_set *out,
                       struct err *err);
void store_groups_free(struct store_group_set *set);

/* Take (LOCK = 1) or release (0) the lock that serialises grouping between
 * processes: held from reading an ad's embeddings until its groups are
 * written, it keeps a process that read fewer photos from overwriting the
 * groups of one that read more. Released when the connection ends. */
int store_groups_lock(struct store *s, int lock, struct err *err);

/* Up to MAX ads with a photo embedded by MODEL_ID but not grouped (a run
 * stopped between writing photos and grouping them). *ADS is a malloc'd
 * array of *N malloc'd strings; the caller frees both. */
int store_ungrouped_ads(struct store *s, int64_t model_id, size_t max, char ***ads, size_t *n,
                        struct err *err);

/* A photo as recorded in ad_images, for processing it again. */
struct store_image_row {
	char *image_id, *ad_id, *url;
	char *created_at; /* RFC 3339 UTC with microseconds */
	char *source;     /* may be "" */
};

struct store_image_page {
	size_t n;
	struct store_image_row *rows;
};

/* Photos with a url and created_at in [SINCE, UNTIL) (UTC seconds), ordered
 * by created_at then image id (byte order), starting after the photo
 * (AFTER_TS, AFTER_ID) (both NULL: from the first), at most LIMIT. Free OUT
 * with store_image_page_free(). */
int store_list_images(struct store *s, long long since, long long until, const char *after_ts,
                      const char *after_id, size_t limit, struct store_image_page *out,
                      struct err *err);
void store_image_page_free(struct store_image_page *p);

#ifdef __cplusplus
}
#endif

#endif
