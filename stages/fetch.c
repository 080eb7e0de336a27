/* fetch.c - photo bytes from file:// URLs confined to root folders, and from
 * http(s):// URLs through libcurl. */
#include "fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int fetch_add_root(struct fetch *f, const char *root, struct err *err)
{
	char *real;

	if (f->nroots == FETCH_MAX_ROOTS)
		return err_set(err, ERR_FATAL, "more than %d root folders", FETCH_MAX_ROOTS);
	real = realpath(root, NULL);
	if (!real)
		return err_set(err, ERR_FATAL, "root folder %s: %s", root, strerror(errno));
	f->roots[f->nroots++] = real;
	return 0;
}

void fetch_free(struct fetch *f)
{
	size_t i;

	for (i = 0; i < f->nroots; i++)
		free(f->roots[i]);
	f->nroots = 0;
}

static int inside_root(const struct fetch *f, const char *real)
{
	size_t i;

	for (i = 0; i < f->nroots; i++) {
		size_t n = strlen(f->roots[i]);

		if (!strncmp(real, f->roots[i], n) && (real[n] == '/' || real[n] == '\0'))
			return 1;
	}
	return 0;
}

/* Decode %XX escapes of a file URL's path into OUT. */
static int url_unescape(const char *in, char *out, size_t cap)
{
	size_t at = 0;

	for (; *in; in++) {
		unsigned v;

		if (at + 1 >= cap)
			return -1;
		if (*in == '%' && sscanf(in + 1, "%2x", &v) == 1 && in[1] && in[2]) {
			if (v == 0)
				return -1;
			out[at++] = (char)v;
			in += 2;
		} else {
			out[at++] = *in;
		}
	}
	out[at] = '\0';
	return 0;
}

static int read_file(const struct fetch *f, const char *url, void **buf, size_t *len,
                     struct err *err)
{
	char path[4096];
	char *real = NULL;
	char *data = NULL;
	struct stat st;
	size_t got = 0;
	int fd = -1;
	int ret = -1;

	url += strlen("file://");
	/* file://localhost/path names this host, like file:///path (RFC 8089) */
	if (!strncasecmp(url, "localhost/", 10))
		url += strlen("localhost");
	if (url_unescape(url, path, sizeof(path)))
		return err_set(err, ERR_INPUT, "bad file url");
	if (path[0] != '/')
		return err_set(err, ERR_INPUT, "file url must hold an absolute path");
	real = realpath(path, NULL);
	if (!real) {
		err_set(err, ERR_INPUT, "cannot open photo: %s", strerror(errno));
		goto out;
	}
	if (!inside_root(f, real)) {
		err_set(err, ERR_INPUT, "file url outside the allowed folders");
		goto out;
	}
	/* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever
	 * and past SIGTERM; it changes nothing for the regular files we go on to read */
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st)) {
		err_set(err, ERR_INPUT, "cannot open photo: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, ERR_INPUT, "not a regular file");
		goto out;
	}
	if ((unsigned long long)st.st_size > f->max_bytes) {
		err_set(err, ERR_INPUT, "too large: %lld bytes, limit %zu", (long long)st.st_size,
		        f->max_bytes);
		goto out;
	}
	data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data) {
		err_set(err, ERR_FATAL, "out of memory reading %lld bytes", (long long)st.st_size);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err_set(err, ERR_INPUT, "read failed: %s",
			        r < 0 ? strerror(errno) : "file shrank while reading");
			goto out;
		}
		got += (size_t)r;
	}
	*buf = data;
	*len = got;
	data = NULL;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(data);
	free(real);
	return ret;
}

int fetch_global_init(struct err *err)
{
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);

	return c ? err_set(err, ERR_FATAL, "libcurl: %s", curl_easy_strerror(c)) : 0;
}

/* What one transfer has received so far. */
struct sink {
	char *data;
	size_t n, cap, max;
	int over;    /* more than max bytes came */
	int blocked; /* a connection to a refused address was asked for */
	int allow_private;
};

static size_t sink_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (n > s->max - s->n) {
		s->over = 1;
		return 0; /* aborts the transfer */
	}
	if (s->n + n > s->cap) {
		size_t cap = s->cap ? s->cap : 65536;
		char *d;

		while (cap < s->n + n)
			cap *= 2;
		if (cap > s->max)
			cap = s->max;
		d = realloc(s->data, cap ? cap : 1);
		if (!d)
			return 0;
		s->data = d;
		s->cap = cap;
	}
	memcpy(s->data + s->n, p, n);
	s->n += n;
	return n;
}

/* Loopback, private, link-local, unspecified, multicast and CGNAT addresses:
 * where an event's URL must not reach (cloud metadata, local services). */
static int address_private(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);

		return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
		       (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 || (a >> 16) == 0xa9fe ||
		       (a >> 22) == (100u << 2 | 1) || (a >> 28) == 0xe || a == 0xffffffffu;
	}
	if (sa->sa_family == AF_INET6) {
		const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0,    0,
		                                           0, 0, 0, 0, 0xff, 0xff};
		struct sockaddr_in v4;

		static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0,
		                                        0, 0,    0,    0,    0, 0};
		static const unsigned char compat[12] = {0};
		const unsigned char *embedded = NULL;

		/* IPv6 forms that carry an IPv4 address a gateway may reach: mapped ::ffff:a.b.c.d,
		 * NAT64 64:ff9b::a.b.c.d, the old compatible ::a.b.c.d, 6to4 2002:aabb:ccdd:: */
		if (!memcmp(b, v4mapped, 12) || !memcmp(b, nat64, 12) ||
		    (!memcmp(b, compat, 12) && (b[12] | b[13] | b[14]) != 0))
			embedded = b + 12;
		else if (b[0] == 0x20 && b[1] == 0x02)
			embedded = b + 2;
		if (embedded) {
			memset(&v4, 0, sizeof(v4));
			v4.sin_family = AF_INET;
			memcpy(&v4.sin_addr, embedded, 4);
			return address_private((const struct sockaddr *)&v4);
		}
		return IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)b) ||
		       IN6_IS_ADDR_UNSPECIFIED((const struct in6_addr *)b) ||
		       IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *)b) ||
		       IN6_IS_ADDR_MULTICAST((const struct in6_addr *)b) || (b[0] & 0xfe) == 0xfc;
	}
	return 1;
}

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct sink *s = arg;

	if (!s->allow_private && address_private(&a->addr)) {
		s->blocked = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* LIMIT: one transfer per photo with a fresh handle: no connection reuse
 * between photos of one host. */
static int read_http(const struct fetch *f, const char *url, void **buf, size_t *len,
                     struct err *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct sink s = {0};
	CURL *c = curl_easy_init();
	long timeout = f->timeout_s > 0 ? f->timeout_s : 30;
	long status = 0;
	CURLcode rc;
	int ret = -1;

	if (!c)
		return err_set(err, ERR_FATAL, "libcurl: cannot create a transfer");
	s.max = f->max_bytes;
	s.allow_private = f->allow_private;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, f->max_redirects > 0 ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)f->max_redirects);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT,
	                 (long)(f->connect_timeout_s > 0 ? f->connect_timeout_s : 10));
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT,
	                 (long)(f->low_speed_bytes > 0 ? f->low_speed_bytes : 1));
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
	                 (long)(f->low_speed_s > 0 ? f->low_speed_s : 10));
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max_bytes);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_USERAGENT, f->user_agent ? f->user_agent : "pipeline-run");
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);

	switch (rc) {
	case CURLE_OK:
		break;
	case CURLE_OPERATION_TIMEDOUT:
		err_set(err, ERR_INPUT,
		        "http: timed out (limit %ld s, or slower than %lld bytes/s)", timeout,
		        f->low_speed_bytes);
		goto out;
	case CURLE_COULDNT_RESOLVE_HOST:
		err_set(err, ERR_INPUT, "http: host not found");
		goto out;
	case CURLE_TOO_MANY_REDIRECTS:
		err_set(err, ERR_INPUT, "http: more than %d redirects", f->max_redirects);
		goto out;
	case CURLE_UNSUPPORTED_PROTOCOL:
		err_set(err, ERR_INPUT, "http: redirect to a scheme other than http or https");
		goto out;
	case CURLE_FILESIZE_EXCEEDED:
		err_set(err, ERR_INPUT, "too large: over the limit of %zu bytes", f->max_bytes);
		goto out;
	case CURLE_WRITE_ERROR:
		if (s.over)
			err_set(err, ERR_INPUT, "too large: over the limit of %zu bytes",
			        f->max_bytes);
		else
			err_set(err, ERR_FATAL, "out of memory fetching a photo");
		goto out;
	default:
		if (s.blocked)
			err_set(err, ERR_INPUT,
			        "http: address not allowed (loopback, private or "
			        "link-local network)");
		else
			err_set(err, ERR_INPUT, "http: %s",
			        errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	if (status != 200) {
		err_set(err, ERR_INPUT, "http: status %ld", status);
		goto out;
	}
	*buf = s.data ? s.data : malloc(1);
	*len = s.n;
	if (!*buf) {
		err_set(err, ERR_FATAL, "out of memory");
		goto out;
	}
	s.data = NULL;
	ret = 0;
out:
	free(s.data);
	curl_easy_cleanup(c);
	return ret;
}

int fetch_url(const struct fetch *f, const char *url, void **buf, size_t *len, struct err *err)
{
	*buf = NULL;
	*len = 0;
	/* schemes are case-insensitive (the event parser lets FILE:// through too) */
	if (!strncasecmp(url, "file://", 7))
		return read_file(f, url, buf, len, err);
	if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8))
		return read_http(f, url, buf, len, err);
	return err_set(err, ERR_INPUT, "url scheme not supported (file, http, https)");
}
