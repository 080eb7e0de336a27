/* store_bench.c - rows per second for store_write_images and store_write_groups.
 *
 *   store_bench [ROWS]   (default 20000; PGHOST etc. name the server)
 *
 * Creates its own database, prints one line per case and drops the database.
 * A measurement, not a test: it checks nothing but that the writes succeed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "proc.h"
#include "store.h"

#define DIM           512
#define PHOTOS_PER_AD 8

struct ids {
	char image[24], ad[24], sha[32], group[40];
};

static int admin_exec(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;

	if (rc)
		fprintf(stderr, "store_bench: %s: %s", sql, PQerrorMessage(conn));
	PQclear(r);
	return rc;
}

/* Write ROWS photos in batches of BATCH; SALT changes the content hashes so
 * that every row is rewritten (0 repeats the first pass). */
static int bench_images(struct store *s, int64_t run, int64_t model, struct store_image *imgs,
                        struct ids *ids, size_t rows, size_t batch, int salt, const char *label)
{
	struct err err = {0};
	double t0;
	size_t i, n;

	for (i = 0; i < rows; i++)
		snprintf(ids[i].sha, sizeof(ids[i].sha), "sha-%zu-%d", i, salt);
	t0 = proc_now_s();
	for (i = 0; i < rows; i += n) {
		n = rows - i < batch ? rows - i : batch;
		if (store_write_images(s, run, model, imgs + i, n, NULL, &err) != 0) {
			fprintf(stderr, "store_bench: %s\n", err.msg);
			return -1;
		}
	}
	printf("write_images  %-28s batch %5zu  %8.0f rows/s\n", label, batch,
	       (double)rows / (proc_now_s() - t0));
	return 0;
}

static int bench_groups(struct store *s, int64_t run, int64_t model, struct store_group *g,
                        size_t rows, size_t batch, const char *label)
{
	struct err err = {0};
	double t0 = proc_now_s();
	size_t i, n;

	for (i = 0; i < rows; i += n) {
		n = rows - i < batch ? rows - i : batch;
		if (store_write_groups(s, run, model, g + i, n, &err) != 0) {
			fprintf(stderr, "store_bench: %s\n", err.msg);
			return -1;
		}
	}
	printf("write_groups  %-28s batch %5zu  %8.0f rows/s\n", label, batch,
	       (double)rows / (proc_now_s() - t0));
	return 0;
}

/* The same embeddings as plain multi-row INSERT statements of BATCH rows (text arrays), one
 * transaction each, into a scratch table: what a client without COPY does. */
static int bench_insert(PGconn *conn, const struct ids *ids, const float *emb, size_t rows,
                        size_t batch)
{
	size_t cap = batch * (DIM * 16 + 64) + 256, i, k, at = 0;
	char *sql = malloc(cap);
	double t0;
	int rc = -1;

	if (!sql || admin_exec(conn, "CREATE TABLE bench_insert (image_id text PRIMARY KEY, "
	                             "ad_id text, embedding real[])") != 0)
		goto out;
	t0 = proc_now_s();
	for (i = 0; i < rows; i += batch) {
		size_t n = rows - i < batch ? rows - i : batch;

		at = (size_t)snprintf(sql, cap, "INSERT INTO bench_insert VALUES ");
		for (k = 0; k < n; k++) {
			const float *e = emb + (i + k) * DIM;
			int d;

			at += (size_t)snprintf(sql + at, cap - at, "%s('%s','%s','{", k ? "," : "",
			                       ids[i + k].image, ids[i + k].ad);
			for (d = 0; d < DIM; d++)
				at += (size_t)snprintf(sql + at, cap - at, "%s%.9g", d ? "," : "",
				                       (double)e[d]);
			at += (size_t)snprintf(sql + at, cap - at, "}')");
		}
		if (admin_exec(conn, sql) != 0)
			goto out;
	}
	printf("insert_rows   %-28s batch %5zu  %8.0f rows/s\n", "new rows (text INSERT)", batch,
	       (double)rows / (proc_now_s() - t0));
	rc = admin_exec(conn, "DROP TABLE bench_insert");
out:
	free(sql);
	return rc;
}

int main(int argc, char **argv)
{
	static const size_t batches[] = {32, 1000};
	struct store_model m = {"mobilenetv2_100",
	                        "bench.safetensors",
	                        "bench",
	                        DIM,
	                        224,
	                        224,
	                        0.8,
	                        NULL,
	                        "active",
	                        NULL,
	                        NULL,
	                        NULL,
	                        0,
	                        0};
	struct store_run r = {"nightly", NULL, "bench", "bench", 0};
	size_t rows = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000, i, b;
	const char *root = getenv("ROOT");
	char db[64], conninfo[96], sql[128], sql_dir[512];
	struct store_image *imgs = NULL;
	struct store_group *groups = NULL;
	struct ids *ids = NULL;
	struct store *s = NULL;
	struct err err = {0};
	float *emb = NULL;
	PGconn *admin, *direct = NULL;
	int64_t model = 0, run = 0;
	int rc = 1;

	admin = PQconnectdb("dbname=postgres");
	if (PQstatus(admin) != CONNECTION_OK || rows == 0) {
		fprintf(stderr, "store_bench: %s", PQerrorMessage(admin));
		PQfinish(admin);
		return 1;
	}
	snprintf(db, sizeof(db), "store_bench_%ld", (long)getpid());
	snprintf(conninfo, sizeof(conninfo), "dbname=%s", db);
	snprintf(sql_dir, sizeof(sql_dir), "%s/sql", root ? root : ".");
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	if (admin_exec(admin, sql) != 0)
		goto out;

	imgs = calloc(rows, sizeof(*imgs));
	groups = calloc(rows, sizeof(*groups));
	ids = calloc(rows, sizeof(*ids));
	emb = malloc(rows * DIM * sizeof(float));
	if (!imgs || !groups || !ids || !emb)
		goto out;
	for (i = 0; i < rows * DIM; i++)
		emb[i] = (float)((double)((i * 2654435761u) % 1000003) / 1000003.0 - 0.5);
	for (i = 0; i < rows; i++) {
		snprintf(ids[i].image, sizeof(ids[i].image), "%zu", 1000000 + i);
		snprintf(ids[i].ad, sizeof(ids[i].ad), "%zu", 9000000 + i / PHOTOS_PER_AD);
		snprintf(ids[i].group, sizeof(ids[i].group), "%s:%zu", ids[i].ad,
		         1000000 + i - i % 2);
		imgs[i] = (struct store_image){.image_id = ids[i].image,
		                               .ad_id = ids[i].ad,
		                               .url = "file:///data/ads/photo.jpg",
		                               .created_at = "2026-11-30T09:29:22Z",
		                               .source = "ads.csv:1",
		                               .ok = 1,
		                               .width = 512,
		                               .height = 512,
		                               .content_sha256 = ids[i].sha,
		                               .embedding = emb + i * DIM,
		                               .dim = DIM};
		groups[i] = (struct store_group){ids[i].image, ids[i].ad, ids[i].group};
	}

	s = store_open(conninfo, &err);
	if (!s || store_migrate(s, sql_dir, NULL, &err) != 0 ||
	    store_model_register(s, &m, &model, &err) != 0 ||
	    store_run_begin(s, &r, &run, &err) != 0) {
		fprintf(stderr, "store_bench: %s\n", err.msg);
		goto out;
	}
	direct = PQconnectdb(conninfo);
	printf("%zu rows of %d floats each case\n", rows, DIM);
	for (b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		/* Each batch size starts from empty tables. */
		if (admin_exec(direct, "TRUNCATE ad_images, image_embeddings, image_groups,"
		                       " failures") != 0)
			goto out;
		if (bench_images(s, run, model, imgs, ids, rows, batches[b], 1, "new rows") ||
		    bench_images(s, run, model, imgs, ids, rows, batches[b], 1,
		                 "same rows again (no-op)") ||
		    bench_images(s, run, model, imgs, ids, rows, batches[b], 2,
		                 "every hash changed") ||
		    bench_groups(s, run, model, groups, rows, batches[b], "new rows") ||
		    bench_groups(s, run, model, groups, rows, batches[b],
		                 "same rows again (no-op)") ||
		    bench_insert(direct, ids, emb, rows, batches[b]))
			goto out;
	}
	rc = 0;
out:
	store_close(s);
	PQfinish(direct);
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
	admin_exec(admin, sql);
	PQfinish(admin);
	free(emb);
	free(ids);
	free(groups);
	free(imgs);
	return rc;
}
