/* rpc — JSON-RPC 2.0 envelopes and the MCP methods, with no HTTP in sight. The transport
 * parses the body, asks rpc_classify what it holds, and hands requests to rpc_dispatch. */
#ifndef LUAMCP_RPC_H
#define LUAMCP_RPC_H

#include <jansson.h>
#include <stdbool.h>

#include "luamcp/audit.h"
#include "luamcp/auth.h"
#include "luamcp/bundle.h"
#include "luamcp/config.h"
#include "luamcp/session.h"
#include "luamcp/task.h"

/* JSON-RPC 2.0 and MCP error codes */
#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_INTERNAL_ERROR -32603
#define RPC_SESSION_NOT_FOUND -32001
#define RPC_RESOURCE_NOT_FOUND -32002
#define RPC_HEADER_MISMATCH -32020      /* 2026-07-28: headers and body disagree */
#define RPC_MISSING_CAPABILITY -32021   /* 2026-07-28: the client lacks a capability needed */
#define RPC_UNSUPPORTED_VERSION -32022  /* 2026-07-28 */
#define RPC_MODERN_VERSION "2026-07-28"

#define RPC_LATEST_VERSION "2025-11-25"
#define RPC_DEFAULT_VERSION "2025-03-26" /* assumed when a client sends no version header */

typedef enum rpc_kind { RPC_REQUEST, RPC_NOTIFICATION, RPC_RESPONSE } rpc_kind_t;

typedef struct rpc_msg {
    rpc_kind_t kind;
    const char *method; /* borrowed from the message; NULL for responses */
    json_t *id;         /* borrowed; NULL for notifications */
    json_t *params;     /* borrowed; may be NULL */
} rpc_msg_t;

/* Checks the envelope of msg (borrowed). 0 and *out filled, or -1 with *error set to a new
 * JSON-RPC error response (id echoed when it was valid, else null). */
int rpc_classify(json_t *msg, rpc_msg_t *out, json_t **error);

/* The supported version string equal to v, or NULL. */
const char *rpc_version_supported(const char *v);
extern const char *const rpc_versions[]; /* NULL-terminated, newest first */

typedef struct rpc_pending rpc_pending_t;
struct fetch_engine;

typedef struct rpc_env {
    const config_t *cfg;
    struct fetch_engine *fetch; /* the worker's engine for mcp.http; NULL = none */
    rpc_pending_t *pending;     /* out: the call waits for backends (rpc_dispatch gave NULL) */
    session_store_t *sessions;  /* with session_id: the request's session, if any */
    const char *session_id;
    unsigned client_caps;       /* out (initialize): SESSION_CAP_* the client declared */
    /* Sends a request to the client on this request's stream (ctx.sample, ctx.elicit): the
     * transport gives it an id and routes the answer back (rpc_pending_answer). 0, or -1. */
    int (*ask)(void *arg, json_t *request);
    void *ask_arg;
    /* Ends the request's SSE connection early (ctx.close_stream); arg is ask_arg. */
    void (*detach)(void *arg);
    bool modern;                /* a 2026-07-28 request: no session; _meta says what it does */
    unsigned peer_caps;         /* SESSION_CAP_* the client declared (session or _meta) */
    int peer_log_level;         /* the notifications/message level it asked for; -1 none */
    bundle_t *bundle;
    auth_caller_t *caller;      /* the verified caller; NULL when auth is off */
    const char *bearer;         /* its access token, as sent (kept from scripts) */
    audit_buf_t *audit;         /* where access decisions are recorded (may be NULL) */
    const char *negotiated;     /* out: set by initialize (static string) */
    json_t *notifications;      /* out: new array of notifications emitted, or NULL */
    bool progress_ok;           /* the transport can deliver notifications (SSE) */
    char challenge[4096];       /* out: non-empty = answer 403 insufficient_scope, these scopes */
    task_table_t *tasks;        /* the server's tasks (2026-07-28 extension); NULL: none */
    int worker;                 /* the worker's index, for the tasks it runs */
    bool detached;              /* out: env->pending is a task's round, to run detached from
                                   this request (whose response rpc_dispatch gave) */
} rpc_env_t;

/* Runs one request and returns the new JSON-RPC response (result or error), or NULL when a
 * tool call waits for backends: env->pending is then set, and the caller owns it. */
json_t *rpc_dispatch(rpc_env_t *env, const rpc_msg_t *msg);

/* A tools/call waiting for backends. It holds its bundle, its request id and progress token;
 * the caller keeps env->caller alive until it is freed. wake(arg) is called (on the worker
 * thread, from the fetch engine) when it can go on: then rpc_pending_resume. */
void rpc_pending_on_wake(rpc_pending_t *p, void (*wake)(void *arg), void *arg);
/* The JSON-RPC response, or NULL while it still waits; *notes receives the notifications
 * emitted so far (a new array or NULL). */
json_t *rpc_pending_resume(rpc_pending_t *p, json_t **notes);
/* The client's answer (a JSON-RPC response object, borrowed; NULL when it did not come in
 * time) to the request the call sent: the call goes on. As rpc_pending_resume. */
json_t *rpc_pending_answer(rpc_pending_t *p, json_t *answer, json_t **notes);
/* Whether the call waits for the client (not for backends), and until when (wall clock). */
bool rpc_pending_asking(const rpc_pending_t *p, double *deadline);

/* A task's round (env->detached): whether it should be resumed at once (ctx.task), without
 * waiting to be woken. */
bool rpc_task_ready(const rpc_pending_t *p);
/* Runs a task's round on (woken, or ready); true when the round is over (the task is updated,
 * or was cancelled or expired): the caller then frees p. */
bool rpc_task_step(rpc_pending_t *p);
/* Whether the task of this round was cancelled or has expired: the round should be dropped. */
bool rpc_task_stopped(const rpc_pending_t *p);

/* A JSON-RPC error response for the call's request. */
json_t *rpc_pending_error(rpc_pending_t *p, int code, const char *message);

/* A response ending the call with a tool error (the server is stopping, say). */
json_t *rpc_pending_abort(rpc_pending_t *p, const char *why);
/* Abandons it if still waiting (transfers cancelled) and frees it. */
void rpc_pending_free(rpc_pending_t *p);

json_t *rpc_error(json_t *id, int code, const char *message);

/* What this server does, whatever the scripts declare today (a reload may add prompts or
 * resources to a client that began without any): initialize's capabilities in the 2025 eras
 * (modern false: change notifications and logging only with sessions, which carry them), or
 * server/discover's in 2026-07-28 (subscriptions/listen carries them; the tasks extension). */
json_t *rpc_capabilities(const config_t *cfg, bool modern);

#define RPC_LISTEN_MAX_URIS 256
/* subscriptions/listen (2026-07-28): checks the request's notification filter and keeps what
 * this server honors for this caller (list changes; the resources it may read). NULL and
 * *granted (a new filter object for the acknowledgment), or a new -32602 error response. */
json_t *rpc_listen_filter(rpc_env_t *env, const rpc_msg_t *m, json_t **granted);

#endif
