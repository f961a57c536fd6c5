/* What one HTTP request gets: routing, the Streamable HTTP rules (Host/Origin, methods,
 * media types, protocol version, sessions), JSON or SSE answers, and GET streams.
 *
 * libmicrohttpd calls the handler several times per request. The first call only sets up
 * (a response queued then would go out with "Connection: close"); later calls carry the
 * body; the last one, with no data, answers. */
#include <jansson.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "luamcp/api.h"
#include "luamcp/avail.h"
#include "luamcp/clock.h"
#include "luamcp/hdr.h"
#include "luamcp/jsonio.h"
#include "luamcp/log.h"
#include "luamcp/reload.h"
#include "luamcp/rpc.h"
#include "luamcp/version.h"
#include "server_int.h"

#define ACCEPT_JSON HDR_ACCEPT_JSON
#define ACCEPT_SSE HDR_ACCEPT_SSE
#define KEEPALIVE_MS 15000
#define STREAM_MAX_BUFFER (4u << 20) /* a GET stream whose client stopped reading is closed */

/* A refusal decided before the body arrived, answered once it has been read (libmicrohttpd
 * accepts a response only before the upload starts or after it ends). Strings are static. */
typedef struct refusal {
    unsigned status;
    int code;
    const char *message;
    const char *h1, *v1;
} refusal_t;

/* The headers a request is judged by, read in one pass over libmicrohttpd's list when it
 * arrives: each lookup was a scan of that list with a caseless compare, and a POST made a
 * dozen. The values are libmicrohttpd's (valid until the request completes); of a repeated
 * header, the first, as MHD_lookup_connection_value gives. */
typedef struct {
    const char *host, *origin, *authorization, *content_type, *accept, *content_length,
        *version, *session, *last_event_id, *mcp_method, *mcp_name;
    int n_authorization;
} headers_t;

struct req {
    worker_t *w;
    struct MHD_Connection *conn;
    bool answered;
    bool auth_waiting;    /* parked until the issuer's keys are refetched */
    req_t *next_waiter;   /* w->auth_waiters or w->tool_waiters */
    rpc_pending_t *pending; /* a tools/call waiting for backends (connection suspended) */
    json_t *async_resp;   /* its response, once done: answered on the next handler call */
    json_t *async_notes;
    int accept;
    unsigned long long gen;  /* unique per request on its worker */
    bool suspended;       /* parked by us while its call waits (not by a stream) */
    chan_t *chan;         /* the POST's SSE answer, once the call had to talk mid-flight */
    json_t *outbox;       /* messages for that stream before it exists */
    char sid[SESSION_ID_LEN + 1]; /* its session, "" when none */
    bool detach;          /* ctx.close_stream: end the connection, keep the channel */
    bool orphan;          /* its connection is gone; its call goes on for a resume */
    bool modern;          /* a 2026-07-28 request (stateless era) */
    char method[48];      /* its method, for the 2026-07-28 result fields */
    char ask_id[48];      /* the request to the client it waits for, or "" */
    char call_key[48];    /* its own entry in the table, for notifications/cancelled */
    auth_caller_t *caller;
    char *challenge;      /* WWW-Authenticate of a refusal */
    char *bearer;         /* the verified token, when its header had whitespace after it */
    refusal_t refused;   /* status 0 when none */
    size_t discarded;    /* body bytes dropped after a refusal */
    char *body;
    size_t len, cap;
    headers_t h;          /* read once, when the request arrives */
};

static void emit_all(req_t *r, json_t *msgs);
static void service_asks(worker_t *w);

/* ---- answers ------------------------------------------------------------------------------ */

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, char *body,
                             size_t len, const char *ctype, const char *h1, const char *v1)
{
    struct MHD_Response *resp =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (h1)
        MHD_add_response_header(resp, h1, v1);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result queue_json(struct MHD_Connection *conn, unsigned status, json_t *v,
                                  const char *h1, const char *v1)
{
    size_t len;
    char *s = jsonio_dump(v, &len);
    json_decref(v);
    if (!s)
        return MHD_NO;
    return queue(conn, status, s, len, "application/json", h1, v1);
}

static enum MHD_Result fail(req_t *r, struct MHD_Connection *conn, unsigned status, int code,
                            const char *msg, const char *h1, const char *v1)
{
    r->answered = true;
    return queue_json(conn, status, rpc_error(NULL, code, msg), h1, v1);
}

/* "event: message\ndata: JSON\n\n" for each notification, then the response. */
static char *sse_body(json_t *notes, json_t *resp, size_t *len)
{
    size_t cap = 256, n = 0;
    char *out = malloc(cap);
    size_t count = json_array_size(notes);
    for (size_t i = 0; out && i <= count; i++) {
        size_t jlen;
        char *js = jsonio_dump(i < count ? json_array_get(notes, i) : resp, &jlen);
        if (!js) {
            free(out);
            return NULL;
        }
        size_t need = jlen + 32;
        if (n + need > cap) {
            while (n + need > cap)
                cap *= 2;
            char *grown = realloc(out, cap);
            if (!grown) {
                free(js);
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + n, "event: message\ndata: ", 21);
        memcpy(out + n + 21, js, jlen);
        memcpy(out + n + 21 + jlen, "\n\n", 3);
        n += 21 + jlen + 2;
        free(js);
    }
    *len = n;
    return out;
}

/* ---- request checks ------------------------------------------------------------------------ */

static const char *header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result note_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_len, const char *value, size_t value_len)
{
    (void)kind;
    (void)value_len;
    static const struct {
        const char *name;
        size_t len, at;
    } known[] = {
#define KNOWN(name, field) {name, sizeof name - 1, offsetof(headers_t, field)}
        KNOWN(MHD_HTTP_HEADER_HOST, host),
        KNOWN(MHD_HTTP_HEADER_ORIGIN, origin),
        KNOWN(MHD_HTTP_HEADER_AUTHORIZATION, authorization),
        KNOWN(MHD_HTTP_HEADER_CONTENT_TYPE, content_type),
        KNOWN(MHD_HTTP_HEADER_ACCEPT, accept),
        KNOWN(MHD_HTTP_HEADER_CONTENT_LENGTH, content_length),
        KNOWN("MCP-Protocol-Version", version),
        KNOWN("Mcp-Session-Id", session),
        KNOWN("Last-Event-ID", last_event_id),
        KNOWN("Mcp-Method", mcp_method),
        KNOWN("Mcp-Name", mcp_name),
#undef KNOWN
    };
    headers_t *h = cls;
    for (size_t i = 0; key && i < sizeof known / sizeof known[0]; i++)
        if (key_len == known[i].len && strncasecmp(key, known[i].name, key_len) == 0) {
            const char **slot = (const char **)((char *)h + known[i].at);
            if (!*slot)
                *slot = value ? value : "";
            if (slot == &h->authorization)
                h->n_authorization++;
            break;
        }
    return MHD_YES;
}

static void read_headers(struct MHD_Connection *conn, headers_t *h)
{
    *h = (headers_t){0};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, note_header, h);
}

/* The value of one of MCP's own headers (v) without the whitespace around it (RFC 9110 section
 * 5.5): the value itself when nothing trails it, else a copy in buf. A value too long for buf
 * is cut when `cut` (a protocol version: cut, it still names no supported one), and is NULL
 * otherwise (a name or method must be compared whole, never by a prefix). */
static const char *mcp_header(const char *v, char *buf, size_t n, bool cut)
{
    if (!v)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t len = strlen(v);
    if (!len || (v[len - 1] != ' ' && v[len - 1] != '\t'))
        return v;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len >= n && !cut)
        return NULL;
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), v);
    return buf;
}

#define MCP_HEADER(value, buf) mcp_header((value), (buf), sizeof(buf), false)
#define MCP_VERSION(r, buf) mcp_header((r)->h.version, (buf), sizeof(buf), true)

/* NULL when the MCP-Protocol-Version header is absent or supported; else a message. */
static const char *version_problem(const char *v, char *buf, size_t n)
{
    if (!v || rpc_version_supported(v))
        return NULL;
    snprintf(buf, n, "Unsupported protocol version: %.40s (supported: 2025-11-25, 2025-06-18, "
             "2025-03-26)", v);
    return buf;
}

/* ---- GET streams --------------------------------------------------------------------------- */

/* When the request's token stops being accepted (its expiry, plus the leeway auth grants),
 * on the now_ms clock; 0 without one. */
static long long expiry_of(const req_t *r)
{
    const auth_caller_t *c = r->caller;
    if (!c || c->expires_at <= 0)
        return 0;
    long long left = c->expires_at + r->w->srv->cfg->auth.leeway_s - (long long)time(NULL);
    return now_ms() + (left > 0 ? left * 1000 : 0) + 1;
}

/* The response of a stream is gone (connection closed or finished): worker thread. */
static void stream_done(void *cls)
{
    stream_t *s = cls;
    worker_t *w = s->w;
    for (stream_t **pp = &w->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    if (s->session[0] && session_detach(w->srv->sessions, s->session, s))
        sse_stream_release(s); /* the session's reference */
    if (s->chan)
        sse_chan_lost_writer(s->chan, s);
    listen_drop(w->srv, s);
    sse_stream_release(s); /* the response's */
}

void http_stream_close(void *obj)
{
    stream_t *s = obj;
    sse_stream_close(s);
    sse_stream_release(s); /* the session's reference, handed to whoever detached it */
}

static void resume_auth_waiters(worker_t *w)
{
    req_t *r = w->auth_waiters;
    w->auth_waiters = NULL;
    for (; r; r = r->next_waiter)
        MHD_resume_connection(r->conn); /* the handler runs again and re-checks the token */
}

static void send_on_stream(void *obj, void *arg)
{
    stream_t *s = obj;
    if (s->chan)
        sse_chan_emit(s->chan, arg); /* logged for a resume, then written */
}

static server_t *the_server; /* for mcp.resource_updated, which has no other way in */

static void resource_updated(const char *uri)
{
    server_t *srv = the_server;
    json_t *n = srv ? json_pack("{s:s, s:s, s:{s:s}}", "jsonrpc", "2.0", "method",
                                "notifications/resources/updated", "params", "uri", uri)
                    : NULL;
    char *js = n ? jsonio_dump(n, NULL) : NULL;
    if (js)
        session_foreach_subscribed(srv->sessions, uri, send_on_stream, js);
    free(js);
    json_decref(n);
    if (srv)
        listen_resource_updated(srv, uri);
}

static void switched(avail_kind_t kind)
{
    if (the_server)
        listen_list_changed(the_server, (int)kind);
}

void http_init(server_t *srv)
{
    the_server = srv;
    api_set_resource_updated_hook(resource_updated);
    avail_set_hook(switched);
}

void http_broadcast(server_t *srv, const char *json)
{
    session_foreach_attached(srv->sessions, send_on_stream, (void *)json);
}

static void service_tasks(worker_t *w);

void http_service(worker_t *w, long long now, bool closing)
{
    if (atomic_exchange(&w->auth_kick, false) || closing)
        resume_auth_waiters(w); /* not on every wake: they would be re-checked too early */
    service_asks(w);
    if (w->tasks)
        service_tasks(w);
    bool ping = now >= w->next_keepalive_ms;
    if (ping)
        w->next_keepalive_ms = now + KEEPALIVE_MS;
    w->next_expiry_ms = 0;
    for (stream_t *s = w->streams; s; s = s->next) {
        bool expired = s->expires_ms && now >= s->expires_ms;
        if (expired || closing) { /* its token's time is up, or the server's */
            if (expired && !closing)
                log_info("sse: a stream's access token expired; the stream ends");
            s->expires_ms = 0;
            if (s->listening)
                listen_end(w->srv, s); /* once: its result, then the end */
            else if (expired)
                sse_stream_close(s); /* closing: the tick below ends it */
        } else if (s->expires_ms && (!w->next_expiry_ms || s->expires_ms < w->next_expiry_ms)) {
            w->next_expiry_ms = s->expires_ms;
        }
        sse_stream_tick(s, ping, closing);
    }
    if (w->index == 0 && (closing || now >= w->next_chan_sweep_ms)) {
        sse_chan_sweep(w->srv, false);
        w->next_chan_sweep_ms = now + 5000;
    }
}

/* Queues s as the response (its worker lists it). Takes the stream's response reference either
 * way: when the response cannot be made or queued, stream_done has undone the stream's ties
 * (session, channel, listeners), so the caller has nothing to clean up. */
static enum MHD_Result queue_stream(req_t *r, struct MHD_Connection *conn, stream_t *s)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
                                                                  sse_stream_read, s, stream_done);
    if (!resp) {
        stream_done(s); /* what a finished response would undo, undone here */
        return MHD_NO;
    }
    s->next = r->w->streams;
    r->w->streams = s;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* proxies: pass events at once */
    r->answered = true;
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* GET: the session's stream for server messages, or, with Last-Event-ID, a stream resuming
 * the channel that event belongs to (the session's own, or a POST's answer). */
static enum MHD_Result open_stream(req_t *r, struct MHD_Connection *conn, const char *sid)
{
    server_t *srv = r->w->srv;
    const char *last = r->h.last_event_id;
    unsigned long long after = 0;
    unsigned char owner[SESSION_OWNER_LEN];
    auth_caller_owner(r->caller, owner);
    chan_t *c = last ? sse_chan_find(srv, last, sid, owner, &after) : NULL;
    if (last && !c)
        log_info("sse: Last-Event-ID of no channel of this session (expired?): a new stream");
    bool standalone = !c || sse_chan_standalone(c);
    if (!c && !(c = sse_chan_new(srv, sid, owner, true)))
        return MHD_NO;
    stream_t *s = sse_stream_new(r->w, conn, standalone ? sid : NULL);
    if (!s) {
        sse_chan_release(c);
        return MHD_NO;
    }
    if (standalone) {
        /* A new GET replaces the session's previous stream: a client reconnecting after a
         * network drop must not wait for the dead stream to be noticed (only the session's
         * holder can do this, and server messages still go to exactly one stream). */
        void *previous = NULL;
        sse_stream_ref(s); /* the session's */
        if (session_attach(srv->sessions, sid, s, &previous) != 0) {
            sse_stream_release(s);
            sse_stream_release(s);
            sse_chan_release(c);
            return fail(r, conn, MHD_HTTP_NOT_FOUND, RPC_SESSION_NOT_FOUND, "Session not found",
                        NULL, NULL);
        }
        if (previous)
            http_stream_close(previous);
    }
    sse_stream_append(s, ": stream open\n\n", 15);
    s->expires_ms = expiry_of(r); /* it ends with the token that opened it */
    sse_chan_attach(c, s, after); /* replays what came after `after` */
    if (!last || after == 0)
        sse_chan_prime(c);
    sse_chan_release(c); /* the stream holds it now */
    return queue_stream(r, conn, s);
}

/* A POST answered as a stream (its call talks to the client while it runs, or asked to end
 * the connection early): a resumable channel whose first event primes the client; what was
 * kept (notifications, requests) follows; the response ends it (finish_waiting). */
static enum MHD_Result start_stream(req_t *r, struct MHD_Connection *conn)
{
    unsigned char owner[SESSION_OWNER_LEN];
    auth_caller_owner(r->caller, owner);
    chan_t *c = sse_chan_new(r->w->srv, r->sid, owner, false);
    stream_t *s = c ? sse_stream_new(r->w, conn, NULL) : NULL;
    if (!s) {
        sse_chan_release(c);
        return MHD_NO;
    }
    r->chan = c; /* the request's reference */
    s->max = 64u << 20; /* a POST's stream carries its response, which may be large */
    sse_chan_attach(c, s, 0);
    sse_chan_prime(c);
    json_t *kept = r->async_notes;
    r->async_notes = NULL;
    emit_all(r, kept);
    json_decref(kept);
    kept = r->outbox;
    r->outbox = NULL;
    emit_all(r, kept);
    json_decref(kept);
    if (r->detach) /* ctx.close_stream: the rest waits for a resume */
        sse_chan_detach_writer(c);
    return queue_stream(r, conn, s);
}

/* ---- the MCP endpoint ------------------------------------------------------------------------ */

/* Session rules for a non-initialize message. True when fine (*info: the session's state;
 * nothing for a stateless server), else the answer has been queued and its result is in *rc. */
static bool session_check(req_t *r, struct MHD_Connection *conn, session_info_t *info,
                          enum MHD_Result *rc)
{
    const config_t *c = r->w->srv->cfg;
    *info = (session_info_t){NULL, -1, 0};
    if (c->stateless)
        return true;
    const char *sid = r->h.session;
    if (!sid) {
        *rc = fail(r, conn, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST,
                   "Bad Request: Mcp-Session-Id header is required", NULL, NULL);
        return false;
    }
    unsigned char owner[SESSION_OWNER_LEN];
    auth_caller_owner(r->caller, owner);
    if (!session_touch(r->w->srv->sessions, sid, owner, info)) {
        *rc = fail(r, conn, MHD_HTTP_NOT_FOUND, RPC_SESSION_NOT_FOUND, "Session not found", NULL,
                   NULL);
        return false;
    }
    /* A supported version other than the session's is accepted: the client SHOULD send the
     * negotiated one, and only an unsupported one MUST be refused (version_problem did). */
    return true;
}

static enum MHD_Result answer(req_t *r, struct MHD_Connection *conn, json_t *resp,
                              json_t *notes, int accept, const char *sid)
{
    r->answered = true;
    bool sse = !(accept & ACCEPT_JSON) || (notes && (accept & ACCEPT_SSE));
    if (!sse) {
        json_decref(notes);
        return queue_json(conn, MHD_HTTP_OK, resp, sid ? "Mcp-Session-Id" : NULL, sid);
    }
    size_t len = 0;
    char *body = sse_body(notes, resp, &len);
    json_decref(notes);
    json_decref(resp);
    if (!body)
        return MHD_NO;
    return queue(conn, MHD_HTTP_OK, body, len, "text/event-stream",
                 sid ? "Mcp-Session-Id" : NULL, sid);
}

static void unlink_waiter(req_t **list, req_t *r)
{
    for (req_t **pp = list; *pp; pp = &(*pp)->next_waiter)
        if (*pp == r) {
            *pp = r->next_waiter;
            return;
        }
}

/* Notifications of every step of a waiting call, in order. */
static void keep_notes(req_t *r, json_t *notes)
{
    if (!notes)
        return;
    if (!r->async_notes)
        r->async_notes = notes;
    else {
        json_array_extend(r->async_notes, notes);
        json_decref(notes);
    }
}

/* One SSE event for msg on r's stream, or kept for it until it starts. */
static void emit(req_t *r, json_t *msg)
{
    if (!r->chan) {
        if (!r->outbox)
            r->outbox = json_array();
        json_array_append(r->outbox, msg);
        return;
    }
    char *js = jsonio_dump(msg, NULL);
    if (js)
        sse_chan_emit(r->chan, js); /* logged, and written if a connection reads it */
    free(js);
}

static void emit_all(req_t *r, json_t *msgs)
{
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
        emit(r, m);
}

/* Drops r's entry for key (ids are not unique across sessions: "c:1" is everyone's). */
static void forget_key(req_t *r, char *key)
{
    server_t *srv = r->w->srv;
    if (!key[0])
        return;
    pthread_mutex_lock(&srv->asks_mu);
    for (ask_t **pp = &srv->asks; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, key) == 0 && (*pp)->r == r && (*pp)->gen == r->gen) {
            ask_t *a = *pp;
            *pp = a->next;
            srv->n_asks--;
            free(a);
            break;
        }
    pthread_mutex_unlock(&srv->asks_mu);
    key[0] = '\0';
}

static void forget_ask(req_t *r)
{
    forget_key(r, r->ask_id);
    forget_key(r, r->call_key);
}

/* Registers key (for r, on its session) in the table; false when full. */
static bool remember_key(req_t *r, const char *key)
{
    server_t *srv = r->w->srv;
    ask_t *a = calloc(1, sizeof *a);
    if (!a)
        return false;
    snprintf(a->id, sizeof a->id, "%s", key);
    snprintf(a->session, sizeof a->session, "%s", r->sid);
    auth_caller_owner(r->caller, a->owner);
    a->worker = r->w->index;
    a->r = r;
    a->gen = r->gen;
    pthread_mutex_lock(&srv->asks_mu);
    bool room = srv->n_asks < MAX_ASKS;
    if (room) {
        a->next = srv->asks;
        srv->asks = a;
        srv->n_asks++;
    }
    pthread_mutex_unlock(&srv->asks_mu);
    if (!room)
        free(a);
    return room;
}

/* "c:" and the JSON of a client request id, or "" when too long to be one of ours. */
static void call_key_of(const json_t *id, char *out, size_t n)
{
    if (n > 3 && jsonio_dump_into(id, out + 2, n - 2) != (size_t)-1)
        memcpy(out, "c:", 2);
    else
        out[0] = '\0';
}

static void free_req(req_t *r);

static void modernize(json_t *resp, const char *method);

/* Wakes r's connection if we parked it: its handler runs again (the worker runs MHD in this
 * same loop turn). */
static void resume_parked(req_t *r)
{
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
    }
}

/* Ends r's waiting call with resp. On a stream, what it said so far goes out, then resp unless
 * on_stream is false (a cancelled call answers nothing there), and the stream ends. */
static void end_call(req_t *r, json_t *resp, bool on_stream)
{
    if (resp && r->modern)
        modernize(resp, r->method);
    rpc_pending_free(r->pending);
    r->pending = NULL;
    forget_ask(r);
    unlink_waiter(&r->w->tool_waiters, r);
    if (r->chan) {
        if (on_stream) {
            emit_all(r, r->async_notes);
            if (resp)
                emit(r, resp);
        }
        json_decref(r->async_notes);
        r->async_notes = NULL;
        json_decref(resp);
        sse_chan_finish(r->chan);
        if (r->orphan) /* nobody's connection: the channel keeps it for a resume */
            free_req(r);
        return;
    }
    r->async_resp = resp;
    resume_parked(r);
}

static void finish_waiting(req_t *r, json_t *resp)
{
    end_call(r, resp, true);
}

/* A step of a waiting call has ended (worker thread): what it said goes out now on a stream or
 * is kept for the answer; resp, when the call is done. */
static void step_done(req_t *r, json_t *resp, json_t *notes)
{
    if (r->chan) { /* streaming already: progress and logs go out as they come */
        emit_all(r, notes);
        json_decref(notes);
    } else {
        keep_notes(r, notes);
    }
    if (resp)
        finish_waiting(r, resp);
}

/* A server request's id: "luamcp-" (route_answer looks for it) and 128 random bits in hex,
 * so no caller can guess another's (false when the generator fails). */
static bool ask_id_new(char out[ASK_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    memcpy(out, ASK_ID_PREFIX, sizeof ASK_ID_PREFIX - 1);
    char *p = out + sizeof ASK_ID_PREFIX - 1;
    for (size_t i = 0; i < sizeof raw; i++) {
        *p++ = hex[raw[i] >> 4];
        *p++ = hex[raw[i] & 15];
    }
    *p = '\0';
    return true;
}

/* ctx.sample / ctx.elicit (worker thread, while the call's Lua runs): the request gets an id,
 * is registered for its answer and goes out on the POST's stream. */
static int req_ask(void *arg, json_t *request)
{
    req_t *r = arg;
    char id[ASK_ID_LEN];
    if (!ask_id_new(id) || !remember_key(r, id))
        return -1;
    snprintf(r->ask_id, sizeof r->ask_id, "%s", id);
    json_object_set_new(request, "id", json_string(id));
    emit(r, request);
    if (!r->chan)
        resume_parked(r); /* its handler starts the stream */
    return 0;
}

/* ctx.close_stream (worker thread, while the call's Lua runs): the POST's connection ends
 * after the priming event and what was sent so far; the rest waits for a GET with
 * Last-Event-ID. */
static void req_detach(void *arg)
{
    req_t *r = arg;
    r->detach = true;
    if (r->chan)
        sse_chan_detach_writer(r->chan);
    else
        resume_parked(r); /* its handler starts (and at once ends) the stream */
}

static enum MHD_Result start_stream(req_t *r, struct MHD_Connection *conn);

/* A client's response to one of our requests, or its cancellation of one of its own (any
 * worker): to the worker holding the call. Only an entry of the same caller on the same
 * checked session matches (from->sid: set only once session_check passed, "" in the
 * 2026-07-28 era), so another caller's attempt finds nothing, exactly like an unknown id.
 * False when no such request waits. */
static bool route(req_t *from, const char *id, json_t *msg, bool cancel)
{
    server_t *srv = from->w->srv;
    if (!id)
        return false;
    unsigned char owner[SESSION_OWNER_LEN];
    auth_caller_owner(from->caller, owner);
    ask_t *found = NULL;
    pthread_mutex_lock(&srv->asks_mu);
    for (ask_t **pp = &srv->asks; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0 && strcmp((*pp)->session, from->sid) == 0 &&
            memcmp((*pp)->owner, owner, sizeof owner) == 0) {
            found = *pp;
            *pp = found->next; /* one answer per request */
            srv->n_asks--;
            break;
        }
    pthread_mutex_unlock(&srv->asks_mu);
    if (!found)
        return false;
    answer_t *ans = calloc(1, sizeof *ans);
    worker_t *w = &srv->workers[found->worker];
    if (ans) {
        ans->r = found->r;
        ans->gen = found->gen;
        ans->msg = json_incref(msg);
        ans->cancel = cancel;
        pthread_mutex_lock(&w->inbox_mu);
        ans->next = w->inbox;
        w->inbox = ans;
        pthread_mutex_unlock(&w->inbox_mu);
        worker_wake(w);
    }
    free(found);
    return true;
}

static bool route_answer(req_t *from, json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "id"));
    /* only ids we gave to requests of ours: "c:…" keys name the client's own requests */
    return id && strncmp(id, ASK_ID_PREFIX, sizeof ASK_ID_PREFIX - 1) == 0 &&
           route(from, id, msg, false);
}

/* notifications/cancelled: to the worker whose call waits for that request, if any. */
static void route_cancel(req_t *from, json_t *params)
{
    char key[48];
    json_t *id = json_object_get(params, "requestId");
    if (!json_is_string(id) && !json_is_integer(id))
        return;
    call_key_of(id, key, sizeof key);
    if (key[0] && route(from, key, NULL, true))
        log_info("request %s cancelled by the client", key + 2);
}

/* Ends a waiting call its client cancelled: its transfers stop, its coroutine is dropped; a
 * stream just ends (no response, as the specification asks), a JSON answer says so. */
static void cancel_request(req_t *r)
{
    end_call(r, rpc_pending_error(r->pending, -32800, "Request cancelled"), false);
}

/* The call of a waiting request goes on with what it waited for from the client. */
static void deliver(req_t *r, json_t *answer)
{
    r->ask_id[0] = '\0'; /* already out of the table */
    json_t *notes = NULL;
    json_t *resp = rpc_pending_answer(r->pending, answer, &notes);
    step_done(r, resp, notes);
}

/* Worker thread: answers that arrived for this worker's calls, and calls whose client did
 * not answer in time. */
static void service_asks(worker_t *w)
{
    pthread_mutex_lock(&w->inbox_mu);
    answer_t *list = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->inbox_mu);
    while (list) {
        answer_t *a = list;
        list = a->next;
        req_t *r = w->tool_waiters;
        while (r && !(r == a->r && r->gen == a->gen))
            r = r->next_waiter;
        double unused;
        const char *id = a->msg ? json_string_value(json_object_get(a->msg, "id")) : NULL;
        if (r && r->pending && a->cancel)
            cancel_request(r);
        else if (r && r->pending && id && strcmp(id, r->ask_id) == 0 &&
                 rpc_pending_asking(r->pending, &unused))
            deliver(r, a->msg); /* the answer to the very request it waits for */
        json_decref(a->msg);
        free(a);
    }
    double now = clock_wall_s();
    for (req_t *r = w->tool_waiters, *next; r; r = next) {
        next = r->next_waiter;
        double deadline;
        if (r->pending && rpc_pending_asking(r->pending, &deadline) && now >= deadline) {
            forget_key(r, r->ask_id); /* it can still be cancelled */
            deliver(r, NULL); /* "the client did not answer in time" */
        }
    }
}

/* The transfers a waiting call needed have ended (worker thread, from the fetch engine). */
static void tool_wake(void *arg)
{
    req_t *r = arg;
    json_t *notes = NULL;
    json_t *resp = rpc_pending_resume(r->pending, &notes);
    step_done(r, resp, notes);
}

/* ---- task rounds: calls running detached from any request (the tasks extension) ---------- */

typedef struct running {
    worker_t *w;
    rpc_pending_t *p;
    bool ready;             /* resume at the next service (ctx.task) */
    struct running *prev, *next;
} running_t;

static void running_drop(running_t *rt)
{
    worker_t *w = rt->w;
    if (rt->prev)
        rt->prev->next = rt->next;
    else
        w->tasks = rt->next;
    if (rt->next)
        rt->next->prev = rt->prev;
    rpc_pending_free(rt->p); /* cancels what it still waits for */
    free(rt);
}

/* Its transfers or its sleep ended (worker thread, from the fetch engine). */
static void task_wake(void *arg)
{
    running_t *rt = arg;
    if (rpc_task_step(rt->p))
        running_drop(rt);
}

/* A round rpc_dispatch left detached: this worker runs it from now on. */
static void adopt_round(worker_t *w, rpc_pending_t *p)
{
    if (atomic_load(&w->srv->stopping)) { /* past http_abort_waiting: nothing would end it */
        rpc_pending_free(p);
        return;
    }
    running_t *rt = calloc(1, sizeof *rt);
    if (!rt) {
        rpc_pending_free(p); /* its task stays working until its ttl: logged */
        log_error("out of memory: a task's round was dropped");
        return;
    }
    rt->w = w;
    rt->p = p;
    rt->ready = rpc_task_ready(p);
    rt->next = w->tasks;
    if (w->tasks)
        w->tasks->prev = rt;
    w->tasks = rt;
    rpc_pending_on_wake(p, task_wake, rt);
    if (rt->ready)
        worker_wake(w);
}

/* Worker thread: rounds to resume now (ctx.task), and rounds whose task was cancelled. */
static void service_tasks(worker_t *w)
{
    bool kicked = atomic_exchange(&w->task_kick, false);
    for (running_t *rt = w->tasks, *next; rt; rt = next) {
        next = rt->next;
        if (rt->ready) {
            rt->ready = false;
            if (rpc_task_step(rt->p))
                running_drop(rt);
        } else if (kicked && rpc_task_stopped(rt->p)) {
            running_drop(rt);
        }
    }
}

void http_abort_waiting(worker_t *w)
{
    while (w->tool_waiters)
        finish_waiting(w->tool_waiters,
                       rpc_pending_abort(w->tool_waiters->pending, "the server is stopping"));
    while (w->tasks) /* held in memory only: they end with the server */
        running_drop(w->tasks);
}

/* ---- the 2026-07-28 era ---------------------------------------------------------------------
 * Stateless requests on the same endpoint: no initialize, no session; every request carries
 * MCP-Protocol-Version, Mcp-Method (and Mcp-Name for tools/call, prompts/get, resources/read),
 * and _meta with the protocol version and the client's capabilities. */

#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPS "io.modelcontextprotocol/clientCapabilities"

typedef struct modern {
    bool on;
    unsigned caps;       /* SESSION_CAP_* from _meta */
    int log_level;       /* from _meta io.modelcontextprotocol/logLevel; -1 none */
    bool ask_ok;
} modern_t;

/* A request is of the 2026-07-28 era when its header says so, or when it has no session and
 * its _meta names a protocol version. */
static bool is_modern(const req_t *r, const rpc_msg_t *m)
{
    char hv_buf[64];
    const char *hv = MCP_VERSION(r, hv_buf);
    if (hv && strcmp(hv, RPC_MODERN_VERSION) == 0)
        return true;
    return !r->h.session && m->kind == RPC_REQUEST &&
           json_object_get(json_object_get(m->params, "_meta"), META_VERSION);
}

static enum MHD_Result modern_fail(req_t *r, struct MHD_Connection *conn, unsigned status,
                                   const rpc_msg_t *m, int code, const char *message, json_t *data)
{
    json_t *e = rpc_error(m->id, code, message);
    if (data)
        json_object_set_new(json_object_get(e, "error"), "data", data);
    r->answered = true;
    return queue_json(conn, status, e, NULL, NULL);
}

typedef struct {
    const char *name;
    unsigned n;
} header_count_t;

static enum MHD_Result count_named(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    (void)value;
    header_count_t *c = cls;
    if (key && strcasecmp(key, c->name) == 0)
        c->n++;
    return MHD_YES;
}

/* A header's value for xheaders_check: a proxy may read the last of repeated headers where we
 * would read the first, so a repeated one is its own error. */
static const char *lookup(void *conn, const char *name)
{
    header_count_t c = {name, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_named, &c);
    return c.n > 1 ? XHEADER_REPEATED : header(conn, name);
}

/* Whether a tools/call's Mcp-Param-* headers agree with its arguments (NULL), else why. Only for
 * a tool the caller can see listed: for any other the answer must not differ from the answer
 * for a tool that does not exist. */
static const char *param_headers(req_t *r, struct MHD_Connection *conn, const rpc_msg_t *m,
                                 char *buf, size_t n)
{
    bundle_t *b = r->w->bundle;
    const tool_t *t = bundle_find(b, json_string_value(json_object_get(m->params, "name")));
    policy_decision_t d;
    if (!t || !t->headers.n ||
        policy_static(b->policies, bundle_index(b, t), r->caller, r->w->srv->cfg->dev, &d) !=
            POLICY_ALLOW)
        return NULL;
    return xheaders_check(&t->headers, json_object_get(m->params, "arguments"), lookup, conn,
                          buf, n);
}

/* The era's checks, in the order the specification gives; false when answered (*rc). */
static bool modern_checks(req_t *r, struct MHD_Connection *conn, const rpc_msg_t *m,
                          modern_t *mod, enum MHD_Result *rc)
{
    if (m->kind != RPC_REQUEST) { /* nothing for a notification to be checked against */
        mod->on = true;
        return true;
    }
    json_t *meta = json_object_get(m->params, "_meta");
    json_t *pv = json_object_get(meta, META_VERSION);
    json_t *caps = json_object_get(meta, META_CAPS);
    char hv_buf[64];
    const char *hv = MCP_VERSION(r, hv_buf);
    if (!json_is_string(pv) || !json_is_object(caps)) {
        *rc = modern_fail(r, conn, MHD_HTTP_BAD_REQUEST, m, RPC_INVALID_PARAMS,
                          "Invalid params: _meta must carry " META_VERSION " and " META_CAPS, NULL);
        return false;
    }
    if (!hv || strcmp(hv, json_string_value(pv)) != 0) {
        *rc = modern_fail(r, conn, MHD_HTTP_BAD_REQUEST, m, RPC_HEADER_MISMATCH,
                          "Header mismatch: MCP-Protocol-Version must equal _meta's " META_VERSION,
                          NULL);
        return false;
    }
    if (strcmp(hv, RPC_MODERN_VERSION) != 0) {
        *rc = modern_fail(r, conn, MHD_HTTP_BAD_REQUEST, m, RPC_UNSUPPORTED_VERSION,
                          "Unsupported protocol version",
                          json_pack("{s:[s], s:s}", "supported", RPC_MODERN_VERSION, "requested",
                                    hv));
        return false;
    }
    char hm_buf[64];
    const char *hm = MCP_HEADER(r->h.mcp_method, hm_buf);
    if (!hm || strcmp(hm, m->method) != 0) {
        *rc = modern_fail(r, conn, MHD_HTTP_BAD_REQUEST, m, RPC_HEADER_MISMATCH,
                          "Header mismatch: Mcp-Method must equal the body's method", NULL);
        return false;
    }
    const char *name_key = strcmp(m->method, "tools/call") == 0 ||
                                   strcmp(m->method, "prompts/get") == 0 ? "name"
                           : strcmp(m->method, "resources/read") == 0 ? "uri"
                           : strcmp(m->method, "tasks/get") == 0 ||
                                   strcmp(m->method, "tasks/update") == 0 ||
                                   strcmp(m->method, "tasks/cancel") == 0 ? "taskId" : NULL;
    if (name_key) {
        char hn_buf[2100];
        const char *hn = MCP_HEADER(r->h.mcp_name, hn_buf);
        const char *bn = json_string_value(json_object_get(m->params, name_key));
        if (!hn || !bn || strcmp(hn, bn) != 0) {
            *rc = modern_fail(r, conn, MHD_HTTP_BAD_REQUEST, m, RPC_HEADER_MISMATCH,
                              "Header mismatch: Mcp-Name must equal the body's name (uri, "
                              "taskId)",
                              NULL);
            return false;
        }
    }
    if (strcmp(m->method, "tools/call") == 0) { /* its arguments mirrored in Mcp-Param-* */
        char why[200];
        const char *bad = param_headers(r, conn, m, why, sizeof why);
        if (bad) {
            *rc = modern_fail(r, conn, MHD_HTTP_BAD_REQUEST, m, RPC_HEADER_MISMATCH, bad, NULL);
            return false;
        }
    }
    static const char *const legacy_only[] = {"initialize", "ping", "logging/setLevel",
                                              "resources/subscribe", "resources/unsubscribe",
                                              NULL};
    for (int i = 0; legacy_only[i]; i++)
        if (strcmp(m->method, legacy_only[i]) == 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "Method not found: %s is not part of protocol %s",
                     m->method, RPC_MODERN_VERSION);
            *rc = modern_fail(r, conn, MHD_HTTP_NOT_FOUND, m, RPC_METHOD_NOT_FOUND, msg, NULL);
            return false;
        }
    mod->on = true;
    mod->caps = (json_is_object(json_object_get(caps, "sampling")) ? SESSION_CAP_SAMPLING : 0) |
                (json_is_object(json_object_get(caps, "elicitation")) ? SESSION_CAP_ELICITATION
                                                                      : 0) |
                (json_is_object(json_object_get(json_object_get(caps, "extensions"),
                                                TASK_EXTENSION)) ? SESSION_CAP_TASKS : 0);
    mod->log_level =
        log_mcp_level_parse(json_string_value(json_object_get(meta, "io.modelcontextprotocol/logLevel")));
    mod->ask_ok = false;
    return true;
}

/* A 2026-07-28 tools/call, prompts/get or resources/read names its target in Mcp-Method and
 * Mcp-Name: when the caller's scopes alone already refuse it (step-up), answer 403 without
 * parsing the body. Unknown or hidden names go on to the usual checks (the body may disagree
 * with the headers, which is its own error). True when answered (*rc). */
static bool preauthorize(req_t *r, struct MHD_Connection *conn, enum MHD_Result *rc)
{
    char method_buf[64], name_buf[2100];
    const char *method = MCP_HEADER(r->h.mcp_method, method_buf),
               *name = MCP_HEADER(r->h.mcp_name, name_buf);
    bundle_t *b = r->w->bundle;
    if (!method || !name || !auth_enabled(r->w->srv->auth))
        return false;
    size_t target;
    if (strcmp(method, "tools/call") == 0) {
        const tool_t *t = bundle_find(b, name);
        if (!t)
            return false;
        target = bundle_index(b, t);
    } else if (strcmp(method, "prompts/get") == 0) {
        const prompt_t *p = bundle_find_prompt(b, name);
        if (!p)
            return false;
        target = bundle_prompt_target(b, p);
    } else {
        return false; /* resources/read: the URI may need its template's variables */
    }
    policy_decision_t d;
    if (policy_static(b->policies, target, r->caller, r->w->srv->cfg->dev, &d) !=
        POLICY_CHALLENGE)
        return false;
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "decision", "challenge",
                            "reason", d.reason, "scopes", d.scopes,
                            strcmp(method, "tools/call") == 0 ? "tool" : "prompt", name,
                            "rule", d.rule, "bundle", (json_int_t)b->version,
                            "before_body", 1);
    if (rec && r->caller && r->caller->subject)
        json_object_set_new(rec, "subject", json_string(r->caller->subject));
    if (rec && r->caller && r->caller->client_id)
        json_object_set_new(rec, "client_id", json_string(r->caller->client_id));
    audit_record(r->w->audit, rec); /* decided from the headers: audited all the same */
    free(r->challenge);
    r->challenge = auth_scope_challenge(r->w->srv->auth, d.scopes);
    *rc = fail(r, conn, MHD_HTTP_FORBIDDEN, RPC_INVALID_REQUEST, "Forbidden: insufficient scope",
               MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->challenge);
    return true;
}

static json_t *discover(server_t *srv, json_t *id)
{
    json_t *result = json_pack("{s:[s], s:o, s:{s:{s:s, s:s}}}", "supportedVersions",
                               RPC_MODERN_VERSION, "capabilities",
                               rpc_capabilities(srv->cfg, true), "_meta",
                               "io.modelcontextprotocol/serverInfo", "name", "luamcp", "version",
                               LUAMCP_VERSION);
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

/* The era's result fields: resultType everywhere; caching hints where results can be cached
 * (private: what a caller sees depends on its policies). A missing resource is -32602. */
static void modernize(json_t *resp, const char *method)
{
    json_t *result = json_object_get(resp, "result");
    json_t *error = json_object_get(resp, "error");
    if (error && json_integer_value(json_object_get(error, "code")) == RPC_RESOURCE_NOT_FOUND)
        json_object_set_new(error, "code", json_integer(RPC_INVALID_PARAMS));
    if (!json_is_object(result))
        return;
    if (!json_object_get(result, "resultType"))
        json_object_set_new(result, "resultType", json_string("complete"));
    static const char *const cacheable[] = {"tools/list", "prompts/list", "resources/list",
                                            "resources/templates/list", "resources/read",
                                            "server/discover", NULL};
    for (int i = 0; cacheable[i]; i++)
        if (strcmp(method, cacheable[i]) == 0) {
            json_object_set_new(result, "ttlMs", json_integer(0));
            json_object_set_new(result, "cacheScope", json_string("private"));
        }
}

/* subscriptions/listen: the answer is a stream of the notifications the client opted in to,
 * for as long as the connection (and the caller's token) lasts. */
static enum MHD_Result subscribe_listen(req_t *r, struct MHD_Connection *conn, rpc_env_t *env,
                              const rpc_msg_t *m, int accept)
{
    if (!(accept & ACCEPT_SSE))
        return fail(r, conn, MHD_HTTP_NOT_ACCEPTABLE, RPC_INVALID_REQUEST,
                    "Not Acceptable: subscriptions/listen answers with an event stream; Accept "
                    "must allow text/event-stream", NULL, NULL);
    json_t *granted = NULL, *refused = rpc_listen_filter(env, m, &granted);
    if (refused)
        return answer(r, conn, refused, NULL, ACCEPT_JSON, NULL);
    unsigned char owner[SESSION_OWNER_LEN];
    auth_caller_owner(r->caller, owner);
    bool per_caller;
    stream_t *s = listen_open(r->w, conn, m->id, granted, owner, &per_caller);
    json_decref(granted);
    if (!s && per_caller) {
        char msg[120];
        snprintf(msg, sizeof msg, "Too Many Requests: this caller has %d subscription streams "
                 "open already", LISTEN_PER_CALLER);
        return fail(r, conn, MHD_HTTP_TOO_MANY_REQUESTS, RPC_INVALID_REQUEST, msg,
                    MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    if (!s)
        return fail(r, conn, MHD_HTTP_SERVICE_UNAVAILABLE, RPC_INTERNAL_ERROR,
                    "Service Unavailable: too many subscription streams", NULL, NULL);
    s->expires_ms = expiry_of(r);
    return queue_stream(r, conn, s);
}

/* The access token auth verified for this request (the scripts' mcp.oauth.SUBJECT), exactly:
 * the header's own bytes, or a copy when whitespace trails it. NULL without one. */
static const char *bearer_token(req_t *r, struct MHD_Connection *conn)
{
    size_t n;
    const char *t = auth_bearer(r->h.authorization, &n);
    if (!t || !n || t[n] == '\0')
        return t && n ? t : NULL;
    free(r->bearer);
    r->bearer = strndup(t, n);
    return r->bearer;
}

/* A response (to a request of ours) or a notification: routed to the call it refers to, if
 * the caller owns one, and answered 202. */
static enum MHD_Result take_non_request(req_t *r, struct MHD_Connection *conn, json_t *msg,
                                        const rpc_msg_t *m)
{
    if (m->kind == RPC_RESPONSE && !route_answer(r, msg))
        return fail(r, conn, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST,
                    "Bad Request: no request of this session waits for this response", NULL,
                    NULL);
    if (m->kind == RPC_NOTIFICATION && strcmp(m->method, "notifications/cancelled") == 0 &&
        !r->w->srv->cfg->stateless)
        route_cancel(r, m->params);
    r->answered = true;
    return queue(conn, MHD_HTTP_ACCEPTED, NULL, 0, NULL, NULL, NULL);
}

/* The handler waits for backends: the connection is parked (or becomes a stream when the call
 * already talks to the client) and the worker serves others meanwhile. */
static enum MHD_Result park(req_t *r, struct MHD_Connection *conn, rpc_env_t *env,
                            const rpc_msg_t *m, int accept)
{
    r->pending = env->pending;
    r->accept = accept;
    keep_notes(r, env->notifications);
    rpc_pending_on_wake(r->pending, tool_wake, r);
    r->next_waiter = r->w->tool_waiters;
    r->w->tool_waiters = r;
    if (!r->w->srv->cfg->stateless) { /* so notifications/cancelled can find it */
        char key[48];
        call_key_of(m->id, key, sizeof key);
        if (key[0] && remember_key(r, key))
            snprintf(r->call_key, sizeof r->call_key, "%s", key);
    }
    if (r->outbox || r->detach) /* it already talks to the client: a stream now */
        return start_stream(r, conn);
    r->suspended = true;
    MHD_suspend_connection(conn);
    return MHD_YES;
}

/* 2026-07-28 gives some errors their HTTP status; 0 for the others (and for results). */
static unsigned modern_error_status(json_t *resp)
{
    json_int_t code = json_integer_value(json_object_get(json_object_get(resp, "error"), "code"));
    if (code == RPC_METHOD_NOT_FOUND)
        return MHD_HTTP_NOT_FOUND;
    if (code == RPC_MISSING_CAPABILITY || code == RPC_HEADER_MISMATCH ||
        code == RPC_UNSUPPORTED_VERSION)
        return MHD_HTTP_BAD_REQUEST;
    return 0;
}

/* A policy wants more scopes: step-up, 403 insufficient_scope with the scopes to ask for
 * (RFC 6750); takes resp. */
static enum MHD_Result step_up(req_t *r, struct MHD_Connection *conn, rpc_env_t *env,
                               json_t *resp)
{
    json_decref(env->notifications);
    free(r->challenge);
    r->challenge = auth_scope_challenge(r->w->srv->auth, env->challenge);
    r->answered = true;
    return queue_json(conn, MHD_HTTP_FORBIDDEN, resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                      r->challenge);
}

/* initialize succeeded: its session, owned by the caller, into sid. false when none can be
 * made, with the refusal queued in *rc (resp and the notifications dropped). */
static bool open_session(req_t *r, struct MHD_Connection *conn, rpc_env_t *env, json_t *resp,
                         char sid[SESSION_ID_LEN + 1], enum MHD_Result *rc)
{
    server_t *srv = r->w->srv;
    unsigned char owner[SESSION_OWNER_LEN];
    auth_caller_owner(r->caller, owner);
    int made = session_create(srv->sessions, env->negotiated, owner, sid);
    if (made == 0) {
        session_set_client_caps(srv->sessions, sid, env->client_caps);
        return true;
    }
    json_decref(resp);
    json_decref(env->notifications);
    if (made == SESSION_CALLER_FULL) {
        log_info("initialize refused: the caller holds max_sessions_per_caller (%u) sessions",
                 srv->cfg->max_sessions_per_caller);
        *rc = fail(r, conn, MHD_HTTP_TOO_MANY_REQUESTS, RPC_INTERNAL_ERROR,
                   "Too Many Requests: this caller holds as many sessions as it may "
                   "(max_sessions_per_caller); end one with DELETE or let one expire",
                   NULL, NULL);
    } else {
        *rc = fail(r, conn, MHD_HTTP_SERVICE_UNAVAILABLE, RPC_INTERNAL_ERROR,
                   "Service Unavailable: too many sessions", NULL, NULL);
    }
    return false;
}

static enum MHD_Result mcp_post(req_t *r, struct MHD_Connection *conn)
{
    server_t *srv = r->w->srv;
    char buf[200];
    if (!hdr_is_json(r->h.content_type))
        return fail(r, conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, RPC_INVALID_REQUEST,
                    "Unsupported Media Type: Content-Type must be application/json", NULL, NULL);
    int accept = hdr_accept(r->h.accept);
    if (!accept)
        return fail(r, conn, MHD_HTTP_NOT_ACCEPTABLE, RPC_INVALID_REQUEST,
                    "Not Acceptable: Accept must allow application/json or text/event-stream",
                    NULL, NULL);
    char hv_buf[64];
    const char *hv = MCP_VERSION(r, hv_buf);
    const char *problem = version_problem(hv, buf, sizeof buf);
    bool maybe_modern = hv && strcmp(hv, RPC_MODERN_VERSION) == 0;
    if (problem && !maybe_modern && !(hv && hv[0] == 'v')) /* "v999": let the body say more */
        return fail(r, conn, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST, problem, NULL, NULL);

    if (maybe_modern) { /* the headers name what is called: decide before reading the body */
        enum MHD_Result early;
        if (preauthorize(r, conn, &early))
            return early;
    }
    json_error_t je;
    json_t *msg = jsonio_parse(r->body ? r->body : "", r->len,
                               JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!msg)
        return fail(r, conn, MHD_HTTP_BAD_REQUEST, RPC_PARSE_ERROR, "Parse error", NULL, NULL);
    rpc_msg_t m;
    json_t *err = NULL;
    enum MHD_Result rc;
    if (rpc_classify(msg, &m, &err) != 0) {
        r->answered = true;
        rc = queue_json(conn, MHD_HTTP_BAD_REQUEST, err, NULL, NULL);
        goto done;
    }
    modern_t mod = {0};
    if (is_modern(r, &m)) {
        if (!modern_checks(r, conn, &m, &mod, &rc))
            goto done;
    } else if (problem) {
        rc = fail(r, conn, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST, problem, NULL, NULL);
        goto done;
    }
    bool init = !mod.on && m.kind == RPC_REQUEST && strcmp(m.method, "initialize") == 0;
    if (!srv->cfg->stateless && !init && !mod.on && r->h.session)
        snprintf(r->sid, sizeof r->sid, "%s", r->h.session);
    session_info_t sess = {NULL, -1, 0};
    if (init && !srv->cfg->stateless && r->h.session) {
        rc = fail(r, conn, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST,
                  "Invalid Request: session already initialized", NULL, NULL);
        goto done;
    }
    if (!init && !mod.on && !session_check(r, conn, &sess, &rc))
        goto done;
    if (m.kind != RPC_REQUEST) {
        rc = take_non_request(r, conn, msg, &m);
        goto done;
    }
    rpc_env_t env = {.cfg = srv->cfg, .bundle = r->w->bundle, .caller = r->caller,
                     .bearer = r->caller ? bearer_token(r, conn) : NULL,
                     .audit = r->w->audit, .fetch = r->w->fetch,
                     .sessions = mod.on ? NULL : srv->sessions, .ask = req_ask, .ask_arg = r,
                     .detach = req_detach,
                     .session_id = srv->cfg->stateless || init || mod.on
                                       ? NULL : r->h.session,
                     .progress_ok = (accept & ACCEPT_SSE) != 0,
                     .modern = mod.on,
                     .peer_caps = mod.on ? mod.caps : sess.client_caps,
                     .peer_log_level = mod.on ? mod.log_level : sess.log_level,
                     .tasks = srv->tasks, .worker = r->w->index};
    if (mod.on) {
        r->modern = true;
        snprintf(r->method, sizeof r->method, "%s", m.method);
        if (!mod.ask_ok) /* 2026-07-28 has no requests to the client on a stream */
            env.ask = NULL;
    }
    if (mod.on && strcmp(m.method, "subscriptions/listen") == 0) {
        rc = subscribe_listen(r, conn, &env, &m, accept);
        goto done;
    }
    json_t *resp = mod.on && strcmp(m.method, "server/discover") == 0 ? discover(srv, m.id)
                                                                     : rpc_dispatch(&env, &m);
    if (env.detached) { /* a task's round goes on after this answer */
        adopt_round(r->w, env.pending);
        env.pending = NULL;
    }
    if (resp && mod.on) {
        modernize(resp, m.method);
        unsigned status = modern_error_status(resp);
        if (status) {
            json_decref(env.notifications);
            r->answered = true;
            rc = queue_json(conn, status, resp, NULL, NULL);
            goto done;
        }
    }
    if (!resp && env.pending) {
        rc = park(r, conn, &env, &m, accept);
        goto done;
    }
    if (resp && r->detach && (accept & ACCEPT_SSE)) {
        /* done at once, yet it asked to end its stream: the answer waits for a resume */
        keep_notes(r, env.notifications);
        rc = start_stream(r, conn);
        if (r->chan) {
            emit(r, resp);
            sse_chan_finish(r->chan);
        }
        json_decref(resp);
        goto done;
    }
    if (env.challenge[0]) {
        rc = step_up(r, conn, &env, resp);
        goto done;
    }
    char sid[SESSION_ID_LEN + 1];
    bool with_sid = false;
    if (init && env.negotiated && !srv->cfg->stateless) {
        if (!open_session(r, conn, &env, resp, sid, &rc))
            goto done;
        with_sid = true;
    }
    rc = answer(r, conn, resp, env.notifications, accept, with_sid ? sid : NULL);
done:
    json_decref(msg);
    return rc;
}

static enum MHD_Result mcp_get(req_t *r, struct MHD_Connection *conn)
{
    if (r->w->srv->cfg->stateless)
        return fail(r, conn, MHD_HTTP_METHOD_NOT_ALLOWED, RPC_INVALID_REQUEST,
                    "Method not allowed: this server is stateless and has no GET stream",
                    MHD_HTTP_HEADER_ALLOW, "POST");
    if (!(hdr_accept(r->h.accept) & ACCEPT_SSE))
        return fail(r, conn, MHD_HTTP_NOT_ACCEPTABLE, RPC_INVALID_REQUEST,
                    "Not Acceptable: Accept must allow text/event-stream", NULL, NULL);
    char buf[200];
    char hv_buf[64];
    const char *problem =
        version_problem(MCP_VERSION(r, hv_buf), buf, sizeof buf);
    if (problem)
        return fail(r, conn, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST, problem, NULL, NULL);
    session_info_t sess;
    enum MHD_Result rc;
    if (!session_check(r, conn, &sess, &rc))
        return rc;
    return open_stream(r, conn, r->h.session);
}

static enum MHD_Result mcp_delete(req_t *r, struct MHD_Connection *conn)
{
    if (r->w->srv->cfg->stateless)
        return fail(r, conn, MHD_HTTP_METHOD_NOT_ALLOWED, RPC_INVALID_REQUEST,
                    "Method not allowed: this server is stateless", MHD_HTTP_HEADER_ALLOW,
                    "POST");
    const char *sid = r->h.session;
    if (!sid)
        return fail(r, conn, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST,
                    "Bad Request: Mcp-Session-Id header is required", NULL, NULL);
    void *stream = NULL;
    unsigned char owner[SESSION_OWNER_LEN];
    auth_caller_owner(r->caller, owner);
    if (!session_delete(r->w->srv->sessions, sid, owner, &stream))
        return fail(r, conn, MHD_HTTP_NOT_FOUND, RPC_SESSION_NOT_FOUND, "Session not found",
                    NULL, NULL);
    if (stream)
        http_stream_close(stream);
    r->answered = true;
    return queue(conn, MHD_HTTP_OK, NULL, 0, NULL, NULL, NULL);
}

static bool origin_checks(req_t *r, struct MHD_Connection *conn, refusal_t *no)
{
    server_t *srv = r->w->srv;
    if (!hdr_host_allowed(r->h.host, srv->loopback,
                          srv->cfg->allowed_hosts, srv->cfg->n_allowed_hosts)) {
        *no = (refusal_t){MHD_HTTP_FORBIDDEN, RPC_INVALID_REQUEST, "Forbidden: Host not allowed",
                          NULL, NULL};
        return false;
    }
    if (!hdr_origin_allowed(r->h.origin, srv->loopback,
                            srv->cfg->allowed_origins, srv->cfg->n_allowed_origins)) {
        *no = (refusal_t){MHD_HTTP_FORBIDDEN, RPC_INVALID_REQUEST,
                          "Forbidden: Origin not allowed", NULL, NULL};
        return false;
    }
    return true;
}

/* An issuer's key refetch ended: the requests parked for it may be checked again. */
static void wake_worker(void *arg)
{
    worker_t *w = arg;
    atomic_store(&w->auth_kick, true);
    worker_wake(w);
}

/* ---- slow clients --------------------------------------------------------------------------- */

void http_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe)
{
    worker_t *w = cls;
    conn_t *c = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(c = calloc(1, sizeof *c)))
            return; /* untracked: only libmicrohttpd's own timeout applies */
        c->fd = ci->connect_fd;
        c->since_ms = now_ms();
        c->fresh = true;
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!peers_enter(w->srv->peers, ai ? ai->client_addr : NULL, c->peer)) {
            static _Atomic unsigned refused;
            if (atomic_fetch_add(&refused, 1) % 1000 == 0)
                log_warn("http: a client address holds max_connections_per_address (%u) "
                         "connections: its next ones are closed at once",
                         w->srv->cfg->max_connections_per_address);
            shutdown(c->fd, SHUT_RDWR); /* libmicrohttpd sees the end and closes it */
            c->fd = -1;
        }
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        *socket_context = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && c) {
        /* libmicrohttpd closes the socket right after this: drain it first if the client
         * may still be sending (not while stopping: the daemon's stop frees the slots) */
        bool lingers = !atomic_load(&w->srv->stopping) && linger_wanted(c->fd, c->linger || c->started) &&
                       linger_start(w, c->fd, c->peer); /* keeps the address counted */
        if (c->prev)
            c->prev->next = c->next;
        else
            w->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        if (!lingers)
            peers_leave(w->srv->peers, c->peer);
        auth_memo_clear(&c->memo);
        free(c);
        *socket_context = NULL;
    }
}

static conn_t *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void http_close_slow(worker_t *w, long long now)
{
    const config_t *cfg = w->srv->cfg;
    long long idle = (long long)cfg->idle_timeout_s * 1000;
    long long head = (long long)cfg->header_timeout_s * 1000;
    if (head > idle)
        head = idle;
    for (conn_t *c = w->conns; c; c = c->next) {
        if (c->answering || c->fd < 0)
            continue;
        /* a new connection must send its first head soon; later ones (keep-alive) may idle */
        bool first_head = c->fresh && !c->head_done;
        if (now - c->since_ms <= (first_head ? head : idle))
            continue;
        /* libmicrohttpd notices the end of the stream and closes it as usual */
        shutdown(c->fd, SHUT_RDWR);
        c->fd = -1;
        if (first_head)
            log_info("http: closed a new connection whose request head was not whole after "
                     "header_timeout_s (%us)", cfg->header_timeout_s);
        else
            log_info("http: closed a connection whose request was not whole after "
                     "idle_timeout_s (%us)", cfg->idle_timeout_s);
    }
}

/* The bearer token, before anything else is looked at. False when refused (*no) or parked
 * (r->auth_waiting, connection suspended). */
static bool authenticate(req_t *r, struct MHD_Connection *conn, bool may_wait, refusal_t *no)
{
    worker_t *w = r->w;
    if (!auth_enabled(w->srv->auth))
        return true;
    conn_t *c = conn_of(conn);
    auth_request_t areq = {
        .authorization = r->h.authorization,
        .memo = c ? &c->memo : NULL,
        .n_authorization = r->h.n_authorization,
        .token_in_query = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                      "access_token") != NULL,
        .may_wait = may_wait && !atomic_load(&w->srv->stopping),
        .wake = wake_worker,
        .wake_arg = w,
    };
    auth_result_t res;
    auth_check(w->srv->auth, w->auth_cache, &areq, &res);
    if (res.status == AUTH_OK) {
        r->caller = res.caller;
        return true;
    }
    if (res.status == AUTH_WAIT) {
        if (c)
            c->answering = true; /* parked by us, bounded by the key fetch's timeout */
        r->auth_waiting = true;
        r->next_waiter = w->auth_waiters;
        w->auth_waiters = r;
        MHD_suspend_connection(conn);
        return false;
    }
    log_info("auth: refused (%s)", res.reason);
    static const unsigned status[] = {
        [AUTH_NO_TOKEN] = MHD_HTTP_UNAUTHORIZED, [AUTH_BAD_REQUEST] = MHD_HTTP_BAD_REQUEST,
        [AUTH_INVALID] = MHD_HTTP_UNAUTHORIZED, [AUTH_FORBIDDEN] = MHD_HTTP_FORBIDDEN,
        [AUTH_UNAVAILABLE] = MHD_HTTP_SERVICE_UNAVAILABLE};
    free(r->challenge);
    r->challenge = res.status == AUTH_UNAVAILABLE ? NULL : auth_challenge(w->srv->auth, &res);
    *no = (refusal_t){status[res.status], RPC_INVALID_REQUEST,
                      res.description ? res.description : "Unauthorized: a bearer token is "
                                                          "required",
                      r->challenge ? MHD_HTTP_HEADER_WWW_AUTHENTICATE : NULL, r->challenge};
    return false;
}

static bool method_checks(req_t *r, struct MHD_Connection *conn, const char *method,
                          refusal_t *no)
{
    server_t *srv = r->w->srv;
    if (strcmp(method, "POST") && strcmp(method, "GET") && strcmp(method, "DELETE")) {
        *no = (refusal_t){MHD_HTTP_METHOD_NOT_ALLOWED, RPC_INVALID_REQUEST, "Method not allowed",
                          MHD_HTTP_HEADER_ALLOW,
                          srv->cfg->stateless ? "POST" : "GET, POST, DELETE"};
        return false;
    }
    const char *cl = r->h.content_length;
    if (cl && strtoull(cl, NULL, 10) > srv->cfg->max_body_bytes) {
        *no = (refusal_t){MHD_HTTP_CONTENT_TOO_LARGE, RPC_INVALID_REQUEST,
                          "Request body too large", NULL, NULL};
        return false;
    }
    return true;
}

static enum MHD_Result refuse(req_t *r, struct MHD_Connection *conn)
{
    const refusal_t *no = &r->refused;
    return fail(r, conn, no->status, no->code, no->message, no->h1, no->v1);
}

/* Refused on the first call, before the body is read: libmicrohttpd then closes the
 * connection, which lingers so the client can read the answer (linger.c). */
static enum MHD_Result refuse_early(req_t *r, struct MHD_Connection *conn)
{
    conn_t *c = conn_of(conn);
    if (c)
        c->linger = true;
    return refuse(r, conn);
}

static enum MHD_Result health(req_t *r, struct MHD_Connection *conn, const char *method)
{
    r->answered = true;
    if (strcmp(method, "GET") != 0)
        return queue_json(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                          json_pack("{ss}", "error", "method not allowed"), MHD_HTTP_HEADER_ALLOW,
                          "GET");
    json_t *bundle = reloader_status(r->w->srv->reloader);
    /* anyone may read this: off loopback, a reload error's text (Lua quotes the code near
     * it) stays with the operator's `luamcp status` */
    if (!r->w->srv->loopback && json_is_string(json_object_get(bundle, "last_error")))
        json_object_set_new(bundle, "last_error",
                            json_string("the last reload failed: `luamcp status` on the server "
                                        "says why"));
    json_t *doc = json_pack("{s:s, s:s, s:I, s:o}", "status", "ok", "version", LUAMCP_VERSION,
                            "tools", (json_int_t)r->w->bundle->n_tools, "bundle", bundle);
    return queue_json(conn, MHD_HTTP_OK, doc, NULL, NULL);
}

/* Only POSTs to the endpoint and to the issuer's token route carry a body worth keeping. */
static bool takes_body(worker_t *w, const char *url, const char *method, bool mcp)
{
    if (strcmp(method, "POST") != 0)
        return false;
    return mcp || auth_route_takes_body(w->srv->auth, url, method);
}

static bool append_body(req_t *r, const char *data, size_t n, size_t max)
{
    if (r->len + n > max)
        return false;
    if (r->len + n > r->cap) {
        /* most bodies arrive in one piece: sized to it (a fixed 4 KiB first block cost a
         * large-chunk malloc, and glibc's consolidation of its fast bins, per request) */
        size_t cap = r->cap ? r->cap : n < 256 ? 256 : n;
        while (cap < r->len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *grown = realloc(r->body, cap);
        if (!grown)
            return false;
        r->body = grown;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return true;
}

enum MHD_Result http_handler(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *http_version, const char *upload,
                             size_t *upload_size, void **req_cls)
{
    worker_t *w = cls;
    req_t *r = *req_cls;
    bool mcp = strcmp(url, w->srv->cfg->endpoint) == 0;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        r->w = w;
        r->conn = conn;
        r->gen = ++w->req_gen;
        w->inflight++;
        *req_cls = r;
        read_headers(conn, &r->h);
        conn_t *c = conn_of(conn);
        if (c)
            c->head_done = true;
        const char *bad = strict_head(conn, c, method, http_version);
        if (bad) {
            log_info("http: refused a request head (%s)", bad);
            r->refused = (refusal_t){MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST, bad, NULL, NULL};
            return refuse_early(r, conn); /* the connection closes: nothing after it runs */
        }
        if (mcp && origin_checks(r, conn, &r->refused) &&
            authenticate(r, conn, true, &r->refused) &&
            !method_checks(r, conn, method, &r->refused) &&
            r->refused.status == MHD_HTTP_CONTENT_TOO_LARGE)
            return refuse_early(r, conn); /* now, before reading it */
        return MHD_YES;
    }
    if (r->auth_waiting) {
        /* Resumed after a key refetch: check again, and this time do not wait. This call
         * carries no body yet (libmicrohttpd reads it after we return), so it must not be
         * taken for the final call of the request. */
        r->auth_waiting = false;
        conn_t *c = conn_of(conn);
        if (c) { /* the body's clock starts now */
            c->answering = false;
            c->since_ms = now_ms();
        }
        if (authenticate(r, conn, false, &r->refused))
            method_checks(r, conn, method, &r->refused);
        return MHD_YES;
    }
    if (r->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->async_resp) { /* resumed: the tool call it waited for is done */
        json_t *resp = r->async_resp, *notes = r->async_notes;
        r->async_resp = r->async_notes = NULL;
        return answer(r, conn, resp, notes, r->accept, NULL);
    }
    if (r->pending && (r->outbox || r->detach) && !r->chan)
        return start_stream(r, conn); /* resumed by req_ask or req_detach */
    if (r->pending || r->chan)
        return MHD_YES; /* still waiting, or its stream does the rest */
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->refused.status) {
            /* drain a refused request's body to answer it on this connection, within reason */
            r->discarded += n;
            return r->discarded > 16 * w->srv->cfg->max_body_bytes ? MHD_NO : MHD_YES;
        }
        if (!takes_body(w, url, method, mcp)) {
            /* read and dropped, never held: a body where none is expected */
            r->discarded += n;
            return r->discarded > w->srv->cfg->max_body_bytes ? MHD_NO : MHD_YES;
        }
        if (!append_body(r, upload, n, w->srv->cfg->max_body_bytes)) {
            r->refused = (refusal_t){MHD_HTTP_CONTENT_TOO_LARGE, RPC_INVALID_REQUEST,
                                     "Request body too large", NULL, NULL};
            r->discarded = r->len + n;
        }
        return MHD_YES;
    }
    conn_t *c = conn_of(conn);
    if (c)
        c->answering = true; /* the request is whole: its answer may take its time */
    if (r->refused.status)
        return refuse(r, conn);
    if (mcp) {
        if (strcmp(method, "POST") == 0)
            return mcp_post(r, conn);
        if (strcmp(method, "GET") == 0)
            return mcp_get(r, conn);
        return mcp_delete(r, conn);
    }
    if (strcmp(url, "/healthz") == 0)
        return health(r, conn, method);
    int status;
    json_t *doc;
    if (auth_route(w->srv->auth, url, method, r->body, r->len,
                   r->h.authorization, &status, &doc)) {
        r->answered = true;
        return queue_json(conn, (unsigned)status, doc, NULL, NULL);
    }
    r->answered = true;
    return queue_json(conn, MHD_HTTP_NOT_FOUND, json_pack("{ss}", "error", "not found"), NULL,
                      NULL);
}

void http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                    enum MHD_RequestTerminationCode toe)
{
    worker_t *w = cls;
    req_t *r = *req_cls;
    conn_t *c = conn_of(conn);
    if (c) { /* keep-alive: the next request's clock starts now */
        c->answering = false;
        c->started = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK; /* an error: still lingers */
        c->head_done = false;
        c->fresh = false;
        c->since_ms = now_ms();
    }
    if (!r)
        return;
    w->inflight--;
    *req_cls = NULL;
    if (r->auth_waiting) /* closed while parked (shutdown) */
        unlink_waiter(&w->auth_waiters, r);
    if (r->pending && r->chan && !atomic_load(&w->srv->stopping)) {
        /* Its stream's connection is gone (a network drop, or ctx.close_stream), not its
         * request: the call goes on and its channel keeps what it says for a resume. */
        r->orphan = true;
        r->conn = NULL;
        return;
    }
    free_req(r);
}

/* Frees r and what it holds: its waiting call (cancelled) included. */
static void free_req(req_t *r)
{
    worker_t *w = r->w;
    if (r->pending) {
        unlink_waiter(&w->tool_waiters, r);
        rpc_pending_free(r->pending);
    }
    forget_ask(r);
    if (r->chan) {
        sse_chan_finish(r->chan);
        sse_chan_release(r->chan); /* the request's reference */
    }
    json_decref(r->outbox);
    json_decref(r->async_resp);
    json_decref(r->async_notes);
    auth_caller_unref(r->caller);
    free(r->challenge);
    free(r->bearer);
    free(r->body);
    free(r);
}
