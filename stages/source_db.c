/* source_db.c - photos already recorded in ad_images, read again for a time
 * window: backfills beyond Kafka's retention, and re-embedding old dates with
 * a newly promoted model. Each photo keeps its recorded url, created_at and
 * source, so that processing it again rewrites nothing that did not change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "source_impl.h"
#include "store.h"

#define DB_PAGE 500

struct source_db {
	struct source base;
	struct store *store;
	struct source_window win;
	struct store_image_page page;
	size_t at;
	int end;
	char after_ts[40], after_id[ITEM_ID_MAX];
	int have_after;
	long long rows; /* handed out so far */
};

static int copy_field(char *dst, size_t cap, const char *v)
{
	return (size_t)snprintf(dst, cap, "%s", v) >= cap ? -1 : 0;
}

/* A wrong date is the likely cause of an empty window: say so rather than end "ok". */
static void warn_empty(const struct source_window *w)
{
	char since[32] = "-", until[32] = "-";
	struct tm tm;

	if (w->since && gmtime_r(&w->since, &tm))
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (w->until && w->until != SOURCE_TIME_MAX && gmtime_r(&w->until, &tm))
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_warn("source", "no photos recorded in ad_images for the window", "since=%s until=%s",
	         since, until);
}

static int db_next(struct source *src, struct item *it, struct err *err)
{
	struct source_db *d = (struct source_db *)src;
	const struct store_image_row *r;

	if (d->at == d->page.n) {
		if (d->end)
			return 0;
		store_image_page_free(&d->page);
		d->at = 0;
		if (store_list_images(d->store, (long long)d->win.since, (long long)d->win.until,
		                      d->have_after ? d->after_ts : NULL,
		                      d->have_after ? d->after_id : NULL, DB_PAGE, &d->page, err))
			return -1;
		d->end = d->page.n < DB_PAGE;
		if (d->page.n == 0) {
			if (!d->rows)
				warn_empty(&d->win);
			return 0;
		}
	}
	d->rows++;
	r = &d->page.rows[d->at++];
	snprintf(d->after_ts, sizeof(d->after_ts), "%s", r->created_at);
	snprintf(d->after_id, sizeof(d->after_id), "%s", r->image_id);
	d->have_after = 1;

	memset(it, 0, sizeof(*it));
	it->ok = 1;
	it->has_identity = 1;
	/* recorded rows were bounded when they were written; a longer one can
	 * only come from elsewhere */
	if (copy_field(it->image_id, sizeof(it->image_id), r->image_id) ||
	    copy_field(it->ad_id, sizeof(it->ad_id), r->ad_id))
		return err_set(err, ERR_FATAL, "ad_images holds an id longer than %d bytes",
		               ITEM_ID_MAX - 1);
	copy_field(it->created_at, sizeof(it->created_at), r->created_at);
	if (copy_field(it->source, sizeof(it->source), r->source[0] ? r->source : "ad_images"))
		snprintf(it->source, sizeof(it->source), "ad_images");
	if (copy_field(it->url, sizeof(it->url), r->url))
		item_fail(it, "source", "recorded url too long");
	return 1;
}

static void db_close(struct source *src)
{
	struct source_db *d = (struct source_db *)src;

	store_image_page_free(&d->page);
	store_close(d->store);
	free(d);
}

static const struct source_ops db_ops = {db_next, db_close, NULL, NULL};

struct source *source_db_open(const struct config *cfg, const struct source_window *win,
                              struct err *err)
{
	struct source_db *d;

	if (!win->since && !win->until) {
		err_set(err, ERR_FATAL, "the db source needs a window (--date or --since/--until)");
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		err_set(err, ERR_FATAL, "out of memory");
		return NULL;
	}
	d->base.ops = &db_ops;
	d->win = *win;
	d->store = store_open(cfg->db_conninfo, err);
	if (!d->store) {
		free(d);
		return NULL;
	}
	return &d->base;
}
