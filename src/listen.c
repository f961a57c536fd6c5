/* listen — subscriptions/listen (2026-07-28): a POST whose answer is a long-lived event
 * stream of the notifications the client opted in to, each tagged with the subscription's
 * id (the request's). The acknowledgment comes first; the closing result (an empty result
 * for the request) comes last, when the server ends the subscription (shutdown, the caller's
 * token expiring). This era has no resumability: its events carry no ids.
 *
 * The streams are listed in srv->listeners under srv->listen_mu, which holds a reference to
 * each; lock order: listen_mu, then a stream's own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/log.h"
#include "server_int.h"

#define META_SUBSCRIPTION "io.modelcontextprotocol/subscriptionId"
#define PROBE ": are you there\n\n" /* an SSE comment: clients ignore it */

/* "event: message\ndata: MSG\n\n" onto s (takes msg). */
static void append_event(stream_t *s, json_t *msg)
{
    char *js = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    size_t n = js ? strlen(js) + 32 : 0;
    char *ev = js ? malloc(n) : NULL;
    if (ev) {
        int len = snprintf(ev, n, "event: message\ndata: %s\n\n", js);
        sse_stream_append(s, ev, (size_t)len);
    }
    free(ev);
    free(js);
}

/* The request's id, as it came (a string or an integer). */
static json_t *subscription_id(const stream_t *s)
{
    json_t *id = json_loads(s->listen_id, JSON_DECODE_ANY, NULL);
    return id ? id : json_null();
}

/* A notification onto s, its params' _meta naming the subscription (takes msg). */
static void send_tagged(stream_t *s, json_t *msg)
{
    json_t *params = json_object_get(msg, "params");
    if (!params) {
        params = json_object();
        json_object_set_new(msg, "params", params);
    }
    json_t *meta = json_object_get(params, "_meta");
    if (!meta) {
        meta = json_object();
        json_object_set_new(params, "_meta", meta);
    }
    json_object_set_new(meta, META_SUBSCRIPTION, subscription_id(s));
    append_event(s, msg);
}

static json_t *note(const char *method)
{
    return json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
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
    char *id_json = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *uris = json_object_get(granted, "resourceSubscriptions");
    char **copies = calloc(json_array_size(uris) + 1, sizeof *copies);
    if (!s || !id_json || !copies)
        goto fail;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        if (json_is_true(json_object_get(granted, lists[i].field)))
            s->listen |= lists[i].bit;
    for (size_t i = 0; i < json_array_size(uris); i++)
        if (!(copies[i] = strdup(json_string_value(json_array_get(uris, i)))))
            goto fail;
    if (json_array_size(uris))
        s->listen |= LISTEN_UPDATES;
    s->listen_id = id_json;
    s->listen_uris = copies;
    s->n_listen_uris = json_array_size(uris);
    s->max = 1u << 20; /* notifications only: a client that stopped reading is let go */

    json_t *ack = note("notifications/subscriptions/acknowledged");
    json_object_set_new(ack, "params", json_pack("{s:O}", "notifications", granted));
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
        json_decref(ack);
        *per_caller = mine >= LISTEN_PER_CALLER;
        if (!*per_caller)
            log_warn("listen: %d subscription streams are open; refusing another", LISTEN_MAX);
        sse_stream_release(s); /* frees what it took over */
        return NULL;
    }
    s->listening = true;
    send_tagged(s, ack); /* first, before anything can be broadcast to it */
    sse_stream_ref(s);   /* the list's */
    s->listen_next = srv->listeners;
    srv->listeners = s;
    srv->n_listeners++;
    pthread_mutex_unlock(&srv->listen_mu);
    return s;
fail:
    if (copies)
        for (size_t i = 0; copies[i]; i++)
            free(copies[i]);
    free(copies);
    free(id_json);
    if (s)
        sse_stream_release(s);
    return NULL;
}

void listen_drop(server_t *srv, stream_t *s)
{
    if (!s->listening)
        return;
    bool found = false;
    pthread_mutex_lock(&srv->listen_mu);
    for (stream_t **pp = &srv->listeners; *pp; pp = &(*pp)->listen_next)
        if (*pp == s) {
            *pp = s->listen_next;
            srv->n_listeners--;
            found = true;
            break;
        }
    pthread_mutex_unlock(&srv->listen_mu);
    if (found)
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
        json_t *id = subscription_id(s);
        append_event(s,
                     json_pack("{s:s, s:o, s:{s:{s:O}, s:s}}", "jsonrpc", "2.0", "id", id, "result",
                               "_meta", META_SUBSCRIPTION, id, "resultType", "complete"));
    }
    pthread_mutex_unlock(&srv->listen_mu);
    sse_stream_close(s); /* after what it holds */
}

/* "event: message\ndata: {…,\"params\":{PARAMS\"_meta\":{\"…subscriptionId\":ID}}}\n\n" onto s:
 * the notification rendered as text around the stream's id (already JSON), so a broadcast to
 * many streams builds no JSON values while it holds listen_mu. */
static void send_rendered(stream_t *s, const char *method, const char *params)
{
    size_t n = strlen(method) + strlen(params) + strlen(s->listen_id) + 160;
    char *ev = malloc(n);
    if (!ev)
        return;
    int len = snprintf(ev, n,
                       "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":{%s"
                       "\"_meta\":{\"" META_SUBSCRIPTION "\":%s}}}\n\n",
                       method, params, s->listen_id);
    if (len > 0 && (size_t)len < n)
        sse_stream_append(s, ev, (size_t)len);
    free(ev);
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
            send_rendered(s, methods[kind], "");
    pthread_mutex_unlock(&srv->listen_mu);
}

void listen_resource_updated(server_t *srv, const char *uri)
{
    json_t *u = json_string(uri);
    char *quoted = u ? json_dumps(u, JSON_ENCODE_ANY) : NULL;
    json_decref(u);
    size_t n = quoted ? strlen(quoted) + 16 : 0;
    char *params = quoted ? malloc(n) : NULL;
    if (params)
        snprintf(params, n, "\"uri\":%s,", quoted);
    free(quoted);
    if (!params)
        return;
    pthread_mutex_lock(&srv->listen_mu);
    for (stream_t *s = srv->listeners; s; s = s->listen_next) {
        if (!(s->listen & LISTEN_UPDATES) || s->listen_ended)
            continue;
        for (size_t i = 0; i < s->n_listen_uris; i++)
            if (strcmp(s->listen_uris[i], uri) == 0) {
                send_rendered(s, "notifications/resources/updated", params);
                break;
            }
    }
    pthread_mutex_unlock(&srv->listen_mu);
    free(params);
}
