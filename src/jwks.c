#include "luamcp/jwks.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "luamcp/log.h"

#define MAX_DOC_BYTES (1u << 20) /* a JWKS or discovery document larger than this is refused */
#define MAX_WAITERS 256
#define RETRY_MIN_S 2
#define RETRY_MAX_S 300

typedef struct waiter {
    void (*wake)(void *);
    void *arg;
} waiter_t;

struct jwks {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* the thread waits on it for work */
    pthread_cond_t done_cv;  /* jwks_wait_ready waits on it */
    jose_keyset_t *keys;
    bool remote, stop, want, fetching, attempted;
    pthread_t thread;
    char *issuer;
    char *jwks_uri;          /* configured or discovered */
    const config_auth_t *cfg;
    time_t next_fetch, last_attempt;
    time_t last_demand;      /* when a request last asked for a refetch (the rate limit) */
    atomic_ulong generation; /* counts key set changes */
    unsigned char doc_digest[32]; /* of the last JWKS document: an unchanged one is no change */
    unsigned retry_s;
    const char *last_error;  /* static strings only */
    char error_buf[256];
    waiter_t waiters[MAX_WAITERS];
    size_t n_waiters;
};

static time_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* ---- fetching ------------------------------------------------------------------------- */

typedef struct doc {
    char *data;
    size_t len;
    long max_age; /* -1 when the answer gave none */
    bool no_cache;
} doc_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    doc_t *d = ud;
    size_t add = size * n;
    if (d->len + add > MAX_DOC_BYTES)
        return 0; /* aborts the transfer: too large */
    char *grown = realloc(d->data, d->len + add + 1);
    if (!grown)
        return 0;
    memcpy(grown + d->len, p, add);
    d->data = grown;
    d->len += add;
    d->data[d->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    doc_t *d = ud;
    size_t len = size * n;
    if (len > 14 && strncasecmp(p, "cache-control:", 14) == 0) {
        char line[512];
        size_t m = len < sizeof line - 1 ? len : sizeof line - 1;
        memcpy(line, p, m);
        line[m] = '\0';
        for (char *c = line; *c; c++)
            *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
        char *ma = strstr(line, "max-age=");
        if (ma)
            d->max_age = strtol(ma + 8, NULL, 10);
        if (strstr(line, "no-store") || strstr(line, "no-cache"))
            d->no_cache = true;
    }
    return len;
}

/* Only https, or http to a loopback host (local identity providers in tests). */
static bool url_allowed(const char *url)
{
    if (strncmp(url, "https://", 8) == 0)
        return true;
    return strncmp(url, "http://127.", 11) == 0 || strncmp(url, "http://localhost:", 17) == 0 ||
           strncmp(url, "http://localhost/", 17) == 0 || strncmp(url, "http://[::1]", 12) == 0;
}

static int fetch(jwks_t *j, const char *url, doc_t *d)
{
    memset(d, 0, sizeof *d);
    d->max_age = -1;
    if (!url_allowed(url)) {
        j->last_error = "refusing a key URL that is not https (http only on loopback)";
        return -1;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        j->last_error = "out of memory";
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect could leave the issuer */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)j->cfg->jwks_timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "luamcp");
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MAX_DOC_BYTES);
    if (j->cfg->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, j->cfg->ca_file);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || status != 200) {
        if (rc != CURLE_OK)
            snprintf(j->error_buf, sizeof j->error_buf, "fetching %.150s: %.90s", url,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        else
            snprintf(j->error_buf, sizeof j->error_buf, "fetching %.150s: HTTP %ld", url,
                     status);
        j->last_error = j->error_buf;
        free(d->data);
        d->data = NULL;
        return -1;
    }
    return 0;
}

/* RFC 8414 puts the well-known segment between host and path; OIDC appends it. */
static int discovery_url(const char *issuer, bool rfc8414, char *out, size_t n)
{
    const char *scheme_end = strstr(issuer, "://");
    if (!scheme_end)
        return -1;
    const char *path = strchr(scheme_end + 3, '/');
    size_t host_len = path ? (size_t)(path - issuer) : strlen(issuer);
    const char *p = path ? path : "";
    size_t plen = strlen(p);
    while (plen && p[plen - 1] == '/')
        plen--;
    int w = rfc8414 ? snprintf(out, n, "%.*s/.well-known/oauth-authorization-server%.*s",
                               (int)host_len, issuer, (int)plen, p)
                    : snprintf(out, n, "%.*s%.*s/.well-known/openid-configuration",
                               (int)host_len, issuer, (int)plen, p);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

static int discover(jwks_t *j)
{
    for (int rfc = 1; rfc >= 0; rfc--) {
        char url[1024];
        doc_t d;
        if (discovery_url(j->issuer, rfc, url, sizeof url) || fetch(j, url, &d))
            continue;
        json_t *doc = json_loadb(d.data, d.len, JSON_REJECT_DUPLICATES, NULL);
        free(d.data);
        const char *iss = json_string_value(json_object_get(doc, "issuer"));
        const char *uri = json_string_value(json_object_get(doc, "jwks_uri"));
        if (!iss || strcmp(iss, j->issuer) != 0) {
            /* RFC 8414 section 3.3: a document for another issuer must not be used */
            j->last_error = "the discovery document names a different issuer";
        } else if (!uri || !url_allowed(uri)) {
            j->last_error = "the discovery document has no usable jwks_uri";
        } else {
            free(j->jwks_uri);
            j->jwks_uri = strdup(uri);
            json_decref(doc);
            return 0;
        }
        json_decref(doc);
        return -1;
    }
    return -1;
}

/* One attempt: discovery when needed, then the JWKS. On success *ks and *ttl are set. */
static int fetch_keys(jwks_t *j, jose_keyset_t **ks, unsigned *ttl, unsigned char digest[32])
{
    if (!j->jwks_uri && discover(j) != 0)
        return -1;
    doc_t d;
    if (fetch(j, j->jwks_uri, &d) != 0)
        return -1;
    unsigned int dlen = 0;
    EVP_Digest(d.data ? d.data : "", d.len, digest, &dlen, EVP_sha256(), NULL);
    char *warnings = NULL, *err = NULL;
    *ks = jose_keyset_from_jwks(d.data, d.len, &warnings, &err);
    free(d.data);
    if (warnings) {
        log_warn("auth: keys of %s: %s", j->issuer, warnings);
        free(warnings);
    }
    if (!*ks) {
        snprintf(j->error_buf, sizeof j->error_buf, "the JWKS of %.120s is unusable: %.100s",
                 j->issuer, err ? err : "?");
        j->last_error = j->error_buf;
        free(err);
        return -1;
    }
    long age = d.no_cache ? 0 : d.max_age < 0 ? (long)j->cfg->jwks_min_ttl_s : d.max_age;
    if (age < (long)j->cfg->jwks_min_ttl_s)
        age = j->cfg->jwks_min_ttl_s;
    if (age > (long)j->cfg->jwks_max_ttl_s)
        age = j->cfg->jwks_max_ttl_s;
    *ttl = (unsigned)age;
    return 0;
}

static void *refresher(void *arg)
{
    jwks_t *j = arg;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->stop && !j->want && mono_s() < j->next_fetch) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += j->next_fetch - mono_s();
            pthread_cond_timedwait(&j->cv, &j->mu, &until);
        }
        if (j->stop)
            break;
        j->want = false;
        j->fetching = true;
        j->last_attempt = mono_s();
        pthread_mutex_unlock(&j->mu);

        jose_keyset_t *ks = NULL;
        unsigned ttl = 0;
        unsigned char digest[32];
        int rc = fetch_keys(j, &ks, &ttl, digest);

        pthread_mutex_lock(&j->mu);
        jose_keyset_t *old = NULL;
        if (rc == 0 && j->keys && memcmp(digest, j->doc_digest, sizeof digest) == 0) {
            old = ks; /* the same document: keep the keys (and every cached verification) */
            j->next_fetch = mono_s() + ttl;
            j->retry_s = RETRY_MIN_S;
            j->last_error = NULL;
        } else if (rc == 0) {
            old = j->keys;
            j->keys = ks;
            memcpy(j->doc_digest, digest, sizeof digest);
            atomic_fetch_add(&j->generation, 1);
            j->next_fetch = mono_s() + ttl;
            j->retry_s = RETRY_MIN_S;
            j->last_error = NULL;
            log_info("auth: %zu keys of %s loaded, next refresh in %us", jose_keyset_size(ks),
                     j->issuer, ttl);
        } else {
            log_warn("auth: %s%s", j->last_error ? j->last_error : "key fetch failed",
                     j->keys ? " (still using the keys fetched before)" : "");
            /* never later than max_ttl_s: the keys kept through an outage are the ones we
             * could not check, and a key dropped meanwhile must go within that bound once the
             * JWKS answers again, however long the back-off has grown */
            unsigned wait = j->retry_s < j->cfg->jwks_max_ttl_s ? j->retry_s
                                                                : j->cfg->jwks_max_ttl_s;
            j->next_fetch = mono_s() + wait;
            j->retry_s = j->retry_s * 2 > RETRY_MAX_S ? RETRY_MAX_S : j->retry_s * 2;
        }
        j->fetching = false;
        j->attempted = true;
        waiter_t woken[MAX_WAITERS];
        size_t n = j->n_waiters;
        memcpy(woken, j->waiters, n * sizeof *woken);
        j->n_waiters = 0;
        pthread_cond_broadcast(&j->done_cv);
        pthread_mutex_unlock(&j->mu);
        if (old)
            jose_keyset_unref(old);
        for (size_t i = 0; i < n; i++)
            woken[i].wake(woken[i].arg);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- the source ------------------------------------------------------------------------- */

static jwks_t *alloc_source(void)
{
    jwks_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    pthread_cond_init(&j->done_cv, NULL);
    return j;
}

jwks_t *jwks_new_static(jose_keyset_t *ks)
{
    jwks_t *j = alloc_source();
    if (!j) {
        jose_keyset_unref(ks);
        return NULL;
    }
    j->keys = ks;
    j->attempted = true;
    return j;
}

jwks_t *jwks_new_remote(const char *issuer, const char *jwks_uri, const config_auth_t *cfg,
                        char **err)
{
    if (jwks_uri && !url_allowed(jwks_uri)) {
        *err = strdup("jwks_uri must be https:// (http:// only on loopback)");
        return NULL;
    }
    jwks_t *j = alloc_source();
    if (!j) {
        *err = strdup("out of memory");
        return NULL;
    }
    j->remote = true;
    j->cfg = cfg;
    j->issuer = strdup(issuer);
    j->jwks_uri = jwks_uri ? strdup(jwks_uri) : NULL;
    j->retry_s = RETRY_MIN_S;
    j->want = true; /* fetch at once */
    j->last_demand = mono_s() - (time_t)cfg->jwks_refetch_s - 1;
    if (pthread_create(&j->thread, NULL, refresher, j) != 0) {
        *err = strdup("cannot start the key refresh thread");
        j->remote = false;
        jwks_free(j);
        return NULL;
    }
    return j;
}

void jwks_free(jwks_t *j)
{
    if (!j)
        return;
    if (j->remote) {
        pthread_mutex_lock(&j->mu);
        j->stop = true;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->thread, NULL);
    }
    if (j->keys)
        jose_keyset_unref(j->keys);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    pthread_cond_destroy(&j->done_cv);
    free(j->issuer);
    free(j->jwks_uri);
    free(j);
}

jose_keyset_t *jwks_keys(jwks_t *j)
{
    pthread_mutex_lock(&j->mu);
    jose_keyset_t *ks = j->keys ? jose_keyset_ref(j->keys) : NULL;
    pthread_mutex_unlock(&j->mu);
    return ks;
}

bool jwks_wait_ready(jwks_t *j, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->attempted)
        if (pthread_cond_timedwait(&j->done_cv, &j->mu, &until) == ETIMEDOUT)
            break;
    bool ready = j->keys != NULL;
    pthread_mutex_unlock(&j->mu);
    return ready;
}

bool jwks_request_refetch(jwks_t *j, void (*wake)(void *), void *arg)
{
    if (!j->remote)
        return false;
    pthread_mutex_lock(&j->mu);
    /* Only fetches that requests ask for are rate-limited: a scheduled refresh a moment ago
     * must not make a freshly rotated kid fail. */
    time_t now = mono_s();
    bool ok = j->fetching || j->want || now - j->last_demand >= (time_t)j->cfg->jwks_refetch_s;
    if (ok) {
        if (!j->fetching && !j->want) {
            j->want = true;
            j->last_demand = now;
            pthread_cond_signal(&j->cv);
        }
        bool known = false;
        for (size_t i = 0; i < j->n_waiters && !known; i++)
            known = j->waiters[i].wake == wake && j->waiters[i].arg == arg;
        if (!known && j->n_waiters < MAX_WAITERS)
            j->waiters[j->n_waiters++] = (waiter_t){wake, arg};
        else if (!known)
            ok = false;
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

unsigned long jwks_generation(jwks_t *j) { return atomic_load(&j->generation); }

const char *jwks_last_error(jwks_t *j)
{
    pthread_mutex_lock(&j->mu);
    const char *e = j->last_error;
    pthread_mutex_unlock(&j->mu);
    return e;
}
