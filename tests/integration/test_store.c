/* test_store.c - the store stage against a real PostgreSQL.
 *
 * Needs PGHOST/PGPORT/PGUSER pointing at a server (tests/run-all starts one).
 * Creates its own database, named after the process, and drops it at the end;
 * an unreachable server is a failure, never a skip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store.h"

#define DIM 512
/* The migrations in sql/ as "version:file,..." and their count, so that a
 * new migration needs no change here. */
static int migrations_expected(const char *dir, char *list, size_t cap)
{
	char pattern[512];
	glob_t g;
	size_t i, at = 0;
	int n;

	snprintf(pattern, sizeof(pattern), "%s/[0-9][0-9][0-9]_*.sql", dir);
	if (glob(pattern, 0, NULL, &g))
		return 0;
	list[0] = '\0';
	for (i = 0; i < g.gl_pathc && at < cap; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;

		at += (size_t)snprintf(list + at, cap - at, "%s%d:%s", i ? "," : "",
		                       (int)strtol(base, NULL, 10), base);
	}
	n = (int)g.gl_pathc;
	globfree(&g);
	return n;
}

struct ctx {
	PGconn *admin; /* dbname=postgres: creates and drops the test databases */
	PGconn *db;    /* the test database, to look at rows behind the store's back */
	struct store *s;
	char dbname[64];
	char conninfo[128];
	char sql_dir[PATH_MAX];
	int applied_first;
	int64_t model_id;
};

static struct ctx C;

/* ---- helpers ---- */

static void embedding_fill(float *v, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	int i;

	for (i = 0; i < DIM; i++) {
		x = x * 1664525u + 1013904223u;
		v[i] = (float)((double)x / 4294967296.0 * 2.0 - 1.0);
	}
}

static struct store_image image_ok(const char *id, const char *ad, const char *sha,
                                   const float *emb)
{
	struct store_image im = {0};

	im.image_id = id;
	im.ad_id = ad;
	im.url = "file:///data/ads/photo.jpg";
	im.created_at = "2026-11-30T09:29:22Z";
	im.source = "ads.csv:7";
	im.ok = 1;
	im.width = 640;
	im.height = 480;
	im.content_sha256 = sha;
	im.embedding = emb;
	im.dim = DIM;
	return im;
}

static struct store_image image_failed(const char *id, const char *ad, const char *stage,
                                       const char *reason)
{
	struct store_image im = {0};

	im.image_id = id;
	im.ad_id = ad;
	im.url = "file:///data/ads/missing.jpg";
	im.created_at = "2026-11-30T09:30:00Z";
	im.source = "ads.csv:8";
	im.failure_stage = stage;
	im.failure_reason = reason;
	return im;
}

static PGresult *query(PGconn *conn, const char *sql, const char *arg)
{
	const char *params[1] = {arg};
	PGresult *r = PQexecParams(conn, sql, arg ? 1 : 0, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		fail_msg("query failed: %s: %s", sql, PQerrorMessage(conn));
	return r;
}

/* The single value SQL returns on the test database ("<null>" for NULL). */
static void query_text(char *out, size_t cap, const char *sql, const char *arg)
{
	PGresult *r = query(C.db, sql, arg);

	if (PQntuples(r) != 1)
		fail_msg("expected one row, got %d: %s", PQntuples(r), sql);
	snprintf(out, cap, "%s", PQgetisnull(r, 0, 0) ? "<null>" : PQgetvalue(r, 0, 0));
	PQclear(r);
}

static long query_long(const char *sql, const char *arg)
{
	char buf[64];

	query_text(buf, sizeof(buf), sql, arg);
	return strtol(buf, NULL, 10);
}

static const char *const dumped_tables[] = {"schema_migrations", "models",       "ad_images",
                                            "image_embeddings",  "image_groups", "failures"};
#define N_DUMPED (sizeof(dumped_tables) / sizeof(dumped_tables[0]))

/* A digest of every row of every table but pipeline_runs, with each row's
 * xmin: equal digests mean equal content and no row rewritten. */
static void tables_digest(char out[N_DUMPED][40])
{
	char sql[256];
	size_t i;

	for (i = 0; i < N_DUMPED; i++) {
		snprintf(sql, sizeof(sql),
		         "SELECT md5(coalesce(string_agg(t::text || '@' || t.xmin::text, ','"
		         " ORDER BY t::text), '')) FROM %s t",
		         dumped_tables[i]);
		query_text(out[i], 40, sql, NULL);
	}
}

/* "id=xmin,..." for the rows of TABLE whose image belongs to AD. */
static void row_versions(char *out, size_t cap, const char *table, const char *ad)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(t.image_id || '=' || t.xmin::text, ',' ORDER BY t.image_id)"
	         " FROM %s t JOIN ad_images i USING (image_id) WHERE i.ad_id = $1",
	         table);
	query_text(out, cap, sql, ad);
}

static int64_t run_begin(void)
{
	struct store_run r = {"nightly", "2026-11-30", "test-host", "test", 0};
	struct err err = {0};
	int64_t id = 0;

	if (store_run_begin(C.s, &r, &id, &err) != 0)
		fail_msg("store_run_begin: %s", err.msg);
	return id;
}

#define assert_ok(call, err)                                                                       \
	do {                                                                                       \
		if ((call) != 0)                                                                   \
			fail_msg("%s: %s", #call, (err).msg);                                      \
	} while (0)

static PGconn *connect_admin(void)
{
	PGconn *conn = PQconnectdb("dbname=postgres");

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "test_store: PostgreSQL unreachable (PGHOST=%s): %s\n",
		        getenv("PGHOST") ? getenv("PGHOST") : "(unset)", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static int db_create(PGconn *admin, const char *name)
{
	char sql[128];
	PGresult *r;
	int ok;

	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	r = PQexec(admin, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "test_store: %s: %s\n", sql, PQerrorMessage(admin));
	PQclear(r);
	return ok ? 0 : -1;
}

static void db_drop(PGconn *admin, const char *name)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
	PQclear(PQexec(admin, sql));
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
	struct store_model m = {"mobilenetv2_100",
	                        "configs/models/m.safetensors",
	                        "aaaa0000",
	                        DIM,
	                        224,
	                        224,
	                        0.8,
	                        "{\"map50\": 0.71}",
	                        "active",
	                        NULL,
	                        NULL,
	                        NULL,
	                        0,
	                        0};
	const char *root = getenv("ROOT");
	struct err err = {0};

	memset(&C, 0, sizeof(C));
	C.admin = connect_admin();
	if (!C.admin)
		return -1;
	/* Names are lower case and digits only, so they need no quoting. */
	snprintf(C.dbname, sizeof(C.dbname), "store_test_%ld_%ld", (long)getpid(),
	         (long)time(NULL));
	snprintf(C.conninfo, sizeof(C.conninfo), "dbname=%s", C.dbname);
	snprintf(C.sql_dir, sizeof(C.sql_dir), "%s/sql", root ? root : ".");
	if (db_create(C.admin, C.dbname) != 0)
		goto fail;
	C.s = store_open(C.conninfo, &err);
	if (!C.s || store_migrate(C.s, C.sql_dir, &C.applied_first, &err) != 0 ||
	    store_model_register(C.s, &m, &C.model_id, &err) != 0) {
		fprintf(stderr, "test_store: setup: %s\n", err.msg);
		goto fail;
	}
	C.db = PQconnectdb(C.conninfo);
	if (PQstatus(C.db) != CONNECTION_OK)
		goto fail;
	*state = &C;
	return 0;
fail:
	store_close(C.s);
	PQfinish(C.db);
	db_drop(C.admin, C.dbname);
	PQfinish(C.admin);
	return -1;
}

static int group_teardown(void **state)
{
	store_close(C.s);
	PQfinish(C.db);
	db_drop(C.admin, C.dbname);
	PQfinish(C.admin);
	return 0;
}

/* ---- migrations ---- */

static void test_migrations_apply_once(void **state)
{
	struct err err = {0};
	char versions[256], expected[256];
	int applied = -1;

	assert_int_equal(C.applied_first,
	                 migrations_expected(C.sql_dir, expected, sizeof(expected)));
	assert_ok(store_migrate(C.s, C.sql_dir, &applied, &err), err);
	assert_int_equal(applied, 0);
	query_text(versions, sizeof(versions),
	           "SELECT string_agg(version || ':' || name, ',' ORDER BY version)"
	           " FROM schema_migrations",
	           NULL);
	assert_string_equal(versions, expected);
}

struct migrate_job {
	const char *conninfo;
	const char *dir;
	int rc, applied;
	struct err err;
};

static void *migrate_thread(void *arg)
{
	struct migrate_job *j = arg;
	struct store *s = store_open(j->conninfo, &j->err);

	j->rc = s ? store_migrate(s, j->dir, &j->applied, &j->err) : -1;
	store_close(s);
	return NULL;
}

static void test_concurrent_migrations_apply_each_file_once(void **state)
{
	char name[80], conninfo[128];
	struct migrate_job jobs[3];
	pthread_t th[3];
	int i, total = 0;

	snprintf(name, sizeof(name), "%s_mig", C.dbname);
	snprintf(conninfo, sizeof(conninfo), "dbname=%s", name);
	assert_int_equal(db_create(C.admin, name), 0);
	for (i = 0; i < 3; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].conninfo = conninfo;
		jobs[i].dir = C.sql_dir;
		pthread_create(&th[i], NULL, migrate_thread, &jobs[i]);
	}
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		if (jobs[i].rc != 0)
			fprintf(stderr, "migrate %d: %s\n", i, jobs[i].err.msg);
		total += jobs[i].applied;
	}
	db_drop(C.admin, name);
	for (i = 0; i < 3; i++)
		assert_int_equal(jobs[i].rc, 0);
	assert_int_equal(total, migrations_expected(C.sql_dir, name, sizeof(name)));
}

/* ---- photos ---- */

static void test_batch_with_failures_gives_expected_rows(void **state)
{
	static float e[4][DIM];
	struct store_image batch[6];
	struct err err = {0};
	char buf[256], run[24];
	int64_t r1 = run_begin();
	int i;

	for (i = 0; i < 4; i++)
		embedding_fill(e[i], 200 + (uint32_t)i);
	batch[0] = image_ok("201", "ad-2a", "h201", e[0]);
	batch[1] = image_ok("202", "ad-2a", "h202", e[1]);
	batch[2] = image_ok("203", "ad-2a", "h203", e[2]);
	batch[3] = image_ok("204", "ad-2b", "h204", e[3]);
	batch[4] = image_failed("205", "ad-2b", "fetch", "file not found");
	batch[5] = image_failed("206", "ad-2b", "resize", "not a JPEG");
	batch[5].width = 10;
	batch[5].height = 20;
	assert_ok(store_write_images(C.s, r1, C.model_id, batch, 6, NULL, &err), err);

	query_text(buf, sizeof(buf),
	           "SELECT string_agg(image_id || ':' || ad_id || ':' || status, ','"
	           " ORDER BY image_id) FROM ad_images WHERE ad_id IN ('ad-2a', 'ad-2b')",
	           NULL);
	assert_string_equal(buf, "201:ad-2a:embedded,202:ad-2a:embedded,203:ad-2a:embedded,"
	                         "204:ad-2b:embedded,205:ad-2b:failed,206:ad-2b:failed");
	snprintf(run, sizeof(run), "%" PRId64, r1);
	assert_int_equal(query_long("SELECT count(*) FROM ad_images WHERE ad_id LIKE 'ad-2_'"
	                            " AND first_run_id = $1 AND changed_run_id = $1",
	                            run),
	                 6);
	query_text(buf, sizeof(buf),
	           "SELECT concat_ws('|', failure_stage, failure_reason, width, height,"
	           " content_sha256, created_at = '2026-11-30T09:30:00Z', source)"
	           " FROM ad_images WHERE image_id = '205'",
	           NULL);
	assert_string_equal(buf, "fetch|file not found|t|ads.csv:8");
	query_text(buf, sizeof(buf),
	           "SELECT concat_ws('|', failure_stage, width, height, content_sha256, url)"
	           " FROM ad_images WHERE image_id = '201'",
	           NULL);
	assert_string_equal(buf, "640|480|h201|file:///data/ads/photo.jpg");

	query_text(buf, sizeof(buf),
	           "SELECT string_agg(image_id || ':' || dim || ':' || content_sha256, ','"
	           " ORDER BY image_id) FROM image_embeddings WHERE image_id LIKE '20_'",
	           NULL);
	assert_string_equal(buf, "201:512:h201,202:512:h202,203:512:h203,204:512:h204");
	query_text(buf, sizeof(buf),
	           "SELECT string_agg(key || ':' || image_id || ':' || ad_id || ':' || stage"
	           " || ':' || reason, ',' ORDER BY key) FROM failures WHERE ad_id = 'ad-2b'",
	           NULL);
	assert_string_equal(buf, "image:205:205:ad-2b:fetch:file not found,"
	                         "image:206:206:ad-2b:resize:not a JPEG");
}

static void test_same_input_twice_leaves_tables_identical(void **state)
{
	static float e[3][DIM];
	struct store_image batch[4];
	struct store_group groups[3] = {
	    {"301", "ad-3", "ad-3:301"}, {"302", "ad-3", "ad-3:301"}, {"303", "ad-3", "ad-3:303"}};
	char before[N_DUMPED][40], after[N_DUMPED][40];
	struct err err = {0};
	int64_t r1, r2;
	int i;

	for (i = 0; i < 3; i++)
		embedding_fill(e[i], 300 + (uint32_t)i);
	batch[0] = image_ok("301", "ad-3", "h301", e[0]);
	batch[1] = image_ok("302", "ad-3", "h302", e[1]);
	batch[2] = image_ok("303", "ad-3", "h303", e[2]);
	batch[3] = image_failed("304", "ad-3", "embed", "nan in output");

	r1 = run_begin();
	assert_ok(store_write_images(C.s, r1, C.model_id, batch, 4, NULL, &err), err);
	assert_ok(store_write_groups(C.s, r1, C.model_id, groups, 3, &err), err);
	assert_ok(store_write_failure(C.s, r1, "ads.csv:99", NULL, "ad-3", "source",
	                              "missing ad_id", &err),
	          err);
	tables_digest(before);

	r2 = run_begin();
	assert_true(r2 > r1);
	assert_ok(store_write_images(C.s, r2, C.model_id, batch, 4, NULL, &err), err);
	assert_ok(store_write_groups(C.s, r2, C.model_id, groups, 3, &err), err);
	assert_ok(store_write_failure(C.s, r2, "ads.csv:99", NULL, "ad-3", "source",
	                              "missing ad_id", &err),
	          err);
	tables_digest(after);

	for (i = 0; i < (int)N_DUMPED; i++)
		if (strcmp(before[i], after[i]) != 0)
			fail_msg("table %s changed on identical input", dumped_tables[i]);
}

static void test_embeddings_round_trip_bit_exact(void **state)
{
	static float e[2][DIM];
	struct store_image batch[2];
	struct store_emb_set set = {0};
	struct err err = {0};
	size_t i;
	int found = 0;

	embedding_fill(e[0], 400);
	embedding_fill(e[1], 401);
	e[0][0] = 0.1f;
	e[0][1] = -0.0f;
	e[0][2] = FLT_MIN;
	e[0][3] = FLT_TRUE_MIN; /* a denormal */
	e[0][4] = FLT_MAX;
	e[0][5] = -FLT_MAX;
	e[0][6] = 1.0f / 3.0f;
	e[0][7] = nextafterf(1.0f, 2.0f);
	e[0][8] = 16777215.0f;
	e[0][9] = 1e-38f;
	batch[0] = image_ok("401", "ad-4", "h401", e[0]);
	batch[1] = image_ok("402", "ad-4", "h402", e[1]);
	assert_ok(store_write_images(C.s, run_begin(), C.model_id, batch, 2, NULL, &err), err);

	assert_ok(store_ad_embeddings(C.s, C.model_id, "ad-4", &set, &err), err);
	assert_int_equal(set.n, 2);
	assert_int_equal(set.dim, DIM);
	assert_string_equal(set.image_ids[0], "401");
	assert_string_equal(set.image_ids[1], "402");
	assert_string_equal(set.ad_ids[1], "ad-4");
	assert_string_equal(set.urls[0], "file:///data/ads/photo.jpg");
	assert_memory_equal(set.emb, e[0], sizeof(e[0]));
	assert_memory_equal(set.emb + DIM, e[1], sizeof(e[1]));
	store_emb_set_free(&set);

	assert_ok(store_all_embeddings(C.s, C.model_id, &set, &err), err);
	assert_true(set.n >= 2);
	for (i = 0; i < set.n; i++) {
		if (!strcmp(set.image_ids[i], "401")) {
			assert_memory_equal(set.emb + i * DIM, e[0], sizeof(e[0]));
			found++;
		}
		if (i > 0)
			assert_true(strcmp(set.image_ids[i - 1], set.image_ids[i]) < 0);
	}
	assert_int_equal(found, 1);
	store_emb_set_free(&set);
}

/* Row versions of photos 501 and 503 in ad_images and image_embeddings. */
static void others_versions(char *out)
{
	query_text(out, 128,
	           "SELECT string_agg(t || ':' || image_id || '=' || x, ',' ORDER BY t, image_id)"
	           " FROM (SELECT 'i' t, image_id, xmin::text x FROM ad_images"
	           " UNION ALL SELECT 'e', image_id, xmin::text FROM image_embeddings) v"
	           " WHERE image_id IN ('501', '503')",
	           NULL);
}

static void test_changed_content_hash_rewrites_only_that_row(void **state)
{
	static float e[3][DIM], e2[DIM], e3[DIM];
	struct store_image batch[3];
	struct store_emb_set set = {0};
	char img_before[256], emb_before[256], img_after[256], emb_after[256];
	char runs[128], want[128], others_before[128], others_after[128];
	struct err err = {0};
	int64_t r1 = run_begin(), r2, r3;
	int i;

	for (i = 0; i < 3; i++)
		embedding_fill(e[i], 500 + (uint32_t)i);
	embedding_fill(e2, 599);
	embedding_fill(e3, 598);
	batch[0] = image_ok("501", "ad-5", "h501", e[0]);
	batch[1] = image_ok("502", "ad-5", "h502", e[1]);
	batch[2] = image_ok("503", "ad-5", "h503", e[2]);
	assert_ok(store_write_images(C.s, r1, C.model_id, batch, 3, NULL, &err), err);
	row_versions(img_before, sizeof(img_before), "ad_images", "ad-5");
	row_versions(emb_before, sizeof(emb_before), "image_embeddings", "ad-5");

	/* The same photo embedded again (other floats, same hash) is kept. */
	batch[1].embedding = e3;
	assert_ok(store_write_images(C.s, run_begin(), C.model_id, batch, 3, NULL, &err), err);
	row_versions(img_after, sizeof(img_after), "ad_images", "ad-5");
	row_versions(emb_after, sizeof(emb_after), "image_embeddings", "ad-5");
	assert_string_equal(img_after, img_before);
	assert_string_equal(emb_after, emb_before);

	/* A new photo under the same id replaces row and embedding. */
	others_versions(others_before);
	r2 = run_begin();
	batch[1].content_sha256 = "h502-new";
	batch[1].embedding = e2;
	assert_ok(store_write_images(C.s, r2, C.model_id, batch, 3, NULL, &err), err);
	row_versions(img_after, sizeof(img_after), "ad_images", "ad-5");
	row_versions(emb_after, sizeof(emb_after), "image_embeddings", "ad-5");
	assert_string_not_equal(img_after, img_before);
	assert_string_not_equal(emb_after, emb_before);
	/* Only the 502 entry moved: the others' row versions are identical. */
	others_versions(others_after);
	assert_string_equal(others_after, others_before);
	query_text(runs, sizeof(runs),
	           "SELECT string_agg(image_id || '=' || changed_run_id, ',' ORDER BY image_id)"
	           " FROM ad_images WHERE ad_id = 'ad-5'",
	           NULL);
	snprintf(want, sizeof(want), "501=%" PRId64 ",502=%" PRId64 ",503=%" PRId64, r1, r2, r1);
	assert_string_equal(runs, want);
	query_text(runs, sizeof(runs),
	           "SELECT string_agg(image_id || '=' || run_id, ',' ORDER BY image_id)"
	           " FROM image_embeddings WHERE image_id LIKE '50_'",
	           NULL);
	assert_string_equal(runs, want);

	assert_ok(store_ad_embeddings(C.s, C.model_id, "ad-5", &set, &err), err);
	assert_int_equal(set.n, 3);
	assert_memory_equal(set.emb + DIM, e2, sizeof(e2));
	store_emb_set_free(&set);

	/* Without a hash, the values decide. */
	r3 = run_begin();
	batch[2].content_sha256 = NULL;
	assert_ok(store_write_images(C.s, r3, C.model_id, batch, 3, NULL, &err), err);
	batch[2].embedding = e3;
	assert_ok(store_write_images(C.s, r3, C.model_id, batch, 3, NULL, &err), err);
	assert_ok(store_ad_embeddings(C.s, C.model_id, "ad-5", &set, &err), err);
	assert_memory_equal(set.emb + 2 * DIM, e3, sizeof(e3));
	store_emb_set_free(&set);
}

static void test_failure_then_success_removes_failure_row(void **state)
{
	static float e[DIM];
	struct store_image im = image_failed("701", "ad-7", "fetch", "timeout");
	struct err err = {0};
	char buf[128];

	embedding_fill(e, 700);
	assert_ok(store_write_images(C.s, run_begin(), C.model_id, &im, 1, NULL, &err), err);
	assert_int_equal(query_long("SELECT count(*) FROM failures WHERE key = 'image:701'", NULL),
	                 1);

	im = image_ok("701", "ad-7", "h701", e);
	assert_ok(store_write_images(C.s, run_begin(), C.model_id, &im, 1, NULL, &err), err);
	assert_int_equal(query_long("SELECT count(*) FROM failures WHERE key = 'image:701'", NULL),
	                 0);
	query_text(buf, sizeof(buf),
	           "SELECT concat_ws('|', status, failure_stage, failure_reason, content_sha256)"
	           " FROM ad_images WHERE image_id = '701'",
	           NULL);
	assert_string_equal(buf, "embedded|h701");
}

static void test_duplicate_ids_in_one_batch_last_wins(void **state)
{
	static float e[DIM];
	struct store_image batch[3];
	struct err err = {0};
	char buf[64];

	embedding_fill(e, 1500);
	batch[0] = image_failed("1501", "ad-15", "fetch", "timeout");
	batch[1] = image_ok("1502", "ad-15", "h1502", e);
	batch[2] = image_ok("1501", "ad-15", "h1501", e);
	assert_ok(store_write_images(C.s, run_begin(), C.model_id, batch, 3, NULL, &err), err);
	query_text(buf, sizeof(buf),
	           "SELECT string_agg(image_id || ':' || status, ',' ORDER BY image_id)"
	           " FROM ad_images WHERE ad_id = 'ad-15'",
	           NULL);
	assert_string_equal(buf, "1501:embedded,1502:embedded");
	assert_int_equal(query_long("SELECT count(*) FROM failures WHERE key = 'image:1501'", NULL),
	                 0);
}

/* An image id stays with the ad it was first recorded with: given again for another ad (in a
 * later batch, or twice in one batch) that entry is a failure keyed by its source, never a
 * silent move of the photo (which took it out of its first ad's groups). */
static void test_image_id_of_another_ad_is_refused(void **state)
{
	static float e[DIM];
	struct store_image batch[3];
	struct err err = {0};
	char *owners[3] = {NULL, NULL, NULL};
	char buf[256];

	embedding_fill(e, 1600);
	batch[0] = image_ok("1601", "ad-16b", "h1601b", e);
	batch[0].source = "ads.csv:2";
	batch[1] = image_ok("1601", "ad-16a", "h1601a", e);
	batch[1].source = "ads.csv:3";
	batch[2] = image_ok("1602", "ad-16b", "h1602", e);
	batch[2].source = "ads.csv:4";
	/* in one batch: the smallest ad id keeps it */
	assert_ok(store_write_images(C.s, run_begin(), C.model_id, batch, 3, owners, &err), err);
	assert_non_null(owners[0]);
	assert_string_equal(owners[0], "ad-16a");
	assert_null(owners[1]);
	assert_null(owners[2]);
	free(owners[0]);
	owners[0] = NULL;
	query_text(buf, sizeof(buf),
	           "SELECT string_agg(image_id || ':' || ad_id || ':' || content_sha256, ','"
	           " ORDER BY image_id) FROM ad_images WHERE image_id LIKE '160_'",
	           NULL);
	assert_string_equal(buf, "1601:ad-16a:h1601a,1602:ad-16b:h1602");
	query_text(buf, sizeof(buf),
	           "SELECT string_agg(key || ':' || image_id || ':' || ad_id || ':' || stage || ':'"
	           " || reason, ',') FROM failures WHERE image_id = '1601'",
	           NULL);
	assert_string_equal(buf,
	                    "ads.csv:2:1601:ad-16b:store:image id belongs to another ad: ad-16a");

	/* in a later batch, even by a smaller ad id: the recorded ad keeps it, embedding too */
	batch[0] = image_ok("1601", "ad-16", "h1601", e);
	batch[0].source = "topic/1@7";
	assert_ok(store_write_images(C.s, run_begin(), C.model_id, batch, 1, owners, &err), err);
	assert_non_null(owners[0]);
	assert_string_equal(owners[0], "ad-16a");
	free(owners[0]);
	owners[0] = NULL;
	query_text(buf, sizeof(buf),
	           "SELECT i.ad_id || ':' || e.content_sha256 FROM ad_images i"
	           " JOIN image_embeddings e USING (image_id) WHERE image_id = '1601'",
	           NULL);
	assert_string_equal(buf, "ad-16a:h1601a");
	assert_int_equal(
	    query_long("SELECT count(*) FROM failures WHERE key = 'topic/1@7' AND ad_id = 'ad-16'",
	               NULL),
	    1);
	/* the same entry for its own ad is fine, and callers may pass no OWNERS */
	batch[0] = image_ok("1601", "ad-16a", "h1601a", e);
	assert_ok(store_write_images(C.s, run_begin(), C.model_id, batch, 1, NULL, &err), err);
}

/* ---- groups ---- */

static void test_group_replacement_deletes_stale_rows(void **state)
{
	static float e[4][DIM];
	struct store_image batch[4];
	struct store_group first[4] = {{"601", "ad-6a", "g1"},
	                               {"602", "ad-6a", "g1"},
	                               {"603", "ad-6a", "g3"},
	                               {"604", "ad-6b", "gb"}};
	struct store_group second[2] = {{"602", "ad-6a", "g2"}, {"601", "ad-6a", "g1"}};
	struct store_group_set set = {0};
	struct err err = {0};
	char before[128], after[128], buf[256], want[256];
	int64_t r1 = run_begin(), r2;
	size_t i, seen = 0;
	int k;

	for (k = 0; k < 4; k++)
		embedding_fill(e[k], 600 + (uint32_t)k);
	batch[0] = image_ok("601", "ad-6a", "h601", e[0]);
	batch[1] = image_ok("602", "ad-6a", "h602", e[1]);
	batch[2] = image_ok("603", "ad-6a", "h603", e[2]);
	batch[3] = image_ok("604", "ad-6b", "h604", e[3]);
	assert_ok(store_write_images(C.s, r1, C.model_id, batch, 4, NULL, &err), err);
	assert_ok(store_write_groups(C.s, r1, C.model_id, first, 4, &err), err);
	query_text(before, sizeof(before),
	           "SELECT string_agg(image_id || '=' || xmin, ',' ORDER BY image_id)"
	           " FROM image_groups WHERE image_id IN ('601', '604')",
	           NULL);

	r2 = run_begin();
	assert_ok(store_write_groups(C.s, r2, C.model_id, second, 2, &err), err);
	query_text(buf, sizeof(buf),
	           "SELECT string_agg(image_id || ':' || ad_id || ':' || group_id || ':' || run_id,"
	           " ',' ORDER BY image_id) FROM image_groups WHERE image_id LIKE '60_'",
	           NULL);
	snprintf(want, sizeof(want),
	         "601:ad-6a:g1:%" PRId64 ",602:ad-6a:g2:%" PRId64 ",604:ad-6b:gb:%" PRId64, r1, r2,
	         r1);
	assert_string_equal(buf, want);
	query_text(after, sizeof(after),
	           "SELECT string_agg(image_id || '=' || xmin, ',' ORDER BY image_id)"
	           " FROM image_groups WHERE image_id IN ('601', '604')",
	           NULL);
	assert_string_equal(after, before);

	assert_ok(store_fetch_groups(C.s, C.model_id, &set, &err), err);
	for (i = 0; i < set.n; i++) {
		if (strcmp(set.rows[i].ad_id, "ad-6a") != 0)
			continue;
		assert_string_equal(set.rows[i].image_id, seen ? "602" : "601");
		assert_string_equal(set.rows[i].group_id, seen ? "g2" : "g1");
		seen++;
	}
	assert_int_equal(seen, 2);
	store_groups_free(&set);

	query_text(buf, sizeof(buf),
	           "SELECT string_agg(group_id || '=' || array_to_string(image_ids, '+') || '/' ||"
	           " photos, ',' ORDER BY group_id) FROM ad_groups WHERE ad_id = 'ad-6a'",
	           NULL);
	assert_string_equal(buf, "g1=601/1,g2=602/1");
}

static void test_views_order_numeric_ids_and_summarise_ads(void **state)
{
	static float e[DIM];
	struct store_image batch[5];
	struct store_group groups[4] = {{"10", "ad-9", "ad-9:9"},
	                                {"x1", "ad-9", "ad-9:9"},
	                                {"9", "ad-9", "ad-9:9"},
	                                {"100", "ad-9", "ad-9:9"}};
	struct err err = {0};
	char buf[128];
	int64_t run = run_begin();

	embedding_fill(e, 900);
	batch[0] = image_ok("10", "ad-9", "h10", e);
	batch[1] = image_ok("x1", "ad-9", "hx1", e);
	batch[2] = image_ok("9", "ad-9", "h9", e);
	batch[3] = image_ok("100", "ad-9", "h100", e);
	batch[4] = image_failed("0901", "ad-9", "fetch", "404");
	assert_ok(store_write_images(C.s, run, C.model_id, batch, 5, NULL, &err), err);
	assert_ok(store_write_groups(C.s, run, C.model_id, groups, 4, &err), err);

	query_text(buf, sizeof(buf),
	           "SELECT array_to_string(image_ids, ',') || '/' || photos FROM ad_groups"
	           " WHERE ad_id = 'ad-9'",
	           NULL);
	assert_string_equal(buf, "9,10,100,x1/4");
	query_text(buf, sizeof(buf),
	           "SELECT concat_ws('|', groups, photos, photos_embedded, photos_failed,"
	           " photos_grouped) FROM ad_summary WHERE ad_id = 'ad-9'",
	           NULL);
	assert_string_equal(buf, "1|5|4|1|4");
}

/* ---- hostile text ---- */

static void test_hostile_ids_are_stored_verbatim(void **state)
{
	static const char id[] = "x'); drop table ad_images; --";
	static const char ad[] = "ad\t8\n\"q\"\\N \xc3\xa9";
	static float e[DIM];
	struct store_image im;
	struct store_group g = {id, ad, "g'); delete from image_groups; --"};
	struct store_emb_set set = {0};
	struct err err = {0};
	char buf[128];
	int64_t run = run_begin();

	embedding_fill(e, 800);
	im = image_ok(id, ad, "h8", e);
	im.source = "\\.\n";
	assert_ok(store_write_images(C.s, run, C.model_id, &im, 1, NULL, &err), err);
	assert_ok(store_write_groups(C.s, run, C.model_id, &g, 1, &err), err);
	assert_ok(store_write_failure(C.s, run, id, id, ad, "source", "it's \"bad\"", &err), err);

	assert_ok(store_ad_embeddings(C.s, C.model_id, ad, &set, &err), err);
	assert_int_equal(set.n, 1);
	assert_string_equal(set.image_ids[0], id);
	assert_string_equal(set.ad_ids[0], ad);
	store_emb_set_free(&set);
	query_text(buf, sizeof(buf), "SELECT source FROM ad_images WHERE image_id = $1", id);
	assert_string_equal(buf, "\\.\n");
	query_text(buf, sizeof(buf), "SELECT group_id FROM image_groups WHERE image_id = $1", id);
	assert_string_equal(buf, g.group_id);
	query_text(buf, sizeof(buf), "SELECT reason FROM failures WHERE key = $1", id);
	assert_string_equal(buf, "it's \"bad\"");
	query_text(buf, sizeof(buf), "SELECT to_regclass('ad_images') IS NOT NULL", NULL);
	assert_string_equal(buf, "t");
}

/* ---- bad input ---- */

static void test_bad_batches_are_fatal_and_write_nothing(void **state)
{
	static float e[DIM];
	struct store_image im;
	struct store_group g = {"no-such-image", "ad-14", "g"};
	struct err err = {0};
	int64_t run = run_begin();

	embedding_fill(e, 1400);
	im = image_ok("1401", "ad-14", "h1401", e);
	im.dim = 3;
	assert_int_equal(store_write_images(C.s, run, C.model_id, &im, 1, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "dim"));

	im.dim = DIM;
	e[5] = NAN;
	assert_int_equal(store_write_images(C.s, run, C.model_id, &im, 1, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "1401"));
	e[5] = 0.5f;

	im.created_at = "yesterday-ish";
	assert_int_equal(store_write_images(C.s, run, C.model_id, &im, 1, NULL, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "ad_images"));
	assert_non_null(strstr(err.msg, "22007"));

	assert_int_equal(store_write_groups(C.s, run, C.model_id, &g, 1, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "image_groups"));
	assert_non_null(strstr(err.msg, "23503"));

	assert_int_equal(query_long("SELECT count(*) FROM ad_images WHERE ad_id = 'ad-14'", NULL),
	                 0);
	assert_int_equal(
	    query_long("SELECT count(*) FROM image_groups WHERE ad_id = 'ad-14'", NULL), 0);

	/* The handle is still usable after a failed transaction. */
	im.created_at = NULL;
	assert_ok(store_write_images(C.s, run, C.model_id, &im, 1, NULL, &err), err);
}

/* ---- models and runs ---- */

static void test_model_register_is_idempotent_and_one_is_active(void **state)
{
	struct store_model a = {"tf_efficientnet_b0_ns",
	                        "a.safetensors",
	                        "bbbb1111",
	                        DIM,
	                        512,
	                        512,
	                        NAN,
	                        NULL,
	                        "candidate",
	                        NULL,
	                        NULL,
	                        NULL,
	                        0,
	                        0};
	struct store_model b = a, c = a;
	struct err err = {0};
	int64_t ida = 0, ida2 = 0, idb = 0, idc = 0, active = 0;
	char buf[256], id[24];
	double thr = 0;

	assert_ok(store_model_register(C.s, &a, &ida, &err), err);
	assert_ok(store_model_register(C.s, &a, &ida2, &err), err);
	assert_true(ida > 0);
	assert_int_equal(ida, ida2);
	assert_int_equal(
	    query_long("SELECT count(*) FROM models WHERE weights_sha256 = 'bbbb1111'", NULL), 1);
	snprintf(id, sizeof(id), "%" PRId64, ida);
	query_text(buf, sizeof(buf),
	           "SELECT concat_ws('|', status, threshold IS NULL, metrics IS NULL) FROM models"
	           " WHERE id = $1::bigint",
	           id);
	assert_string_equal(buf, "candidate|t|t");

	b.weights_sha256 = "cccc2222";
	b.status = "active";
	b.threshold = 0.625;
	b.metrics_json = "{\"map50\": 0.8}";
	assert_ok(store_model_register(C.s, &b, &idb, &err), err);
	assert_ok(store_model_active(C.s, &active, &thr, &err), err);
	assert_int_equal(active, idb);
	assert_true(thr == 0.625);
	snprintf(id, sizeof(id), "%" PRId64, C.model_id);
	query_text(buf, sizeof(buf), "SELECT status FROM models WHERE id = $1::bigint", id);
	assert_string_equal(buf, "retired");

	c.weights_sha256 = "dddd3333";
	c.status = "active";
	assert_ok(store_model_register(C.s, &c, &idc, &err), err);
	assert_ok(store_model_active(C.s, &active, &thr, &err), err);
	assert_int_equal(active, idc);
	assert_true(isnan(thr));
	snprintf(id, sizeof(id), "%" PRId64, idb);
	query_text(buf, sizeof(buf),
	           "SELECT concat_ws('|', status, promoted_at IS NOT NULL) FROM models"
	           " WHERE id = $1::bigint",
	           id);
	assert_string_equal(buf, "retired|t");
	/* Registering an existing model again does not promote it. */
	assert_ok(store_model_register(C.s, &b, &idb, &err), err);
	assert_ok(store_model_active(C.s, &active, &thr, &err), err);
	assert_int_equal(active, idc);

	/* Back to the fixture's model, which later tests' views rely on. */
	assert_ok(store_model_promote(C.s, C.model_id, &err), err);
	assert_ok(store_model_promote(C.s, C.model_id, &err), err);
	assert_ok(store_model_active(C.s, &active, &thr, &err), err);
	assert_int_equal(active, C.model_id);
	assert_true(thr == 0.8);
	assert_int_equal(query_long("SELECT count(*) FROM models WHERE status = 'active'", NULL),
	                 1);
	assert_int_equal(store_model_promote(C.s, 987654321, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);

	c.status = "shiny";
	assert_int_equal(store_model_register(C.s, &c, &idc, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
}

/* Promotions are recorded; each rollback undoes the newest one left, so two
 * promotions and two rollbacks end where they started. */
static void test_promotions_are_recorded_and_rollback_walks_back(void **state)
{
	struct store_model x = {"mobilenetv2_100",
	                        "x.safetensors",
	                        "eeee4444",
	                        DIM,
	                        128,
	                        128,
	                        0.7,
	                        "{\"map_at_50\": 0.7}",
	                        "candidate",
	                        "{\"pool\": \"Average\"}",
	                        "{\"seed\": 7}",
	                        "x.json",
	                        0,
	                        0};
	struct store_model y = x;
	struct store_model_info info;
	struct err err = {0};
	int64_t idx = 0, idy = 0, prev = 0, now = 0, undone = 0, active = 0, found = 0;
	char id[24], buf[256];
	double thr;

	y.weights_sha256 = "ffff5555";
	x.parent_id = C.model_id;
	assert_ok(store_model_register(C.s, &x, &idx, &err), err);
	assert_ok(store_model_register(C.s, &y, &idy, &err), err);
	assert_ok(store_model_activate(C.s, idx, "gate", 0, "map 0.7 > 0.6", &prev, &err), err);
	assert_int_equal(prev, C.model_id);
	assert_ok(store_model_activate(C.s, idx, "gate", 0, NULL, &prev, &err), err);
	assert_int_equal(prev, idx); /* already active: nothing recorded */
	assert_ok(store_model_promote(C.s, idy, &err), err);
	snprintf(id, sizeof(id), "%" PRId64, idx);
	query_text(buf, sizeof(buf),
	           "SELECT string_agg(kind || ':' || coalesce(reason, ''), ',' ORDER BY id)"
	           " FROM model_promotions WHERE model_id = $1::bigint OR previous_model_id ="
	           " $1::bigint",
	           id);
	assert_string_equal(buf, "gate:map 0.7 > 0.6,manual:");

	assert_ok(store_model_rollback(C.s, &now, &undone, &err), err);
	assert_int_equal(now, idx);
	assert_int_equal(undone, idy);
	assert_ok(store_model_rollback(C.s, &now, &undone, &err), err);
	assert_int_equal(now, C.model_id);
	assert_int_equal(undone, idx);
	assert_ok(store_model_active(C.s, &active, &thr, &err), err);
	assert_int_equal(active, C.model_id);
	assert_int_equal(query_long("SELECT count(*) FROM model_promotions WHERE kind = 'rollback'"
	                            " AND undone_at IS NULL",
	                            NULL),
	                 2);

	/* a model read back with what it was registered with */
	assert_ok(store_model_get(C.s, idx, &info, &err), err);
	assert_string_equal(info.backbone, "mobilenetv2_100");
	assert_string_equal(info.status, "retired");
	assert_int_equal(info.image_height, 128);
	assert_true(info.threshold == 0.7);
	assert_string_equal(info.inference_json, "{\"pool\": \"Average\"}");
	store_model_info_free(&info);
	assert_int_equal(store_model_get(C.s, 987654321, &info, &err), -1);
	assert_ok(store_model_by_sha(C.s, "ffff5555", &found, &err), err);
	assert_int_equal(found, idy);
	assert_ok(store_model_by_sha(C.s, "0000", &found, &err), err);
	assert_int_equal(found, 0);
	snprintf(id, sizeof(id), "%" PRId64, idx);
	query_text(
	    buf, sizeof(buf),
	    "SELECT concat_ws('|', parent_id = (SELECT min(id) FROM models), training->>'seed',"
	    " sidecar_path) FROM models WHERE id = $1::bigint",
	    id);
	assert_string_equal(buf, "t|7|x.json");
}

static void test_run_begin_and_finish_record_rows(void **state)
{
	struct store_run r = {"backfill", "2026-11-29", "host-1", "1.2.3", C.model_id};
	struct store_run_counts c = {100, 97, 3, 40, 12.5};
	struct err err = {0};
	int64_t id = 0;
	char buf[256], sid[24], want[256];

	assert_ok(store_run_begin(C.s, &r, &id, &err), err);
	snprintf(sid, sizeof(sid), "%" PRId64, id);
	query_text(buf, sizeof(buf),
	           "SELECT concat_ws('|', kind, date, status, host, version, model_id,"
	           " finished_at IS NULL, photos_in IS NULL) FROM pipeline_runs"
	           " WHERE id = $1::bigint",
	           sid);
	snprintf(want, sizeof(want), "backfill|2026-11-29|running|host-1|1.2.3|%" PRId64 "|t|t",
	         C.model_id);
	assert_string_equal(buf, want);

	assert_ok(store_run_finish(C.s, id, "partial", &c, &err), err);
	query_text(buf, sizeof(buf),
	           "SELECT concat_ws('|', status, photos_in, photos_embedded, photos_failed,"
	           " ads_grouped, elapsed_s, finished_at >= started_at) FROM pipeline_runs"
	           " WHERE id = $1::bigint",
	           sid);
	assert_string_equal(buf, "partial|100|97|3|40|12.5|t");

	assert_int_equal(store_run_finish(C.s, id + 1000000, "ok", &c, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	assert_int_equal(store_run_finish(C.s, id, "great", &c, &err), -1);
	assert_int_equal(err.kind, ERR_FATAL);
	assert_non_null(strstr(err.msg, "23514"));
}

/* ---- connection faults ---- */

static void test_open_bad_socket_is_retry_without_password(void **state)
{
	struct err err = {0};
	struct store *s;

	s = store_open("host=/nonexistent/store-test dbname=x user=u password=secret123"
	               " connect_timeout=2",
	               &err);
	assert_null(s);
	assert_int_equal(err.kind, ERR_RETRY);
	assert_true(strlen(err.msg) > 0);
	assert_null(strstr(err.msg, "secret123"));

	s = store_open("host=/nonexistent/store-test password secret123", &err);
	assert_null(s);
	assert_int_equal(err.kind, ERR_FATAL);
	assert_null(strstr(err.msg, "secret123"));

	s = store_open("postgresql://u:secret123@/x?host=/nonexistent/store-test", &err);
	assert_null(s);
	assert_int_equal(err.kind, ERR_RETRY);
	assert_null(strstr(err.msg, "secret123"));
}

struct write_job {
	struct store *s;
	const struct store_image *imgs;
	size_t n;
	int64_t model_id;
	int rc;
	struct err err;
};

static void *write_thread(void *arg)
{
	struct write_job *j = arg;

	j->rc = store_write_images(j->s, 0, j->model_id, j->imgs, j->n, NULL, &j->err);
	return NULL;
}

/* The server ends the store's session while its transaction waits on a lock:
 * the call reports ERR_RETRY, nothing of the batch is kept, and the next call
 * on the same handle reconnects and succeeds. */
static void test_killed_session_mid_transaction_is_retry(void **state)
{
	static float e[2][DIM];
	struct store_image batch[2];
	struct write_job job = {0};
	char conninfo[192], pid[32] = "";
	struct err err = {0};
	PGconn *locker;
	pthread_t th;
	int tries;

	embedding_fill(e[0], 1300);
	embedding_fill(e[1], 1301);
	batch[0] = image_ok("1301", "ad-13", "h1301", e[0]);
	batch[1] = image_ok("1302", "ad-13", "h1302", e[1]);
	snprintf(conninfo, sizeof(conninfo), "%s application_name=store-test-victim", C.conninfo);
	job.s = store_open(conninfo, &err);
	if (!job.s)
		fail_msg("store_open: %s", err.msg);
	job.imgs = batch;
	job.n = 2;
	job.model_id = C.model_id;

	locker = PQconnectdb(C.conninfo);
	assert_int_equal(PQstatus(locker), CONNECTION_OK);
	PQclear(query(locker, "BEGIN", NULL));
	PQclear(query(locker, "LOCK TABLE ad_images IN EXCLUSIVE MODE", NULL));
	pthread_create(&th, NULL, write_thread, &job);

	for (tries = 0; tries < 200 && !*pid; tries++) {
		PGresult *r = query(C.db,
		                    "SELECT pid FROM pg_stat_activity"
		                    " WHERE application_name = 'store-test-victim'"
		                    " AND wait_event_type = 'Lock'",
		                    NULL);

		if (PQntuples(r) == 1)
			snprintf(pid, sizeof(pid), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		if (!*pid)
			usleep(50 * 1000);
	}
	if (*pid)
		PQclear(query(C.db, "SELECT pg_terminate_backend($1::int)", pid));
	PQclear(query(locker, "ROLLBACK", NULL));
	PQfinish(locker);
	pthread_join(th, NULL);

	assert_true(*pid != '\0');
	assert_int_equal(job.rc, -1);
	assert_int_equal(job.err.kind, ERR_RETRY);
	assert_int_equal(query_long("SELECT count(*) FROM ad_images WHERE ad_id = 'ad-13'", NULL),
	                 0);

	assert_ok(store_write_images(job.s, 0, C.model_id, batch, 2, NULL, &err), err);
	assert_int_equal(query_long("SELECT count(*) FROM ad_images WHERE ad_id = 'ad-13'", NULL),
	                 2);
	store_close(job.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_migrations_apply_once),
	    cmocka_unit_test(test_concurrent_migrations_apply_each_file_once),
	    cmocka_unit_test(test_batch_with_failures_gives_expected_rows),
	    cmocka_unit_test(test_same_input_twice_leaves_tables_identical),
	    cmocka_unit_test(test_embeddings_round_trip_bit_exact),
	    cmocka_unit_test(test_changed_content_hash_rewrites_only_that_row),
	    cmocka_unit_test(test_failure_then_success_removes_failure_row),
	    cmocka_unit_test(test_duplicate_ids_in_one_batch_last_wins),
	    cmocka_unit_test(test_image_id_of_another_ad_is_refused),
	    cmocka_unit_test(test_group_replacement_deletes_stale_rows),
	    cmocka_unit_test(test_views_order_numeric_ids_and_summarise_ads),
	    cmocka_unit_test(test_hostile_ids_are_stored_verbatim),
	    cmocka_unit_test(test_bad_batches_are_fatal_and_write_nothing),
	    cmocka_unit_test(test_model_register_is_idempotent_and_one_is_active),
	    cmocka_unit_test(test_promotions_are_recorded_and_rollback_walks_back),
	    cmocka_unit_test(test_run_begin_and_finish_record_rows),
	    cmocka_unit_test(test_open_bad_socket_is_retry_without_password),
	    cmocka_unit_test(test_killed_session_mid_transaction_is_retry),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
