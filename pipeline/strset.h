/* strset.h - a set of strings (open addressing), for the ads a run touched. */
#ifndef PIPELINE_STRSET_H
#define PIPELINE_STRSET_H

#include <stddef.h>

struct strset {
	char **slots;
	size_t cap, len;
};

/* Add a copy of S. Returns 1 if added, 0 if present, -1 when out of memory. */
int strset_add(struct strset *set, const char *s);

/* The members, sorted with CMP, as a newly malloc'd array of borrowed
 * pointers (free() the array only); *N receives the count. */
char **strset_sorted(const struct strset *set, int (*cmp)(const char *, const char *), size_t *n);

void strset_free(struct strset *set);

#endif
