/* event.h - one photo event from Kafka: a JSON object parsed and checked.
 *
 * The value is {"ad_id", "image_id", "url", "created_at"} (strings; unknown
 * fields ignored); the message key, when there is one, must equal ad_id. A
 * value that breaks any rule is rejected with a specific reason, and the
 * fields that were valid before the rule broke are kept so that the failure
 * can still be tied to a photo. Pure: no I/O, thread-safe. */
#ifndef STAGES_EVENT_H
#define STAGES_EVENT_H

#include <stddef.h>
#include <time.h>

#include "item.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EVENT_REASON_MAX 160

struct event {
	char ad_id[ITEM_ID_MAX];
	char image_id[ITEM_ID_MAX];
	char url[ITEM_URL_MAX];
	char created_at[40];
	time_t created;   /* created_at in UTC seconds */
	int has_identity; /* ad_id and image_id are valid (even if the event is not) */
};

/* Parse the LEN bytes of VALUE (need not be NUL-terminated) into EV. KEY of
 * KEYLEN bytes may be NULL. Values over MAX_BYTES are refused unread.
 * Returns 0 for a valid event, -1 with REASON (a line without the event's
 * bytes in it) for a bad one. */
int event_parse(const void *value, size_t len, const void *key, size_t keylen, size_t max_bytes,
                struct event *ev, char reason[EVENT_REASON_MAX]);

/* 1 when S (NUL-terminated) is valid UTF-8 without control characters. */
int event_text_ok(const char *s);

#ifdef __cplusplus
}
#endif

#endif
