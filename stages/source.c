/* source.c - source dispatch and the time parsing every source shares. */
#include "source.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source_impl.h"

struct source *source_open(const struct config *cfg, const struct source_window *win,
                           struct err *err)
{
	switch (cfg->source) {
	case SOURCE_DIR:
		return source_dir_open(cfg, win, err);
	case SOURCE_KAFKA:
		return source_kafka_open(cfg, win, err);
	case SOURCE_DB:
		return source_db_open(cfg, win, err);
	default:
		err_set(err, ERR_FATAL, "source kind %d is not available in this build",
		        (int)cfg->source);
		return NULL;
	}
}

int source_next(struct source *src, struct item *it, struct err *err)
{
	return src->ops->next(src, it, err);
}

void source_set_stop(struct source *src, const volatile sig_atomic_t *stop)
{
	src->stop = stop;
}

void source_ack(struct source *src, const struct item *it)
{
	if (src->ops->ack && it->has_pos)
		src->ops->ack(src, it);
}

int source_commit(struct source *src, struct err *err)
{
	return src->ops->commit ? src->ops->commit(src, err) : 0;
}

void source_close(struct source *src)
{
	if (src)
		src->ops->close(src);
}

/* Read exactly N digits at *P into *OUT. */
static int digits(const char **p, int n, int *out)
{
	int v = 0;

	while (n--) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

/* Days since 1970-01-01 for a proleptic Gregorian date. */
static long long days_from_civil(int y, int m, int d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int parse_date(const char **p, int *y, int *m, int *d)
{
	if (digits(p, 4, y) || *(*p)++ != '-' || digits(p, 2, m) || *(*p)++ != '-' ||
	    digits(p, 2, d))
		return -1;
	if (*y < 1970 || *m < 1 || *m > 12 || *d < 1 || *d > days_in_month(*y, *m))
		return -1;
	return 0;
}

int source_parse_time(const char *s, time_t *out)
{
	const char *p = s;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;

	if (parse_date(&p, &y, &mo, &d))
		return -1;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -1;
	if (h > 23 || mi > 59 || sec > 60)
		return -1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		/* PostgreSQL refuses offsets of 16 hours and more (and no zone has one) */
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 15 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	*out = (time_t)(days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + sec -
	                sign * (oh * 3600LL + om * 60LL));
	return 0;
}

int source_window_date(const char *date, struct source_window *win, struct err *err)
{
	const char *p = date;
	int y, m, d;

	if (!date || parse_date(&p, &y, &m, &d) || *p)
		return err_set(err, ERR_FATAL, "bad date '%s': expected YYYY-MM-DD",
		               date ? date : "");
	win->since = (time_t)(days_from_civil(y, m, d) * 86400LL);
	win->until = win->since + 86400;
	return 0;
}

/* A timestamp or the start of a day. */
static int parse_point(const char *s, time_t *t)
{
	struct source_window w;

	if (!source_parse_time(s, t))
		return 0;
	if (source_window_date(s, &w, NULL))
		return -1;
	*t = w.since;
	return 0;
}

int source_window_parse(const char *date, const char *since, const char *until,
                        struct source_window *win, struct err *err)
{
	memset(win, 0, sizeof(*win));
	if (date && (since || until))
		return err_set(err, ERR_FATAL, "--date and --since/--until exclude each other");
	if (date)
		return source_window_date(date, win, err);
	if (!since && !until)
		return 0;
	if (since && parse_point(since, &win->since))
		return err_set(err, ERR_FATAL,
		               "bad --since '%s': expected an RFC 3339 timestamp "
		               "or YYYY-MM-DD",
		               since);
	win->until = SOURCE_TIME_MAX;
	if (until && parse_point(until, &win->until))
		return err_set(err, ERR_FATAL,
		               "bad --until '%s': expected an RFC 3339 timestamp "
		               "or YYYY-MM-DD",
		               until);
	if (!until && win->since >= SOURCE_TIME_MAX)
		return err_set(err, ERR_FATAL,
		               "--since '%s' is past 2100-01-01, where an open window ends", since);
	if (win->until <= win->since)
		return err_set(err, ERR_FATAL, "--until must be after --since");
	return 0;
}
