/* bundle — the tools of a scripts directory loaded into one vm: validated, sorted by name,
 * immutable once built. A worker owns one bundle (its vm is single-threaded). */
#ifndef LUAMCP_BUNDLE_H
#define LUAMCP_BUNDLE_H

#include <stddef.h>

#include "luamcp/catalog.h"
#include "luamcp/config.h"
#include "luamcp/policy.h"
#include "luamcp/tool.h"
#include "luamcp/vm.h"

typedef struct bundle {
    vm_t *vm;
    tool_t *tools;          /* sorted by name */
    size_t n_tools;
    prompt_t *prompts;      /* sorted by name */
    size_t n_prompts;
    resource_t *resources;  /* static ones and templates, in the order the scripts declare them */
    size_t n_resources;
    policy_set_t *policies; /* bound to tools: rules of tool i via policy_* (tool index i) */
    policy_set_t *shadow;   /* a candidate policy set evaluated beside, never enforced */
    char *warnings;         /* uncovered tools, rules matching nothing; NULL when none */
    unsigned long long version;
    int refs;               /* the worker's, plus one per call waiting for backends */
} bundle_t;

/* Loads every *.lua directly in cfg->scripts_dir (sorted; scripts_dir/lib holds modules for
 * require), then every *.lua of cfg->policies_dir (and of cfg->shadow_policies), into one
 * vm. Returns NULL with *err listing every problem as "file:line: what" lines. */
bundle_t *bundle_load(const config_t *cfg, char **err);
/* Drops a reference (bundle_load gives one; b->refs++ takes another); frees at the last. */
void bundle_free(bundle_t *b);
/* Lookups by name find only what is switched on (avail.h): a tool, prompt or resource
 * switched off at run time is, to every request, one that does not exist. */
const tool_t *bundle_find(const bundle_t *b, const char *name);
/* The index of t in b->tools (for policy_* calls). */
size_t bundle_index(const bundle_t *b, const tool_t *t);

/* Policies see one list of targets: the tools (by index), then the prompts, then the
 * resources; prompts and resources are named "prompt:NAME" and "resource:URI-or-template". */
const prompt_t *bundle_find_prompt(const bundle_t *b, const char *name);
size_t bundle_prompt_target(const bundle_t *b, const prompt_t *p);
size_t bundle_resource_target(const bundle_t *b, const resource_t *r);
/* The static resource uri names, else the first template matching it (*vars: a new object of
 * its variables); NULL when none. */
const resource_t *bundle_find_resource(const bundle_t *b, const char *uri, json_t **vars);
/* A template by its uriTemplate. */
const resource_t *bundle_find_template(const bundle_t *b, const char *tmpl);
/* Whether r is switched on (for listings). */
bool bundle_resource_on(const resource_t *r);

#endif
