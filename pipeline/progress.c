/* progress.c - progress bar and periodic progress lines. */
#include "progress.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "proc.h"

#define PROGRESS_TTY_REDRAW_S 0.25
#define PROGRESS_BAR_CELLS    30

void progress_init(struct progress *p, long long total, int tty, double interval_s)
{
	memset(p, 0, sizeof(*p));
	p->total = total;
	p->tty = tty;
	p->interval_s = interval_s;
	p->t0 = p->last_out = proc_now_s();
}

char *progress_duration(char *out, size_t cap, double s)
{
	long t = s < 0 ? 0 : (long)(s + 0.5);

	if (t >= 3600)
		snprintf(out, cap, "%ldh%02ldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(out, cap, "%lds", t);
	return out;
}

static void rate_eta(long done, long long total, double elapsed, double *rate, double *eta_s)
{
	*rate = elapsed > 0 ? (double)done / elapsed : 0;
	*eta_s = -1;
	if (total >= 0 && *rate > 0)
		*eta_s = (double)(total > done ? total - done : 0) / *rate;
}

void progress_rate(const struct progress *p, double now, double *rate, double *eta_s)
{
	rate_eta(p->done, p->total, now - p->t0, rate, eta_s);
}

char *progress_format(char *out, size_t cap, long done, long failed, long long total,
                      double elapsed, int width)
{
	char bar[128], eta[32] = "", fails[32] = "", left[16];
	double rate, eta_s;
	int i, fill = 0;

	if (width > (int)sizeof(bar) - 3)
		width = (int)sizeof(bar) - 3;
	rate_eta(done, total, elapsed, &rate, &eta_s);
	if (total > 0)
		fill = (int)((double)width * (double)(done < total ? done : total) / (double)total);
	else if (total == 0)
		fill = width;
	/* an unknown total shows a moving mark instead of a fill */
	bar[0] = '[';
	for (i = 0; i < width; i++)
		bar[i + 1] =
		    total < 0 ? (i == (done / 8) % width ? '#' : '.') : (i < fill ? '#' : '.');
	bar[width + 1] = ']';
	bar[width + 2] = '\0';
	if (eta_s >= 0)
		snprintf(eta, sizeof(eta), "  ETA %s",
		         progress_duration(left, sizeof(left), eta_s));
	if (failed)
		snprintf(fails, sizeof(fails), "  failed %ld", failed);
	if (total >= 0)
		snprintf(out, cap, "%s %ld/%lld photos  %.1f/s%s%s", bar, done, total, rate, eta,
		         fails);
	else
		snprintf(out, cap, "%s %ld photos  %.1f/s%s", bar, done, rate, fails);
	return out;
}

void progress_update(struct progress *p, long done, long failed)
{
	double now = proc_now_s(), rate, eta_s;
	char line[256];

	p->done = done;
	p->failed = failed;
	if (p->tty) {
		/* the first update always draws, so a short run still shows its bar */
		if (p->drawn && now - p->last_out < PROGRESS_TTY_REDRAW_S)
			return;
		p->drawn = 1;
		p->last_out = now;
		log_status_line(progress_format(line, sizeof(line), done, failed, p->total,
		                                now - p->t0, PROGRESS_BAR_CELLS));
		return;
	}
	if (p->interval_s <= 0 || now - p->last_out < p->interval_s)
		return;
	p->last_out = now;
	progress_rate(p, now, &rate, &eta_s);
	log_info("run", "progress",
	         "done=%ld total=%lld failed=%ld rate_per_s=%.1f eta_s=%.0f "
	         "elapsed_s=%.0f",
	         done, p->total, failed, rate, eta_s, now - p->t0);
}

void progress_finish(struct progress *p)
{
	if (p->tty)
		log_status_line(NULL);
}
