/* store.c - the PostgreSQL side of the pipeline through libpq: the connection and its
 * errors, migrations, runs, photos, embeddings, groups and failures, and the queries of
 * status and reports (the models' tables are in store_models.c). */
#include "store.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"
#include "log.h"
#include "store_impl.h"

/* Advisory lock keys ("pipemig", "pipegrps" in ASCII): one serialises schema migrations
 * across processes, the other grouping (see store_groups_lock()). */
#define STORE_LOCK_MIGRATE INT64_C(0x706970656d6967)
#define STORE_LOCK_GROUPS  INT64_C(0x7069706567727073) /* "pipegrps" */

#define STORE_SQL_FILE_MAX    (16L << 20) /* bytes in one migration file */
#define STORE_COPY_CHUNK      (1u << 20)  /* bytes handed to libpq per COPY send */
#define STORE_FLOAT4_OID      700         /* pg_type oid of real, fixed since 7.x */
#define STORE_CONNECT_TIMEOUT "10"        /* seconds, unless PGCONNECT_TIMEOUT says */

/* ---- messages and error translation ---- */

/* Make a libpq message fit one log line, and hide SECRET should libpq ever
 * echo it. */
static void msg_clean(char *msg, const char *secret)
{
	size_t len;
	char *p;

	for (p = msg; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == ' ')
		msg[--len] = '\0';
	if (!secret || !*secret)
		return;
	while ((p = strstr(msg, secret)) != NULL)
		memset(p, '*', strlen(secret));
}

/* SQLSTATEs after which the same call can succeed later: the connection or
 * the server went away (class 08, 57P01..57P03), or the server chose this
 * transaction as a victim (serialization failure, deadlock). */
static int state_retriable(const char *state)
{
	static const char *const codes[] = {"57P01", "57P02", "57P03", "40001", "40P01", "53300"};
	size_t i;

	if (!state)
		return 0;
	if (!strncmp(state, "08", 2))
		return 1;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(state, codes[i]))
			return 1;
	return 0;
}

/* The one place libpq errors become a struct err. WHAT names the operation
 * and table ("upsert ad_images"). RES may be NULL. Returns -1. */
static int store_fail(struct store *s, const PGresult *res, const char *what, struct err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *text = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	enum err_kind kind = ERR_FATAL;
	char msg[ERR_MSG_MAX];

	if (PQstatus(s->conn) != CONNECTION_OK || state_retriable(state))
		kind = ERR_RETRY;
	if (!text || !*text)
		text = PQerrorMessage(s->conn);
	/* a database never migrated (status, report or evaluate run first) */
	if ((!hint || !*hint) && state && !strcmp(state, "42P01"))
		hint = "pipeline-run migrate creates the pipeline's tables and views";
	/* the server's hint says what to do ("Check free disk space.") */
	snprintf(msg, sizeof(msg), "%s%s%s%s", text && *text ? text : "no message from libpq",
	         hint && *hint ? " (hint: " : "", hint && *hint ? hint : "",
	         hint && *hint ? ")" : "");
	msg_clean(msg, s->password);
	return err_set(err, kind, "store: %s failed: sqlstate %s: %s", what, state ? state : "none",
	               msg);
}

/* ---- statements and transactions ---- */

int store_exec(struct store *s, const char *what, const char *sql, int nparams,
               const char *const *params, int binary, PGresult **res, struct err *err)
{
	PGresult *r;
	ExecStatusType st;

	r = PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, binary);
	st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		store_fail(s, r, what, err);
		PQclear(r);
		return -1;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

/* Run a script of several statements with no parameters (our own SQL files
 * and fixed DDL: nothing from the input reaches this). */
static int store_exec_script(struct store *s, const char *what, const char *sql, struct err *err)
{
	PGresult *r = PQexec(s->conn, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = store_fail(s, r, what, err);
	PQclear(r);
	return rc;
}

int store_begin(struct store *s, struct err *err)
{
	return store_exec(s, "begin transaction", "BEGIN", 0, NULL, 0, NULL, err);
}

int store_commit(struct store *s, const char *what, struct err *err)
{
	return store_exec(s, what, "COMMIT", 0, NULL, 0, NULL, err);
}

void store_rollback(struct store *s)
{
	if (PQstatus(s->conn) == CONNECTION_OK && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* Same-session settings: RFC 3339 times without an offset must not depend on
 * the server's TimeZone, and the input is UTF-8 (JSON events, CSV files). */
static int store_session_init(struct store *s, struct err *err)
{
	if (PQsetClientEncoding(s->conn, "UTF8") != 0)
		return store_fail(s, NULL, "set client_encoding", err);
	return store_exec(s, "set timezone", "SET TimeZone = 'UTC'", 0, NULL, 0, NULL, err);
}

int store_ready(struct store *s, struct err *err)
{
	char msg[ERR_MSG_MAX];

	if (PQstatus(s->conn) == CONNECTION_OK) {
		store_rollback(s);
		return 0;
	}
	s->have_temp = 0;
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(s->conn));
		msg_clean(msg, s->password);
		return err_set(err, ERR_RETRY, "store: reconnect failed: %s", msg);
	}
	log_info("store", "reconnected to postgresql", "server_pid=%d", PQbackendPID(s->conn));
	return store_session_init(s, err);
}

void store_fmt_i64(char *buf, size_t cap, int64_t v)
{
	snprintf(buf, cap, "%" PRId64, v);
}

const char *store_fmt_id(char *buf, size_t cap, int64_t id)
{
	if (id <= 0)
		return NULL;
	store_fmt_i64(buf, cap, id);
	return buf;
}

int store_parse_i64(const char *text, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || *end)
		return -1;
	*out = v;
	return 0;
}

/* ---- connection ---- */

/* libpq treats a string with '=' or a postgres:// URI as a connection string
 * and anything else as a database name. */
static int is_conninfo(const char *s)
{
	return strchr(s, '=') || !strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11);
}

/* Pull the password out of CONNINFO (if any) so messages can be scrubbed. */
static int conninfo_password(const char *conninfo, char **password, struct err *err)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;
	int rc = 0;

	*password = NULL;
	if (!is_conninfo(conninfo))
		return 0;
	opts = PQconninfoParse(conninfo, &perr);
	if (!opts) {
		/* libpq quotes the offending token, which may be the password. */
		PQfreemem(perr);
		return err_set(err, ERR_FATAL,
		               "store: connection string is invalid (not shown: it may hold a "
		               "password)");
	}
	for (o = opts; o->keyword; o++) {
		if (!strcmp(o->keyword, "password") && o->val && *o->val) {
			*password = strdup(o->val);
			if (!*password)
				rc = err_set(err, ERR_FATAL, "store: out of memory");
			break;
		}
	}
	PQconninfoFree(opts);
	return rc;
}

static void store_notice(void *arg, const char *message)
{
	struct store *s = arg;
	char msg[ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", message);
	msg_clean(msg, s->password);
	log_debug(LOGC_PG, "store", msg, "source=%s", "postgresql");
}

struct store *store_open(const char *conninfo, struct err *err)
{
	/* Entries before dbname are defaults that the connection string may
	 * override; fallback_application_name yields to PGAPPNAME as well. */
	const char *keys[] = {"connect_timeout", "dbname", "fallback_application_name", NULL};
	const char *vals[] = {getenv("PGCONNECT_TIMEOUT") ? NULL : STORE_CONNECT_TIMEOUT,
	                      conninfo ? conninfo : "", "pipeline-run", NULL};
	struct store *s;
	char msg[ERR_MSG_MAX];

	s = calloc(1, sizeof(*s));
	if (!s) {
		err_set(err, ERR_FATAL, "store: out of memory");
		return NULL;
	}
	if (conninfo_password(vals[1], &s->password, err))
		goto fail;
	/* LIMIT: no client-side statement timeout; a server that hangs without
	 * closing the socket blocks the caller (set statement_timeout or TCP
	 * keepalives in the connection string where that matters). */
	s->conn = PQconnectdbParams(keys, vals, 1);
	if (!s->conn) {
		err_set(err, ERR_FATAL, "store: out of memory connecting");
		goto fail;
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(s->conn));
		msg_clean(msg, s->password);
		/* LIMIT: libpq gives no SQLSTATE for a refused connection, so a
		 * wrong password or missing database reads as retriable; only a
		 * missing password is known to be fatal. */
		err_set(err, PQconnectionNeedsPassword(s->conn) ? ERR_FATAL : ERR_RETRY,
		        "store: cannot connect: %s", msg);
		goto fail;
	}
	PQsetNoticeProcessor(s->conn, store_notice, s);
	if (store_session_init(s, err))
		goto fail;
	log_debug(LOGC_PG, "store", "connected", "db=%s server_pid=%d", PQdb(s->conn),
	          PQbackendPID(s->conn));
	return s;

fail:
	store_close(s);
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	PQfinish(s->conn);
	if (s->password) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s);
}

/* ---- migrations ---- */

struct migration {
	int version;
	char file[256];
};

static int migration_cmp(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

/* NNN_name.sql: the leading digits are the version. Other files (roles.sql,
 * notes) are not migrations. */
static int migration_name(const char *name, int *version)
{
	size_t len = strlen(name), digits = strspn(name, "0123456789");
	long v;

	if (digits == 0 || digits > 9 || name[digits] != '_' || len < digits + 5 ||
	    strcmp(name + len - 4, ".sql") != 0)
		return -1;
	v = strtol(name, NULL, 10);
	*version = (int)v;
	return 0;
}

/* The migration files of DIR sorted by version; free *OUT. */
static int migrations_list(const char *dir, struct migration **out, size_t *n, struct err *err)
{
	struct migration *list = NULL, *grown;
	size_t count = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;
	int rc = -1;

	d = opendir(dir);
	if (!d)
		return err_set(err, ERR_FATAL, "store: cannot open migrations dir %s: %s", dir,
		               strerror(errno));
	while ((de = readdir(d)) != NULL) {
		int version;

		if (migration_name(de->d_name, &version) != 0)
			continue;
		if (strlen(de->d_name) >= sizeof(list[0].file)) {
			err_set(err, ERR_FATAL, "store: migration file name too long in %s", dir);
			goto out;
		}
		if (count == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(list, cap * sizeof(*list));
			if (!grown) {
				err_set(err, ERR_FATAL, "store: out of memory");
				goto out;
			}
			list = grown;
		}
		list[count].version = version;
		snprintf(list[count].file, sizeof(list[count].file), "%s", de->d_name);
		count++;
	}
	if (count == 0) {
		/* a wrong database.sql_dir would otherwise surface as missing tables */
		err_set(err, ERR_FATAL,
		        "store: migrations dir %s holds no migrations (NNN_name.sql)", dir);
		goto out;
	}
	qsort(list, count, sizeof(*list), migration_cmp);
	for (i = 1; i < count; i++) {
		if (list[i].version == list[i - 1].version) {
			err_set(err, ERR_FATAL, "store: migrations %s and %s share version %d",
			        list[i - 1].file, list[i].file, list[i].version);
			goto out;
		}
	}
	*out = list;
	*n = count;
	list = NULL;
	rc = 0;
out:
	free(list);
	closedir(d);
	return rc;
}

/* Apply one file and record it, in one transaction.
 * LIMIT: a migration cannot use statements that refuse to run in a
 * transaction (CREATE INDEX CONCURRENTLY, VACUUM). */
static int migration_apply(struct store *s, const char *dir, const struct migration *m,
                           struct err *err)
{
	char path[PATH_MAX], version[16], what[300];
	const char *params[2];
	char *sql = NULL;
	int rc = -1;

	if (file_join(path, sizeof(path), dir, m->file, err))
		return err_prefix(err, "store: migration");
	sql = file_read_text(path, STORE_SQL_FILE_MAX, err);
	if (!sql)
		return err_prefix(err, "store");
	snprintf(version, sizeof(version), "%d", m->version);
	params[0] = version;
	params[1] = m->file;
	snprintf(what, sizeof(what), "migration %s", m->file);
	if (store_begin(s, err) || store_exec_script(s, what, sql, err) ||
	    store_exec(s, "record migration in schema_migrations",
	               "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2,
	               params, 0, NULL, err) ||
	    store_commit(s, what, err))
		goto out;
	log_info("store", "applied migration", "version=%d file=%s", m->version, m->file);
	rc = 0;
out:
	if (rc)
		store_rollback(s);
	free(sql);
	return rc;
}

static int version_applied(const PGresult *res, int version)
{
	int i;

	for (i = 0; i < PQntuples(res); i++)
		if (strtol(PQgetvalue(res, i, 0), NULL, 10) == version)
			return 1;
	return 0;
}

int store_migrate(struct store *s, const char *sql_dir, int *applied, struct err *err)
{
	char key[24];
	const char *params[1] = {key};
	struct migration *list = NULL;
	PGresult *done = NULL;
	size_t n = 0, i;
	int count = 0, locked = 0, rc = -1;

	if (applied)
		*applied = 0;
	if (migrations_list(sql_dir, &list, &n, err) || store_ready(s, err))
		goto out;

	/* The table is created under the lock: two first-time callers racing
	 * on CREATE TABLE IF NOT EXISTS can otherwise both try to create it. */
	store_fmt_i64(key, sizeof(key), STORE_LOCK_MIGRATE);
	if (store_exec(s, "take migration lock", "SELECT pg_advisory_lock($1::bigint)", 1, params,
	               0, NULL, err))
		goto out;
	locked = 1;
	if (store_exec(s, "create schema_migrations",
	               "CREATE TABLE IF NOT EXISTS schema_migrations ("
	               " version integer PRIMARY KEY,"
	               " name text NOT NULL,"
	               " applied_at timestamptz NOT NULL DEFAULT now())",
	               0, NULL, 0, NULL, err) ||
	    store_exec(s, "read schema_migrations", "SELECT version FROM schema_migrations", 0,
	               NULL, 0, &done, err))
		goto out;

	for (i = 0; i < n; i++) {
		if (version_applied(done, list[i].version))
			continue;
		if (migration_apply(s, sql_dir, &list[i], err))
			goto out;
		count++;
	}
	rc = 0;
out:
	if (locked && PQstatus(s->conn) == CONNECTION_OK)
		PQclear(PQexecParams(s->conn, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL,
		                     params, NULL, NULL, 0));
	if (applied)
		*applied = count;
	PQclear(done);
	free(list);
	return rc;
}

/* ---- runs ---- */

int store_run_begin(struct store *s, const struct store_run *r, int64_t *run_id, struct err *err)
{
	char model[24];
	const char *params[5];
	PGresult *res = NULL;
	int rc = 0;

	if (!r || !r->kind)
		return err_set(err, ERR_FATAL, "store: a run needs a kind");
	if (store_ready(s, err))
		return -1;
	params[0] = r->kind;
	params[1] = r->date;
	params[2] = r->host;
	params[3] = r->version;
	params[4] = store_fmt_id(model, sizeof(model), r->model_id);
	if (store_exec(s, "insert into pipeline_runs",
	               "INSERT INTO pipeline_runs (kind, date, host, version, model_id)"
	               " VALUES ($1, $2::date, $3, $4, $5::bigint) RETURNING id",
	               5, params, 0, &res, err))
		return -1;
	if (store_parse_i64(PQgetvalue(res, 0, 0), run_id) != 0)
		rc = err_set(err, ERR_FATAL, "store: bad id from pipeline_runs");
	PQclear(res);
	return rc;
}

int store_run_finish(struct store *s, int64_t run_id, const char *status,
                     const struct store_run_counts *c, struct err *err)
{
	char id[24], in[24], emb[24], failed[24], ads[24], elapsed[40];
	const char *params[7];
	PGresult *res = NULL;
	int rc = 0;

	if (!status)
		return err_set(err, ERR_FATAL, "store: run %" PRId64 " finished without status",
		               run_id);
	if (store_ready(s, err))
		return -1;
	store_fmt_i64(id, sizeof(id), run_id);
	params[0] = id;
	params[1] = status;
	params[2] = params[3] = params[4] = params[5] = params[6] = NULL;
	if (c) {
		snprintf(in, sizeof(in), "%ld", c->photos_in);
		snprintf(emb, sizeof(emb), "%ld", c->photos_embedded);
		snprintf(failed, sizeof(failed), "%ld", c->photos_failed);
		snprintf(ads, sizeof(ads), "%ld", c->ads_grouped);
		snprintf(elapsed, sizeof(elapsed), "%.17g", c->elapsed_s);
		params[2] = in;
		params[3] = emb;
		params[4] = failed;
		params[5] = ads;
		params[6] = isfinite(c->elapsed_s) ? elapsed : NULL;
	}
	if (store_exec(s, "update pipeline_runs",
	               "UPDATE pipeline_runs SET finished_at = now(), status = $2,"
	               " photos_in = $3::bigint, photos_embedded = $4::bigint,"
	               " photos_failed = $5::bigint, ads_grouped = $6::bigint,"
	               " elapsed_s = $7::float8"
	               " WHERE id = $1::bigint",
	               7, params, 0, &res, err))
		return -1;
	if (strcmp(PQcmdTuples(res), "1") != 0)
		rc = err_set(err, ERR_FATAL, "store: no run %" PRId64 " in pipeline_runs", run_id);
	PQclear(res);
	return rc;
}

/* ---- queries for operators (status, reports, locks) ---- */

int store_query(struct store *s, const char *what, const char *sql, int nparams,
                const char *const *params, size_t max_rows, struct store_rows *out, struct err *err)
{
	PGresult *res = NULL;
	size_t n, cells, bytes = 0, i, at = 0;
	int ncols, rc = -1;
	char *strings;

	if (out)
		memset(out, 0, sizeof(*out));
	if (store_ready(s, err) || store_exec(s, what, sql, nparams, params, 0, &res, err))
		return -1;
	n = (size_t)PQntuples(res);
	ncols = PQnfields(res);
	if (!out || ncols == 0) {
		rc = 0;
		goto out;
	}
	if (n > max_rows) {
		err_set(err, ERR_FATAL, "store: %s: %zu rows, more than the limit of %zu", what, n,
		        max_rows);
		goto out;
	}
	cells = n * (size_t)ncols;
	for (i = 0; i < cells; i++)
		bytes +=
		    (size_t)PQgetlength(res, (int)(i / (size_t)ncols), (int)(i % (size_t)ncols)) +
		    1;
	/* one block: the cell pointers, then the strings they point into */
	out->cells = malloc(cells * sizeof(char *) + bytes + 1);
	if (!out->cells) {
		err_set(err, ERR_FATAL, "store: %s: out of memory for %zu rows", what, n);
		goto out;
	}
	strings = (char *)(out->cells + cells);
	for (i = 0; i < cells; i++) {
		int row = (int)(i / (size_t)ncols), col = (int)(i % (size_t)ncols);
		size_t len = (size_t)PQgetlength(res, row, col);

		if (PQgetisnull(res, row, col)) {
			out->cells[i] = NULL;
			continue;
		}
		memcpy(strings + at, PQgetvalue(res, row, col), len + 1);
		out->cells[i] = strings + at;
		at += len + 1;
	}
	out->n = n;
	out->ncols = ncols;
	rc = 0;
out:
	PQclear(res);
	return rc;
}

const char *store_rows_get(const struct store_rows *r, size_t row, int col)
{
	if (!r || row >= r->n || col < 0 || col >= r->ncols)
		return NULL;
	return r->cells[row * (size_t)r->ncols + (size_t)col];
}

void store_rows_free(struct store_rows *r)
{
	if (!r)
		return;
	free(r->cells);
	memset(r, 0, sizeof(*r));
}

int store_query_pairs(struct store *s, const char *sql,
                      int (*row)(void *arg, long n, const char *a, const char *b, struct err *err),
                      void *arg, struct err *err)
{
	PGresult *res = NULL;
	int rc = -1, i;

	if (store_ready(s, err) || store_begin(s, err) ||
	    store_exec(s, "set read only", "SET TRANSACTION READ ONLY", 0, NULL, 0, NULL, err) ||
	    store_exec(s, "labels query", sql, 0, NULL, 0, &res, err))
		goto out;
	if (PQnfields(res) < 2) {
		err_set(err, ERR_FATAL,
		        "store: labels query returns %d columns, needs image and "
		        "label",
		        PQnfields(res));
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++)
		if (row(arg, i + 1, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), err))
			goto out;
	rc = 0;
out:
	PQclear(res);
	store_rollback(s);
	return rc;
}

/* ---- binary COPY ---- */

/* Rows for COPY ... FROM STDIN (FORMAT binary), sent to libpq in chunks.
 * Binary rather than text: floats go over bit-exact with no formatting or
 * parsing, and no field needs escaping. Errors are sticky and reported by
 * copy_finish(). */
struct copy_buf {
	PGconn *conn;
	char *data;
	size_t len, cap;
	int oom, send_failed;
};

static char *copy_room(struct copy_buf *b, size_t more)
{
	char *grown;
	size_t cap;

	if (b->oom || b->send_failed)
		return NULL;
	if (b->len + more > b->cap) {
		cap = b->cap ? b->cap : STORE_COPY_CHUNK + 4096;
		while (cap < b->len + more)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (!grown) {
			b->oom = 1;
			return NULL;
		}
		b->data = grown;
		b->cap = cap;
	}
	return b->data + b->len;
}

static void copy_put(struct copy_buf *b, const void *p, size_t n)
{
	char *at = copy_room(b, n);

	if (!at)
		return;
	memcpy(at, p, n);
	b->len += n;
}

static void copy_u16(struct copy_buf *b, uint16_t v)
{
	uint16_t be = htons(v);

	copy_put(b, &be, sizeof(be));
}

static void copy_u32(struct copy_buf *b, uint32_t v)
{
	uint32_t be = htonl(v);

	copy_put(b, &be, sizeof(be));
}

static void copy_null(struct copy_buf *b)
{
	copy_u32(b, UINT32_MAX); /* length -1 */
}

/* Text goes as its bytes; the server checks the encoding. */
static void copy_text(struct copy_buf *b, const char *s)
{
	size_t n;

	if (!s) {
		copy_null(b);
		return;
	}
	n = strlen(s);
	if (n > INT32_MAX) {
		b->oom = 1;
		return;
	}
	copy_u32(b, (uint32_t)n);
	copy_put(b, s, n);
}

static void copy_int4(struct copy_buf *b, int32_t v)
{
	copy_u32(b, 4);
	copy_u32(b, (uint32_t)v);
}

static void copy_bool(struct copy_buf *b, int v)
{
	char byte = v ? 1 : 0;

	copy_u32(b, 1);
	copy_put(b, &byte, 1);
}

/* A one-dimensional real[]: header (ndim, has-nulls, element type, length,
 * lower bound), then each element as length 4 and its IEEE bits. */
static void copy_floats(struct copy_buf *b, const float *v, int n)
{
	uint32_t bits, be;
	char *at;
	int i;

	copy_u32(b, (uint32_t)(20 + 8 * n));
	copy_u32(b, 1);
	copy_u32(b, 0);
	copy_u32(b, STORE_FLOAT4_OID);
	copy_u32(b, (uint32_t)n);
	copy_u32(b, 1);
	at = copy_room(b, 8 * (size_t)n);
	if (!at)
		return;
	for (i = 0; i < n; i++) {
		be = htonl(4);
		memcpy(at, &be, 4);
		memcpy(&bits, &v[i], 4);
		be = htonl(bits);
		memcpy(at + 4, &be, 4);
		at += 8;
	}
	b->len += 8 * (size_t)n;
}

static void copy_send(struct copy_buf *b)
{
	if (b->oom || b->send_failed || b->len == 0)
		return;
	if (PQputCopyData(b->conn, b->data, (int)b->len) != 1)
		b->send_failed = 1;
	b->len = 0;
}

/* End of a row: hand a full chunk to libpq. */
static void copy_row_end(struct copy_buf *b)
{
	if (b->len >= STORE_COPY_CHUNK)
		copy_send(b);
}

/* Start COPY SQL; the binary header goes into B. */
static int copy_start(struct store *s, struct copy_buf *b, const char *what, const char *sql,
                      struct err *err)
{
	static const char sig[11] = "PGCOPY\n\377\r\n";
	PGresult *r;
	int rc = 0;

	memset(b, 0, sizeof(*b));
	b->conn = s->conn;
	r = PQexec(s->conn, sql);
	if (!r || PQresultStatus(r) != PGRES_COPY_IN)
		rc = store_fail(s, r, what, err);
	PQclear(r);
	if (rc)
		return -1;
	copy_put(b, sig, sizeof(sig));
	copy_u32(b, 0); /* flags */
	copy_u32(b, 0); /* header extension length */
	return 0;
}

/* Send the trailer and end the COPY; reports any error met while writing. */
static int copy_finish(struct store *s, struct copy_buf *b, const char *what, struct err *err)
{
	PGresult *r;
	int rc = 0;

	copy_u16(b, UINT16_MAX); /* field count -1: end of data */
	copy_send(b);
	if (PQputCopyEnd(s->conn, b->oom ? "client out of memory" : NULL) != 1)
		b->send_failed = 1;
	while ((r = PQgetResult(s->conn)) != NULL) {
		if (rc == 0 && !b->oom && PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = store_fail(s, r, what, err);
		PQclear(r);
	}
	if (b->oom)
		rc = err_set(err, ERR_FATAL, "store: %s failed: out of memory or field too big",
		             what);
	else if (rc == 0 && b->send_failed)
		rc = store_fail(s, NULL, what, err);
	free(b->data);
	b->data = NULL;
	return rc;
}

/* COPY lands in temporary tables that empty themselves at commit, created
 * once per connection outside any transaction (a rollback would drop them).
 * toast_tuple_target keeps a 512-float row inline instead of compressing it.
 * LIMIT: session state, so a transaction-pooling proxy (pgbouncer in
 * transaction mode) between us and the server breaks writes. */
static int store_temp_tables(struct store *s, struct err *err)
{
	static const char sql[] =
	    "CREATE TEMP TABLE IF NOT EXISTS store_images_in ("
	    " ord integer, image_id text, ad_id text, url text, created_at text,"
	    " source text, ok boolean, failure_stage text, failure_reason text,"
	    " width integer, height integer, content_sha256 text, embedding real[])"
	    " WITH (toast_tuple_target = 8160) ON COMMIT DELETE ROWS;"
	    "CREATE TEMP TABLE IF NOT EXISTS store_groups_in ("
	    " ord integer, image_id text, ad_id text, group_id text)"
	    " ON COMMIT DELETE ROWS";

	if (s->have_temp)
		return 0;
	if (store_exec_script(s, "create staging tables", sql, err))
		return -1;
	s->have_temp = 1;
	return 0;
}

/* ---- batches ---- */

/* A batch item by its key (and second key, or NULL), and where it sits in the caller's
 * array. */
struct keyed {
	const char *key, *sub;
	size_t at;
};

static int keyed_same(const struct keyed *x, const struct keyed *y)
{
	int c = strcmp(x->key, y->key);

	if (!c && x->sub && y->sub)
		c = strcmp(x->sub, y->sub);
	return c;
}

static int keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = keyed_same(x, y);

	if (c)
		return c;
	return (x->at > y->at) - (x->at < y->at);
}

/* Sort KS by key and keep, of equal keys, the last given: an upsert may not
 * touch one row twice, and a redelivered event should win over its older
 * copy. Sorted input also makes concurrent writers lock rows in one order.
 * Returns how many are kept. */
static size_t keyed_unique_last(struct keyed *ks, size_t n)
{
	size_t i, kept = 0;

	qsort(ks, n, sizeof(*ks), keyed_cmp);
	for (i = 0; i < n; i++)
		if (i + 1 == n || keyed_same(&ks[i], &ks[i + 1]) != 0)
			ks[kept++] = ks[i];
	return kept;
}

static int image_valid(const struct store_image *im, size_t i, int *dim, struct err *err)
{
	int j;

	if (!im->image_id || !*im->image_id)
		return err_set(err, ERR_FATAL, "store: photo %zu of the batch has no image id", i);
	if (!im->ad_id || !*im->ad_id)
		return err_set(err, ERR_FATAL, "store: image %s has no ad id", im->image_id);
	if (im->width < 0 || im->height < 0)
		return err_set(err, ERR_FATAL, "store: image %s has negative size", im->image_id);
	if (!im->ok) {
		if (!im->failure_stage || !*im->failure_stage || !im->failure_reason)
			return err_set(err, ERR_FATAL, "store: failed image %s has no stage/reason",
			               im->image_id);
		return 0;
	}
	if (!im->embedding || im->dim <= 0 || im->dim > STORE_DIM_MAX)
		return err_set(err, ERR_FATAL, "store: image %s has no embedding (dim %d)",
		               im->image_id, im->dim);
	if (*dim && im->dim != *dim)
		return err_set(err, ERR_FATAL, "store: image %s has dim %d, batch has %d",
		               im->image_id, im->dim, *dim);
	*dim = im->dim;
	for (j = 0; j < im->dim; j++)
		if (!isfinite(im->embedding[j]))
			return err_set(err, ERR_FATAL,
			               "store: image %s: embedding value %d is not finite",
			               im->image_id, j);
	return 0;
}

/* The embedding size registered for MODEL_ID (cached: it never changes). */
static int model_dim(struct store *s, int64_t model_id, int *dim, struct err *err)
{
	char id[24];
	const char *params[1] = {id};
	PGresult *res = NULL;

	if (model_id > 0 && s->dim_model == model_id) {
		*dim = s->dim;
		return 0;
	}
	if (model_id <= 0)
		return err_set(err, ERR_FATAL, "store: embeddings need a registered model");
	store_fmt_i64(id, sizeof(id), model_id);
	if (store_exec(s, "read embedding_dim from models",
	               "SELECT embedding_dim FROM models WHERE id = $1::bigint", 1, params, 0, &res,
	               err))
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return err_set(err, ERR_FATAL, "store: model %" PRId64 " is not registered",
		               model_id);
	}
	*dim = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	s->dim_model = model_id;
	s->dim = *dim;
	return 0;
}

static void copy_image_row(struct copy_buf *b, int32_t ord, const struct store_image *im)
{
	copy_u16(b, 13);
	copy_int4(b, ord);
	copy_text(b, im->image_id);
	copy_text(b, im->ad_id);
	copy_text(b, im->url);
	copy_text(b, im->created_at);
	copy_text(b, im->source);
	copy_bool(b, im->ok);
	copy_text(b, im->ok ? NULL : im->failure_stage);
	copy_text(b, im->ok ? NULL : im->failure_reason);
	if (im->width > 0)
		copy_int4(b, im->width);
	else
		copy_null(b);
	if (im->height > 0)
		copy_int4(b, im->height);
	else
		copy_null(b);
	copy_text(b, im->content_sha256);
	if (im->ok)
		copy_floats(b, im->embedding, im->dim);
	else
		copy_null(b);
	copy_row_end(b);
}

/* Each statement rewrites a row only when a stored column would change, so a
 * repeated batch leaves the rows (and their xmin) untouched. */
static const char sql_upsert_images[] =
    "INSERT INTO ad_images AS a (image_id, ad_id, url, created_at, source, status,"
    " failure_stage, failure_reason, width, height, content_sha256, first_run_id,"
    " changed_run_id)"
    " SELECT image_id, ad_id, url, created_at::timestamptz, source,"
    " CASE WHEN ok THEN 'embedded' ELSE 'failed' END, failure_stage, failure_reason,"
    " width, height, content_sha256, $1::bigint, $1::bigint"
    " FROM pg_temp.store_images_in ORDER BY ord"
    " ON CONFLICT (image_id) DO UPDATE SET ad_id = excluded.ad_id, url = excluded.url,"
    " created_at = excluded.created_at, source = excluded.source, status = excluded.status,"
    " failure_stage = excluded.failure_stage, failure_reason = excluded.failure_reason,"
    " width = excluded.width, height = excluded.height,"
    " content_sha256 = excluded.content_sha256, changed_run_id = excluded.changed_run_id"
    " WHERE a.ad_id = excluded.ad_id AND (a.ad_id, a.url, a.created_at, a.source, a.status, "
    "a.failure_stage,"
    " a.failure_reason, a.width, a.height, a.content_sha256)"
    " IS DISTINCT FROM (excluded.ad_id, excluded.url, excluded.created_at, excluded.source,"
    " excluded.status, excluded.failure_stage, excluded.failure_reason, excluded.width,"
    " excluded.height, excluded.content_sha256)";

/* An embedding is recomputed on every run, and floats may differ in the last
 * bit between machines: only a new photo (content hash) replaces it. With no
 * hash to go by, the values themselves decide. */
static const char sql_upsert_embeddings[] =
    "INSERT INTO image_embeddings AS e (image_id, model_id, embedding, dim, content_sha256,"
    " run_id)"
    " SELECT image_id, $2::bigint, embedding, cardinality(embedding), content_sha256,"
    " $1::bigint FROM pg_temp.store_images_in WHERE ok ORDER BY ord"
    " ON CONFLICT (image_id, model_id) DO UPDATE SET embedding = excluded.embedding,"
    " dim = excluded.dim, content_sha256 = excluded.content_sha256, run_id = excluded.run_id"
    " WHERE e.content_sha256 IS DISTINCT FROM excluded.content_sha256"
    " OR (excluded.content_sha256 IS NULL AND e.embedding IS DISTINCT FROM excluded.embedding)";

static const char sql_upsert_image_failures[] =
    "INSERT INTO failures AS f (key, image_id, ad_id, stage, reason, run_id)"
    " SELECT 'image:' || image_id, image_id, ad_id, failure_stage, failure_reason, $1::bigint"
    " FROM pg_temp.store_images_in WHERE NOT ok ORDER BY ord"
    " ON CONFLICT (key) DO UPDATE SET image_id = excluded.image_id, ad_id = excluded.ad_id,"
    " stage = excluded.stage, reason = excluded.reason, run_id = excluded.run_id"
    " WHERE (f.image_id, f.ad_id, f.stage, f.reason)"
    " IS DISTINCT FROM (excluded.image_id, excluded.ad_id, excluded.stage, excluded.reason)";

static const char sql_delete_image_failures[] =
    "DELETE FROM failures f USING pg_temp.store_images_in t"
    " WHERE t.ok AND f.key = 'image:' || t.image_id";

/* An image id belongs to the ad it was first recorded with (of several ads in one batch, the
 * smallest id): an entry of it for another ad leaves the batch, with a failure keyed by its
 * source. Moving the photo would silently take it out of its first ad, whose groups would
 * then name a photo it no longer has. Run before the upsert, and after it for a row another
 * writer recorded meanwhile (the upsert does not move rows, and locks the ones it finds). */
#define SQL_IMAGE_CONFLICTS(owners)                                                                \
	"WITH gone AS (DELETE FROM pg_temp.store_images_in t USING (" owners ") o"                 \
	" WHERE o.image_id = t.image_id AND t.ad_id <> o.owner"                                    \
	" RETURNING t.ord, t.image_id, t.ad_id, t.source, o.owner),"                               \
	" f AS (INSERT INTO failures AS f (key, image_id, ad_id, stage, reason, run_id)"           \
	" SELECT coalesce(nullif(source, ''), 'image:' || image_id || '@' || ad_id), image_id,"    \
	" ad_id, 'store', 'image id belongs to another ad: ' || owner, $1::bigint FROM gone"       \
	" ON CONFLICT (key) DO UPDATE SET image_id = excluded.image_id, ad_id = excluded.ad_id,"   \
	" stage = excluded.stage, reason = excluded.reason, run_id = excluded.run_id"              \
	" WHERE (f.image_id, f.ad_id, f.stage, f.reason)"                                          \
	" IS DISTINCT FROM (excluded.image_id, excluded.ad_id, excluded.stage, excluded.reason))"  \
	" SELECT ord, owner FROM gone"

static const char sql_image_conflicts_before[] = SQL_IMAGE_CONFLICTS(
    "SELECT t.image_id, coalesce(min(a.ad_id), min(t.ad_id)) AS owner"
    " FROM pg_temp.store_images_in t LEFT JOIN ad_images a ON a.image_id = t.image_id"
    " GROUP BY t.image_id");

static const char sql_image_conflicts_after[] =
    SQL_IMAGE_CONFLICTS("SELECT a.image_id, a.ad_id AS owner FROM ad_images a"
                        " JOIN pg_temp.store_images_in i ON i.image_id = a.image_id");

/* A source line stored fine now no longer carries an older conflict. */
static const char sql_delete_conflict_failures[] =
    "DELETE FROM failures f USING pg_temp.store_images_in t"
    " WHERE f.key = t.source AND f.stage = 'store'";

/* Remember the entries a conflict statement took out: OWNERS[at] = the owning ad. */
static int take_conflicts(PGresult *r, const struct keyed *ks, size_t kept, char **owners,
                          struct err *err)
{
	int i;

	for (i = 0; i < PQntuples(r); i++) {
		long ord = strtol(PQgetvalue(r, i, 0), NULL, 10);

		if (ord < 0 || (size_t)ord >= kept)
			return err_set(err, ERR_FATAL, "store: conflict row %ld out of range", ord);
		if (owners && !owners[ks[ord].at] &&
		    !(owners[ks[ord].at] = strdup(PQgetvalue(r, i, 1))))
			return err_set(err, ERR_FATAL, "out of memory");
	}
	return 0;
}

int store_write_images(struct store *s, int64_t run_id, int64_t model_id,
                       const struct store_image *imgs, size_t n, char **owners, struct err *err)
{
	char run[24], model[24];
	const char *params[2];
	struct keyed *ks = NULL;
	struct copy_buf b = {0};
	size_t i, kept, n_ok = 0;
	int dim = 0, model_d = 0, rc = -1;
	PGresult *up = NULL, *conf = NULL;

	if (n == 0)
		return 0;
	if (n > INT32_MAX)
		return err_set(err, ERR_FATAL, "store: batch of %zu photos is too big", n);
	for (i = 0; i < n; i++)
		if (image_valid(&imgs[i], i, &dim, err))
			return -1;
	ks = malloc(n * sizeof(*ks));
	if (!ks)
		return err_set(err, ERR_FATAL, "store: out of memory for %zu photos", n);
	for (i = 0; i < n; i++) {
		ks[i].key = imgs[i].image_id;
		ks[i].sub = imgs[i].ad_id;
		ks[i].at = i;
	}
	kept = keyed_unique_last(ks, n);
	for (i = 0; i < kept; i++)
		n_ok += imgs[ks[i].at].ok != 0;

	if (store_ready(s, err) || store_temp_tables(s, err))
		goto out;
	if (n_ok > 0) {
		if (model_dim(s, model_id, &model_d, err))
			goto out;
		if (model_d != dim) {
			err_set(err, ERR_FATAL,
			        "store: embeddings have dim %d, model %" PRId64 " has %d", dim,
			        model_id, model_d);
			goto out;
		}
	}
	params[0] = store_fmt_id(run, sizeof(run), run_id);
	params[1] = store_fmt_id(model, sizeof(model), model_id);

	/* LIMIT: every embedding is sent even when the row turns out unchanged;
	 * re-running a day costs the same transfer as the first run. */
	if (store_begin(s, err) ||
	    copy_start(s, &b, "copy into store_images_in",
	               "COPY pg_temp.store_images_in FROM STDIN (FORMAT binary)", err))
		goto out;
	for (i = 0; i < kept; i++)
		copy_image_row(&b, (int32_t)i, &imgs[ks[i].at]);
	if (copy_finish(s, &b, "copy into store_images_in", err))
		goto out;

	/* LIMIT: created_at is parsed by the server; one malformed value fails
	 * the whole batch and the message does not say which photo had it. */
	if (store_exec(s, "find image ids of other ads", sql_image_conflicts_before, 1, params, 0,
	               &conf, err) ||
	    take_conflicts(conf, ks, kept, owners, err))
		goto out;
	PQclear(conf);
	conf = NULL;
	if (store_exec(s, "upsert ad_images", sql_upsert_images, 1, params, 0, &up, err) ||
	    store_exec(s, "find image ids of other ads", sql_image_conflicts_after, 1, params, 0,
	               &conf, err) ||
	    take_conflicts(conf, ks, kept, owners, err) ||
	    store_exec(s, "delete resolved conflicts", sql_delete_conflict_failures, 0, NULL, 0,
	               NULL, err))
		goto out;
	if (n_ok > 0 && (store_exec(s, "upsert image_embeddings", sql_upsert_embeddings, 2, params,
	                            0, NULL, err) ||
	                 store_exec(s, "delete resolved failures", sql_delete_image_failures, 0,
	                            NULL, 0, NULL, err)))
		goto out;
	if (n_ok < kept &&
	    store_exec(s, "upsert failures", sql_upsert_image_failures, 1, params, 0, NULL, err))
		goto out;
	if (store_commit(s, "commit photos", err))
		goto out;
	log_debug(LOGC_PG, "store", "wrote photos", "photos=%zu unique=%zu ok=%zu changed=%s", n,
	          kept, n_ok, PQcmdTuples(up));
	rc = 0;
out:
	if (rc) {
		store_rollback(s);
		for (i = 0; owners && i < n; i++) {
			free(owners[i]);
			owners[i] = NULL;
		}
	}
	PQclear(up);
	PQclear(conf);
	free(b.data);
	free(ks);
	return rc;
}

int store_write_failure(struct store *s, int64_t run_id, const char *key, const char *image_id,
                        const char *ad_id, const char *stage, const char *reason, struct err *err)
{
	char run[24];
	const char *params[6];

	if (!key || !*key || !stage || !*stage || !reason)
		return err_set(err, ERR_FATAL, "store: a failure needs a key, stage and reason");
	if (store_ready(s, err))
		return -1;
	params[0] = key;
	params[1] = image_id;
	params[2] = ad_id;
	params[3] = stage;
	params[4] = reason;
	params[5] = store_fmt_id(run, sizeof(run), run_id);
	return store_exec(s, "upsert failures",
	                  "INSERT INTO failures AS f (key, image_id, ad_id, stage, reason, run_id)"
	                  " VALUES ($1, $2, $3, $4, $5, $6::bigint)"
	                  " ON CONFLICT (key) DO UPDATE SET image_id = excluded.image_id,"
	                  " ad_id = excluded.ad_id, stage = excluded.stage,"
	                  " reason = excluded.reason, run_id = excluded.run_id"
	                  " WHERE (f.image_id, f.ad_id, f.stage, f.reason) IS DISTINCT FROM"
	                  " (excluded.image_id, excluded.ad_id, excluded.stage, excluded.reason)",
	                  6, params, 0, NULL, err);
}

/* ---- groups ---- */

static const char sql_delete_stale_groups[] =
    "DELETE FROM image_groups g WHERE g.model_id = $1::bigint"
    " AND g.ad_id IN (SELECT ad_id FROM pg_temp.store_groups_in)"
    " AND NOT EXISTS (SELECT 1 FROM pg_temp.store_groups_in t WHERE t.image_id = g.image_id)";

static const char sql_upsert_groups[] =
    "INSERT INTO image_groups AS g (image_id, model_id, ad_id, group_id, run_id)"
    " SELECT image_id, $2::bigint, ad_id, group_id, $1::bigint"
    " FROM pg_temp.store_groups_in ORDER BY ord"
    " ON CONFLICT (image_id, model_id) DO UPDATE SET ad_id = excluded.ad_id,"
    " group_id = excluded.group_id, run_id = excluded.run_id"
    " WHERE (g.ad_id, g.group_id) IS DISTINCT FROM (excluded.ad_id, excluded.group_id)";

int store_write_groups(struct store *s, int64_t run_id, int64_t model_id,
                       const struct store_group *g, size_t n, struct err *err)
{
	char run[24], model[24];
	const char *params[2];
	struct keyed *ks = NULL;
	struct copy_buf b = {0};
	size_t i, kept;
	int rc = -1;

	if (n == 0)
		return 0;
	if (n > INT32_MAX)
		return err_set(err, ERR_FATAL, "store: batch of %zu groups is too big", n);
	if (model_id <= 0)
		return err_set(err, ERR_FATAL, "store: groups need a model id");
	for (i = 0; i < n; i++)
		if (!g[i].image_id || !*g[i].image_id || !g[i].ad_id || !*g[i].ad_id ||
		    !g[i].group_id || !*g[i].group_id)
			return err_set(err, ERR_FATAL,
			               "store: group row %zu (image %s) lacks an id", i,
			               g[i].image_id ? g[i].image_id : "(null)");
	ks = malloc(n * sizeof(*ks));
	if (!ks)
		return err_set(err, ERR_FATAL, "store: out of memory for %zu groups", n);
	for (i = 0; i < n; i++) {
		ks[i].key = g[i].image_id;
		ks[i].at = i;
	}
	kept = keyed_unique_last(ks, n);
	params[0] = store_fmt_id(run, sizeof(run), run_id);
	params[1] = store_fmt_id(model, sizeof(model), model_id);

	if (store_ready(s, err) || store_temp_tables(s, err) || store_begin(s, err) ||
	    copy_start(s, &b, "copy into store_groups_in",
	               "COPY pg_temp.store_groups_in FROM STDIN (FORMAT binary)", err))
		goto out;
	for (i = 0; i < kept; i++) {
		const struct store_group *row = &g[ks[i].at];

		copy_u16(&b, 4);
		copy_int4(&b, (int32_t)i);
		copy_text(&b, row->image_id);
		copy_text(&b, row->ad_id);
		copy_text(&b, row->group_id);
		copy_row_end(&b);
	}
	if (copy_finish(s, &b, "copy into store_groups_in", err) ||
	    store_exec(s, "delete stale image_groups", sql_delete_stale_groups, 1, &params[1], 0,
	               NULL, err) ||
	    store_exec(s, "upsert image_groups", sql_upsert_groups, 2, params, 0, NULL, err) ||
	    store_commit(s, "commit groups", err))
		goto out;
	rc = 0;
out:
	if (rc)
		store_rollback(s);
	free(b.data);
	free(ks);
	return rc;
}

/* ---- reading embeddings ---- */

static uint32_t be32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

/* Length of a binary one-dimensional real[] without NULLs, or -1. */
static int array_len(const char *p, int len)
{
	uint32_t n;

	if (len < 20 || be32(p) != 1 || be32(p + 4) != 0 || be32(p + 8) != STORE_FLOAT4_OID)
		return -1;
	n = be32(p + 12);
	if (n == 0 || n > STORE_DIM_MAX || (uint32_t)len != 20 + 8 * n)
		return -1;
	return (int)n;
}

static int array_floats(const char *p, int n, float *out)
{
	uint32_t bits;
	int i;

	p += 20;
	for (i = 0; i < n; i++, p += 8) {
		if (be32(p) != 4)
			return -1;
		bits = be32(p + 4);
		memcpy(&out[i], &bits, 4);
	}
	return 0;
}

static char *field_dup(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return strdup("");
	return strndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

/* Append row ROW of R (image_id, ad_id, url, embedding) to SET, growing it
 * by doubling; *CAP counts the rows there is room for. */
static int emb_add(struct store_emb_set *set, size_t *cap, const PGresult *r, int row,
                   struct err *err)
{
	const char *arr = PQgetvalue(r, row, 3);
	int n = array_len(arr, PQgetlength(r, row, 3));
	size_t i = set->n;

	if (n < 0 || (set->n > 0 && n != set->dim))
		return err_set(err, ERR_FATAL,
		               "store: bad embedding for image %s in image_embeddings",
		               PQgetvalue(r, row, 0));
	set->dim = n;
	if (i == *cap) {
		size_t c = *cap ? 2 * *cap : 256;
		char **ids = realloc(set->image_ids, c * sizeof(char *));
		char **ads = ids ? realloc(set->ad_ids, c * sizeof(char *)) : NULL;
		char **urls = ads ? realloc(set->urls, c * sizeof(char *)) : NULL;
		float *emb = urls ? realloc(set->emb, c * (size_t)n * sizeof(float)) : NULL;

		/* Whatever moved is kept, so store_emb_set_free() stays correct. */
		if (ids)
			set->image_ids = ids;
		if (ads)
			set->ad_ids = ads;
		if (urls)
			set->urls = urls;
		if (emb)
			set->emb = emb;
		if (!emb)
			return err_set(err, ERR_FATAL, "store: out of memory reading embeddings");
		*cap = c;
	}
	set->image_ids[i] = field_dup(r, row, 0);
	set->ad_ids[i] = field_dup(r, row, 1);
	set->urls[i] = field_dup(r, row, 2);
	set->n++;
	if (!set->image_ids[i] || !set->ad_ids[i] || !set->urls[i])
		return err_set(err, ERR_FATAL, "store: out of memory reading embeddings");
	if (array_floats(arr, n, set->emb + i * (size_t)n) != 0)
		return err_set(err, ERR_FATAL, "store: bad embedding for image %s",
		               set->image_ids[i]);
	return 0;
}

/* Stream the rows one at a time (single-row mode) so that a whole model's
 * embeddings are not held twice, once by libpq and once in OUT. Results are
 * binary: the floats arrive bit-exact. */
static int emb_read(struct store *s, const char *sql, int nparams, const char *const *params,
                    struct store_emb_set *out, struct err *err)
{
	const char *what = "read image_embeddings";
	size_t cap = 0;
	PGresult *r;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (store_ready(s, err))
		return -1;
	if (!PQsendQueryParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 1))
		return store_fail(s, NULL, what, err);
	/* Should single-row mode be refused, the rows come in one result. */
	PQsetSingleRowMode(s->conn);
	while ((r = PQgetResult(s->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(r);
		int row;

		if (rc == 0 && (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK))
			for (row = 0; rc == 0 && row < PQntuples(r); row++)
				rc = emb_add(out, &cap, r, row, err);
		else if (rc == 0)
			rc = store_fail(s, r, what, err);
		PQclear(r);
	}
	if (rc)
		store_emb_set_free(out);
	return rc;
}

int store_ad_embeddings(struct store *s, int64_t model_id, const char *ad_id,
                        struct store_emb_set *out, struct err *err)
{
	char model[24];
	const char *params[2] = {model, ad_id};

	if (!ad_id)
		return err_set(err, ERR_FATAL, "store: embeddings of which ad?");
	store_fmt_i64(model, sizeof(model), model_id);
	return emb_read(s,
	                "SELECT e.image_id, i.ad_id, i.url, e.embedding"
	                " FROM image_embeddings e JOIN ad_images i ON i.image_id = e.image_id"
	                " WHERE e.model_id = $1::bigint AND i.ad_id = $2 AND i.status = 'embedded'"
	                " ORDER BY e.image_id COLLATE \"C\"",
	                2, params, out, err);
}

int store_all_embeddings(struct store *s, int64_t model_id, struct store_emb_set *out,
                         struct err *err)
{
	char model[24];
	const char *params[1] = {model};

	store_fmt_i64(model, sizeof(model), model_id);
	/* LIMIT: every embedding of the model is held in memory at once
	 * (about 2 kB per photo at 512 floats). */
	return emb_read(s,
	                "SELECT e.image_id, i.ad_id, i.url, e.embedding"
	                " FROM image_embeddings e JOIN ad_images i ON i.image_id = e.image_id"
	                " WHERE e.model_id = $1::bigint AND i.status = 'embedded'"
	                " ORDER BY e.image_id COLLATE \"C\"",
	                1, params, out, err);
}

void store_emb_set_free(struct store_emb_set *set)
{
	size_t i;

	if (!set)
		return;
	for (i = 0; i < set->n; i++) {
		free(set->image_ids[i]);
		free(set->ad_ids[i]);
		free(set->urls[i]);
	}
	free(set->image_ids);
	free(set->ad_ids);
	free(set->urls);
	free(set->emb);
	memset(set, 0, sizeof(*set));
}

/* ---- reading groups ---- */

int store_fetch_groups(struct store *s, int64_t model_id, struct store_group_set *out,
                       struct err *err)
{
	char model[24];
	const char *params[1] = {model};
	PGresult *res = NULL;
	size_t bytes = 0, n, i, at = 0;
	int col;

	memset(out, 0, sizeof(*out));
	store_fmt_i64(model, sizeof(model), model_id);
	/* LIMIT: the whole result is held twice (libpq's and OUT) while copying. */
	if (store_ready(s, err) ||
	    store_exec(s, "read image_groups",
	               "SELECT image_id, ad_id, group_id FROM image_groups"
	               " WHERE model_id = $1::bigint"
	               " ORDER BY ad_id COLLATE \"C\", group_id COLLATE \"C\","
	               " image_id COLLATE \"C\"",
	               1, params, 0, &res, err))
		return -1;
	n = (size_t)PQntuples(res);
	for (i = 0; i < n; i++)
		for (col = 0; col < 3; col++)
			bytes += (size_t)PQgetlength(res, (int)i, col) + 1;
	out->rows = calloc(n ? n : 1, sizeof(*out->rows));
	out->strings = malloc(bytes ? bytes : 1);
	if (!out->rows || !out->strings) {
		PQclear(res);
		store_groups_free(out);
		return err_set(err, ERR_FATAL, "store: out of memory reading %zu groups", n);
	}
	for (i = 0; i < n; i++) {
		const char **dst[3] = {&out->rows[i].image_id, &out->rows[i].ad_id,
		                       &out->rows[i].group_id};

		for (col = 0; col < 3; col++) {
			size_t len = (size_t)PQgetlength(res, (int)i, col);

			memcpy(out->strings + at, PQgetvalue(res, (int)i, col), len + 1);
			*dst[col] = out->strings + at;
			at += len + 1;
		}
	}
	out->n = n;
	PQclear(res);
	return 0;
}

void store_groups_free(struct store_group_set *set)
{
	if (!set)
		return;
	free(set->rows);
	free(set->strings);
	memset(set, 0, sizeof(*set));
}

/* ---- re-reading what is recorded ---- */

int store_ungrouped_ads(struct store *s, int64_t model_id, size_t max, char ***ads, size_t *n,
                        struct err *err)
{
	char model[24], lim[24];
	const char *params[2] = {model, lim};
	PGresult *res = NULL;
	char **v = NULL;
	int i, rows;

	*ads = NULL;
	*n = 0;
	store_fmt_i64(model, sizeof(model), model_id);
	store_fmt_i64(lim, sizeof(lim), (int64_t)max);
	if (store_ready(s, err) ||
	    store_exec(s, "find ungrouped ads",
	               "SELECT DISTINCT i.ad_id FROM image_embeddings e"
	               " JOIN ad_images i ON i.image_id = e.image_id AND i.status = 'embedded'"
	               " WHERE e.model_id = $1::bigint AND NOT EXISTS (SELECT 1 FROM image_groups g"
	               " WHERE g.image_id = e.image_id AND g.model_id = $1::bigint)"
	               " LIMIT $2::bigint",
	               2, params, 0, &res, err))
		return -1;
	rows = PQntuples(res);
	v = calloc((size_t)rows + 1, sizeof(*v));
	for (i = 0; v && i < rows; i++)
		if (!(v[i] = strdup(PQgetvalue(res, i, 0))))
			break;
	PQclear(res);
	if (!v || i < rows) {
		for (i = 0; v && v[i]; i++)
			free(v[i]);
		free(v);
		return err_set(err, ERR_FATAL, "store: out of memory");
	}
	*ads = v;
	*n = (size_t)rows;
	return 0;
}

void store_image_page_free(struct store_image_page *p)
{
	size_t i;

	for (i = 0; p->rows && i < p->n; i++) {
		free(p->rows[i].image_id);
		free(p->rows[i].ad_id);
		free(p->rows[i].url);
		free(p->rows[i].created_at);
		free(p->rows[i].source);
	}
	free(p->rows);
	p->rows = NULL;
	p->n = 0;
}

int store_list_images(struct store *s, long long since, long long until, const char *after_ts,
                      const char *after_id, size_t limit, struct store_image_page *out,
                      struct err *err)
{
	char a[24], b[24], lim[24];
	const char *params[5] = {a, b, after_ts, after_id, lim};
	PGresult *res = NULL;
	int i, rows;

	memset(out, 0, sizeof(*out));
	store_fmt_i64(a, sizeof(a), since);
	store_fmt_i64(b, sizeof(b), until);
	store_fmt_i64(lim, sizeof(lim), (int64_t)limit);
	if (store_ready(s, err) ||
	    store_exec(
	        s, "list recorded photos",
	        "SELECT image_id, ad_id, url,"
	        " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
	        " coalesce(source, '') FROM ad_images"
	        " WHERE created_at >= to_timestamp($1::bigint)"
	        " AND created_at < to_timestamp($2::bigint) AND url IS NOT NULL"
	        " AND ($3::timestamptz IS NULL OR (created_at, image_id COLLATE \"C\") >"
	        " ($3::timestamptz, $4 COLLATE \"C\"))"
	        " ORDER BY created_at, image_id COLLATE \"C\" LIMIT $5::bigint",
	        5, params, 0, &res, err))
		return -1;
	rows = PQntuples(res);
	out->rows = calloc((size_t)rows + 1, sizeof(*out->rows));
	if (!out->rows) {
		PQclear(res);
		return err_set(err, ERR_FATAL, "store: out of memory");
	}
	for (i = 0; i < rows; i++) {
		struct store_image_row *r = &out->rows[i];

		out->n++;
		r->image_id = field_dup(res, i, 0);
		r->ad_id = field_dup(res, i, 1);
		r->url = field_dup(res, i, 2);
		r->created_at = field_dup(res, i, 3);
		r->source = field_dup(res, i, 4);
		if (!r->image_id || !r->ad_id || !r->url || !r->created_at || !r->source) {
			PQclear(res);
			store_image_page_free(out);
			return err_set(err, ERR_FATAL, "store: out of memory");
		}
	}
	PQclear(res);
	return 0;
}

/* A session lock, so that it spans the read of an ad's embeddings and the
 * write of its groups (two transactions); a lost connection releases it. */
int store_groups_lock(struct store *s, int lock, struct err *err)
{
	char key[24];
	const char *params[1] = {key};

	store_fmt_i64(key, sizeof(key), STORE_LOCK_GROUPS);
	if (lock && store_ready(s, err))
		return -1;
	return store_exec(s, lock ? "take groups lock" : "release groups lock",
	                  lock ? "SELECT pg_advisory_lock($1::bigint)"
	                       : "SELECT pg_advisory_unlock($1::bigint)",
	                  1, params, 0, NULL, err);
}
