/* store_impl.h - what the parts of the store (store.c, store_models.c) share and nothing
 * else sees: the connection and the one path from libpq's results to struct err. */
#ifndef STAGES_STORE_IMPL_H
#define STAGES_STORE_IMPL_H

#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

#define STORE_DIM_MAX 65536 /* floats in one embedding */

struct store {
	PGconn *conn;
	char *password;    /* from the conninfo, scrubbed from messages; may be NULL */
	int have_temp;     /* the COPY staging tables exist on this connection */
	int64_t dim_model; /* model whose embedding_dim is cached in dim; 0: none */
	int dim;
};

/* Called first by every entry point. A connection that broke during an earlier call is
 * re-established here, so a caller that got ERR_RETRY only has to back off and call
 * again. */
int store_ready(struct store *s, struct err *err);

/* Run one statement with text parameters (NULL is SQL NULL); WHAT names the operation and
 * table for the message ("upsert ad_images"). BINARY asks for binary result columns. On
 * success *RES, if RES is not NULL, receives the result (free with PQclear). */
int store_exec(struct store *s, const char *what, const char *sql, int nparams,
               const char *const *params, int binary, PGresult **res, struct err *err);

int store_begin(struct store *s, struct err *err);
int store_commit(struct store *s, const char *what, struct err *err);

/* Abandon an open transaction, keeping the error that caused it. */
void store_rollback(struct store *s);

/* V as decimal text into BUF. */
void store_fmt_i64(char *buf, size_t cap, int64_t v);

/* Run ids and model ids <= 0 mean "none": NULL (SQL NULL), else the id as text in BUF. */
const char *store_fmt_id(char *buf, size_t cap, int64_t id);

/* TEXT as a whole decimal number; -1 for anything else. */
int store_parse_i64(const char *text, int64_t *out);

#endif
