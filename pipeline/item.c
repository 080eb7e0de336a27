/* item.c - helpers for the photo record that flows between stages. */
#include "item.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

/* The database refuses text that is not UTF-8, and with it the whole batch: a reason cut
 * inside a character, or one quoting bytes from a hostile file, gets '?' for each bad byte. */
static void utf8_scrub(char *s)
{
	const gchar *end;

	while (!g_utf8_validate(s, -1, &end))
		*(char *)end = '?';
}

void item_fail(struct item *it, const char *stage, const char *reason)
{
	it->ok = 0;
	snprintf(it->failure_stage, sizeof(it->failure_stage), "%s", stage);
	snprintf(it->failure_reason, sizeof(it->failure_reason), "%s", reason);
	utf8_scrub(it->failure_stage);
	utf8_scrub(it->failure_reason);
}

void item_release(struct item *it)
{
	free(it->tensor);
	free(it->embedding);
	it->tensor = NULL;
	it->embedding = NULL;
}
