/* libFuzzer target for the event parser: any bytes as value, the first
 * bytes also as key; the parser must neither crash nor accept an event whose
 * fields break its own rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event ev;
	char reason[EVENT_REASON_MAX];
	size_t keylen = size > 0 ? data[0] % 8 : 0;
	const uint8_t *key = keylen < size ? data + 1 : NULL;

	if (!key)
		keylen = 0;
	if (event_parse(data, size, NULL, 0, 4096, &ev, reason) == 0) {
		if (!event_text_ok(ev.ad_id) || !event_text_ok(ev.image_id) ||
		    !event_text_ok(ev.url) || !*ev.ad_id || !*ev.image_id || !ev.has_identity)
			abort();
	} else if (!*reason || !event_text_ok(reason)) {
		abort();
	}
	event_parse(data, size, key, keylen, 4096, &ev, reason);
	return 0;
}
