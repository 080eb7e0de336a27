/* safetensors.c - map and validate .safetensors weight files, convert their
 * tensors to float32, and write float32 files for retraining. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor bytes are used in place from the mapping, and the format is
 * little-endian. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* Real headers are tens of KB; the bound keeps a corrupt length field from
 * making us parse gigabytes as JSON. */
#define ST_HEADER_MAX (100u * 1024 * 1024)

/* JSON numbers arrive as doubles, which hold integers exactly up to 2^53. */
#define ST_JSON_INT_MAX 9007199254740992.0

/* Written files start their data area on this boundary, as other writers do. */
#define ST_DATA_ALIGN 8

static const struct {
	const char *name;
	enum st_dtype dtype;
	size_t size;
} st_dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2},   {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4},   {"I16", ST_I16, 2},   {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},
};

#define ST_NDTYPES (sizeof(st_dtypes) / sizeof(st_dtypes[0]))

const char *safetensors_dtype_name(enum st_dtype dtype)
{
	size_t i;

	for (i = 0; i < ST_NDTYPES; i++)
		if (st_dtypes[i].dtype == dtype)
			return st_dtypes[i].name;
	return "?";
}

static size_t dtype_size(enum st_dtype dtype)
{
	size_t i;

	for (i = 0; i < ST_NDTYPES; i++)
		if (st_dtypes[i].dtype == dtype)
			return st_dtypes[i].size;
	return 0;
}

static int dtype_parse(const char *name, enum st_dtype *dtype)
{
	size_t i;

	for (i = 0; i < ST_NDTYPES; i++) {
		if (!strcmp(st_dtypes[i].name, name)) {
			*dtype = st_dtypes[i].dtype;
			return 0;
		}
	}
	return -1;
}

/* A JSON number that is a whole value in [0, 2^53], or -1. */
static int json_uint(const cJSON *item, uint64_t *v)
{
	double d;

	if (!cJSON_IsNumber(item))
		return -1;
	d = item->valuedouble;
	if (!(d >= 0 && d <= ST_JSON_INT_MAX) || floor(d) != d)
		return -1;
	*v = (uint64_t)d;
	return 0;
}

static int parse_shape(const char *path, const char *name, const cJSON *shape, struct st_tensor *t,
                       struct err *err)
{
	const cJSON *dim;
	int64_t numel = 1;

	if (!cJSON_IsArray(shape))
		return err_set(err, ERR_INPUT, "%s: tensor %s: shape is not an array", path, name);
	if (cJSON_GetArraySize(shape) > ST_MAX_DIMS)
		return err_set(err, ERR_INPUT, "%s: tensor %s: %d dims, at most %d supported", path,
		               name, cJSON_GetArraySize(shape), ST_MAX_DIMS);
	t->ndim = 0;
	cJSON_ArrayForEach(dim, shape)
	{
		uint64_t v;

		if (json_uint(dim, &v) < 0)
			return err_set(err, ERR_INPUT,
			               "%s: tensor %s: shape holds something other than a "
			               "non-negative integer",
			               path, name);
		if (v != 0 && (uint64_t)numel > (uint64_t)INT64_MAX / v)
			return err_set(err, ERR_INPUT, "%s: tensor %s: element count overflows",
			               path, name);
		numel *= (int64_t)v;
		t->shape[t->ndim++] = (int64_t)v;
	}
	t->numel = numel;
	return 0;
}

/* Fill T from one header entry; DATA is the start of the data area. */
static int parse_entry(const char *path, const cJSON *e, const unsigned char *data,
                       uint64_t data_len, struct st_tensor *t, struct err *err)
{
	const char *name = e->string;
	const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
	const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
	uint64_t begin, end;
	size_t esize;

	if (!cJSON_IsObject(e))
		return err_set(err, ERR_INPUT, "%s: tensor %s: entry is not an object", path, name);
	if (!cJSON_IsString(dtype))
		return err_set(err, ERR_INPUT, "%s: tensor %s: dtype missing", path, name);
	if (dtype_parse(dtype->valuestring, &t->dtype) < 0)
		return err_set(err, ERR_INPUT, "%s: tensor %s: dtype %.32s not supported", path,
		               name, dtype->valuestring);
	if (parse_shape(path, name, cJSON_GetObjectItemCaseSensitive(e, "shape"), t, err) < 0)
		return -1;
	if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
	    json_uint(cJSON_GetArrayItem(offs, 0), &begin) < 0 ||
	    json_uint(cJSON_GetArrayItem(offs, 1), &end) < 0)
		return err_set(err, ERR_INPUT,
		               "%s: tensor %s: data_offsets is not a pair of non-negative integers",
		               path, name);
	if (begin > end || end > data_len)
		return err_set(err, ERR_INPUT,
		               "%s: tensor %s: data_offsets [%llu, %llu] outside the data area "
		               "(%llu bytes)",
		               path, name, (unsigned long long)begin, (unsigned long long)end,
		               (unsigned long long)data_len);
	esize = dtype_size(t->dtype);
	if ((uint64_t)t->numel > UINT64_MAX / esize)
		return err_set(err, ERR_INPUT, "%s: tensor %s: byte count overflows", path, name);
	if ((uint64_t)t->numel * esize != end - begin)
		return err_set(err, ERR_INPUT,
		               "%s: tensor %s: %lld elements of %s need %llu bytes, data_offsets "
		               "give %llu",
		               path, name, (long long)t->numel, dtype->valuestring,
		               (unsigned long long)((uint64_t)t->numel * esize),
		               (unsigned long long)(end - begin));
	t->name = strdup(name);
	if (!t->name)
		return err_set(err, ERR_FATAL, "%s: out of memory", path);
	t->data = data + begin;
	t->nbytes = (size_t)(end - begin);
	return 0;
}

static int cmp_by_data(const void *a, const void *b)
{
	const struct st_tensor *x = *(const struct st_tensor *const *)a;
	const struct st_tensor *y = *(const struct st_tensor *const *)b;
	uintptr_t px = (uintptr_t)x->data, py = (uintptr_t)y->data;

	return px < py ? -1 : px > py;
}

static int cmp_by_name(const void *a, const void *b)
{
	const struct st_tensor *x = *(const struct st_tensor *const *)a;
	const struct st_tensor *y = *(const struct st_tensor *const *)b;

	return strcmp(x->name, y->name);
}

/* Reject duplicate names (JSON allows them, lookups could not) and tensors
 * whose bytes overlap. */
static int check_layout(const char *path, struct safetensors *st, struct err *err)
{
	const struct st_tensor **idx = NULL;
	const struct st_tensor *prev = NULL;
	int ret = -1;
	size_t i;

	if (st->count == 0)
		return 0;
	idx = malloc(st->count * sizeof(*idx));
	if (!idx)
		return err_set(err, ERR_FATAL, "%s: out of memory", path);
	for (i = 0; i < st->count; i++)
		idx[i] = &st->tensors[i];

	qsort(idx, st->count, sizeof(*idx), cmp_by_name);
	for (i = 1; i < st->count; i++) {
		if (!strcmp(idx[i - 1]->name, idx[i]->name)) {
			err_set(err, ERR_INPUT, "%s: tensor %s appears twice in the header", path,
			        idx[i]->name);
			goto out;
		}
	}

	qsort(idx, st->count, sizeof(*idx), cmp_by_data);
	for (i = 0; i < st->count; i++) {
		const unsigned char *start = idx[i]->data;

		if (idx[i]->nbytes == 0)
			continue;
		if (prev && start < (const unsigned char *)prev->data + prev->nbytes) {
			err_set(err, ERR_INPUT, "%s: tensors %s and %s overlap", path, prev->name,
			        idx[i]->name);
			goto out;
		}
		prev = idx[i];
	}
	ret = 0;
out:
	free(idx);
	return ret;
}

static int parse_metadata(const char *path, const cJSON *meta, struct safetensors *st,
                          struct err *err)
{
	const cJSON *kv;

	if (!cJSON_IsObject(meta))
		return err_set(err, ERR_INPUT, "%s: __metadata__ is not an object", path);
	cJSON_ArrayForEach(kv, meta)
	{
		if (!cJSON_IsString(kv))
			return err_set(err, ERR_INPUT, "%s: __metadata__ value %s is not a string",
			               path, kv->string);
	}
	st->metadata_json = cJSON_PrintUnformatted(meta);
	if (!st->metadata_json)
		return err_set(err, ERR_FATAL, "%s: out of memory", path);
	return 0;
}

/* Parse the JSON header and every entry in it. */
static int parse_header(const char *path, struct safetensors *st, uint64_t hlen, struct err *err)
{
	const char *json = (const char *)st->map + 8;
	const unsigned char *data = (const unsigned char *)st->map + 8 + hlen;
	uint64_t data_len = st->map_len - 8 - hlen;
	const char *end = NULL;
	cJSON *root = NULL;
	const cJSON *e;
	size_t n = 0;
	int ret = -1;

	root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
	if (!root) {
		err_set(err, ERR_INPUT,
		        "%s: header is not valid JSON (error near byte %td of %llu)", path,
		        end ? end - json : (ptrdiff_t)0, (unsigned long long)hlen);
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		err_set(err, ERR_INPUT, "%s: header is JSON but not an object", path);
		goto out;
	}
	/* Writers pad the header with spaces; anything else after it is damage. */
	for (; end < json + hlen; end++) {
		if (*end != ' ' && *end != '\n' && *end != '\t' && *end != '\r' && *end != '\0') {
			err_set(err, ERR_INPUT, "%s: header has bytes after its JSON object", path);
			goto out;
		}
	}

	st->count = (size_t)cJSON_GetArraySize(root);
	st->tensors = calloc(st->count ? st->count : 1, sizeof(*st->tensors));
	if (!st->tensors) {
		err_set(err, ERR_FATAL, "%s: out of memory", path);
		goto out;
	}
	cJSON_ArrayForEach(e, root)
	{
		if (!strcmp(e->string, "__metadata__")) {
			if (st->metadata_json) {
				err_set(err, ERR_INPUT, "%s: __metadata__ appears twice", path);
				goto out;
			}
			if (parse_metadata(path, e, st, err) < 0)
				goto out;
			continue;
		}
		if (parse_entry(path, e, data, data_len, &st->tensors[n], err) < 0)
			goto out;
		n++;
	}
	st->count = n;
	if (check_layout(path, st, err) < 0)
		goto out;
	ret = 0;
out:
	/* On failure, count covers exactly the entries whose names were set. */
	if (ret < 0)
		st->count = n;
	cJSON_Delete(root);
	return ret;
}

int safetensors_open(const char *path, struct safetensors **out, struct err *err)
{
	struct safetensors *st = NULL;
	struct stat sb;
	uint64_t hlen;
	int fd = -1;
	int ret = -1;

	*out = NULL;
	if (!path)
		return err_set(err, ERR_INPUT, "safetensors: NULL path");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_set(err, ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		err_set(err, ERR_INPUT, "%s: cannot stat: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		err_set(err, ERR_INPUT, "%s: not a regular file", path);
		goto out;
	}
	if (sb.st_size < 8) {
		err_set(err, ERR_INPUT,
		        "%s: truncated: file has %lld bytes, the header length alone needs 8", path,
		        (long long)sb.st_size);
		goto out;
	}

	st = calloc(1, sizeof(*st));
	if (!st) {
		err_set(err, ERR_FATAL, "%s: out of memory", path);
		goto out;
	}
	/* LIMIT: tensors are read through the mapping, so a file truncated by
	 * someone else while open would fault (SIGBUS) instead of failing. */
	st->map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (st->map == MAP_FAILED) {
		st->map = NULL;
		err_set(err, ERR_INPUT, "%s: cannot map: %s", path, strerror(errno));
		goto out;
	}
	st->map_len = (size_t)sb.st_size;

	memcpy(&hlen, st->map, sizeof(hlen));
	if (hlen > ST_HEADER_MAX) {
		err_set(err, ERR_INPUT, "%s: header length %llu is over the %u byte bound", path,
		        (unsigned long long)hlen, ST_HEADER_MAX);
		goto out;
	}
	if (hlen > st->map_len - 8) {
		err_set(err, ERR_INPUT, "%s: truncated: header says %llu bytes, file has %zu", path,
		        (unsigned long long)hlen, st->map_len - 8);
		goto out;
	}
	if (parse_header(path, st, hlen, err) < 0)
		goto out;

	*out = st;
	st = NULL;
	ret = 0;
out:
	safetensors_close(st);
	if (fd >= 0)
		close(fd);
	return ret;
}

const struct st_tensor *safetensors_find(const struct safetensors *st, const char *name)
{
	size_t i;

	for (i = 0; i < st->count; i++)
		if (!strcmp(st->tensors[i].name, name))
			return &st->tensors[i];
	return NULL;
}

/* IEEE half to single; every half value, subnormals included, is exact. */
static float f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t man = h & 0x3ffu;
	uint32_t bits;
	float f;

	if (exp == 0) {
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 0x1f)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

int safetensors_to_f32(const struct st_tensor *t, float *dst, size_t cap, struct err *err)
{
	const unsigned char *src = t->data;
	size_t n = (size_t)t->numel;
	size_t i;

	if (n > cap)
		return err_set(err, ERR_INPUT, "tensor %s: %zu elements do not fit in %zu", t->name,
		               n, cap);
	switch (t->dtype) {
	case ST_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case ST_F16:
		for (i = 0; i < n; i++) {
			uint16_t h;

			memcpy(&h, src + 2 * i, 2);
			dst[i] = f16_to_f32(h);
		}
		break;
	case ST_BF16:
		for (i = 0; i < n; i++) {
			uint16_t h;
			uint32_t bits;

			memcpy(&h, src + 2 * i, 2);
			bits = (uint32_t)h << 16;
			memcpy(&dst[i], &bits, sizeof(float));
		}
		break;
	case ST_F64:
		for (i = 0; i < n; i++) {
			double d;

			memcpy(&d, src + 8 * i, sizeof(d));
			dst[i] = (float)d;
		}
		break;
	default:
		return err_set(err, ERR_INPUT, "tensor %s: dtype %s cannot be converted to float32",
		               t->name, safetensors_dtype_name(t->dtype));
	}
	return 0;
}

char *safetensors_metadata_get(const struct safetensors *st, const char *key)
{
	cJSON *meta;
	const cJSON *v;
	char *ret = NULL;

	if (!st->metadata_json)
		return NULL;
	meta = cJSON_Parse(st->metadata_json);
	v = cJSON_GetObjectItemCaseSensitive(meta, key);
	if (cJSON_IsString(v))
		ret = strdup(v->valuestring);
	cJSON_Delete(meta);
	return ret;
}

void safetensors_close(struct safetensors *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; i < st->count; i++)
		free(st->tensors[i].name);
	free(st->tensors);
	cJSON_free(st->metadata_json);
	if (st->map)
		munmap(st->map, st->map_len);
	free(st);
}

/* ---- writing ---- */

static int cmp_write_by_name(const void *a, const void *b)
{
	const struct st_write_tensor *x = *(const struct st_write_tensor *const *)a;
	const struct st_write_tensor *y = *(const struct st_write_tensor *const *)b;

	return strcmp(x->name, y->name);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Element count of T, or -1 when its description is unusable. */
static int64_t write_numel(const struct st_write_tensor *t, struct err *err)
{
	int64_t numel = 1;
	int d;

	if (!t->name || !*t->name || !strcmp(t->name, "__metadata__")) {
		err_set(err, ERR_INPUT, "safetensors write: tensor name %s is not allowed",
		        t->name ? t->name : "(null)");
		return -1;
	}
	if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
		err_set(err, ERR_INPUT, "safetensors write: tensor %s: %d dims", t->name, t->ndim);
		return -1;
	}
	for (d = 0; d < t->ndim; d++) {
		if (t->shape[d] < 0 || (t->shape[d] && numel > INT64_MAX / 4 / t->shape[d])) {
			err_set(err, ERR_INPUT, "safetensors write: tensor %s: bad shape", t->name);
			return -1;
		}
		numel *= t->shape[d];
	}
	if (numel > 0 && !t->data) {
		err_set(err, ERR_INPUT, "safetensors write: tensor %s has no data", t->name);
		return -1;
	}
	return numel;
}

static int add_metadata(cJSON *root, const char *const *meta, size_t nmeta, struct err *err)
{
	cJSON *obj;
	size_t i;

	if (nmeta == 0)
		return 0;
	obj = cJSON_AddObjectToObject(root, "__metadata__");
	if (!obj)
		return err_set(err, ERR_FATAL, "safetensors write: out of memory");
	for (i = 0; i < nmeta; i++) {
		const char *k = meta[2 * i], *v = meta[2 * i + 1];

		if (!k || !v)
			return err_set(err, ERR_INPUT,
			               "safetensors write: metadata pair %zu is NULL", i);
		if (cJSON_GetObjectItemCaseSensitive(obj, k))
			return err_set(err, ERR_INPUT, "safetensors write: metadata key %s twice",
			               k);
		if (!cJSON_AddStringToObject(obj, k, v))
			return err_set(err, ERR_FATAL, "safetensors write: out of memory");
	}
	return 0;
}

/* Header JSON for the tensors in IDX order (all float32, so every offset is
 * 4-aligned), padded with spaces so that the data area starts 8-aligned. */
static char *build_header(const struct st_write_tensor *const *idx, size_t n,
                          const char *const *meta, size_t nmeta, size_t *len, struct err *err)
{
	cJSON *root = cJSON_CreateObject();
	char *json = NULL, *padded = NULL;
	uint64_t off = 0;
	size_t i, jlen;

	if (!root || add_metadata(root, meta, nmeta, err) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		const struct st_write_tensor *t = idx[i];
		cJSON *e = cJSON_AddObjectToObject(root, t->name);
		cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
		cJSON *offs = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
		uint64_t nbytes = 4;
		int d;

		if (!offs || !cJSON_AddStringToObject(e, "dtype", "F32"))
			goto oom;
		for (d = 0; d < t->ndim; d++) {
			nbytes *= (uint64_t)t->shape[d];
			if (!cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d])))
				goto oom;
		}
		if (!cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) ||
		    !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nbytes))))
			goto oom;
		off += nbytes;
	}
	json = cJSON_PrintUnformatted(root);
	if (!json)
		goto oom;
	jlen = strlen(json);
	*len = (jlen + ST_DATA_ALIGN - 1) / ST_DATA_ALIGN * ST_DATA_ALIGN;
	padded = malloc(*len);
	if (!padded)
		goto oom;
	memcpy(padded, json, jlen);
	memset(padded + jlen, ' ', *len - jlen);
	goto out;
oom:
	err_set(err, ERR_FATAL, "safetensors write: out of memory");
out:
	cJSON_free(json);
	cJSON_Delete(root);
	return padded;
}

/* Make the rename durable: fsync the directory that holds PATH. */
static void sync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (!slash) {
		dir = strdup(".");
	} else {
		dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	}
	if (!dir)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

int safetensors_write(const char *path, const struct st_write_tensor *t, size_t n,
                      const char *const *meta, size_t nmeta, struct err *err)
{
	const struct st_write_tensor **idx = NULL;
	char *header = NULL, *tmp = NULL;
	size_t hlen = 0, tmp_len, i;
	uint64_t hlen_le;
	int created = 0;
	int fd = -1;
	int ret = -1;

	if (!path || (n && !t) || (nmeta && !meta)) {
		err_set(err, ERR_INPUT, "safetensors write: NULL path, tensors or metadata");
		goto out;
	}
	idx = malloc((n ? n : 1) * sizeof(*idx));
	tmp_len = strlen(path) + sizeof(".tmp.XXXXXX");
	tmp = malloc(tmp_len);
	if (!idx || !tmp) {
		err_set(err, ERR_FATAL, "safetensors write: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (write_numel(&t[i], err) < 0)
			goto out;
		idx[i] = &t[i];
	}
	qsort(idx, n, sizeof(*idx), cmp_write_by_name);
	for (i = 1; i < n; i++) {
		if (!strcmp(idx[i - 1]->name, idx[i]->name)) {
			err_set(err, ERR_INPUT, "safetensors write: tensor %s given twice",
			        idx[i]->name);
			goto out;
		}
	}
	header = build_header(idx, n, meta, nmeta, &hlen, err);
	if (!header)
		goto out;

	/* The temp file sits beside PATH so that rename() is atomic. */
	snprintf(tmp, tmp_len, "%s.tmp.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		err_set(err, ERR_FATAL, "%s: cannot create temp file: %s", path, strerror(errno));
		goto out;
	}
	created = 1;
	hlen_le = hlen;
	if (fchmod(fd, 0644) < 0 || write_all(fd, &hlen_le, sizeof(hlen_le)) < 0 ||
	    write_all(fd, header, hlen) < 0)
		goto io_err;
	for (i = 0; i < n; i++) {
		int64_t numel = write_numel(idx[i], err);

		if (numel > 0 && write_all(fd, idx[i]->data, (size_t)numel * sizeof(float)) < 0)
			goto io_err;
	}
	if (fsync(fd) < 0)
		goto io_err;
	if (close(fd) < 0) {
		fd = -1;
		goto io_err;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto io_err;
	sync_parent_dir(path);
	ret = 0;
	goto out;
io_err:
	err_set(err, ERR_FATAL, "%s: cannot write: %s", path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0 && created)
		unlink(tmp);
	free(header);
	free(tmp);
	free(idx);
	return ret;
}
