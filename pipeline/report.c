/* report.c - an HTML page of the groups of a day's ads, with thumbnails. */
#include "report.h"

#include <errno.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"
#include "group.h"
#include "log.h"
#include "run.h"
#include "store.h"
#include "thumb.h"

/* columns of the photo query */
enum { C_AD, C_IMAGE, C_URL, C_STATUS, C_STAGE, C_REASON, C_GROUP, C_NEW, NCOLS };

struct report {
	const struct config *cfg;
	const char *date;
	struct store *s;
	struct fetch fetch;
	FILE *fp;
	int64_t model_id;
	double threshold;
	struct store_rows rows;
	long thumbs, thumb_failures;
};

void report_html_escape(FILE *fp, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", fp);
			break;
		case '<':
			fputs("&lt;", fp);
			break;
		case '>':
			fputs("&gt;", fp);
			break;
		case '"':
			fputs("&quot;", fp);
			break;
		case '\'':
			fputs("&#39;", fp);
			break;
		default:
			fputc(*s, fp);
		}
	}
}

static const char *cell(const struct report *rp, size_t row, int col)
{
	const char *v = store_rows_get(&rp->rows, row, col);

	return v ? v : "";
}

/* LIMIT: one page per day, at most report.max_photos photos, thumbnails made
 * one at a time on one thread.
 *
 * Every photo of every ad that has a photo created on the date, grouped
 * photos first, groups in the order of their smallest image id. */
static int load_rows(struct report *rp, struct err *err)
{
	char model[24];
	const char *params[2] = {rp->date, model};

	snprintf(model, sizeof(model), "%lld", (long long)rp->model_id);
	if (store_query(rp->s, "read photos of the report's date",
	                "WITH ads AS (SELECT DISTINCT ad_id FROM ad_images"
	                "  WHERE created_at >= $1::date AND created_at < $1::date + 1)"
	                " SELECT i.ad_id, i.image_id, i.url, i.status, i.failure_stage,"
	                "  i.failure_reason, g.group_id,"
	                "  (i.created_at >= $1::date AND i.created_at < $1::date + 1)"
	                " FROM ad_images i JOIN ads a ON a.ad_id = i.ad_id"
	                " LEFT JOIN image_groups g ON g.image_id = i.image_id"
	                "  AND g.model_id = $2::bigint"
	                " ORDER BY image_id_order(i.ad_id) NULLS LAST, i.ad_id COLLATE \"C\","
	                "  g.group_id IS NULL,"
	                "  min(image_id_order(i.image_id)) OVER (PARTITION BY i.ad_id, g.group_id)"
	                "   NULLS LAST,"
	                "  min(i.image_id COLLATE \"C\") OVER (PARTITION BY i.ad_id, g.group_id),"
	                "  image_id_order(i.image_id) NULLS LAST, i.image_id COLLATE \"C\"",
	                2, params, (size_t)rp->cfg->report_max_photos, &rp->rows, err))
		return err_prefix(err, "report for %s (report.max_photos is %d)", rp->date,
		                  rp->cfg->report_max_photos);
	return 0;
}

static void put_thumb(struct report *rp, const char *url, const char *image_id)
{
	struct err e = {0};
	void *buf = NULL, *jpg = NULL;
	size_t len = 0, jlen = 0;
	int w = 0, h = 0;
	gchar *b64;

	if (fetch_url(&rp->fetch, url, &buf, &len, &e) ||
	    thumb_jpeg(buf, len, rp->cfg->report_thumb_px, (uint64_t)rp->cfg->max_pixels, &jpg,
	               &jlen, &w, &h, &e)) {
		rp->thumb_failures++;
		fputs("<div class=\"nothumb\">no preview: ", rp->fp);
		report_html_escape(rp->fp, e.msg);
		fputs("</div>", rp->fp);
		free(buf);
		return;
	}
	free(buf);
	b64 = g_base64_encode(jpg, jlen);
	thumb_free(jpg);
	fprintf(rp->fp, "<img width=\"%d\" height=\"%d\" alt=\"photo ", w, h);
	report_html_escape(rp->fp, image_id);
	fprintf(rp->fp, "\" src=\"data:image/jpeg;base64,%s\">", b64 ? b64 : "");
	g_free(b64);
	rp->thumbs++;
}

static void put_photo(struct report *rp, size_t row, int failed)
{
	const char *id = cell(rp, row, C_IMAGE);

	fprintf(rp->fp, "<figure class=\"photo%s%s\" data-image=\"", failed ? " failed" : "",
	        !strcmp(cell(rp, row, C_NEW), "t") ? " new" : "");
	report_html_escape(rp->fp, id);
	fputs("\" title=\"", rp->fp);
	report_html_escape(rp->fp, cell(rp, row, C_URL));
	fputs("\">", rp->fp);
	if (failed) {
		fputs("<div class=\"reason\">", rp->fp);
		report_html_escape(rp->fp, cell(rp, row, C_STAGE));
		fputs(": ", rp->fp);
		report_html_escape(rp->fp, cell(rp, row, C_REASON));
		fputs("</div>", rp->fp);
	} else {
		put_thumb(rp, cell(rp, row, C_URL), id);
	}
	fputs("<figcaption>", rp->fp);
	report_html_escape(rp->fp, id);
	fputs("</figcaption></figure>\n", rp->fp);
}

/* Index of IMAGE_ID in SET, or -1. */
static long emb_index(const struct store_emb_set *set, const char *image_id)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (!strcmp(set->image_ids[i], image_id))
			return (long)i;
	return -1;
}

/* Mean cosine over the pairs (a in group GA, b in group GB, a != b); NaN
 * when there is no pair. IDX holds each row's embedding index or -1. */
static double linkage(const struct store_emb_set *set, const long *idx, const size_t *start,
                      const size_t *end, size_t ga, size_t gb)
{
	double sum = 0;
	long pairs = 0;
	size_t a, b;

	for (a = start[ga]; a < end[ga]; a++)
		for (b = (ga == gb ? a + 1 : start[gb]); b < end[gb]; b++) {
			if (idx[a] < 0 || idx[b] < 0)
				continue;
			sum += group_cosine(set->emb + (size_t)idx[a] * (size_t)set->dim,
			                    set->emb + (size_t)idx[b] * (size_t)set->dim, set->dim);
			pairs++;
		}
	return pairs ? sum / (double)pairs : NAN;
}

static void put_sim(FILE *fp, double v, double threshold)
{
	if (isnan(v)) {
		fputs("<td class=\"na\">-</td>", fp);
		return;
	}
	/* groups kept apart although close to the threshold are worth a look */
	fprintf(fp, "<td class=\"%s\" style=\"--s:%.3f\">%.2f</td>",
	        v >= threshold          ? "above"
	        : v >= threshold - 0.05 ? "near"
	                                : "below",
	        v < 0 ? 0.0 : v, v);
}

/* The ad of rows [FIRST, LAST). */
static int put_ad(struct report *rp, size_t first, size_t last, struct err *err)
{
	const char *ad = cell(rp, first, C_AD);
	struct store_emb_set set = {0};
	size_t n = last - first, ngroups = 0, nfailed = 0, g, h, i;
	size_t *start = NULL, *end = NULL;
	long *idx = NULL;
	int rc = -1;

	if (store_ad_embeddings(rp->s, rp->model_id, ad, &set, err))
		return -1;
	start = calloc(n, sizeof(*start));
	end = calloc(n, sizeof(*end));
	idx = calloc(n, sizeof(*idx));
	if (!start || !end || !idx) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	/* groups are runs of equal group ids among the first rows */
	for (i = first; i < last && *cell(rp, i, C_GROUP); i++) {
		idx[i - first] = emb_index(&set, cell(rp, i, C_IMAGE));
		if (i == first || strcmp(cell(rp, i, C_GROUP), cell(rp, i - 1, C_GROUP))) {
			start[ngroups] = i - first;
			ngroups++;
		}
		end[ngroups - 1] = i - first + 1;
	}
	for (; i < last; i++)
		nfailed += !strcmp(cell(rp, i, C_STATUS), "failed");

	fputs("<section class=\"ad\" id=\"ad-", rp->fp);
	report_html_escape(rp->fp, ad);
	fputs("\" data-ad=\"", rp->fp);
	report_html_escape(rp->fp, ad);
	fprintf(rp->fp, "\" data-groups=\"%zu\" data-photos=\"%zu\" data-failed=\"%zu\">\n",
	        ngroups, n, nfailed);
	fputs("<h2>ad ", rp->fp);
	report_html_escape(rp->fp, ad);
	fprintf(rp->fp, " <small>%zu photo%s, %zu group%s%s</small></h2>\n", n, n == 1 ? "" : "s",
	        ngroups, ngroups == 1 ? "" : "s", nfailed ? ", some failed" : "");

	for (g = 0; g < ngroups; g++) {
		double coh = linkage(&set, idx, start, end, g, g);

		fputs("<div class=\"group\" data-group=\"", rp->fp);
		report_html_escape(rp->fp, cell(rp, first + start[g], C_GROUP));
		fprintf(rp->fp, "\" data-photos=\"%zu\"><h3>group %zu <small>", end[g] - start[g],
		        g + 1);
		report_html_escape(rp->fp, cell(rp, first + start[g], C_GROUP));
		if (!isnan(coh))
			fprintf(rp->fp, " &middot; within %.2f", coh);
		fputs("</small></h3><div class=\"photos\">\n", rp->fp);
		for (i = start[g]; i < end[g]; i++)
			put_photo(rp, first + i, 0);
		fputs("</div></div>\n", rp->fp);
	}
	if (ngroups > 1) {
		fputs("<div class=\"simcap\">average cosine similarity between groups "
		      "(diagonal: within a group)</div><table class=\"sim\"><tr><th></th>",
		      rp->fp);
		for (g = 0; g < ngroups; g++)
			fprintf(rp->fp, "<th>%zu</th>", g + 1);
		fputs("</tr>\n", rp->fp);
		for (g = 0; g < ngroups; g++) {
			fprintf(rp->fp, "<tr><th>%zu</th>", g + 1);
			for (h = 0; h < ngroups; h++)
				put_sim(rp->fp, linkage(&set, idx, start, end, g, h),
				        rp->threshold);
			fputs("</tr>\n", rp->fp);
		}
		fputs("</table>\n", rp->fp);
	}
	i = ngroups ? first + end[ngroups - 1] : first;
	if (i < last) {
		fputs("<div class=\"ungrouped\"><h3>not grouped</h3><div class=\"photos\">\n",
		      rp->fp);
		for (; i < last; i++)
			put_photo(rp, i, !strcmp(cell(rp, i, C_STATUS), "failed"));
		fputs("</div></div>\n", rp->fp);
	}
	fputs("</section>\n", rp->fp);
	rc = 0;
out:
	free(start);
	free(end);
	free(idx);
	store_emb_set_free(&set);
	return rc;
}

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}"
    "h1{font-size:1.4em}h2{font-size:1.1em;margin:0 0 .4em}h3{font-size:.95em;margin:0 0 .3em}"
    "small{color:#666;font-weight:normal}"
    ".ad{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em;margin:1em 0}"
    ".group{border-left:4px solid #4a7;padding:.3em .6em;margin:.5em 0}"
    ".group:nth-of-type(2n){border-color:#47a}.group:nth-of-type(3n){border-color:#a74}"
    ".ungrouped{border-left:4px solid #c33;padding:.3em .6em;margin:.5em 0}"
    ".photos{display:flex;flex-wrap:wrap;gap:6px}"
    ".photo{margin:0;text-align:center;font-size:11px;color:#555}"
    ".photo img{display:block;border-radius:3px;background:#eee}"
    ".photo.new figcaption{font-weight:bold;color:#222}"
    ".failed .reason,.nothumb{width:140px;min-height:60px;padding:4px;background:#fee;"
    "border:1px dashed #c33;color:#900;font-size:11px;overflow-wrap:anywhere}"
    ".sim{border-collapse:collapse;margin:.5em 0;font-size:12px}"
    ".sim td,.sim th{border:1px solid #ddd;padding:2px 6px;text-align:right}"
    ".sim td{background:rgba(40,120,200,var(--s))}.sim td.near{outline:2px solid #e90}"
    ".sim td.above{font-weight:bold}.simcap{font-size:12px;margin-top:.5em}"
    ".summary td{padding:0 1em 0 0}";

/* After load, each image records whether it decoded, so that a headless
 * browser's DOM dump can be checked. */
static const char script[] =
    "addEventListener('load',function(){var im=document.images,ok=0;"
    "for(var i=0;i<im.length;i++){im[i].setAttribute('data-natural-width',im[i].naturalWidth);"
    "if(im[i].complete&&im[i].naturalWidth>0)ok++;}"
    "document.body.setAttribute('data-images-decoded',ok);});";

static void put_head(struct report *rp, size_t ads, size_t photos, size_t failed)
{
	FILE *fp = rp->fp;

	fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	      "<title>groups of ",
	      fp);
	report_html_escape(fp, rp->date);
	fprintf(fp, "</title><style>%s</style></head>\n<body data-date=\"", style);
	report_html_escape(fp, rp->date);
	fprintf(fp, "\" data-ads=\"%zu\">\n<h1>groups of the ads of ", ads);
	report_html_escape(fp, rp->date);
	fprintf(fp,
	        "</h1>\n<table class=\"summary\"><tr><td>ads</td><td>%zu</td></tr>"
	        "<tr><td>photos</td><td>%zu (bold ids: created that day)</td></tr>"
	        "<tr><td>failed photos</td><td>%zu</td></tr>"
	        "<tr><td>model</td><td>%lld, threshold %.3f</td></tr></table>\n",
	        ads, photos, failed, (long long)rp->model_id, rp->threshold);
}

/* Failures of that date's runs that belong to no photo (a bad CSV line). */
static int put_other_failures(struct report *rp, struct err *err)
{
	const char *params[1] = {rp->date};
	struct store_rows r;
	size_t i;

	if (store_query(rp->s, "read failures without a photo",
	                "SELECT f.key, f.stage, f.reason FROM failures f"
	                " JOIN pipeline_runs r ON r.id = f.run_id"
	                " WHERE f.image_id IS NULL AND r.date = $1::date ORDER BY f.key",
	                1, params, (size_t)rp->cfg->report_max_photos, &r, err))
		return -1;
	if (r.n) {
		fprintf(rp->fp,
		        "<section class=\"other-failures\"><h2>%zu item%s that could not "
		        "be read</h2><ul>\n",
		        r.n, r.n == 1 ? "" : "s");
		for (i = 0; i < r.n; i++) {
			fputs("<li class=\"reason\">", rp->fp);
			report_html_escape(rp->fp, store_rows_get(&r, i, 0));
			fputs(" &mdash; ", rp->fp);
			report_html_escape(rp->fp, store_rows_get(&r, i, 1));
			fputs(": ", rp->fp);
			report_html_escape(rp->fp, store_rows_get(&r, i, 2));
			fputs("</li>\n", rp->fp);
		}
		fputs("</ul></section>\n", rp->fp);
	}
	store_rows_free(&r);
	return 0;
}

static int write_page(struct report *rp, struct err *err)
{
	size_t i, first, ads = 0, failed = 0;

	for (i = 0; i < rp->rows.n; i++) {
		ads += i == 0 || strcmp(cell(rp, i, C_AD), cell(rp, i - 1, C_AD)) != 0;
		failed += !strcmp(cell(rp, i, C_STATUS), "failed");
	}
	put_head(rp, ads, rp->rows.n, failed);
	if (rp->rows.n == 0)
		fputs("<p class=\"empty\">no photos were created on that day.</p>\n", rp->fp);
	for (first = 0; first < rp->rows.n; first = i) {
		for (i = first + 1;
		     i < rp->rows.n && !strcmp(cell(rp, i, C_AD), cell(rp, first, C_AD)); i++)
			;
		if (put_ad(rp, first, i, err))
			return -1;
	}
	if (put_other_failures(rp, err))
		return -1;
	fprintf(rp->fp, "<script>%s</script>\n</body></html>\n", script);
	return 0;
}

int report_write(const struct config *cfg, const char *date, const char *out_dir)
{
	struct report rp = {0};
	struct err err = {0};
	char path[CONFIG_PATH_MAX + 16], tmp[CONFIG_PATH_MAX + 32];
	double thr = NAN;
	int code = RUN_FAILED;

	rp.cfg = cfg;
	rp.date = date;
	rp.fetch.max_bytes = (size_t)cfg->max_bytes;
	snprintf(path, sizeof(path), "%s/index.html", out_dir);
	snprintf(tmp, sizeof(tmp), "%s/.index.html.%ld", out_dir, (long)getpid());
	if (mkdir(out_dir, 0755) && errno != EEXIST) {
		err_set(&err, ERR_FATAL, "cannot create %s: %s", out_dir, strerror(errno));
		goto out;
	}
	if (fetch_add_root(&rp.fetch, cfg->images_root, &err))
		goto out;
	rp.s = store_open(cfg->db_conninfo, &err);
	if (!rp.s || store_model_active(rp.s, &rp.model_id, &thr, &err))
		goto out;
	if (!rp.model_id) {
		err_set(&err, ERR_FATAL, "no active model: run the pipeline first");
		goto out;
	}
	rp.threshold = !isnan(cfg->threshold) ? cfg->threshold
	               : !isnan(thr)          ? thr
	                                      : cfg->default_threshold;
	if (load_rows(&rp, &err))
		goto out;
	rp.fp = fopen(tmp, "w");
	if (!rp.fp) {
		err_set(&err, ERR_FATAL, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write_page(&rp, &err))
		goto out;
	if (fflush(rp.fp) || ferror(rp.fp)) {
		err_set(&err, ERR_FATAL, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fclose(rp.fp);
	rp.fp = NULL;
	if (rename(tmp, path)) {
		err_set(&err, ERR_FATAL, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	log_info("report", "report written",
	         "path=%s date=%s photos=%zu thumbnails=%ld "
	         "without_preview=%ld model_id=%lld",
	         path, date, rp.rows.n, rp.thumbs, rp.thumb_failures, (long long)rp.model_id);
	code = RUN_OK;
out:
	if (rp.fp) {
		fclose(rp.fp);
		unlink(tmp);
	}
	if (code != RUN_OK)
		log_error("report", "report failed", "date=%s error=\"%s\"", date, err.msg);
	store_rows_free(&rp.rows);
	store_close(rp.s);
	fetch_free(&rp.fetch);
	return code;
}
