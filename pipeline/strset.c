/* strset.c - string set with linear probing, grown at half full. */
#include "strset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int grow(struct strset *set)
{
	size_t cap = set->cap ? set->cap * 2 : 64;
	char **slots = calloc(cap, sizeof(*slots));
	size_t i;

	if (!slots)
		return -1;
	for (i = 0; i < set->cap; i++) {
		size_t j;

		if (!set->slots[i])
			continue;
		j = hash_str(set->slots[i]) & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = set->slots[i];
	}
	free(set->slots);
	set->slots = slots;
	set->cap = cap;
	return 0;
}

int strset_add(struct strset *set, const char *s)
{
	size_t j;

	if ((set->len + 1) * 2 > set->cap && grow(set))
		return -1;
	j = hash_str(s) & (set->cap - 1);
	while (set->slots[j]) {
		if (!strcmp(set->slots[j], s))
			return 0;
		j = (j + 1) & (set->cap - 1);
	}
	set->slots[j] = strdup(s);
	if (!set->slots[j])
		return -1;
	set->len++;
	return 1;
}

static int (*sort_cmp)(const char *, const char *);

static int cmp_ptr(const void *a, const void *b)
{
	return sort_cmp(*(char *const *)a, *(char *const *)b);
}

char **strset_sorted(const struct strset *set, int (*cmp)(const char *, const char *), size_t *n)
{
	char **out = malloc((set->len ? set->len : 1) * sizeof(*out));
	size_t i, at = 0;

	if (!out)
		return NULL;
	for (i = 0; i < set->cap; i++)
		if (set->slots[i])
			out[at++] = set->slots[i];
	sort_cmp = cmp;
	qsort(out, at, sizeof(*out), cmp_ptr);
	*n = at;
	return out;
}

void strset_free(struct strset *set)
{
	size_t i;

	for (i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}
