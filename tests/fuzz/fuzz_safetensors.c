/* fuzz_safetensors.c - the .safetensors reader on arbitrary bytes: every file opens and
 * every tensor converts within its bounds, or the reader refuses the file with a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct safetensors *st = NULL;
	struct err err;
	char path[64];
	size_t i;

	fuzz_memfile(data, size, path, sizeof(path));
	err.msg[0] = '\0';
	if (safetensors_open(path, &st, &err)) {
		if (!err.msg[0] || err.kind != ERR_INPUT)
			abort();
		return 0;
	}
	for (i = 0; i < st->count; i++) {
		const struct st_tensor *t = &st->tensors[i];
		/* bounded: a tensor may claim up to the whole (small) file */
		size_t cap =
		    t->numel > 0 && (uint64_t)t->numel < ((uint64_t)1 << 24) ? (size_t)t->numel : 1;
		float *dst = malloc(cap * sizeof(float));

		if (!dst)
			abort();
		if (safetensors_find(st, t->name) == NULL)
			abort();
		safetensors_to_f32(t, dst, cap, &err);
		free(dst);
	}
	free(safetensors_metadata_get(st, "format"));
	safetensors_close(st);
	return 0;
}
