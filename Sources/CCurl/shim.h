#include <curl/curl.h>
// curl_easy_setopt/getinfo are variadic macros Swift cannot call; typed wrappers.
static inline CURLcode forge_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode forge_curl_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode forge_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
typedef size_t (*forge_curl_write_cb)(char *, size_t, size_t, void *);
static inline CURLcode forge_curl_setopt_writefn(CURL *h, CURLoption o, forge_curl_write_cb f) { return curl_easy_setopt(h, o, f); }
static inline CURLcode forge_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode forge_curl_getinfo_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLMcode forge_curl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
