/* tool — a tool declared by a script: its validated shape, the JSON it is listed with, its
 * compiled schemas, and running its handler into an MCP CallToolResult. */
#ifndef LUAMCP_TOOL_H
#define LUAMCP_TOOL_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>

#include "luamcp/auth.h"
#include "luamcp/schema.h"
#include "luamcp/vm.h"

#define TOOL_NAME_MAX 128

typedef struct tool {
    char *name;
    json_t *descriptor;  /* as listed by tools/list; owned */
    schema_t *input;
    schema_t *output;    /* NULL without outputSchema */
    int handler_ref;     /* registry reference in the loading vm; LUA_NOREF when none */
    char *file;
    int line;
    bool warned;         /* --dev: "no policy covers this tool" logged once */
} tool_t;

/* What one call carries in and collects out (owned by the caller). */
typedef struct tool_call {
    json_t *request_id;      /* borrowed */
    json_t *progress_token;  /* borrowed; NULL when the client gave none */
    json_t *notifications;   /* owned array: JSON-RPC notifications emitted during the call */
    double deadline;         /* wall clock, seconds */
    unsigned long long serial;
    auth_caller_t *caller;   /* borrowed; NULL without auth */
    const void *ctx;         /* identity of this call's ctx table (lua_topointer) */
} tool_call_t;

/* Validates the definition table at idx and fills *out (handler left as LUA_NOREF).
 * -1 with *err (caller frees) saying what is wrong. */
int tool_from_def(lua_State *L, int idx, tool_t *out, char **err);
void tool_clear(tool_t *t);

bool tool_name_valid(const char *name);

/* Runs t's handler in vm with args (borrowed; an object or NULL) and returns a new
 * CallToolResult object. Never NULL except on allocation failure. */
json_t *tool_run(vm_t *vm, const tool_t *t, json_t *args, tool_call_t *call);

#endif
