/* fetch — outbound HTTP for tools, on libcurl's multi interface.
 *
 * A worker owns one engine whose sockets sit in the worker's epoll set (tagged, so the loop
 * can tell them apart): transfers run while the worker serves other requests, and each one's
 * completion callback runs on the worker thread. Without an epoll set (mcp.so under busted),
 * fetch_engine_run drives the transfers to the end instead.
 *
 * Every transfer is checked by egress.h twice: its URL (and every redirect's) by name before
 * it starts, and the address curl is about to connect to, so DNS cannot route around the
 * allowlist. Redirects are followed here, not by curl, so each hop is checked and a
 * credential never follows a redirect to another host. */
#ifndef LUAMCP_FETCH_H
#define LUAMCP_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "luamcp/config.h"

#define FETCH_MAX_HEADERS 64         /* request headers a script may set */
#define FETCH_MAX_RESP_HEADERS 100   /* response headers kept (more are dropped) */
#define FETCH_MAX_BODY (8u << 20)    /* request body */

typedef struct fetch_engine fetch_engine_t;
typedef struct fetch fetch_t;
typedef void (*fetch_done_fn)(fetch_t *f, void *arg);

struct fetch {
    /* the request: filled by the caller, owned by the fetch (fetch_free frees them) */
    char method[16];
    char *url;
    char *headers[FETCH_MAX_HEADERS]; /* "Name: value" */
    bool credential[FETCH_MAX_HEADERS]; /* carries a caller's credential: never logged, never
                                           sent after a redirect to another host */
    size_t n_headers;
    char *body;
    size_t body_len;
    long timeout_ms;
    size_t max_bytes;
    char *const *tool_allow;         /* borrowed: the tool's own egress list */
    size_t n_tool_allow;
    const char *tool;                /* borrowed: for the log */
    bool no_redirect;                /* a redirect is an error (the body holds a token) */

    /* the outcome, once done is called: status 0 = failed, and error says why */
    long status;
    char *resp;
    size_t resp_len;
    char *resp_headers[FETCH_MAX_RESP_HEADERS]; /* "name\0value", names in lower case */
    size_t n_resp_headers;
    char error[256];
    double elapsed_ms;

    fetch_done_fn done;
    void *arg;
    struct fetch_state *st;          /* the engine's */
};

/* epfd < 0: a synchronous engine for fetch_engine_run. tag is or-ed into the epoll data of
 * every socket this engine adds (data.u64 = tag | fd). cfg is borrowed. */
fetch_engine_t *fetch_engine_new(const config_egress_t *cfg, bool dev, int epfd, uint64_t tag);
/* Cancels what is still running (no callbacks) and frees the engine. */
void fetch_engine_free(fetch_engine_t *e);

/* The worker's loop: a tagged socket is ready (epoll events). */
void fetch_engine_socket(fetch_engine_t *e, int fd, uint32_t events);
/* Milliseconds until the engine needs fetch_engine_timeout (-1: nothing due). */
int fetch_engine_wait_ms(const fetch_engine_t *e, long long now_ms);
void fetch_engine_timeout(fetch_engine_t *e, long long now_ms);
/* Synchronous engines: runs every started transfer to its end. */
void fetch_engine_run(fetch_engine_t *e);
unsigned fetch_engine_active(const fetch_engine_t *e);

fetch_t *fetch_new(void);
void fetch_free(fetch_t *f);
/* Appends a request header; -1 when there are too many or it has CR/LF. */
int fetch_add_header(fetch_t *f, const char *name, const char *value, bool credential);

/* Starts f; done(f, arg) is called once, from the engine (never from inside this call).
 * -1 when refused at once (egress, limits, bad URL): f->error says why, done is not called. */
int fetch_start(fetch_engine_t *e, fetch_t *f, fetch_done_fn done, void *arg);
/* Stops f without calling done; f stays the caller's. */
void fetch_cancel(fetch_t *f);

/* A timer of the engine (mcp.sleep): fire(arg) is called once, from the engine's timeout
 * handling, at or after due_ms (now_ms clock). Owned by the caller; armed in one list. */
typedef struct fetch_timer {
    long long due_ms;
    void (*fire)(void *arg);
    void *arg;
    struct fetch_engine *e;      /* set while armed */
    struct fetch_timer *next;
} fetch_timer_t;

/* Arms t to fire after ms (an asynchronous engine; a synchronous one has no loop to fire it). */
void fetch_timer_arm(fetch_engine_t *e, fetch_timer_t *t, long ms);
/* Disarms t if armed (fire is not called). */
void fetch_timer_disarm(fetch_timer_t *t);

#endif
