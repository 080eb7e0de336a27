/* item.c - helpers for the photo record that flows between stages. */
#include "item.h"

#include <stdio.h>
#include <stdlib.h>

void item_fail(struct item *it, const char *stage, const char *reason)
{
	it->ok = 0;
	snprintf(it->failure_stage, sizeof(it->failure_stage), "%s", stage);
	snprintf(it->failure_reason, sizeof(it->failure_reason), "%s", reason);
}

void item_release(struct item *it)
{
	free(it->tensor);
	free(it->embedding);
	it->tensor = NULL;
	it->embedding = NULL;
}
