/* tool — a tool declared by a script: its validated shape, the JSON it is listed with, its
 * compiled schemas, and running its handler into an MCP CallToolResult. */
#ifndef LUAMCP_TOOL_H
#define LUAMCP_TOOL_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>

#include "luamcp/auth.h"
#include "luamcp/schema.h"
#include "luamcp/xheader.h"
#include "luamcp/vm.h"

#define TOOL_NAME_MAX 128

/* Whether a call may go on as a task (the 2026-07-28 tasks extension): `task = ...` */
typedef enum tool_task { TOOL_TASK_NEVER, TOOL_TASK_OPTIONAL, TOOL_TASK_REQUIRED } tool_task_t;

typedef struct tool {
    char *name;
    json_t *descriptor;  /* as listed by tools/list; owned */
    schema_t *input;
    schema_t *output;    /* NULL without outputSchema */
    int handler_ref;     /* registry reference in the loading vm; LUA_NOREF when none */
    char *file;
    int line;
    bool warned;         /* --dev: "no policy covers this tool" logged once */
    char **egress;       /* the tool's own host patterns (narrowing egress.allow); NULL-ended */
    size_t n_egress;
    char **credentials;  /* names of arguments that are caller credentials; NULL-ended */
    size_t n_credentials;
    char **secrets;      /* names of the secrets its handler may read (`secrets`); NULL-ended */
    size_t n_secrets;
    unsigned requires_caps; /* SESSION_CAP_* the client must have declared (`requires`) */
    xheaders_t headers;  /* arguments mirrored in Mcp-Param-* headers (x-mcp-header) */
    tool_task_t task;
} tool_t;

struct fetch_engine;
struct http_batch;
struct config_egress;

/* What one call carries in and collects out (owned by the caller). */
typedef struct tool_call {
    json_t *request_id;      /* borrowed */
    json_t *progress_token;  /* borrowed; NULL when the client gave none */
    json_t *notifications;   /* owned array: JSON-RPC notifications emitted during the call */
    double deadline;         /* wall clock, seconds */
    unsigned long long serial;
    auth_caller_t *caller;   /* borrowed; NULL without auth */
    const char *subject_token; /* borrowed: the caller's access token (mcp.oauth.SUBJECT) */
    const void *ctx;         /* identity of this call's ctx table (lua_topointer) */

    /* backends: set by whoever starts the call */
    struct fetch_engine *fetch;             /* the worker's engine; NULL = no mcp.http */
    const struct config_egress *egress;
    void (*wake)(struct tool_call *call, void *arg); /* the handler can go on (tool_resume) */
    void *wake_arg;

    /* the running handler: tool.c and api_http.c */
    vm_t *vm;
    const tool_t *tool;
    const char *tool_name;
    char *const *tool_allow;
    size_t n_tool_allow;
    lua_State *co;           /* the handler's coroutine, anchored by co_ref while it waits */
    int co_ref;
    vm_budget_t budget;      /* Lua time and instructions used so far, over every resumption */
    struct http_batch *batch; /* the transfers it waits for */
    unsigned requests;       /* backend requests made so far */
    json_t *secrets;         /* credential values of the arguments: scrubbed from results */

    /* prompts, resources and completions run the same way (catalog.h): their converter, and
     * the JSON-RPC error a failure becomes (rpc_error != 0; the result is then ignored) */
    json_t *(*convert)(lua_State *co, int nres, struct tool_call *call);
    const char *uri;         /* resources/read: the URI asked for */
    const char *mime_type;   /* resources/read: the declared type, or NULL */
    int rpc_error;
    char rpc_message[300];
    int log_level;           /* notifications/message from ctx.log at or above this; -1 none */
    const char *kind;        /* "tool", "prompt", "resource", "completion": for messages */

    /* requests to the client (ctx.sample, ctx.elicit): sent through ask; the answer is put
     * in `answer` (or left NULL when it did not come) before tool_resume */
    int (*ask)(void *arg, json_t *request);
    void *ask_arg;
    void (*detach)(void *arg); /* ctx.close_stream; NULL when the request has no SSE */
    unsigned client_caps;    /* SESSION_CAP_* */
    bool asking;
    json_t *answer;
    unsigned n_notes;        /* notifications emitted so far (bounded per call) */
    size_t note_bytes;       /* their text so far (bounded by limits.max_result_bytes) */

    /* the 2026-07-28 era: requests to the client are input requests of the result (MRTR) */
    bool modern;
    json_t *input_responses; /* borrowed: params.inputResponses of this round, or NULL */
    json_t *input_requests;  /* owned: what the handler asked for and has no answer to */
    unsigned input_seq;      /* keys of ctx.sample/ctx.elicit: "sampling-1", … */
    char *state_in;          /* the verified requestState's script state, or NULL */
    char *state_out;         /* what ctx.set_state gave for the next round */
    bool input_needed;       /* the handler stopped for input: the result is input_required */
    bool input_is_result;    /* the result is that input_required object, as it is */

    /* tasks (the 2026-07-28 extension): the call may become one (task_ok), asks to (ctx.task),
     * is one (its failures are then JSON-RPC errors: the task fails) */
    bool task_ok, want_task, is_task;
    char *task_message;      /* owned: ctx.progress's latest message in a task */
} tool_call_t;

/* Validates the definition table at idx and fills *out (handler left as LUA_NOREF).
 * -1 with *err (caller frees) saying what is wrong. */
int tool_from_def(lua_State *L, int idx, tool_t *out, char **err);
void tool_clear(tool_t *t);

bool tool_name_valid(const char *name);

/* Starts t's handler in vm with args (borrowed; an object or NULL). Returns a new
 * CallToolResult object, or NULL when the handler waits for backends: call->wake is called
 * once they answer, and the caller then calls tool_resume (which may return NULL again). */
json_t *tool_start(vm_t *vm, const tool_t *t, json_t *args, tool_call_t *call);
/* The same for any handler (call->convert set, call->tool NULL, call->tool_name naming it). */
json_t *call_start(vm_t *vm, int handler_ref, json_t *args, tool_call_t *call);
json_t *tool_resume(tool_call_t *call);
/* The 2026-07-28 requestState: checks the one a client echoed (*state gets the script's state,
 * or NULL) against the tool name and the caller; -1 when altered, expired or not ours. */
int tool_state_open(const char *token, const char *name, const unsigned char fp[32],
                    char **state);
/* A new requestState carrying state (may be NULL) for name and the caller. */
char *tool_state_seal(const char *state, const char *name, const unsigned char fp[32]);

/* A tool result that is an error: {"content":[{"type":"text","text":msg}],"isError":true},
 * msg with secrets redacted and cut to whole UTF-8 (new). */
json_t *tool_error_result(const char *msg);

/* Milliseconds left before the call's deadline (negative once past it). */
double tool_left_ms(const tool_call_t *call);

/* Abandons a waiting call: transfers cancelled, coroutine released. */
void tool_cancel(tool_call_t *call);
/* Releases what a finished call holds (its notifications are the caller's to take first). */
void tool_call_clear(tool_call_t *call);

#endif
