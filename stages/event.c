/* event.c - parse and check a photo event's JSON value with cJSON. */
#include "event.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "source.h"

/* Length of the UTF-8 sequence at P (at most N bytes left) when it is
 * well-formed and not a control character, else 0. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len, i;
	unsigned cp;

	if (c < 0x20 || c == 0x7f)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* overlong forms, UTF-16 surrogates, beyond U+10FFFF, C1 controls */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

static int text_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t at = 0;

	while (at < n) {
		size_t k = utf8_char(p + at, n - at);

		if (!k)
			return 0;
		at += k;
	}
	return 1;
}

int event_text_ok(const char *s)
{
	return text_ok(s, strlen(s));
}

/* cJSON turns "\u0000" into a string that silently ends early: find such an
 * escape (outside an escaped backslash) in the raw text instead. */
static int has_nul_escape(const char *p, size_t n)
{
	int in_str = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!in_str) {
			in_str = p[i] == '"';
		} else if (p[i] == '\\') {
			if (i + 5 < n && p[i + 1] == 'u' && !memcmp(p + i + 2, "0000", 4))
				return 1;
			i++;
		} else if (p[i] == '"') {
			in_str = 0;
		}
	}
	return 0;
}

/* Copy field NAME of OBJ into DST (CAP bytes). Returns 0, or -1 with REASON. */
static int get_string(const cJSON *obj, const char *name, char *dst, size_t cap, char *reason)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	size_t n;

	if (!v || cJSON_IsNull(v)) {
		snprintf(reason, EVENT_REASON_MAX, "missing field %s", name);
		return -1;
	}
	if (!cJSON_IsString(v) || !v->valuestring) {
		snprintf(reason, EVENT_REASON_MAX, "field %s must be a string", name);
		return -1;
	}
	n = strlen(v->valuestring);
	if (n == 0) {
		snprintf(reason, EVENT_REASON_MAX, "field %s is empty", name);
		return -1;
	}
	if (n >= cap) {
		snprintf(reason, EVENT_REASON_MAX, "field %s longer than %zu bytes", name, cap - 1);
		return -1;
	}
	if (!text_ok(v->valuestring, n)) {
		snprintf(reason, EVENT_REASON_MAX,
		         "field %s is not valid UTF-8 or holds control characters", name);
		return -1;
	}
	memcpy(dst, v->valuestring, n + 1);
	return 0;
}

/* The url must name an allowed scheme; the fetch stage checks the rest. */
static int url_ok(const char *url, char *reason)
{
	static const char *const schemes[] = {"file://", "http://", "https://"};
	size_t i, n = strcspn(url, ":");

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strncasecmp(url, schemes[i], strlen(schemes[i])))
			continue;
		if (!strchr(url, ' '))
			return 0;
		snprintf(reason, EVENT_REASON_MAX, "url contains a space");
		return -1;
	}
	if (url[n] != ':' || n == 0 || n > 16)
		snprintf(reason, EVENT_REASON_MAX, "url has no scheme");
	else
		snprintf(reason, EVENT_REASON_MAX,
		         "url scheme '%.*s' not allowed (file, http, https)", (int)n, url);
	return -1;
}

static int short_ascii(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (++n > 40 || (unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* Two members with one name would let producers and readers disagree. */
static int has_duplicate(const cJSON *obj, char *reason)
{
	const cJSON *a, *b;
	int seen = 0;

	cJSON_ArrayForEach(a, obj)
	{
		if (++seen > 256) {
			snprintf(reason, EVENT_REASON_MAX, "more than 256 fields");
			return 1;
		}
		for (b = a->next; b; b = b->next)
			if (a->string && b->string && !strcmp(a->string, b->string)) {
				snprintf(reason, EVENT_REASON_MAX, "field given twice: %s",
				         short_ascii(a->string) ? a->string : "(name not shown)");
				return 1;
			}
	}
	return 0;
}

int event_parse(const void *value, size_t len, const void *key, size_t keylen, size_t max_bytes,
                struct event *ev, char reason[EVENT_REASON_MAX])
{
	const char *text = value;
	const char *end = NULL;
	cJSON *root = NULL;
	char r[EVENT_REASON_MAX] = "";
	int ret = -1;

	memset(ev, 0, sizeof(*ev));
	if (!value || len == 0) {
		snprintf(r, sizeof(r), "empty event");
		goto out;
	}
	if (len > max_bytes) {
		snprintf(r, sizeof(r), "event of %zu bytes is over the limit of %zu", len,
		         max_bytes);
		goto out;
	}
	if (memchr(text, '\0', len) || has_nul_escape(text, len)) {
		snprintf(r, sizeof(r), "event holds a NUL character");
		goto out;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		snprintf(r, sizeof(r), "malformed JSON at byte %zu",
		         end && end >= text ? (size_t)(end - text) : (size_t)0);
		goto out;
	}
	while (end && end < text + len &&
	       (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
		end++;
	if (end != text + len) {
		snprintf(r, sizeof(r), "junk after the JSON value at byte %zu",
		         (size_t)(end - text));
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(r, sizeof(r), "event is not a JSON object");
		goto out;
	}
	if (has_duplicate(root, r))
		goto out;
	if (get_string(root, "ad_id", ev->ad_id, sizeof(ev->ad_id), r) ||
	    get_string(root, "image_id", ev->image_id, sizeof(ev->image_id), r))
		goto out;
	if (key && keylen && (keylen != strlen(ev->ad_id) || memcmp(key, ev->ad_id, keylen))) {
		snprintf(r, sizeof(r), "message key does not match ad_id");
		goto out;
	}
	ev->has_identity = 1;
	if (get_string(root, "created_at", ev->created_at, sizeof(ev->created_at), r))
		goto out;
	if (source_parse_time(ev->created_at, &ev->created)) {
		snprintf(r, sizeof(r), "created_at is not an RFC 3339 timestamp");
		goto out;
	}
	if (get_string(root, "url", ev->url, sizeof(ev->url), r) || url_ok(ev->url, r))
		goto out;
	ret = 0;
out:
	cJSON_Delete(root);
	if (ret)
		snprintf(reason, EVENT_REASON_MAX, "%s", r);
	else
		reason[0] = '\0';
	return ret;
}
