/* policy — who may call which tool with which arguments, declared in Lua by operators
 * (the .lua files of the policies directory) and decided by the host before any tool runs.
 *
 * A rule names tools (a name or a glob), the scopes it needs (all of `scopes`, at least one of
 * `any_scopes`), optional conditions on the caller (issuers, client ids, claim values), and
 * optionally a Lua `check(caller, tool, args, ctx)` for anything else.
 *
 * Composition: EVERY rule that matches a tool must allow the call; a tool no rule matches
 * cannot be called (except in --dev, which allows it and warns once). Declarative parts are
 * evaluated in C; a check costs one protected Lua call. */
#ifndef LUAMCP_POLICY_H
#define LUAMCP_POLICY_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

#include "luamcp/auth.h"
#include "luamcp/vm.h"

typedef struct policy_rule policy_rule_t;
typedef struct policy_set policy_set_t;

typedef enum policy_verdict {
    POLICY_ALLOW,
    POLICY_HIDDEN,    /* the caller may not know the tool exists: answered as an unknown tool */
    POLICY_CHALLENGE, /* 403 insufficient_scope with the scopes to ask for (step-up) */
    POLICY_DENY,      /* refused with a reason (a check said no, or failed) */
} policy_verdict_t;

typedef struct policy_decision {
    policy_verdict_t verdict;
    char reason[256];  /* why, for the audit log (and, for DENY, the client) */
    char scopes[4096]; /* CHALLENGE: space-separated scopes to ask for (whole scopes only) */
    char rule[300];    /* "file:line" of the rule that decided, or "" */
    bool unguarded;    /* no rule matched; allowed only because of --dev */
} policy_decision_t;

const char *policy_verdict_name(policy_verdict_t v);

/* ---- building (while loading) ----------------------------------------------------------- */

/* Validates the mcp.policy{...} table at idx. -1 with *err saying what is wrong. The check
 * function, when there is one, is referenced in L's registry. */
int policy_rule_from_def(lua_State *L, int idx, const char *file, int line,
                         policy_rule_t **out, char **err);
void policy_rule_free(policy_rule_t *r);
/* Releases the rule's reference to its check function (before freeing a rule that was only
 * validated). */
void policy_rule_unref(lua_State *L, policy_rule_t *r);

policy_set_t *policy_set_new(void);
void policy_set_free(policy_set_t *ps);
/* Takes ownership of r. */
int policy_set_add(policy_set_t *ps, policy_rule_t *r);
size_t policy_set_size(const policy_set_t *ps);

/* Resolves, for each tool name (sorted or not), which rules match it. Call once after every
 * rule is added. Returns the number of rules that match no tool (*unused gets their
 * "file:line" list, caller frees, may be NULL). */
size_t policy_set_bind(policy_set_t *ps, char *const *tool_names, size_t n_tools, char **unused);
/* Number of rules that match tool i. */
size_t policy_rules_for(const policy_set_t *ps, size_t tool);

/* Every scope the rules mention, deduplicated (new array of strings). */
json_t *policy_scopes(const policy_set_t *ps);
/* The scopes a tool needs as text, e.g. "a b (any of: c d)"; caller frees. */
char *policy_describe_scopes(const policy_set_t *ps, size_t tool);

/* ---- deciding ---------------------------------------------------------------------------- */

/* The declarative verdict only (no Lua): what tools/list shows. */
policy_verdict_t policy_static(const policy_set_t *ps, size_t tool, const auth_caller_t *caller,
                               bool dev, policy_decision_t *out);

/* The whole decision for tools/call: declarative rules, then each check in vm (phase policy,
 * under the call budget). args is borrowed (an object or NULL). */
void policy_decide(const policy_set_t *ps, vm_t *vm, size_t tool, const char *tool_name,
                   const auth_caller_t *caller, json_t *args, bool dev, policy_decision_t *out);

/* The argument names the matching rules mark safe to log, as a new object holding those
 * arguments (NULL when none). */
json_t *policy_loggable_args(const policy_set_t *ps, size_t tool, json_t *args);

#endif
