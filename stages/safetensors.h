/* safetensors.h - read (and write) .safetensors weight files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON mapping each
 * tensor name to {dtype, shape, data_offsets:[begin,end]} (offsets relative to
 * the byte after the header), an optional "__metadata__" object of strings,
 * then the raw little-endian tensor bytes. */
#ifndef STAGES_SAFETENSORS_H
#define STAGES_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_DIMS 8

enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL };

struct st_tensor {
	char *name;
	enum st_dtype dtype;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	int64_t numel;
	const void *data; /* points into the file mapping; valid until close */
	size_t nbytes;
};

struct safetensors {
	size_t count;
	struct st_tensor *tensors; /* in header order */
	char *metadata_json;       /* "__metadata__" object as JSON text, or NULL */
	void *map;
	size_t map_len;
};

/* Open and validate PATH (bounds of every tensor, dtype sizes, shapes that
 * match byte counts, no overlaps past the file end). On success *OUT owns
 * the mapping; release with safetensors_close(). A truncated or malformed
 * file is ERR_INPUT with the reason. */
int safetensors_open(const char *path, struct safetensors **out, struct err *err);

/* The tensor called NAME, or NULL. */
const struct st_tensor *safetensors_find(const struct safetensors *st, const char *name);

/* Convert T to float32 into DST (capacity CAP elements). F32, F16, BF16 and
 * F64 are accepted; other dtypes are ERR_INPUT naming the tensor. */
int safetensors_to_f32(const struct st_tensor *t, float *dst, size_t cap, struct err *err);

/* Value of KEY inside "__metadata__", newly allocated (free()), or NULL. */
char *safetensors_metadata_get(const struct safetensors *st, const char *key);

void safetensors_close(struct safetensors *st);

/* One tensor to write: float32 data, C order. */
struct st_write_tensor {
	const char *name;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	const float *data;
};

/* Write N float32 tensors (sorted by name in the file) plus string metadata
 * pairs META[2*i]=key, META[2*i+1]=value (NMETA pairs) to PATH atomically
 * (temp file + rename). */
int safetensors_write(const char *path, const struct st_write_tensor *t, size_t n,
                      const char *const *meta, size_t nmeta, struct err *err);

const char *safetensors_dtype_name(enum st_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif
