#include "luamcp/fetch.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "luamcp/clock.h"
#include "luamcp/egress.h"
#include "luamcp/log.h"
#include "luamcp/secret.h"
#include "luamcp/version.h"

#define MAX_RESP_HEADER_BYTES (64u << 10)
#define CONNECT_TIMEOUT_MS 10000L

struct fetch_engine {
    CURLM *multi;
    const config_egress_t *cfg;
    bool dev;
    int epfd;
    uint64_t tag;
    long long deadline_ms;  /* when curl wants a timeout call; -1 none */
    unsigned active;
    struct curl_slist *resolve;
    char dev_warned[256];   /* the last host --dev let through, so it is said once */
    fetch_timer_t *timers;  /* armed, soonest first */
};

struct fetch_state {
    fetch_engine_t *e;
    CURL *h;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    char refused[200];      /* why the address check refused the connection */
    char host[256];         /* of the current hop, for the log: "host:port" */
    char origin[300];       /* "scheme://host:port": a credential stays within one */
    char *location;
    size_t header_bytes;
    unsigned redirects;
    bool too_big;
    bool running;           /* in the multi handle */
    long long started_ns;
};

/* ---- the engine ---------------------------------------------------------------------------- */

static int on_socket(CURL *h, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)h;
    fetch_engine_t *e = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(e->multi, s, NULL);
        return 0;
    }
    struct epoll_event ev = {
        .events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
        .data.u64 = e->tag | (uint32_t)s,
    };
    if (socketp) {
        epoll_ctl(e->epfd, EPOLL_CTL_MOD, s, &ev);
    } else if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, s, &ev) == 0) {
        curl_multi_assign(e->multi, s, e);
    }
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    fetch_engine_t *e = userp;
    e->deadline_ms = timeout_ms < 0 ? -1 : clock_mono_ms() + timeout_ms;
    return 0;
}

fetch_engine_t *fetch_engine_new(const config_egress_t *cfg, bool dev, int epfd, uint64_t tag)
{
    fetch_engine_t *e = calloc(1, sizeof *e);
    if (!e || !(e->multi = curl_multi_init())) {
        free(e);
        return NULL;
    }
    e->cfg = cfg;
    e->dev = dev;
    e->epfd = epfd;
    e->tag = tag;
    e->deadline_ms = -1;
    for (size_t i = 0; i < cfg->n_resolve; i++)
        e->resolve = curl_slist_append(e->resolve, cfg->resolve[i]);
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, 256L);
    if (epfd >= 0) {
        curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
        curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    }
    return e;
}

unsigned fetch_engine_active(const fetch_engine_t *e) { return e->active; }

static void detach(fetch_t *f)
{
    struct fetch_state *st = f->st;
    if (st && st->running) {
        curl_multi_remove_handle(st->e->multi, st->h);
        st->running = false;
        st->e->active--;
    }
}

void fetch_engine_free(fetch_engine_t *e)
{
    if (!e)
        return;
    /* transfers still here belong to calls being torn down; their owners free them */
    curl_multi_cleanup(e->multi);
    curl_slist_free_all(e->resolve);
    free(e);
}

/* ---- one transfer --------------------------------------------------------------------------- */

fetch_t *fetch_new(void)
{
    fetch_t *f = calloc(1, sizeof *f);
    if (f)
        snprintf(f->method, sizeof f->method, "GET");
    return f;
}

static void reset_response(fetch_t *f)
{
    free(f->resp);
    f->resp = NULL;
    f->resp_len = 0;
    for (size_t i = 0; i < f->n_resp_headers; i++)
        free(f->resp_headers[i]);
    f->n_resp_headers = 0;
    if (f->st) {
        free(f->st->location);
        f->st->location = NULL;
        f->st->header_bytes = 0;
    }
}

void fetch_cancel(fetch_t *f)
{
    detach(f);
}

void fetch_free(fetch_t *f)
{
    if (!f)
        return;
    fetch_cancel(f);
    reset_response(f);
    if (f->st) {
        curl_easy_cleanup(f->st->h);
        curl_slist_free_all(f->st->hdrs);
        free(f->st);
    }
    free(f->url);
    for (size_t i = 0; i < f->n_headers; i++)
        free(f->headers[i]);
    free(f->body);
    free(f);
}

int fetch_add_header(fetch_t *f, const char *name, const char *value, bool credential)
{
    if (f->n_headers >= FETCH_MAX_HEADERS || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n") ||
        !name[0])
        return -1;
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line)
        return -1;
    snprintf(line, n, "%s: %s", name, value);
    f->credential[f->n_headers] = credential;
    f->headers[f->n_headers++] = line;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    fetch_t *f = arg;
    size_t n = size * nmemb;
    if (f->resp_len + n > f->max_bytes) {
        f->st->too_big = true;
        return 0; /* aborts the transfer */
    }
    char *grown = realloc(f->resp, f->resp_len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + f->resp_len, data, n);
    f->resp = grown;
    f->resp_len += n;
    f->resp[f->resp_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    fetch_t *f = arg;
    struct fetch_state *st = f->st;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new response (after 1xx, say) */
        reset_response(f);
        return n;
    }
    st->header_bytes += n;
    if (st->header_bytes > MAX_RESP_HEADER_BYTES)
        return 0;
    const char *colon = memchr(data, ':', n);
    if (!colon || colon == data)
        return n;
    size_t nl = (size_t)(colon - data);
    const char *v = colon + 1, *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vl = (size_t)(end - v);
    if (nl == 8 && strncasecmp(data, "location", 8) == 0) {
        free(st->location);
        st->location = strndup(v, vl);
    }
    if (f->n_resp_headers >= FETCH_MAX_RESP_HEADERS)
        return n;
    char *kv = malloc(nl + vl + 2);
    if (!kv)
        return n;
    for (size_t i = 0; i < nl; i++)
        kv[i] = (char)((data[i] >= 'A' && data[i] <= 'Z') ? data[i] + 32 : data[i]);
    kv[nl] = '\0';
    memcpy(kv + nl + 1, v, vl);
    kv[nl + 1 + vl] = '\0';
    f->resp_headers[f->n_resp_headers++] = kv;
    return n;
}

/* The address check, on the address curl is about to connect to. */
static curl_socket_t on_open(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    fetch_t *f = arg;
    (void)purpose;
    if (egress_check_addr(f->st->e->cfg, &a->addr, f->st->refused, sizeof f->st->refused) != 0)
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The name check of url; fills st->host. */
static int check_url(fetch_t *f, const char *url)
{
    struct fetch_state *st = f->st;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
    int rc = -1;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(f->error, sizeof f->error, "invalid URL");
        goto done;
    }
    /* host comes back with brackets for IPv6 literals */
    char bare[256];
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[')
        snprintf(bare, sizeof bare, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(bare, sizeof bare, "%s", host);
    snprintf(st->host, sizeof st->host, "%.200s:%.8s", bare, port);
    snprintf(st->origin, sizeof st->origin, "%.16s://%.200s:%.8s", scheme, bare, port);
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        snprintf(f->error, sizeof f->error, "credentials in the URL are refused; send them in "
                 "a header");
        goto done;
    }
    rc = egress_check_url(st->e->cfg, st->e->dev, scheme, bare, atoi(port), f->tool_allow,
                          f->n_tool_allow, f->error, sizeof f->error);
    if (rc == 0 && st->e->cfg->n_allow == 0 && st->e->dev &&
        strcmp(st->e->dev_warned, bare) != 0) {
        snprintf(st->e->dev_warned, sizeof st->e->dev_warned, "%s", bare);
        log_warn("egress: --dev lets tool %s reach %s; list it in egress.allow for "
                 "production", f->tool ? f->tool : "?", bare);
    }
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

static void build_headers(fetch_t *f)
{
    struct fetch_state *st = f->st;
    curl_slist_free_all(st->hdrs);
    st->hdrs = NULL;
    for (size_t i = 0; i < f->n_headers; i++)
        if (f->headers[i])
            st->hdrs = curl_slist_append(st->hdrs, f->headers[i]);
    if (!f->body)
        st->hdrs = curl_slist_append(st->hdrs, "Expect:");
    curl_easy_setopt(st->h, CURLOPT_HTTPHEADER, st->hdrs);
}

static void set_method(fetch_t *f)
{
    CURL *h = f->st->h;
    curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    if (strcmp(f->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (f->body || strcmp(f->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, f->body ? f->body : "");
        if (strcmp(f->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, f->method);
    } else if (strcmp(f->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, f->method);
    }
}

static int add(fetch_t *f)
{
    struct fetch_state *st = f->st;
    fetch_engine_t *e = st->e;
    long elapsed = (long)((clock_mono_ns() - st->started_ns) / 1000000);
    long left = f->timeout_ms - elapsed;
    if (left <= 0) {
        snprintf(f->error, sizeof f->error, "timed out after %ld ms", f->timeout_ms);
        return -1;
    }
    curl_easy_setopt(st->h, CURLOPT_URL, f->url);
    curl_easy_setopt(st->h, CURLOPT_TIMEOUT_MS, left);
    curl_easy_setopt(st->h, CURLOPT_CONNECTTIMEOUT_MS,
                     left < CONNECT_TIMEOUT_MS ? left : CONNECT_TIMEOUT_MS);
    build_headers(f);
    set_method(f);
    st->errbuf[0] = '\0';
    st->refused[0] = '\0';
    st->too_big = false;
    reset_response(f);
    if (curl_multi_add_handle(e->multi, st->h) != CURLM_OK) {
        snprintf(f->error, sizeof f->error, "cannot start the request");
        return -1;
    }
    st->running = true;
    e->active++;
    return 0;
}

/* A request refused before it started: logged like one refused later. */
static int refused(fetch_t *f)
{
    log_notice("egress: tool %s %s %s failed: %s (0.0 ms)", f->tool ? f->tool : "?", f->method,
               f->st && f->st->host[0] ? f->st->host : "?", f->error);
    return -1;
}

int fetch_start(fetch_engine_t *e, fetch_t *f, fetch_done_fn done, void *arg)
{
    f->done = done;
    f->arg = arg;
    f->status = 0;
    f->error[0] = '\0';
    struct fetch_state *st = f->st = calloc(1, sizeof *st);
    if (!st || !(st->h = curl_easy_init())) {
        snprintf(f->error, sizeof f->error, "out of memory");
        return -1;
    }
    st->e = e;
    st->started_ns = clock_mono_ns();
    if (!f->url || check_url(f, f->url) != 0) {
        if (!f->error[0])
            snprintf(f->error, sizeof f->error, "invalid URL");
        return refused(f);
    }
    if (e->active >= e->cfg->max_inflight) {
        snprintf(f->error, sizeof f->error, "too many backend requests in flight on this "
                 "worker (egress.max_inflight = %u)", e->cfg->max_inflight);
        return refused(f);
    }
    CURL *h = st->h;
    const config_egress_t *cfg = e->cfg;
    curl_easy_setopt(h, CURLOPT_PRIVATE, f);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, cfg->allow_http ? "http,https" : "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* followed here, each hop checked */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* no proxy from the environment: it would hide
                                               the address from the egress check */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cfg->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
    if (e->resolve)
        curl_easy_setopt(h, CURLOPT_RESOLVE, e->resolve);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, f);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, st->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "luamcp/" LUAMCP_VERSION);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* max_bytes bounds the decoded body */
    return add(f) == 0 ? 0 : refused(f);
}

/* ---- completion ----------------------------------------------------------------------------- */

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* Follows f's redirect: 0 when a new hop started, -1 when refused (f->error says why). */
static int follow(fetch_t *f)
{
    struct fetch_state *st = f->st;
    if (st->redirects >= st->e->cfg->max_redirects) {
        snprintf(f->error, sizeof f->error, "too many redirects (egress.max_redirects = %u)",
                 st->e->cfg->max_redirects);
        return -1;
    }
    CURLU *u = curl_url();
    char *next = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, f->url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, st->location, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &next, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        snprintf(f->error, sizeof f->error, "redirect to an invalid URL");
        return -1;
    }
    curl_url_cleanup(u);
    char before[sizeof st->origin];
    snprintf(before, sizeof before, "%s", st->origin);
    if (check_url(f, next) != 0) {
        char why[sizeof f->error];
        snprintf(why, sizeof why, "%s", f->error);
        snprintf(f->error, sizeof f->error, "redirect refused: %.230s", why);
        curl_free(next);
        return -1;
    }
    free(f->url);
    f->url = strdup(next);
    curl_free(next);
    bool keeps_body = f->body && (f->status == 307 || f->status == 308);
    if (strcasecmp(before, st->origin) != 0 && keeps_body) {
        /* a body (a form with a client secret, say) goes only where it was sent */
        snprintf(f->error, sizeof f->error, "redirect refused: a %ld would re-send the body to "
                 "another origin", f->status);
        return -1;
    }
    if (strcasecmp(before, st->origin) != 0) {
        /* another origin (host, port or scheme: https -> http would expose it): what
         * authenticated us to the first one stays behind */
        for (size_t i = 0; i < f->n_headers; i++) {
            const char *hd = f->headers[i];
            if (hd && (f->credential[i] || strncasecmp(hd, "authorization:", 14) == 0 ||
                       strncasecmp(hd, "cookie:", 7) == 0)) {
                free(f->headers[i]);
                f->headers[i] = NULL;
            }
        }
    }
    if (f->status == 303 || ((f->status == 301 || f->status == 302) &&
                             strcmp(f->method, "POST") == 0)) {
        snprintf(f->method, sizeof f->method, "GET");
        free(f->body);
        f->body = NULL;
        f->body_len = 0;
    }
    st->redirects++;
    return add(f);
}

static void describe_failure(fetch_t *f, CURLcode code)
{
    struct fetch_state *st = f->st;
    if (st->refused[0])
        snprintf(f->error, sizeof f->error, "%s", st->refused);
    else if (st->too_big)
        snprintf(f->error, sizeof f->error, "response larger than max_bytes (%zu)",
                 f->max_bytes);
    else if (code == CURLE_OPERATION_TIMEDOUT)
        snprintf(f->error, sizeof f->error, "timed out after %ld ms", f->timeout_ms);
    else
        snprintf(f->error, sizeof f->error, "%s", st->errbuf[0] ? st->errbuf
                                                                 : curl_easy_strerror(code));
    secret_redact(f->error);
}

static void finish(fetch_t *f, CURLcode code)
{
    struct fetch_state *st = f->st;
    long status = 0;
    curl_easy_getinfo(st->h, CURLINFO_RESPONSE_CODE, &status);
    f->status = code == CURLE_OK ? status : 0;
    if (code == CURLE_OK && is_redirect(status) && st->location && f->no_redirect) {
        snprintf(f->error, sizeof f->error, "redirected (%ld), which this request does not "
                 "follow", status);
        f->status = 0;
    } else if (code == CURLE_OK && is_redirect(status) && st->location) {
        if (follow(f) == 0)
            return;
        f->status = 0;
    } else if (code != CURLE_OK) {
        describe_failure(f, code);
    }
    f->elapsed_ms = (double)(clock_mono_ns() - st->started_ns) / 1e6;
    if (f->status)
        log_info("egress: tool %s %s %s -> %ld (%zu bytes, %.1f ms)", f->tool ? f->tool : "?",
                 f->method, st->host, f->status, f->resp_len, f->elapsed_ms);
    else
        log_notice("egress: tool %s %s %s failed: %s (%.1f ms)", f->tool ? f->tool : "?",
                   f->method, st->host, f->error, f->elapsed_ms);
    f->done(f, f->arg);
}

static void process_done(fetch_engine_t *e)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *h = m->easy_handle;
        CURLcode code = m->data.result; /* copied before the handle goes */
        fetch_t *f = NULL;
        curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&f);
        detach(f);
        finish(f, code);
    }
}

void fetch_engine_socket(fetch_engine_t *e, int fd, uint32_t events)
{
    int mask = (events & EPOLLIN ? CURL_CSELECT_IN : 0) | (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
               (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    int running;
    curl_multi_socket_action(e->multi, fd, mask, &running);
    process_done(e);
}

int fetch_engine_wait_ms(const fetch_engine_t *e, long long now)
{
    long long due = e->deadline_ms;
    if (e->timers && (due < 0 || e->timers->due_ms < due))
        due = e->timers->due_ms;
    if (due < 0)
        return -1;
    return due <= now ? 0 : (int)(due - now);
}

void fetch_timer_arm(fetch_engine_t *e, fetch_timer_t *t, long ms)
{
    fetch_timer_disarm(t);
    t->due_ms = clock_mono_ms() + (ms > 0 ? ms : 0);
    t->e = e;
    fetch_timer_t **pp = &e->timers;
    while (*pp && (*pp)->due_ms <= t->due_ms)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
}

void fetch_timer_disarm(fetch_timer_t *t)
{
    if (!t->e)
        return;
    for (fetch_timer_t **pp = &t->e->timers; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    t->e = NULL;
    t->next = NULL;
}

void fetch_engine_timeout(fetch_engine_t *e, long long now)
{
    while (e->timers && e->timers->due_ms <= now) { /* fire may arm or disarm others */
        fetch_timer_t *t = e->timers;
        e->timers = t->next;
        t->e = NULL;
        t->next = NULL;
        t->fire(t->arg);
    }
    if (e->deadline_ms < 0 || now < e->deadline_ms)
        return;
    e->deadline_ms = -1;
    int running;
    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    process_done(e);
}

void fetch_engine_run(fetch_engine_t *e)
{
    while (e->active) {
        int running = 0;
        curl_multi_perform(e->multi, &running);
        process_done(e); /* may start redirects */
        if (e->active)
            curl_multi_poll(e->multi, NULL, 0, 100, NULL);
    }
}
