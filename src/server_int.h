/* Shared by server.c (threads, loops, daemons) and http.c (what one request gets). */
#ifndef LUAMCP_SERVER_INT_H
#define LUAMCP_SERVER_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <jansson.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <stdint.h>

#include "luamcp/audit.h"
#include "luamcp/auth.h"
#include "luamcp/bundle.h"
#include "luamcp/config.h"
#include "luamcp/session.h"
#include "luamcp/task.h"

typedef struct server server_t;
typedef struct stream stream_t;
typedef struct req req_t;
typedef struct chan chan_t;
typedef struct worker worker_t;
typedef struct peers peers_t;

#define PEER_KEY_LEN 9 /* family, then the IPv4 address or the IPv6 /64 */

/* One SSE response (sse.c): fed from any thread under mu, read by libmicrohttpd. */
struct stream {
    pthread_mutex_t mu;
    int refs;                  /* the response's, plus its session's or channel's */
    worker_t *w;
    struct MHD_Connection *conn;
    char *buf;
    size_t len, off, cap;
    bool closed, suspended;
    char session[SESSION_ID_LEN + 1]; /* set on a session's GET stream */
    chan_t *chan;              /* the channel it writes for (a reference), or NULL */
    size_t max;                /* bytes it may hold unread before it is ended (0: default) */
    long long expires_ms;      /* when its caller's token expires (now_ms clock); 0: never */
    stream_t *next;            /* w->streams, worker thread only */
    /* a subscriptions/listen stream (listen.c), under srv->listen_mu: */
    bool listening;            /* registered in srv->listeners */
    unsigned listen;           /* LISTEN_* it delivers */
    bool listen_ended;         /* its closing result was written */
    unsigned char listen_owner[SESSION_OWNER_LEN]; /* who opened it (caller fingerprint) */
    char *listen_id;           /* the request's id, as JSON (owned) */
    char **listen_uris;        /* resources whose updates it delivers (owned) */
    size_t n_listen_uris;
    char **listen_tasks;       /* tasks whose status changes it delivers (owned) */
    size_t n_listen_tasks;
    stream_t *listen_prev, *listen_next; /* srv->listeners */
};

/* The client's answer to a server request, on its way to the worker whose call asked. */
typedef struct answer {
    req_t *r;
    unsigned long long gen;   /* r's, so an answer for a request since gone is dropped */
    json_t *msg;              /* the JSON-RPC response (owned); NULL with cancel */
    bool cancel;              /* notifications/cancelled for r's request */
    struct answer *next;
} answer_t;

/* A server request waiting for the client (ctx.sample, ctx.elicit), or a client request whose
 * call waits (so notifications/cancelled can reach it): routes what arrives, on any worker,
 * to the worker holding the call. Ids of calls are "c:" and the request id's JSON. What
 * arrives reaches it only from the same caller (owner) on the same checked session ("" for
 * none): anyone else's attempt is an unknown id. */
typedef struct ask {
    char id[48];
    char session[SESSION_ID_LEN + 1];
    unsigned char owner[SESSION_OWNER_LEN]; /* auth_caller_owner of the call's caller */
    int worker;
    req_t *r;
    unsigned long long gen;
    struct ask *next;
} ask_t;

#define MAX_ASKS 10000
#define ASK_ID_PREFIX "luamcp-" /* a server request's id: this, then 32 random hex digits */
#define ASK_ID_LEN (sizeof ASK_ID_PREFIX + 32)

/* One TCP connection of a worker: a request must arrive whole (headers and body) within
 * idle_timeout_s of the connection opening or of the previous answer, however slowly its
 * bytes trickle in (libmicrohttpd's own timeout only measures silence). */
typedef struct conn {
    int fd;
    long long since_ms;     /* when the current request's clock started */
    bool answering;         /* the request is complete (or parked by us): no deadline */
    auth_memo_t memo;       /* the last token verified on this connection */
    const char *target;     /* the current request's target as received (strict_target) */
    size_t target_len;
    bool target_ok;         /* it is in canonical origin-form */
    bool linger;            /* answered early (400, 413): drain before the socket is closed */
    bool started;           /* a request line arrived and its request has not completed: a
                             * close now (libmicrohttpd's own 431, a timeout) may leave a body
                             * on its way, so it lingers too */
    bool head_done;         /* the current request's head arrived (the handler ran) */
    bool fresh;             /* no request answered on it yet (header_timeout_s applies) */
    unsigned char peer[PEER_KEY_LEN]; /* its count in srv->peers (peer[0] 0: not counted) */
    struct conn *prev, *next;
} conn_t;

struct worker {
    server_t *srv;
    int index;
    pthread_t thread;
    struct MHD_Daemon *daemon;
    int epfd;
    int wakefd;             /* eventfd: other threads poke this worker */
    bundle_t *bundle;
    _Atomic(bundle_t *) pending; /* published by a reload; swapped in between requests */
    stream_t *streams;      /* open SSE streams served by this worker (its thread only) */
    req_t *auth_waiters;    /* requests parked until an issuer's keys are refetched */
    req_t *tool_waiters;    /* tools/call parked while their handlers wait for backends */
    struct fetch_engine *fetch; /* this worker's outbound HTTP (mcp.http) */
    auth_cache_t *auth_cache;
    audit_buf_t *audit;
    unsigned inflight;      /* requests between first call and completion */
    unsigned long long req_gen;
    pthread_mutex_t inbox_mu;
    answer_t *inbox;        /* answers for this worker's calls, from any worker */
    conn_t *conns;          /* its open connections */
    long long next_conn_check_ms;
    long long next_keepalive_ms;
    long long next_chan_sweep_ms;
    long long next_expiry_ms;  /* the first of its streams' token expiries; 0: none */
    long long next_deadline_check_ms;
    atomic_bool auth_kick;  /* a key refetch ended: resume auth_waiters */
    struct running *tasks;  /* task rounds it runs, detached from any request (http.c) */
    atomic_bool task_kick;  /* a task it runs was cancelled: drop its round */
    struct lingering *lingering; /* LINGER_SLOTS sockets being drained before close (linger.c) */
    unsigned n_lingering;
};

struct server {
    const config_t *cfg;
    worker_t *workers;
    int n_workers;
    session_store_t *sessions;
    auth_t *auth;
    audit_t *audit;
    struct reloader *reloader;
    atomic_ullong version;  /* of the bundles being served (published ones) */
    pthread_mutex_t asks_mu;
    ask_t *asks;
    unsigned n_asks;
    pthread_mutex_t listen_mu; /* subscriptions/listen streams (listen.c) */
    stream_t *listeners;
    unsigned n_listeners;
    pthread_mutex_t chans_mu;  /* resumable SSE channels (sse.c) */
    chan_t *chans;
    unsigned n_chans;
    struct chan_holders *chan_holders; /* how many each caller holds (sse.c) */
    task_table_t *tasks;       /* the tasks extension (task.h) */
    atomic_uint task_listeners; /* listen streams with taskIds (under listen_mu to change) */
    atomic_bool stopping;
    struct sockaddr_storage addr;
    bool loopback;          /* bound to a loopback address */
    char *tls_cert_pem, *tls_key_pem;
    peers_t *peers;         /* connections per client address (peers.c) */
};

/* strict.c: the request head read one way only (RFC 9112) */
/* Why the head of conn's request (c: its connection) is refused, a static string; NULL when
 * fine. On the handler's first call, with its method and version. */
const char *strict_head(struct MHD_Connection *conn, const conn_t *c, const char *method,
                        const char *version);
/* MHD_OPTION_URI_LOG_CALLBACK: records the target as received, before it is decoded. */
void *strict_target(void *cls, const char *uri, struct MHD_Connection *conn);

/* peers.c: connections per client address, any thread */
peers_t *peers_new(unsigned max, bool exempt_loopback);
void peers_free(peers_t *p);
/* Counts a new connection from addr in key (PEER_KEY_LEN bytes); false when addr holds its
 * max already (then nothing is counted). */
bool peers_enter(peers_t *p, const struct sockaddr *addr, unsigned char *key);
/* Gives back what peers_enter counted in key. */
void peers_leave(peers_t *p, const unsigned char *key);

/* linger.c: lingering close (worker thread) */
#define LINGER_SLOTS 1024
/* Whether libmicrohttpd's socket fd, about to be closed, should be drained first: we answered
 * its request early, or bytes it sent are still unread. */
bool linger_wanted(int fd, bool refused_early);
/* Takes a duplicate of fd, shuts it down for writing and drains it from the worker's loop;
 * true when it did, and then the connection's address count (peer) is given back when the
 * drain ends, so lingering sockets count against max_connections_per_address too. */
bool linger_start(worker_t *w, int fd, const unsigned char *peer);
/* EV_LINGER for slot: reads what is there; closes at the end of stream or the byte bound. */
void linger_event(worker_t *w, unsigned slot);
/* Closes the sockets past their time (all of them with all, and frees the slots). */
void linger_sweep(worker_t *w, long long now_ms, bool all);

/* http.c */
enum MHD_Result http_handler(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **req_cls);
void http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                    enum MHD_RequestTerminationCode toe);
void http_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe);
/* Worker thread: closes connections whose request is not whole after idle_timeout_s. */
void http_close_slow(worker_t *w, long long now_ms);
/* Worker thread: resumes streams with data or closed and requests parked for keys; sends
 * keepalives when due. */
void http_service(worker_t *w, long long now_ms, bool closing);
/* Worker thread, leaving its loop: ends every call still waiting for backends. */
void http_abort_waiting(worker_t *w);
/* Any thread: closes a stream detached from its session (DELETE, shutdown). */
void http_stream_close(void *stream);
/* Once, before the workers start: what http.c needs of the server outside a request. */
void http_init(server_t *srv);
/* Any thread: sends one JSON-RPC message (text) on every open GET stream. */
void http_broadcast(server_t *srv, const char *json);

/* epoll data of the worker's loop: a tag in the high half, the fd in the low half */
#define EV_MHD (1ULL << 32)
#define EV_WAKE (2ULL << 32)
#define EV_FETCH (3ULL << 32)
#define EV_LINGER (4ULL << 32)

/* sse.c */
stream_t *sse_stream_new(worker_t *w, struct MHD_Connection *conn, const char *session);
void sse_stream_ref(stream_t *s);
void sse_stream_release(stream_t *s);
void sse_stream_append(stream_t *s, const char *data, size_t n);
void sse_stream_close(stream_t *s);
/* Worker thread: keepalive and closing, and resuming a parked connection with data. */
void sse_stream_tick(stream_t *s, bool ping, bool closing);
ssize_t sse_stream_read(void *cls, uint64_t pos, char *out, size_t max);
/* A new channel of session and owner (registered for resumption, evicting the owner's oldest
 * when it is at its bound); the caller holds a reference. */
chan_t *sse_chan_new(server_t *srv, const char *session,
                     const unsigned char owner[SESSION_OWNER_LEN], bool standalone);
bool sse_chan_standalone(const chan_t *c);
void sse_chan_release(chan_t *c);
const char *sse_chan_id(const chan_t *c);
/* Makes s the channel's writer after replaying its events after seq `after` into s. */
void sse_chan_attach(chan_t *c, stream_t *s, unsigned long long after);
/* The priming event (id CHANNEL-0, retry, empty data) on the current writer. */
void sse_chan_prime(chan_t *c);
/* One JSON-RPC message as the channel's next event. */
void sse_chan_emit(chan_t *c, const char *json);
/* Ends the current writer on purpose; later events wait in the log for a resume. */
void sse_chan_detach_writer(chan_t *c);
/* No more events: the writer ends after what it has. */
void sse_chan_finish(chan_t *c);
/* s's response is gone: it stops being the writer. */
void sse_chan_lost_writer(chan_t *c, stream_t *s);
/* The channel of a Last-Event-ID on session, opened by owner (a new reference) and the seq
 * in it, or NULL. */
chan_t *sse_chan_find(server_t *srv, const char *event_id, const char *session,
                      const unsigned char owner[SESSION_OWNER_LEN],
                      unsigned long long *after);
/* Drops channels idle past the resume window (all of them with all). */
void sse_chan_sweep(server_t *srv, bool all);

/* listen.c: subscriptions/listen streams (2026-07-28) */
#define LISTEN_TOOLS 1u
#define LISTEN_PROMPTS 2u
#define LISTEN_RESOURCES 4u
#define LISTEN_UPDATES 8u    /* resourceSubscriptions */
#define LISTEN_TASKS 16u     /* taskIds (the tasks extension) */
#define LISTEN_MAX 10000
#define LISTEN_PER_CALLER 32 /* a stream holds a connection for as long as the token lasts */
/* A stream for the acknowledged filter `granted` (borrowed) of the request `id` by `owner`,
 * its acknowledgment written, registered; NULL when LISTEN_MAX streams are open, or
 * LISTEN_PER_CALLER of that owner's (*per_caller set), or memory ran out. */
stream_t *listen_open(worker_t *w, struct MHD_Connection *conn, json_t *id, json_t *granted,
                      const unsigned char owner[SESSION_OWNER_LEN], bool *per_caller);
/* The stream's response is gone: unregister it (a no-op for other streams). */
void listen_drop(server_t *srv, stream_t *s);
/* Writes the subscription's closing result (shutdown, token expired) and ends the stream. */
void listen_end(server_t *srv, stream_t *s);
/* notifications/{tools,prompts,resources}/list_changed (kind 0, 1, 2) to the streams that
 * asked for it, and to every session's GET stream (the 2025 eras). */
void listen_list_changed(server_t *srv, int kind);
void listen_resource_updated(server_t *srv, const char *uri);
/* notifications/tasks (detail: the DetailedTask) to owner's streams that listen for task id. */
void listen_task_changed(server_t *srv, const char *id, const unsigned char *owner,
                         json_t *detail);

long long now_ms(void);
void worker_wake(worker_t *w);

#endif
