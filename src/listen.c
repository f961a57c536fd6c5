/* listen — subscriptions/listen (2026-07-28): a POST whose answer is a long-lived event
 * stream of the notifications the client opted in to, each tagged with the subscription's
 * id (the request's). The acknowledgment comes first; the closing result (an empty result
 * for the request) comes last, when the server ends the subscription (shutdown, the caller's
 * token expiring). This era has no resumability: its events carry no ids.
 *
 * The streams are listed in srv->listeners under srv->listen_mu, which holds a reference to
 * each; lock order: listen_mu, then a stream's own. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/jsonio.h"
#include "luamcp/log.h"
#include "server_int.h"

#define META_SUBSCRIPTION "io.modelcontextprotocol/subscriptionId"
#define PROBE             ": are you there\n\n" /* an SSE comment: clients ignore it */

/* One SSE event onto s, printed from fmt: every message of a listen stream is rendered as
 * text around the stream's id (already JSON), so a broadcast to many streams builds no JSON
 * values while it holds listen_mu. EVENT wraps a JSON text's format in the event's lines. */
static void send_event(stream_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_event(stream_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *ev = NULL;
    int len = vasprintf(&ev, fmt, ap);
    va_end(ap);
    if (len > 0)
        sse_stream_append(s, ev, (size_t)len);
    if (len >= 0)
        free(ev);
}
#define EVENT(json) "event: message\ndata: " json "\n\n"

/* A notification onto s: params is the text of its fields before _meta ("" or "k":v,). */
static void send_note(stream_t *s, const char *method, const char *params)
{
    send_event(
        s,
        EVENT("{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":{%s\"_meta\":{\"" META_SUBSCRIPTION
              "\":%s}}}"),
        method, params, s->listen_id);
}

/* Copies of the strings of arr (a JSON array, or NULL for none) into *out and *n; false when
 * out of memory (what was copied is in *out and *n, for the stream's cleanup). */
static bool copy_strings(json_t *arr, char ***out, size_t *n)
{
    size_t len = json_array_size(arr);
    *n = 0;
    if (!len)
        return true;
    if (!(*out = calloc(len, sizeof **out)))
        return false;
    for (; *n < len; ++*n)
        if (!((*out)[*n] = strdup(json_string_value(json_array_get(arr, *n)))))
            return false;
    return true;
}

stream_t *listen_open(worker_t *w, struct MHD_Connection *conn, json_t *id, json_t *granted,
                      const unsigned char owner[SESSION_OWNER_LEN], bool *per_caller)
{
    *per_caller = false;
    server_t *srv = w->srv;
    static const struct {
        const char *field;
        unsigned bit;
    } lists[] = {{"toolsListChanged", LISTEN_TOOLS},
                 {"promptsListChanged", LISTEN_PROMPTS},
                 {"resourcesListChanged", LISTEN_RESOURCES}};
    stream_t *s = sse_stream_new(w, conn, NULL);
    json_t *uris = json_object_get(granted, "resourceSubscriptions");
    json_t *tasks = json_object_get(granted, "taskIds");
    if (!s)
        return NULL;
    /* what the stream takes is freed with it (sse.c), on every path from here */
    s->listen_id = jsonio_dump(id, NULL);
    if (!s->listen_id || !copy_strings(uris, &s->listen_uris, &s->n_listen_uris) ||
        !copy_strings(tasks, &s->listen_tasks, &s->n_listen_tasks))
        goto fail;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        if (json_is_true(json_object_get(granted, lists[i].field)))
            s->listen |= lists[i].bit;
    s->listen |= (s->n_listen_uris ? LISTEN_UPDATES : 0) | (s->n_listen_tasks ? LISTEN_TASKS : 0);
    s->max = 1u << 20; /* notifications only: a client that stopped reading is let go */

    char *honored = jsonio_dump(granted, NULL);
    if (!honored)
        goto fail;
    memcpy(s->listen_owner, owner, SESSION_OWNER_LEN);
    pthread_mutex_lock(&srv->listen_mu);
    unsigned mine = 0;
    for (stream_t *o = srv->listeners; o && mine < LISTEN_PER_CALLER; o = o->listen_next)
        mine += memcmp(o->listen_owner, owner, SESSION_OWNER_LEN) == 0;
    if (srv->n_listeners >= LISTEN_MAX || mine >= LISTEN_PER_CALLER) {
        /* some may be dead (a client gone while its stream was idle is noticed at the next
         * write): write to this caller's now, so the next try finds their slots free */
        for (stream_t *o = srv->listeners; o && mine >= LISTEN_PER_CALLER; o = o->listen_next)
            if (memcmp(o->listen_owner, owner, SESSION_OWNER_LEN) == 0)
                sse_stream_append(o, PROBE, sizeof PROBE - 1);
        pthread_mutex_unlock(&srv->listen_mu);
        free(honored);
        *per_caller = mine >= LISTEN_PER_CALLER;
        if (!*per_caller)
            log_warn("listen: %d subscription streams are open; refusing another", LISTEN_MAX);
        sse_stream_release(s); /* frees what it took over */
        return NULL;
    }
    s->listening = true;
    send_event(s,
               EVENT("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\","
                     "\"params\":{\"notifications\":%s,\"_meta\":{\"" META_SUBSCRIPTION "\":%s}}}"),
               honored, s->listen_id); /* first, before anything can be broadcast to it */
    free(honored);
    sse_stream_ref(s); /* the list's */
    s->listen_prev = NULL;
    s->listen_next = srv->listeners;
    if (srv->listeners)
        srv->listeners->listen_prev = s;
    srv->listeners = s;
    srv->n_listeners++;
    if (s->listen & LISTEN_TASKS)
        atomic_fetch_add(&srv->task_listeners, 1);
    pthread_mutex_unlock(&srv->listen_mu);
    return s;
fail:
    sse_stream_release(s);
    return NULL;
}

void listen_drop(server_t *srv, stream_t *s)
{
    if (!s->listening)
        return;
    pthread_mutex_lock(&srv->listen_mu);
    bool listed = s->listen_prev || srv->listeners == s;
    if (listed) {
        if (s->listen_prev)
            s->listen_prev->listen_next = s->listen_next;
        else
            srv->listeners = s->listen_next;
        if (s->listen_next)
            s->listen_next->listen_prev = s->listen_prev;
        s->listen_prev = s->listen_next = NULL;
        srv->n_listeners--;
        if (s->listen & LISTEN_TASKS)
            atomic_fetch_sub(&srv->task_listeners, 1);
    }
    pthread_mutex_unlock(&srv->listen_mu);
    if (listed)
        sse_stream_release(s); /* the list's */
}

void listen_end(server_t *srv, stream_t *s)
{
    pthread_mutex_lock(&srv->listen_mu);
    if (s->listen_ended) { /* ended before: nothing more to write, nor a wake to cause */
        pthread_mutex_unlock(&srv->listen_mu);
        return;
    }
    if (s->listening) {
        s->listen_ended = true;
        /* the request's result: empty, with the subscription id like every message here */
        send_event(
            s,
            EVENT("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"_meta\":{\"" META_SUBSCRIPTION
                  "\":%s},\"resultType\":\"complete\"}}"),
            s->listen_id, s->listen_id);
    }
    pthread_mutex_unlock(&srv->listen_mu);
    sse_stream_close(s); /* after what it holds */
}

void listen_list_changed(server_t *srv, int kind)
{
    static const char *const methods[3] = {"notifications/tools/list_changed",
                                           "notifications/prompts/list_changed",
                                           "notifications/resources/list_changed"};
    static const unsigned bits[3] = {LISTEN_TOOLS, LISTEN_PROMPTS, LISTEN_RESOURCES};
    if (kind < 0 || kind > 2)
        return;
    char legacy[96];
    snprintf(legacy, sizeof legacy, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\"}", methods[kind]);
    http_broadcast(srv, legacy);
    pthread_mutex_lock(&srv->listen_mu);
    for (stream_t *s = srv->listeners; s; s = s->listen_next)
        if ((s->listen & bits[kind]) && !s->listen_ended)
            send_note(s, methods[kind], "");
    pthread_mutex_unlock(&srv->listen_mu);
}

/* A notification to the streams that listen (bit) for key: a resource's URI (LISTEN_UPDATES)
 * or a task's id (LISTEN_TASKS, and only owner's streams). */
static void note_keyed(server_t *srv, unsigned bit, const char *key, const unsigned char *owner,
                       const char *method, const char *params)
{
    pthread_mutex_lock(&srv->listen_mu);
    for (stream_t *s = srv->listeners; s; s = s->listen_next) {
        if (!(s->listen & bit) || s->listen_ended ||
            (owner && memcmp(s->listen_owner, owner, SESSION_OWNER_LEN) != 0))
            continue;
        char **keys = bit == LISTEN_TASKS ? s->listen_tasks : s->listen_uris;
        size_t n = bit == LISTEN_TASKS ? s->n_listen_tasks : s->n_listen_uris;
        for (size_t i = 0; i < n; i++)
            if (strcmp(keys[i], key) == 0) {
                send_note(s, method, params);
                break;
            }
    }
    pthread_mutex_unlock(&srv->listen_mu);
}

void listen_resource_updated(server_t *srv, const char *uri)
{
    json_t *u = json_string(uri);
    char *quoted = u ? jsonio_dump(u, NULL) : NULL;
    json_decref(u);
    size_t n = quoted ? strlen(quoted) + 16 : 0;
    char *params = quoted ? malloc(n) : NULL;
    if (params)
        snprintf(params, n, "\"uri\":%s,", quoted);
    free(quoted);
    if (!params)
        return;
    note_keyed(srv, LISTEN_UPDATES, uri, NULL, "notifications/resources/updated", params);
    free(params);
}

/* A notification larger than this leaves out the task's result, error or input requests:
 * tasks/get has them (a stream holds at most 1 MiB unread, and this text goes to each). */
#define TASK_NOTE_MAX (64u << 10)

void listen_task_changed(server_t *srv, const char *id, const unsigned char *owner,
                         json_t *detail)
{
    size_t n = 0;
    char *text = jsonio_dump(detail, &n);
    if (text && n > TASK_NOTE_MAX) {
        free(text);
        json_t *slim = json_copy(detail); /* shallow: only top-level fields are dropped */
        json_object_del(slim, "result");
        json_object_del(slim, "error");
        json_object_del(slim, "inputRequests");
        n = 0;
        text = slim ? jsonio_dump(slim, &n) : NULL;
        json_decref(slim);
    }
    if (n < 3 || text[0] != '{' || text[n - 1] != '}') {
        free(text);
        return;
    }
    text[n - 1] = ','; /* the DetailedTask's fields, then _meta: "k":v,...,"k":v, */
    note_keyed(srv, LISTEN_TASKS, id, owner, "notifications/tasks", text + 1);
    free(text);
}
