/* catalog — prompts and resources declared by scripts (mcp.prompt, mcp.static_resource,
 * mcp.resource_template): their validated shape, the JSON they are listed with, URI template
 * matching, and turning what their handlers return into MCP results.
 *
 * Handlers run like tool handlers (tool.c: a coroutine under the call's budget, able to wait
 * for backends), with (args, ctx): a prompt gets its arguments, a resource { uri = ..., and
 * each template variable }, a completion { argument =, value =, context = }. */
#ifndef LUAMCP_CATALOG_H
#define LUAMCP_CATALOG_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>

#include "luamcp/tool.h"

#define CATALOG_MAX_VARS 16

typedef struct prompt {
    char *name;
    json_t *descriptor;   /* as listed by prompts/list */
    int handler_ref, complete_ref; /* registry references; LUA_NOREF when none */
    char *file;
    int line;
    bool warned;
} prompt_t;

typedef struct resource {
    char *uri;            /* a static resource's URI, or NULL */
    char *uri_template;   /* a template's (RFC 6570, simple {var} and {+var}), or NULL */
    const char *key;      /* uri or uri_template: what policies match */
    char *mime_type;      /* NULL when not declared */
    json_t *descriptor;   /* as listed by resources/list or resources/templates/list */
    int handler_ref, complete_ref;
    char *file;
    int line;
    bool warned;
} resource_t;

/* Validate the mcp.prompt / mcp.static_resource / mcp.resource_template table at idx and
 * fill *out (references left as LUA_NOREF). -1 with *err (caller frees). */
int prompt_from_def(lua_State *L, int idx, prompt_t *out, char **err);
int resource_from_def(lua_State *L, int idx, bool is_template, resource_t *out, char **err);
void prompt_clear(prompt_t *p);
void resource_clear(resource_t *r);

/* The prompt's arguments checked (every value a string, required ones present, no unknown
 * ones): NULL when fine, else a message for a -32602 error (static or in buf). */
const char *prompt_check_args(const prompt_t *p, json_t *args, char *buf, size_t n);

/* Matches uri against a template; on a match, *vars gets a new object of the variables
 * (percent-decoded). */
bool resource_template_match(const char *tmpl, const char *uri, json_t **vars);

/* Result converters for tool.c's runner (tool_call_t.convert): GetPromptResult,
 * ReadResourceResult, CompleteResult. A handler's failure becomes call->rpc_error. */
json_t *prompt_convert(lua_State *co, int nres, tool_call_t *call);
json_t *resource_convert(lua_State *co, int nres, tool_call_t *call);
json_t *completion_convert(lua_State *co, int nres, tool_call_t *call);

#endif
