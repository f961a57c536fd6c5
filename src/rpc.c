#include "luamcp/rpc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <openssl/crypto.h>
#include <time.h>

#include "luamcp/avail.h"
#include "luamcp/catalog.h"
#include "luamcp/clock.h"
#include "luamcp/log.h"
#include "luamcp/secret.h"
#include "luamcp/version.h"

const char *const rpc_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

const char *rpc_version_supported(const char *v)
{
    for (int i = 0; rpc_versions[i]; i++)
        if (strcmp(v, rpc_versions[i]) == 0)
            return rpc_versions[i];
    return NULL;
}

/* A JSON string of s; bytes that would make it invalid UTF-8 (a name cut mid-character, a
 * hostile header) become '?', so an error message can always be sent. */
static json_t *safe_string(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char buf[512];
    size_t n = 0;
    for (; s[n] && n < sizeof buf - 1; n++)
        buf[n] = (unsigned char)s[n] < 0x80 ? s[n] : '?';
    buf[n] = '\0';
    return json_string(buf);
}

json_t *rpc_error(json_t *id, int code, const char *message)
{
    return json_pack("{sssOs{siso}}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
                     "code", code, "message", safe_string(message));
}

/* result stolen; built directly (json_pack's format parsing is slow for every answer) */
static json_t *rpc_result(json_t *id, json_t *result)
{
    json_t *r = json_object();
    json_object_set_new_nocheck(r, "jsonrpc", json_string_nocheck("2.0"));
    json_object_set_nocheck(r, "id", id);
    json_object_set_new_nocheck(r, "result", result);
    if (json_object_size(r) != 3) { /* out of memory, or no id or result */
        json_decref(r);
        return NULL;
    }
    return r;
}

static bool valid_id(const json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

int rpc_classify(json_t *msg, rpc_msg_t *out, json_t **error)
{
    memset(out, 0, sizeof *out);
    if (json_is_array(msg)) {
        *error = rpc_error(NULL, RPC_INVALID_REQUEST,
                           "Invalid Request: batches are not supported");
        return -1;
    }
    if (!json_is_object(msg)) {
        *error = rpc_error(NULL, RPC_INVALID_REQUEST, "Invalid Request: expected an object");
        return -1;
    }
    json_t *id = json_object_get(msg, "id");
    json_t *echo = valid_id(id) ? id : NULL;
    json_t *jsonrpc = json_object_get(msg, "jsonrpc");
    if (!json_is_string(jsonrpc) || strcmp(json_string_value(jsonrpc), "2.0") != 0) {
        *error = rpc_error(echo, RPC_INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\"");
        return -1;
    }
    json_t *method = json_object_get(msg, "method");
    if (!method) {
        /* a response from the client (to a server request) */
        if (!valid_id(id) || (!json_object_get(msg, "result") && !json_object_get(msg, "error"))) {
            *error = rpc_error(echo, RPC_INVALID_REQUEST,
                               "Invalid Request: a message needs a method, or an id with a "
                               "result or error");
            return -1;
        }
        out->kind = RPC_RESPONSE;
        out->id = id;
        return 0;
    }
    if (!json_is_string(method)) {
        *error = rpc_error(echo, RPC_INVALID_REQUEST, "Invalid Request: method must be a string");
        return -1;
    }
    if (id && !valid_id(id)) {
        *error = rpc_error(NULL, RPC_INVALID_REQUEST,
                           "Invalid Request: id must be a string or an integer");
        return -1;
    }
    json_t *params = json_object_get(msg, "params");
    out->kind = id ? RPC_REQUEST : RPC_NOTIFICATION;
    out->method = json_string_value(method);
    out->id = id;
    out->params = params;
    return 0;
}

/* ---- methods ----------------------------------------------------------------------------- */

json_t *rpc_capabilities(const config_t *cfg, bool modern)
{
    int notify = modern || !cfg->stateless;
    json_t *caps = json_pack("{s:{s:b}, s:{s:b}, s:{s:b, s:b}, s:{}}", "tools", "listChanged",
                             notify, "prompts", "listChanged", notify, "resources", "subscribe",
                             notify, "listChanged", notify, "completions");
    if (!modern && notify)
        json_object_set_new(caps, "logging", json_object());
    if (modern)
        json_object_set_new(caps, "extensions", json_pack("{s:{}}", TASK_EXTENSION));
    return caps;
}

static json_t *m_initialize(rpc_env_t *env, const rpc_msg_t *m)
{
    json_t *pv = json_object_get(m->params, "protocolVersion");
    if (!json_is_string(pv))
        return rpc_error(m->id, RPC_INVALID_PARAMS,
                         "Invalid params: protocolVersion must be a string");
    const char *v = rpc_version_supported(json_string_value(pv));
    env->negotiated = v ? v : RPC_LATEST_VERSION;
    json_t *caps = json_object_get(m->params, "capabilities");
    env->client_caps = (json_is_object(json_object_get(caps, "sampling")) ? SESSION_CAP_SAMPLING : 0) |
                       (json_is_object(json_object_get(caps, "elicitation")) ? SESSION_CAP_ELICITATION : 0);
    json_t *ours = rpc_capabilities(env->cfg, false);
    json_t *result = json_pack("{s:s, s:o, s:{s:s, s:s}}", "protocolVersion", env->negotiated,
                               "capabilities", ours, "serverInfo", "name", "luamcp", "version",
                               LUAMCP_VERSION);
    if (env->cfg->instructions)
        json_object_set_new(result, "instructions", json_string(env->cfg->instructions));
    return rpc_result(m->id, result);
}

static bool visible(const rpc_env_t *env, size_t target)
{
    policy_decision_t d;
    return policy_static(env->bundle->policies, target, env->caller, env->cfg->dev, &d) ==
           POLICY_ALLOW;
}

static json_t *paginate(rpc_env_t *env, const rpc_msg_t *m, json_t *all, const char *key);

static json_t *m_tools_list(rpc_env_t *env, const rpc_msg_t *m)
{
    const bundle_t *b = env->bundle;
    json_t *all = json_array();
    for (size_t i = 0; i < b->n_tools; i++) /* in name order: the bundle keeps them sorted */
        if (visible(env, i) && avail_on(AVAIL_TOOL, b->tools[i].name))
            json_array_append(all, b->tools[i].descriptor);
    return paginate(env, m, all, "tools");
}

static json_t *decision_json(const policy_decision_t *d)
{
    json_t *o = json_pack("{s:s, s:s}", "decision", policy_verdict_name(d->verdict), "reason",
                          d->reason);
    if (d->rule[0])
        json_object_set_new(o, "rule", json_string(d->rule));
    if (d->verdict == POLICY_CHALLENGE)
        json_object_set_new(o, "scopes", json_string(d->scopes));
    return o;
}

/* What a decision is about: a tool, prompt or resource (target index i, see bundle.h). */
typedef struct target {
    const char *kind;   /* "tool", "prompt", "resource" */
    const char *name;   /* as audited: the tool or prompt name, the resource's URI */
    const char *policy_name; /* as policy checks see it: "NAME", "prompt:NAME", "resource:KEY" */
    size_t index;
    bool *warned;
} target_t;

/* Decides a request on target, records it, and says whether it may go on. */
static bool authorize_target(rpc_env_t *env, const rpc_msg_t *m, const target_t *tg,
                             json_t *args, policy_decision_t *d)
{
    bundle_t *b = env->bundle;
    size_t i = tg->index;
    long long t0 = clock_mono_ns();
    policy_decide(b->policies, b->vm, i, tg->policy_name, env->caller, args, env->cfg->dev, d);
    long long elapsed = clock_mono_ns() - t0;
    if (d->unguarded && !*tg->warned) {
        log_warn("%s %s is covered by no policy; allowed only because of --dev", tg->kind,
                 tg->name);
        *tg->warned = true;
    }
    /* the record every call makes: written as text, not built as JSON values */
    text_out *o = audit_begin(env->audit);
    audit_str(o, "decision", policy_verdict_name(d->verdict));
    audit_str(o, "reason", d->reason);
    audit_str(o, "rule", d->rule[0] ? d->rule : NULL);
    audit_str(o, "scopes", d->verdict == POLICY_CHALLENGE ? d->scopes : NULL);
    audit_str(o, tg->kind, tg->name);
    if (env->caller) {
        audit_str(o, "subject", env->caller->subject);
        audit_str(o, "client_id", env->caller->client_id);
    }
    if (strcmp(m->method, "tools/call") != 0) /* prompts/get, resources/read, completion */
        audit_str(o, "method", m->method);
    audit_json(o, "request_id", m->id);
    audit_int(o, "bundle", (long long)b->version);
    audit_fixed2(o, "latency_us", (double)elapsed / 1000.0);
    json_t *logged = policy_loggable_args(b->policies, i, args);
    audit_json(o, "args", logged);
    json_decref(logged);
    if (b->shadow) {
        policy_decision_t sd;
        policy_decide(b->shadow, b->vm, i, tg->policy_name, env->caller, args, env->cfg->dev,
                      &sd);
        if (sd.verdict != d->verdict) {
            json_t *shadow = decision_json(&sd);
            audit_json(o, "shadow", shadow);
            json_decref(shadow);
            log_notice("shadow policies decide %s for %s %s (live: %s; %s)",
                       policy_verdict_name(sd.verdict), m->method, tg->name,
                       policy_verdict_name(d->verdict), sd.reason);
        }
    }
    audit_end(env->audit);
    return d->verdict == POLICY_ALLOW;
}

static bool authorize(rpc_env_t *env, const rpc_msg_t *m, const tool_t *t, json_t *args,
                      policy_decision_t *d)
{
    target_t tg = {"tool", t->name, t->name, bundle_index(env->bundle, t),
                   &((tool_t *)t)->warned};
    return authorize_target(env, m, &tg, args, d);
}

/* The answer to a tools/call of name the caller may not make (d: the decision; NULL when there
 * is no such tool): a step-up, a denial as a tool error, or, for a tool the caller may not
 * even see, exactly the answer for one that does not exist. */
static json_t *tool_refusal(const rpc_msg_t *m, const policy_decision_t *d, const char *name)
{
    if (d && d->verdict == POLICY_CHALLENGE)
        return rpc_error(m->id, RPC_INVALID_REQUEST, "Forbidden: insufficient scope");
    char msg[320];
    if (d && d->verdict == POLICY_DENY) {
        snprintf(msg, sizeof msg, "Access denied: %s", d->reason);
        return rpc_result(m->id, tool_error_result(msg));
    }
    snprintf(msg, sizeof msg, "Unknown tool: %.128s", name);
    return rpc_error(m->id, RPC_INVALID_PARAMS, msg);
}

struct rpc_pending {
    tool_call_t call;
    json_t *id, *token;
    char *uri;              /* resources/read: the URI (call.uri points here) */
    bundle_t *bundle;       /* a reference, once it waits */
    void (*wake)(void *);
    void *wake_arg;
    /* a task's round runs detached from any request: what it holds of its own */
    task_table_t *tasks;
    char task_id[TASK_ID_LEN + 1];
    auth_caller_t *held_caller; /* a reference (this worker's, as the round is) */
    char *held_bearer;
    json_t *held_args, *held_responses;
};

static json_t *take_notes(tool_call_t *call)
{
    json_t *notes = NULL;
    if (json_array_size(call->notifications)) {
        notes = call->notifications;
        call->notifications = json_array();
    }
    return notes;
}

static void pending_wake(tool_call_t *call, void *arg)
{
    (void)call;
    rpc_pending_t *p = arg;
    if (p->wake)
        p->wake(p->wake_arg);
}

void rpc_pending_on_wake(rpc_pending_t *p, void (*wake)(void *arg), void *arg)
{
    p->wake = wake;
    p->wake_arg = arg;
    p->call.wake = pending_wake;
    p->call.wake_arg = p;
}

/* The response of a call that has finished with result. */
static json_t *finish_call(rpc_pending_t *p, json_t *result)
{
    if (p->call.rpc_error) {
        json_decref(result);
        /* a handler's message may quote a secret or a credential it was given */
        secret_scope(p->call.secrets);
        secret_redact(p->call.rpc_message);
        secret_scope(NULL);
        return rpc_error(p->id, p->call.rpc_error, p->call.rpc_message);
    }
    return rpc_result(p->id, result);
}

/* The call waits: env->pending, holding its bundle (a reload must not free the state it runs
 * in). */
static void keep_waiting(rpc_env_t *env, rpc_pending_t *p)
{
    p->bundle = env->bundle;
    p->bundle->refs++;
    env->pending = p;
}

/* After a handler's first step (result NULL: it waits): the call's response, or NULL with
 * env->pending set, the call holding its bundle (a reload must not free the state it runs
 * in). Either way env->notifications gets what it said so far. */
static json_t *launched(rpc_env_t *env, rpc_pending_t *p, json_t *result)
{
    env->notifications = take_notes(&p->call);
    if (!result) {
        keep_waiting(env, p);
        return NULL;
    }
    json_t *resp = finish_call(p, result);
    rpc_pending_free(p);
    return resp;
}

json_t *rpc_pending_resume(rpc_pending_t *p, json_t **notes)
{
    json_t *result = tool_resume(&p->call);
    *notes = take_notes(&p->call);
    return result ? finish_call(p, result) : NULL;
}

json_t *rpc_pending_answer(rpc_pending_t *p, json_t *answer, json_t **notes)
{
    p->call.answer = json_incref(answer);
    p->call.asking = false;
    return rpc_pending_resume(p, notes);
}

bool rpc_pending_asking(const rpc_pending_t *p, double *deadline)
{
    *deadline = p->call.deadline;
    return p->call.asking;
}

json_t *rpc_pending_error(rpc_pending_t *p, int code, const char *message)
{
    return rpc_error(p->id, code, message);
}

json_t *rpc_pending_abort(rpc_pending_t *p, const char *why)
{
    if (p->call.convert) /* a prompt, resource or completion: no tool result */
        return rpc_error(p->id, RPC_INTERNAL_ERROR, why);
    return rpc_result(p->id, tool_error_result(why));
}

void rpc_pending_free(rpc_pending_t *p)
{
    if (!p)
        return;
    tool_call_clear(&p->call);
    json_decref(p->id);
    json_decref(p->token);
    free(p->uri);
    bundle_free(p->bundle);
    auth_caller_unref(p->held_caller);
    if (p->held_bearer) {
        OPENSSL_cleanse(p->held_bearer, strlen(p->held_bearer));
        free(p->held_bearer);
    }
    json_decref(p->held_args);
    json_decref(p->held_responses);
    free(p);
}

/* The arguments as policies and the audit log see them: credentials masked. */
static json_t *masked_args(const tool_t *t, json_t *args)
{
    if (!t->n_credentials || !json_is_object(args))
        return json_incref(args);
    json_t *copy = json_copy(args);
    for (size_t i = 0; copy && i < t->n_credentials; i++)
        if (json_object_get(copy, t->credentials[i]))
            json_object_set_new(copy, t->credentials[i], json_string("[credential]"));
    return copy;
}

static int session_level(const rpc_env_t *env)
{
    return env->progress_ok ? env->peer_log_level : -1; /* notifications need SSE */
}

/* A call about to start, holding what must outlive the request's message. */
static rpc_pending_t *new_pending(rpc_env_t *env, const rpc_msg_t *m, json_t *token)
{
    static _Thread_local unsigned long long serial;
    rpc_pending_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->id = json_incref(m->id);
    p->token = json_incref(env->progress_ok ? token : NULL);
    p->call = (tool_call_t){
        .request_id = p->id,
        .progress_token = p->token,
        .notifications = json_array(),
        .deadline = clock_wall_s() + env->cfg->limits.timeout_ms / 1000.0,
        .serial = ++serial,
        .caller = env->caller,
        .subject_token = env->bearer,
        .fetch = env->fetch,
        .egress = &env->cfg->egress,
        .log_level = session_level(env),
        .ask = env->progress_ok ? env->ask : NULL, /* requests need the POST's SSE stream */
        .ask_arg = env->ask_arg,
        .detach = env->progress_ok && env->session_id ? env->detach : NULL,
        .client_caps = env->peer_caps,
    };
    return p;
}

/* The 2026-07-28 round's inputResponses and requestState for call (name: what it runs).
 * NULL when fine; else the JSON-RPC error to answer. */
static json_t *take_round(rpc_env_t *env, const rpc_msg_t *m, tool_call_t *call,
                          const char *name)
{
    if (!env->modern)
        return NULL;
    call->modern = true;
    json_t *responses = json_object_get(m->params, "inputResponses");
    call->input_responses = json_is_object(responses) ? responses : NULL;
    json_t *state = json_object_get(m->params, "requestState");
    if (state && !json_is_null(state) &&
        (!json_is_string(state) ||
         tool_state_open(json_string_value(state), name,
                         env->caller ? env->caller->fingerprint : NULL, &call->state_in) != 0))
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: requestState was altered, "
                         "has expired, or is not for this call");
    return NULL;
}

/* A tool that declares `requires = {"sampling"}` cannot run for a client without it. */
/* -32021 with the capabilities the client must declare (need: taken), shaped like its own
 * capabilities object. */
static json_t *missing_capability(json_t *id, const char *msg, json_t *need)
{
    json_t *e = rpc_error(id, RPC_MISSING_CAPABILITY, msg);
    json_object_set_new(json_object_get(e, "error"), "data",
                        json_pack("{s:o}", "requiredCapabilities", need));
    return e;
}

static json_t *missing_caps(const rpc_msg_t *m, const tool_t *t, unsigned caps)
{
    unsigned missing = t->requires_caps & ~caps;
    if (!missing)
        return NULL;
    json_t *need = json_object();
    if (missing & SESSION_CAP_SAMPLING)
        json_object_set_new(need, "sampling", json_object());
    if (missing & SESSION_CAP_ELICITATION)
        json_object_set_new(need, "elicitation", json_object());
    char msg[200];
    snprintf(msg, sizeof msg, "Missing capability: tool '%.128s' needs the client's %s", t->name,
             missing & SESSION_CAP_SAMPLING ? "sampling" : "elicitation");
    return missing_capability(m->id, msg, need);
}

/* ---- tasks (the io.modelcontextprotocol/tasks extension of 2026-07-28) ---------------------- */

static bool client_tasks(const rpc_env_t *env)
{
    return env->modern && env->tasks && (env->peer_caps & SESSION_CAP_TASKS);
}

static json_t *needs_tasks_extension(json_t *id, const char *msg)
{
    return missing_capability(id, msg, json_pack("{s:{s:{}}}", "extensions", TASK_EXTENSION));
}

/* A tool declared `task = "required"` runs only for a client that can take a task. */
static json_t *missing_tasks(const rpc_env_t *env, const rpc_msg_t *m, const tool_t *t)
{
    if (t->task != TOOL_TASK_REQUIRED || client_tasks(env))
        return NULL;
    char msg[300];
    snprintf(msg, sizeof msg, "Missing capability: tool '%.128s' runs only as a task; the "
             "client must declare the " TASK_EXTENSION " extension", t->name);
    return needs_tasks_extension(m->id, msg);
}

static double task_deadline(const rpc_env_t *env, long long expires_ms)
{
    double d = clock_wall_s() + env->cfg->tasks.timeout_ms / 1000.0;
    return expires_ms && expires_ms / 1000.0 < d ? expires_ms / 1000.0 : d;
}

/* What a round keeps of the request it began in, which it outlives: the caller (a reference),
 * its token, the input responses. False when out of memory. */
static bool hold_for_task(rpc_env_t *env, rpc_pending_t *p)
{
    p->tasks = env->tasks;
    p->call.is_task = true;
    if (env->caller) {
        env->caller->refs++;
        p->held_caller = p->call.caller = env->caller;
    }
    if (env->bearer && !(p->held_bearer = strdup(env->bearer)))
        return false;
    p->call.subject_token = p->held_bearer;
    if (p->call.input_responses && !p->held_responses &&
        !(p->held_responses = json_deep_copy(p->call.input_responses)))
        return false;
    p->call.input_responses = p->held_responses;
    return true;
}

/* The round's latest ctx.progress message becomes its task's statusMessage. */
static void report_progress(rpc_pending_t *p)
{
    if (!p->call.task_message)
        return;
    task_status_message(p->tasks, p->task_id, p->call.task_message);
    free(p->call.task_message);
    p->call.task_message = NULL;
}

/* The round waits: it goes on detached from this request (env->pending, env->detached). */
static void detach_round(rpc_env_t *env, rpc_pending_t *p)
{
    json_decref(take_notes(&p->call));
    keep_waiting(env, p);
    env->detached = true;
}

static void too_many(const rpc_env_t *env, task_create_status_t st, char *why, size_t n)
{
    if (st == TASK_CALLER_FULL)
        snprintf(why, n, "Too many tasks: this caller holds %u already (tasks.per_caller); "
                 "they are kept for tasks.ttl_ms", env->cfg->tasks.per_caller);
    else
        snprintf(why, n, "Too many tasks: the server holds %u already (tasks.max)",
                 env->cfg->tasks.max);
}

/* A tools/call that waits becomes a task: its CreateTaskResult, or NULL when the table has no
 * room or memory ran out (why says so; the call is then stopped by the caller). */
static json_t *detach_as_task(rpc_env_t *env, rpc_pending_t *p, const char *tool, json_t *args,
                              char *why, size_t n)
{
    unsigned char owner[TASK_OWNER_LEN];
    auth_caller_owner(env->caller, owner);
    json_t *created = NULL;
    task_create_status_t st = task_create(env->tasks, owner, tool, args,
                                          p->call.input_responses, p->call.state_in,
                                          env->worker, p->task_id, &created);
    if (st != TASK_OK) {
        too_many(env, st, why, n);
        log_notice("tools/call %s refused: %s", tool, why);
        return NULL;
    }
    if (!created || !hold_for_task(env, p)) { /* never detached half-held */
        json_t *oom = rpc_error(NULL, RPC_INTERNAL_ERROR, "Internal error: out of memory");
        task_settle(env->tasks, p->task_id, oom, NULL, NULL);
        json_decref(oom);
        json_decref(created);
        snprintf(why, n, "Internal error: out of memory");
        return NULL;
    }
    report_progress(p); /* what its first step said */
    detach_round(env, p);
    return created;
}

bool rpc_task_ready(const rpc_pending_t *p)
{
    return p->call.want_task;
}

bool rpc_task_stopped(const rpc_pending_t *p)
{
    return task_stopped(p->tasks, p->task_id);
}

/* A round's end: the task completes, fails or waits for input. */
static void settle(rpc_pending_t *p, json_t *resp)
{
    task_settle(p->tasks, p->task_id, resp, p->call.input_requests, p->call.state_out);
    json_decref(resp);
}

bool rpc_task_step(rpc_pending_t *p)
{
    if (task_stopped(p->tasks, p->task_id))
        return true;
    json_t *notes = NULL, *resp = rpc_pending_resume(p, &notes);
    json_decref(notes); /* nobody listens: a task reports through tasks/get */
    report_progress(p);
    if (!resp)
        return false;
    settle(p, resp);
    return true;
}

/* tasks/get, tasks/update, tasks/cancel: NULL, *id and the caller as owner, or the error to
 * answer. */
static json_t *task_request(rpc_env_t *env, const rpc_msg_t *m, const char **id,
                            unsigned char owner[TASK_OWNER_LEN])
{
    if (!env->modern || !env->tasks) {
        char msg[200];
        snprintf(msg, sizeof msg, "Method not found: %s is part of the " TASK_EXTENSION
                 " extension of protocol " RPC_MODERN_VERSION, m->method);
        return rpc_error(m->id, RPC_METHOD_NOT_FOUND, msg);
    }
    if (!client_tasks(env)) {
        char msg[200];
        snprintf(msg, sizeof msg, "Missing capability: %s needs the client to declare the "
                 TASK_EXTENSION " extension", m->method);
        return needs_tasks_extension(m->id, msg);
    }
    *id = json_string_value(json_object_get(m->params, "taskId"));
    if (!*id)
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: taskId must be a string");
    auth_caller_owner(env->caller, owner);
    return NULL;
}

static json_t *unknown_task(const rpc_msg_t *m)
{
    /* another caller's task is answered exactly like one that never existed */
    return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: no task with this taskId");
}

static void audit_task(rpc_env_t *env, const rpc_msg_t *m, const char *id)
{
    text_out *o = audit_begin(env->audit);
    audit_str(o, "method", m->method);
    audit_str(o, "task", id);
    if (env->caller) {
        audit_str(o, "subject", env->caller->subject);
        audit_str(o, "client_id", env->caller->client_id);
    }
    audit_json(o, "request_id", m->id);
    audit_end(env->audit);
}

static json_t *m_tasks_get(rpc_env_t *env, const rpc_msg_t *m)
{
    const char *id;
    unsigned char owner[TASK_OWNER_LEN];
    json_t *refused = task_request(env, m, &id, owner);
    if (refused)
        return refused;
    json_t *task = task_get(env->tasks, id, owner);
    return task ? rpc_result(m->id, task) : unknown_task(m);
}

static json_t *m_tasks_cancel(rpc_env_t *env, const rpc_msg_t *m)
{
    const char *id;
    unsigned char owner[TASK_OWNER_LEN];
    json_t *refused = task_request(env, m, &id, owner);
    if (refused)
        return refused;
    if (task_cancel(env->tasks, id, owner) != 0)
        return unknown_task(m);
    audit_task(env, m, id);
    return rpc_result(m->id, json_object());
}

/* The next round of a task whose input requests are all answered: authorized again (the
 * caller's token may have changed, the policies may have), then run on this worker. */
static void start_round(rpc_env_t *env, const rpc_msg_t *m, const char *id,
                        task_round_t *round)
{
    const tool_t *t = bundle_find(env->bundle, round->tool);
    policy_decision_t d = {0};
    json_t *seen = t ? masked_args(t, round->args) : NULL;
    bool allowed = t && authorize(env, m, t, seen, &d);
    json_decref(seen);
    json_t *resp = allowed ? missing_caps(m, t, env->peer_caps)
                           : tool_refusal(m, t ? &d : NULL, round->tool);
    rpc_pending_t *p = resp ? NULL : new_pending(env, m, NULL);
    if (!resp && !p)
        resp = rpc_error(m->id, RPC_INTERNAL_ERROR, "Internal error: out of memory");
    if (resp) {
        task_settle(env->tasks, id, resp, NULL, NULL);
        json_decref(resp);
        return;
    }
    snprintf(p->task_id, sizeof p->task_id, "%s", id);
    p->call.modern = true;
    p->call.task_ok = true;
    p->held_args = round->args;
    p->held_responses = round->responses;
    p->call.input_responses = p->held_responses;
    p->call.state_in = round->state;
    round->args = round->responses = NULL;
    round->state = NULL;
    p->call.deadline = task_deadline(env, round->expires_ms);
    if (!hold_for_task(env, p)) {
        resp = rpc_error(m->id, RPC_INTERNAL_ERROR, "Internal error: out of memory");
        task_settle(env->tasks, id, resp, NULL, NULL);
        json_decref(resp);
        rpc_pending_free(p);
        return;
    }
    json_t *result = tool_start(env->bundle->vm, t, p->held_args, &p->call);
    if (!result) {
        detach_round(env, p);
        return;
    }
    settle(p, finish_call(p, result));
    rpc_pending_free(p);
}

static json_t *m_tasks_update(rpc_env_t *env, const rpc_msg_t *m)
{
    const char *id;
    unsigned char owner[TASK_OWNER_LEN];
    json_t *refused = task_request(env, m, &id, owner);
    if (refused)
        return refused;
    json_t *responses = json_object_get(m->params, "inputResponses");
    if (!json_is_object(responses))
        return rpc_error(m->id, RPC_INVALID_PARAMS,
                         "Invalid params: inputResponses must be an object");
    task_round_t round;
    int rc = task_update(env->tasks, id, owner, responses, env->worker, &round);
    if (rc < 0)
        return unknown_task(m);
    audit_task(env, m, id);
    if (rc == 1)
        start_round(env, m, id, &round);
    task_round_clear(&round);
    return rpc_result(m->id, json_object());
}

static json_t *m_tools_call(rpc_env_t *env, const rpc_msg_t *m)
{
    json_t *name = json_object_get(m->params, "name");
    if (!json_is_string(name))
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: name must be a string");
    json_t *args = json_object_get(m->params, "arguments");
    if (args && !json_is_object(args) && !json_is_null(args))
        return rpc_error(m->id, RPC_INVALID_PARAMS,
                         "Invalid params: arguments must be an object");
    json_t *token = json_object_get(json_object_get(m->params, "_meta"), "progressToken");
    if (token && !json_is_string(token) && !json_is_integer(token))
        return rpc_error(m->id, RPC_INVALID_PARAMS,
                         "Invalid params: progressToken must be a string or an integer");
    const tool_t *t = bundle_find(env->bundle, json_string_value(name));
    policy_decision_t d;
    json_t *seen = t ? masked_args(t, json_is_object(args) ? args : NULL) : NULL;
    bool allowed = t && authorize(env, m, t, seen, &d);
    json_decref(seen);
    if (!allowed) {
        if (t && d.verdict == POLICY_CHALLENGE)
            snprintf(env->challenge, sizeof env->challenge, "%s", d.scopes);
        if (!t) {
            /* audited like a hidden one: probing for tool names leaves a trace */
            json_t *rec = json_pack("{s:s, s:s, s:s, s:O, s:I}", "decision", "unknown", "reason",
                                    "no such tool", "tool", json_string_value(name),
                                    "request_id", m->id, "bundle",
                                    (json_int_t)env->bundle->version);
            if (rec && env->caller && env->caller->subject)
                json_object_set_new(rec, "subject", json_string(env->caller->subject));
            if (rec && env->caller && env->caller->client_id)
                json_object_set_new(rec, "client_id", json_string(env->caller->client_id));
            audit_record(env->audit, rec);
        }
        return tool_refusal(m, t ? &d : NULL, json_string_value(name));
    }
    rpc_pending_t *p = new_pending(env, m, token);
    if (!p)
        return rpc_error(m->id, RPC_INTERNAL_ERROR, "Internal error: out of memory");
    json_t *refused = missing_caps(m, t, p->call.client_caps);
    if (!refused)
        refused = missing_tasks(env, m, t);
    if (!refused)
        refused = take_round(env, m, &p->call, t->name);
    if (refused) {
        rpc_pending_free(p);
        return refused;
    }
    p->call.task_ok = t->task != TOOL_TASK_NEVER && client_tasks(env);
    if (p->call.task_ok) { /* room for the task it may become? asked before anything runs */
        unsigned char owner[TASK_OWNER_LEN];
        auth_caller_owner(env->caller, owner);
        task_create_status_t room = task_room(env->tasks, owner);
        if (room != TASK_OK && t->task == TOOL_TASK_REQUIRED) {
            char why[200];
            too_many(env, room, why, sizeof why);
            rpc_pending_free(p);
            return rpc_error(m->id, RPC_INTERNAL_ERROR, why);
        }
        p->call.task_ok = room == TASK_OK; /* else an optional one runs as an ordinary call */
    }
    if (p->call.task_ok) /* its first wait makes it a task: a task's time from the start */
        p->call.deadline = task_deadline(env, 0);
    json_t *result = tool_start(env->bundle->vm, t, json_is_object(args) ? args : NULL,
                                &p->call);
    if (!result && p->call.task_ok) { /* it waits (or asked with ctx.task): a task now */
        char why[200];
        json_t *created = detach_as_task(env, p, t->name, json_is_object(args) ? args : NULL,
                                         why, sizeof why);
        if (created)
            return rpc_result(m->id, created);
        rpc_pending_free(p); /* stops it: the task it would be has no room */
        return rpc_error(m->id, RPC_INTERNAL_ERROR, why);
    }
    return launched(env, p, result);
}

/* ---- prompts, resources, completion, logging ---------------------------------------------- */


/* A page of all (taken) under key, by the request's cursor. */
static json_t *paginate(rpc_env_t *env, const rpc_msg_t *m, json_t *all, const char *key)
{
    size_t n = json_array_size(all), offset = 0, page = (size_t)env->cfg->page_size;
    json_t *cursor = json_object_get(m->params, "cursor");
    if (cursor && !json_is_null(cursor)) {
        const char *c = json_string_value(cursor);
        char *end = NULL;
        unsigned long long v = c && c[0] >= '0' && c[0] <= '9' ? strtoull(c, &end, 10) : 0;
        if (!c || !end || *end || v == 0 || v >= n) {
            json_decref(all);
            return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: invalid cursor");
        }
        offset = (size_t)v;
    }
    json_t *items = json_array();
    size_t stop = offset + page < n ? offset + page : n;
    for (size_t i = offset; i < stop; i++)
        json_array_append(items, json_array_get(all, i));
    json_decref(all);
    json_t *result = json_pack("{so}", key, items);
    if (stop < n) {
        char next[32];
        snprintf(next, sizeof next, "%zu", stop);
        json_object_set_new(result, "nextCursor", json_string(next));
    }
    return rpc_result(m->id, result);
}

/* Runs a prompt, resource or completion handler: the response, or NULL when it waits. */
static json_t *start_call(rpc_env_t *env, const rpc_msg_t *m, const char *kind,
                          const char *name, int handler_ref, json_t *args,
                          json_t *(*convert)(lua_State *, int, tool_call_t *), const char *uri,
                          const char *mime)
{
    rpc_pending_t *p = new_pending(env, m, NULL);
    if (!p || (uri && !(p->uri = strdup(uri)))) {
        rpc_pending_free(p);
        return rpc_error(m->id, RPC_INTERNAL_ERROR, "Internal error: out of memory");
    }
    p->call.kind = kind;
    p->call.tool_name = name;
    p->call.convert = convert;
    p->call.uri = p->uri;
    p->call.mime_type = mime;
    json_t *refused = strcmp(kind, "completion") ? take_round(env, m, &p->call, name) : NULL;
    if (refused) {
        rpc_pending_free(p);
        return refused;
    }
    return launched(env, p, call_start(env->bundle->vm, handler_ref, args, &p->call));
}

/* The answer to a decision that is not ALLOW; NULL for HIDDEN (the caller answers "unknown"). */
static json_t *refusal(rpc_env_t *env, const rpc_msg_t *m, const policy_decision_t *d)
{
    if (d->verdict == POLICY_CHALLENGE) {
        snprintf(env->challenge, sizeof env->challenge, "%s", d->scopes);
        return rpc_error(m->id, RPC_INVALID_REQUEST, "Forbidden: insufficient scope");
    }
    if (d->verdict == POLICY_DENY) {
        char msg[320];
        snprintf(msg, sizeof msg, "Access denied: %s", d->reason);
        secret_redact(msg);
        return rpc_error(m->id, RPC_INVALID_REQUEST, msg);
    }
    return NULL;
}

static json_t *m_prompts_list(rpc_env_t *env, const rpc_msg_t *m)
{
    const bundle_t *b = env->bundle;
    json_t *all = json_array();
    for (size_t i = 0; i < b->n_prompts; i++)
        if (visible(env, bundle_prompt_target(b, &b->prompts[i])) &&
            avail_on(AVAIL_PROMPT, b->prompts[i].name))
            json_array_append(all, b->prompts[i].descriptor);
    return paginate(env, m, all, "prompts");
}

static json_t *m_prompts_get(rpc_env_t *env, const rpc_msg_t *m)
{
    json_t *name = json_object_get(m->params, "name");
    json_t *args = json_object_get(m->params, "arguments");
    if (!json_is_string(name))
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: name must be a string");
    if (args && !json_is_object(args) && !json_is_null(args))
        return rpc_error(m->id, RPC_INVALID_PARAMS,
                         "Invalid params: arguments must be an object");
    args = json_is_object(args) ? args : NULL;
    bundle_t *b = env->bundle;
    prompt_t *p = (prompt_t *)bundle_find_prompt(b, json_string_value(name));
    char msg[300];
    if (p) {
        char policy_name[160];
        snprintf(policy_name, sizeof policy_name, "prompt:%s", p->name);
        target_t tg = {"prompt", p->name, policy_name, bundle_prompt_target(b, p), &p->warned};
        policy_decision_t d;
        if (!authorize_target(env, m, &tg, args, &d)) {
            json_t *no = refusal(env, m, &d);
            if (no)
                return no;
            p = NULL; /* hidden: as if unknown */
        }
    }
    if (!p) {
        snprintf(msg, sizeof msg, "Invalid params: unknown prompt %.128s",
                 json_string_value(name));
        return rpc_error(m->id, RPC_INVALID_PARAMS, msg);
    }
    json_t *empty = args ? NULL : json_object();
    const char *bad = prompt_check_args(p, args ? args : empty, msg, sizeof msg);
    if (bad) {
        json_decref(empty);
        return rpc_error(m->id, RPC_INVALID_PARAMS, bad);
    }
    json_t *resp = start_call(env, m, "prompt", p->name, p->handler_ref, args ? args : empty,
                              prompt_convert, NULL, NULL);
    json_decref(empty);
    return resp;
}

static json_t *m_resources_list(rpc_env_t *env, const rpc_msg_t *m, bool templates)
{
    const bundle_t *b = env->bundle;
    json_t *all = json_array();
    for (size_t i = 0; i < b->n_resources; i++) {
        const resource_t *r = &b->resources[i];
        if ((r->uri_template != NULL) == templates && visible(env, bundle_resource_target(b, r)) &&
            bundle_resource_on(r))
            json_array_append(all, r->descriptor);
    }
    return paginate(env, m, all, templates ? "resourceTemplates" : "resources");
}

static json_t *not_found(const rpc_msg_t *m, const char *uri)
{
    json_t *e = rpc_error(m->id, RPC_RESOURCE_NOT_FOUND, "Resource not found");
    json_object_set_new(json_object_get(e, "error"), "data", json_pack("{s:s}", "uri", uri));
    return e;
}

/* The resource uri names, authorized for this caller (vars: its template variables). */
static resource_t *find_resource(rpc_env_t *env, const rpc_msg_t *m, const char *uri,
                                 json_t **vars, json_t **answer)
{
    bundle_t *b = env->bundle;
    *answer = NULL;
    resource_t *r = (resource_t *)bundle_find_resource(b, uri, vars);
    if (!r) {
        *answer = not_found(m, uri);
        return NULL;
    }
    if (!*vars)
        *vars = json_object();
    json_object_set_new(*vars, "uri", json_string(uri));
    char policy_name[2100];
    snprintf(policy_name, sizeof policy_name, "resource:%s", r->key);
    target_t tg = {"resource", uri, policy_name, bundle_resource_target(b, r), &r->warned};
    policy_decision_t d;
    if (!authorize_target(env, m, &tg, *vars, &d)) {
        *answer = refusal(env, m, &d);
        if (!*answer)
            *answer = not_found(m, uri); /* hidden */
        json_decref(*vars);
        *vars = NULL;
        return NULL;
    }
    return r;
}

static json_t *m_resources_read(rpc_env_t *env, const rpc_msg_t *m)
{
    json_t *uri = json_object_get(m->params, "uri");
    if (!json_is_string(uri))
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: uri must be a string");
    json_t *vars = NULL, *answer = NULL;
    resource_t *r = find_resource(env, m, json_string_value(uri), &vars, &answer);
    if (!r)
        return answer;
    json_t *resp = start_call(env, m, "resource", r->key, r->handler_ref, vars,
                              resource_convert, json_string_value(uri), r->mime_type);
    json_decref(vars);
    return resp;
}

static json_t *m_subscribe(rpc_env_t *env, const rpc_msg_t *m, bool on)
{
    json_t *uri = json_object_get(m->params, "uri");
    if (!json_is_string(uri))
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: uri must be a string");
    if (!env->sessions || !env->session_id)
        return rpc_error(m->id, RPC_INVALID_REQUEST, "Invalid Request: subscriptions need a "
                                                     "session (this server is stateless)");
    if (on) {
        json_t *vars = NULL, *answer = NULL;
        if (!find_resource(env, m, json_string_value(uri), &vars, &answer))
            return answer;
        json_decref(vars);
    }
    int rc = session_subscribe(env->sessions, env->session_id, json_string_value(uri), on);
    if (rc == -2)
        return rpc_error(m->id, RPC_INVALID_REQUEST, "Invalid Request: too many subscriptions "
                                                     "on this session (256)");
    if (rc != 0)
        return rpc_error(m->id, RPC_SESSION_NOT_FOUND, "Session not found");
    return rpc_result(m->id, json_object());
}

/* Whether v is an array of at most RPC_LISTEN_MAX_URIS strings of min to max bytes. */
static bool string_list(const json_t *v, size_t min, size_t max)
{
    size_t i;
    json_t *x;
    bool ok = json_is_array(v) && json_array_size(v) <= RPC_LISTEN_MAX_URIS;
    json_array_foreach(v, i, x)
        ok = ok && json_is_string(x) && json_string_length(x) >= min &&
             json_string_length(x) <= max;
    return ok;
}

/* Whether the entry i of list repeats an earlier one: a repeat is honored once. */
static bool repeated(const json_t *list, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (json_equal(json_array_get(list, j), json_array_get(list, i)))
            return true;
    return false;
}

json_t *rpc_listen_filter(rpc_env_t *env, const rpc_msg_t *m, json_t **granted)
{
    static const char *const lists[] = {"toolsListChanged", "promptsListChanged",
                                        "resourcesListChanged", NULL};
    *granted = NULL;
    json_t *want = json_object_get(m->params, "notifications");
    if (!json_is_object(want))
        return rpc_error(m->id, RPC_INVALID_PARAMS,
                         "Invalid params: notifications must be an object");
    json_t *out = json_object();
    for (int i = 0; lists[i]; i++) {
        json_t *v = json_object_get(want, lists[i]);
        if (v && !json_is_boolean(v)) {
            json_decref(out);
            char msg[120];
            snprintf(msg, sizeof msg, "Invalid params: notifications.%s must be a boolean",
                     lists[i]);
            return rpc_error(m->id, RPC_INVALID_PARAMS, msg);
        }
        if (json_is_true(v))
            json_object_set_new(out, lists[i], json_true());
    }
    json_t *uris = json_object_get(want, "resourceSubscriptions");
    if (uris) {
        size_t i;
        json_t *u;
        if (!string_list(uris, 1, 2048)) {
            json_decref(out);
            return rpc_error(m->id, RPC_INVALID_PARAMS,
                             "Invalid params: notifications.resourceSubscriptions must be an "
                             "array of at most 256 URIs (strings of 1 to 2048 bytes)");
        }
        /* honored: the resources this caller may read (each decision audited); others are
         * left out of the acknowledgment, as the specification asks for unsupported ones */
        json_t *honored = json_array();
        json_array_foreach(uris, i, u) {
            json_t *vars = NULL, *answer = NULL;
            if (repeated(uris, i))
                continue;
            env->challenge[0] = '\0';
            if (find_resource(env, m, json_string_value(u), &vars, &answer))
                json_array_append(honored, u);
            json_decref(vars);
            json_decref(answer);
        }
        env->challenge[0] = '\0'; /* a refused URI is left out, not a step-up of the stream */
        json_object_set_new(out, "resourceSubscriptions", honored);
    }
    json_t *ids = json_object_get(want, "taskIds");
    if (ids) {
        size_t i;
        json_t *u;
        if (!string_list(ids, 0, SIZE_MAX)) {
            json_decref(out);
            return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: notifications.taskIds "
                             "must be an array of at most 256 task ids (strings)");
        }
        /* honored: this caller's own tasks, for a client of the tasks extension */
        json_t *honored = json_array();
        unsigned char owner[TASK_OWNER_LEN];
        auth_caller_owner(env->caller, owner);
        json_array_foreach(ids, i, u)
            if (!repeated(ids, i) && client_tasks(env) &&
                task_owned(env->tasks, json_string_value(u), owner))
                json_array_append(honored, u);
        json_object_set_new(out, "taskIds", honored);
    }
    *granted = out;
    return NULL;
}

static json_t *m_set_level(rpc_env_t *env, const rpc_msg_t *m)
{
    const char *level = json_string_value(json_object_get(m->params, "level"));
    int lv = log_mcp_level_parse(level);
    if (lv < 0)
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: level must be one of "
                         "debug, info, notice, warning, error, critical, alert, emergency");
    if (!env->sessions || !env->session_id)
        return rpc_error(m->id, RPC_INVALID_REQUEST, "Invalid Request: logging/setLevel needs "
                                                     "a session (this server is stateless)");
    if (session_set_log_level(env->sessions, env->session_id, lv) != 0)
        return rpc_error(m->id, RPC_SESSION_NOT_FOUND, "Session not found");
    return rpc_result(m->id, json_object());
}

/* Whether tmpl has a variable called name. */
static bool template_has(const char *tmpl, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strchr(tmpl, '{'); p; p = strchr(p + 1, '{')) {
        const char *v = p + 1 + (p[1] == '+');
        if (strncmp(v, name, n) == 0 && v[n] == '}')
            return true;
    }
    return false;
}

/* A completion is decided like the prompt or template it completes (scopes, conditions, the
 * audit record): its policy sees the context's arguments and the one being completed. False
 * when refused: *refused is then the error to answer (step-up, denial), or NULL for hidden. */
static bool complete_allowed(rpc_env_t *env, const rpc_msg_t *m, const target_t *tg,
                             json_t **refused)
{
    json_t *context = json_object_get(json_object_get(m->params, "context"), "arguments");
    json_t *arg = json_object_get(m->params, "argument");
    json_t *args = json_is_object(context) ? json_deep_copy(context) : json_object();
    json_object_set(args, json_string_value(json_object_get(arg, "name")),
                    json_object_get(arg, "value"));
    policy_decision_t d;
    bool ok = authorize_target(env, m, tg, args, &d);
    json_decref(args);
    *refused = ok ? NULL : refusal(env, m, &d);
    return ok;
}

static json_t *m_complete(rpc_env_t *env, const rpc_msg_t *m)
{
    json_t *ref = json_object_get(m->params, "ref");
    json_t *arg = json_object_get(m->params, "argument");
    const char *type = json_string_value(json_object_get(ref, "type"));
    const char *arg_name = json_string_value(json_object_get(arg, "name"));
    json_t *value = json_object_get(arg, "value");
    if (!type || !arg_name || !json_is_string(value))
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: completion/complete needs "
                         "ref.type, argument.name and argument.value (a string)");
    bundle_t *b = env->bundle;
    char msg[300];
    int handler = LUA_NOREF;
    const char *name = NULL;
    if (strcmp(type, "ref/prompt") == 0) {
        const char *pn = json_string_value(json_object_get(ref, "name"));
        prompt_t *p = pn ? (prompt_t *)bundle_find_prompt(b, pn) : NULL;
        json_t *refused = NULL;
        if (p) {
            char policy_name[160];
            snprintf(policy_name, sizeof policy_name, "prompt:%s", p->name);
            target_t tg = {"prompt", p->name, policy_name, bundle_prompt_target(b, p), &p->warned};
            if (!complete_allowed(env, m, &tg, &refused))
                p = NULL;
        }
        if (refused)
            return refused;
        if (!p) {
            snprintf(msg, sizeof msg, "Invalid params: unknown prompt %.128s", pn ? pn : "");
            return rpc_error(m->id, RPC_INVALID_PARAMS, msg);
        }
        bool known = false;
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(p->descriptor, "arguments"), i, a)
            known = known || strcmp(json_string_value(json_object_get(a, "name")), arg_name) == 0;
        if (!known) {
            snprintf(msg, sizeof msg, "Invalid params: prompt '%s' has no argument '%.64s'",
                     p->name, arg_name);
            return rpc_error(m->id, RPC_INVALID_PARAMS, msg);
        }
        handler = p->complete_ref;
        name = p->name;
    } else if (strcmp(type, "ref/resource") == 0) {
        const char *uri = json_string_value(json_object_get(ref, "uri"));
        resource_t *r = uri ? (resource_t *)bundle_find_template(b, uri) : NULL;
        json_t *refused = NULL;
        if (r) {
            char policy_name[2100];
            snprintf(policy_name, sizeof policy_name, "resource:%s", r->key);
            target_t tg = {"resource", r->key, policy_name, bundle_resource_target(b, r),
                           &r->warned};
            if (!complete_allowed(env, m, &tg, &refused))
                r = NULL;
        }
        if (refused)
            return refused;
        if (!r) {
            snprintf(msg, sizeof msg, "Invalid params: unknown resource template %.128s",
                     uri ? uri : "");
            return rpc_error(m->id, RPC_INVALID_PARAMS, msg);
        }
        if (!template_has(r->uri_template, arg_name)) {
            snprintf(msg, sizeof msg, "Invalid params: template %.128s has no variable '%.64s'",
                     r->uri_template, arg_name);
            return rpc_error(m->id, RPC_INVALID_PARAMS, msg);
        }
        handler = r->complete_ref;
        name = r->key;
    } else {
        return rpc_error(m->id, RPC_INVALID_PARAMS,
                         "Invalid params: ref.type must be ref/prompt or ref/resource");
    }
    if (handler == LUA_NOREF || handler == LUA_REFNIL) /* nothing to suggest */
        return rpc_result(m->id, json_pack("{s:{s:[], s:i, s:b}}", "completion", "values",
                                           "total", 0, "hasMore", 0));
    json_t *context = json_object_get(json_object_get(m->params, "context"), "arguments");
    json_t *args = json_pack("{s:s, s:O, s:o}", "argument", arg_name, "value", value, "context",
                             json_is_object(context) ? json_incref(context) : json_object());
    json_t *resp = start_call(env, m, "completion", name, handler, args, completion_convert,
                              NULL, NULL);
    json_decref(args);
    return resp;
}

json_t *rpc_dispatch(rpc_env_t *env, const rpc_msg_t *m)
{
    const char *method = m->method;
    if (m->params && !json_is_object(m->params))
        return rpc_error(m->id, RPC_INVALID_PARAMS, "Invalid params: params must be an object");
    if (strcmp(method, "tools/call") == 0)
        return m_tools_call(env, m);
    if (strcmp(method, "tools/list") == 0)
        return m_tools_list(env, m);
    if (strcmp(method, "ping") == 0)
        return rpc_result(m->id, json_object());
    if (strcmp(method, "initialize") == 0)
        return m_initialize(env, m);
    if (strcmp(method, "resources/read") == 0)
        return m_resources_read(env, m);
    if (strcmp(method, "prompts/get") == 0)
        return m_prompts_get(env, m);
    if (strcmp(method, "prompts/list") == 0)
        return m_prompts_list(env, m);
    if (strcmp(method, "resources/list") == 0)
        return m_resources_list(env, m, false);
    if (strcmp(method, "resources/templates/list") == 0)
        return m_resources_list(env, m, true);
    if (strcmp(method, "completion/complete") == 0)
        return m_complete(env, m);
    if (strcmp(method, "resources/subscribe") == 0)
        return m_subscribe(env, m, true);
    if (strcmp(method, "resources/unsubscribe") == 0)
        return m_subscribe(env, m, false);
    if (strcmp(method, "logging/setLevel") == 0)
        return m_set_level(env, m);
    if (strcmp(method, "tasks/get") == 0)
        return m_tasks_get(env, m);
    if (strcmp(method, "tasks/update") == 0)
        return m_tasks_update(env, m);
    if (strcmp(method, "tasks/cancel") == 0)
        return m_tasks_cancel(env, m);
    char msg[200];
    snprintf(msg, sizeof msg, "Method not found: %.128s", method);
    return rpc_error(m->id, RPC_METHOD_NOT_FOUND, msg);
}
