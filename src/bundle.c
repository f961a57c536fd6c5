#include "luamcp/bundle.h"

#include <dirent.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "luamcp/api.h"
#include "luamcp/avail.h"
#include "luamcp/log.h"
#include "luamcp/secret.h"
#include "luamcp/treefile.h"

#define MAX_SCRIPTS 4096
#define MAX_ERRORS_TEXT 16384

typedef struct errs {
    char *text;
    size_t len;
} errs_t;

__attribute__((format(printf, 2, 3)))
static void add_err(errs_t *e, const char *fmt, ...)
{
    if (!e->text && !(e->text = calloc(1, MAX_ERRORS_TEXT)))
        return;
    if (e->len + 2 >= MAX_ERRORS_TEXT)
        return;
    /* formatted whole, redacted, then cut: a script's message may quote a secret, and one
     * across the cut would leave its prefix */
    char *one = malloc(MAX_ERRORS_TEXT * 2);
    if (!one)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(one, MAX_ERRORS_TEXT * 2, fmt, ap);
    va_end(ap);
    size_t len = n > 0 ? secret_redact_cut(one, MAX_ERRORS_TEXT - e->len - 2,
                                           (size_t)n >= MAX_ERRORS_TEXT * 2)
                       : 0;
    memcpy(e->text + e->len, one, len);
    free(one);
    e->len += len;
    e->text[e->len++] = '\n';
    e->text[e->len] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_tool(const void *a, const void *b)
{
    return strcmp(((const tool_t *)a)->name, ((const tool_t *)b)->name);
}

/* Sorted *.lua names in dir; caller frees each and the array. -1 when dir can't be read.
 * A name that is not a regular file inside dir (a symlink, a FIFO, a device, a directory) is
 * left out with a warning in *warn: it must neither load nor hold up the load. */
static int list_scripts(const char *dir, char ***out, size_t *n, errs_t *warn)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    size_t cap = 16;
    char **names = malloc(cap * sizeof *names);
    *n = 0;
    struct dirent *de;
    while (names && (de = readdir(d)) && *n < MAX_SCRIPTS) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0)
            continue;
        const char *why = NULL;
        int fd = treefile_open(dir, de->d_name, &why);
        if (fd < 0) {
            add_err(warn, "%s/%s: skipped: %s", dir, de->d_name, why);
            continue;
        }
        close(fd);
        if (*n == cap) {
            char **grown = realloc(names, (cap *= 2) * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        names[(*n)++] = strdup(de->d_name);
    }
    closedir(d);
    if (names)
        qsort(names, *n, sizeof *names, cmp_str);
    *out = names;
    return names ? 0 : -1;
}

/* A file that reads secrets while none of its tools is granted one: every read is refused
 * now (tools list them in `secrets`), so say so before it fails at call time. A text search,
 * so a mention in a comment counts too: it is a warning, not an error. */
static void note_ungranted(const bundle_t *b, size_t first, const char *dir, const char *name,
                           errs_t *warn)
{
    for (size_t i = first; i < b->n_tools; i++)
        if (b->tools[i].n_secrets)
            return;
    size_t len = 0;
    const char *why = NULL;
    char *text = treefile_read(dir, name, &len, &why);
    if (text && memmem(text, len, "mcp.secret", 10))
        add_err(warn, "%s/%s: reads mcp.secret but no tool of it lists 'secrets': each read "
                      "is refused (add secrets = { \"NAME\" } to the tool)", dir, name);
    free(text);
}

static int cmp_prompt(const void *a, const void *b)
{
    return strcmp(((const prompt_t *)a)->name, ((const prompt_t *)b)->name);
}

/* Grows *v (of elements of size sz) to hold one more; false when out of memory. */
static bool room(void **v, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *grown = realloc(*v, c * sz);
    if (!grown)
        return false;
    *v = grown;
    *cap = c;
    return true;
}

/* A prompt or resource declaration (stack: ..., def), moved into b. */
static void collect_other(bundle_t *b, const char *kind, const char *file, int line,
                          size_t *caps, errs_t *e)
{
    lua_State *L = vm_lua(b->vm);
    char *err = NULL;
    if (strcmp(kind, "prompt") == 0) {
        prompt_t p;
        if (prompt_from_def(L, -1, &p, &err) != 0) {
            add_err(e, "%s:%d: %s", file, line, err);
            free(err);
            return;
        }
        const prompt_t *dup = NULL;
        for (size_t k = 0; k < b->n_prompts && !dup; k++) /* not sorted yet */
            if (strcmp(b->prompts[k].name, p.name) == 0)
                dup = &b->prompts[k];
        if (dup || !room((void **)&b->prompts, b->n_prompts, &caps[0], sizeof *b->prompts)) {
            if (dup)
                add_err(e, "%s:%d: duplicate prompt name '%s' (first defined at %s:%d)", file,
                        line, p.name, dup->file, dup->line);
            else
                add_err(e, "out of memory");
            prompt_clear(&p);
            return;
        }
        p.file = strdup(file);
        p.line = line;
        lua_getfield(L, -1, "handler");
        p.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_getfield(L, -1, "complete");
        p.complete_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* LUA_REFNIL when absent */
        b->prompts[b->n_prompts++] = p;
        return;
    }
    resource_t r;
    if (resource_from_def(L, -1, strcmp(kind, "template") == 0, &r, &err) != 0) {
        add_err(e, "%s:%d: %s", file, line, err);
        free(err);
        return;
    }
    const resource_t *dup = NULL;
    for (size_t k = 0; k < b->n_resources && !dup; k++)
        if (strcmp(b->resources[k].key, r.key) == 0)
            dup = &b->resources[k];
    if (dup || !room((void **)&b->resources, b->n_resources, &caps[1], sizeof *b->resources)) {
        if (dup)
            add_err(e, "%s:%d: duplicate resource '%s' (first defined at %s:%d)", file, line,
                    r.key, dup->file, dup->line);
        else
            add_err(e, "out of memory");
        resource_clear(&r);
        return;
    }
    r.file = strdup(file);
    r.line = line;
    lua_getfield(L, -1, "handler");
    r.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "complete");
    r.complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    b->resources[b->n_resources++] = r;
}

/* Moves the tools, prompts and resources declared by the file just loaded (API_PENDING)
 * into b. */
static void collect(bundle_t *b, size_t *cap, size_t *caps, errs_t *e)
{
    lua_State *L = vm_lua(b->vm);
    if (lua_getfield(L, LUA_REGISTRYINDEX, API_PENDING) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);           /* pending, entry */
        lua_getfield(L, -1, "file");
        lua_getfield(L, -2, "line");
        const char *file = lua_tostring(L, -2);
        int line = (int)lua_tointeger(L, -1);
        lua_getfield(L, -3, "def");      /* pending, entry, file, line, def */
        lua_getfield(L, -4, "kind");
        const char *kind = lua_tostring(L, -1);
        if (kind && strcmp(kind, "tool") != 0) {
            lua_pop(L, 1);
            collect_other(b, kind, file, line, caps, e);
            lua_pop(L, 4);
            continue;
        }
        lua_pop(L, 1);
        tool_t t;
        char *err = NULL;
        if (tool_from_def(L, -1, &t, &err) != 0) {
            add_err(e, "%s:%d: %s", file, line, err);
            free(err);
            lua_pop(L, 4);
            continue;
        }
        const tool_t *dup = NULL;
        for (size_t k = 0; k < b->n_tools && !dup; k++)
            if (strcmp(b->tools[k].name, t.name) == 0)
                dup = &b->tools[k];
        if (dup) {
            add_err(e, "%s:%d: duplicate tool name '%s' (first defined at %s:%d)", file, line,
                    t.name, dup->file, dup->line);
            tool_clear(&t);
            lua_pop(L, 4);
            continue;
        }
        t.file = strdup(file);
        t.line = line;
        lua_getfield(L, -1, "handler");
        t.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        if (b->n_tools == *cap) {
            tool_t *grown = realloc(b->tools, (*cap = *cap ? *cap * 2 : 16) * sizeof *grown);
            if (!grown) {
                tool_clear(&t);
                add_err(e, "out of memory");
                lua_pop(L, 4);
                break;
            }
            b->tools = grown;
        }
        b->tools[b->n_tools++] = t;
        lua_pop(L, 4);                   /* pending */
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, API_PENDING);
}

/* Moves the rules declared by the policy file just loaded into ps. */
static void collect_rules(bundle_t *b, policy_set_t *ps, errs_t *e)
{
    lua_State *L = vm_lua(b->vm);
    if (lua_getfield(L, LUA_REGISTRYINDEX, API_PENDING_POLICIES) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);            /* pending, entry */
            lua_getfield(L, -1, "file");
            lua_getfield(L, -2, "line");
            lua_getfield(L, -3, "def");       /* pending, entry, file, line, def */
            policy_rule_t *r = NULL;
            char *err = NULL;
            if (policy_rule_from_def(L, -1, lua_tostring(L, -3), (int)lua_tointeger(L, -2), &r,
                                     &err) != 0) {
                add_err(e, "%s:%d: %s", lua_tostring(L, -3), (int)lua_tointeger(L, -2), err);
                free(err);
            } else if (policy_set_add(ps, r) != 0) {
                add_err(e, "out of memory");
            }
            lua_pop(L, 4);
        }
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, API_PENDING_POLICIES);
}

/* Every target policies bind to, in target order (see bundle.h); free with free_targets. */
static size_t n_targets(const bundle_t *b)
{
    return b->n_tools + b->n_prompts + b->n_resources;
}

static char **targets(const bundle_t *b)
{
    size_t n = n_targets(b), k = 0;
    char **v = calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; v && i < b->n_tools; i++)
        v[k++] = strdup(b->tools[i].name);
    for (size_t i = 0; v && i < b->n_prompts; i++) {
        size_t len = strlen(b->prompts[i].name) + 8;
        if ((v[k] = malloc(len)))
            snprintf(v[k], len, "prompt:%s", b->prompts[i].name);
        k++;
    }
    for (size_t i = 0; v && i < b->n_resources; i++) {
        size_t len = strlen(b->resources[i].key) + 10;
        if ((v[k] = malloc(len)))
            snprintf(v[k], len, "resource:%s", b->resources[i].key);
        k++;
    }
    for (size_t i = 0; v && i < n; i++)
        if (!v[i])
            v[i] = strdup(""); /* out of memory: matches no rule, so denied */
    return v;
}

static void free_targets(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static policy_set_t *load_policies(bundle_t *b, const char *dir, bool shadow, errs_t *e,
                                   errs_t *warn)
{
    policy_set_t *ps = policy_set_new();
    char **names = NULL;
    size_t n = 0;
    if (!ps)
        return NULL;
    if (list_scripts(dir, &names, &n, warn) != 0) {
        if (shadow)
            add_err(e, "%s: cannot read the shadow policies directory", dir);
        else
            log_warn("policies directory %s not found: no rule allows any tool", dir);
        return ps;
    }
    for (size_t i = 0; i < n; i++) {
        char path[4096], *why = NULL;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (vm_load_file(b->vm, path, VM_PHASE_LOAD_POLICY, &why) != 0) {
            add_err(e, "%s", why);
            free(why);
            lua_pushnil(vm_lua(b->vm));
            lua_setfield(vm_lua(b->vm), LUA_REGISTRYINDEX, API_PENDING_POLICIES);
        } else {
            collect_rules(b, ps, e);
        }
        free(names[i]);
    }
    free(names);
    char **t = targets(b);
    policy_set_bind(ps, t, n_targets(b), NULL);
    free_targets(t, n_targets(b));
    return ps;
}

/* Warnings an operator wants before going live: tools no rule covers (deny by default makes
 * them uncallable) and rules that match no tool (a typo, usually). */
static void note_coverage(bundle_t *b, const config_t *cfg, errs_t *warn)
{
    char **t = targets(b);
    size_t n = n_targets(b);
    char *unused = NULL;
    size_t n_unused = policy_set_bind(b->policies, t, n, &unused);
    errs_t w = *warn; /* the files skipped come first */
    *warn = (errs_t){0};
    const char *what = cfg->dev ? "allowed only because of --dev" : "nobody can call it";
    for (size_t i = 0; i < b->n_tools; i++)
        if (policy_rules_for(b->policies, i) == 0)
            add_err(&w, "%s:%d: tool '%s' is covered by no policy: %s", b->tools[i].file,
                    b->tools[i].line, b->tools[i].name, what);
    for (size_t i = 0; i < b->n_prompts; i++)
        if (policy_rules_for(b->policies, bundle_prompt_target(b, &b->prompts[i])) == 0)
            add_err(&w, "%s:%d: prompt '%s' is covered by no policy: %s", b->prompts[i].file,
                    b->prompts[i].line, b->prompts[i].name, what);
    for (size_t i = 0; i < b->n_resources; i++)
        if (policy_rules_for(b->policies, bundle_resource_target(b, &b->resources[i])) == 0)
            add_err(&w, "%s:%d: resource '%s' is covered by no policy: %s",
                    b->resources[i].file, b->resources[i].line, b->resources[i].key, what);
    if (n_unused)
        add_err(&w, "policies matching no tool: %s", unused);
    free(unused);
    if (b->shadow) {
        /* a misspelt name in the candidate set would make it look identical to the live one */
        n_unused = policy_set_bind(b->shadow, t, n, &unused);
        if (n_unused)
            add_err(&w, "shadow policies matching no tool: %s", unused);
        free(unused);
    }
    free_targets(t, n);
    if (w.len && w.text[w.len - 1] == '\n')
        w.text[--w.len] = '\0';
    b->warnings = w.text;
}

bundle_t *bundle_load(const config_t *cfg, char **err)
{
    errs_t e = {0}, warn = {0};
    char **names = NULL;
    size_t n_names = 0, cap = 0, caps[2] = {0, 0};
    char lib[4096];
    snprintf(lib, sizeof lib, "%s/lib", cfg->scripts_dir);

    bundle_t *b = calloc(1, sizeof *b);
    if (b)
        b->refs = 1;
    if (!b) {
        *err = strdup("out of memory");
        return NULL;
    }
    char *why = NULL;
    b->vm = vm_new(&cfg->limits, lib, &why);
    if (!b->vm) {
        add_err(&e, "%s", why);
        free(why);
        goto done;
    }
    if (list_scripts(cfg->scripts_dir, &names, &n_names, &warn) != 0) {
        add_err(&e, "%s: cannot read the scripts directory", cfg->scripts_dir);
        goto done;
    }
    for (size_t i = 0; i < n_names; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", cfg->scripts_dir, names[i]);
        if (vm_load_file(b->vm, path, VM_PHASE_LOAD, &why) != 0) {
            add_err(&e, "%s", why);
            free(why);
            lua_pushnil(vm_lua(b->vm)); /* drop what the broken file declared */
            lua_setfield(vm_lua(b->vm), LUA_REGISTRYINDEX, API_PENDING);
            continue;
        }
        size_t first = b->n_tools;
        collect(b, &cap, caps, &e);
        note_ungranted(b, first, cfg->scripts_dir, names[i], &warn);
    }
    if (b->n_tools)
        qsort(b->tools, b->n_tools, sizeof *b->tools, cmp_tool);
    if (b->n_prompts)
        qsort(b->prompts, b->n_prompts, sizeof *b->prompts, cmp_prompt);
    b->version = 1; /* reloads (a later issue) will count up from here */
    b->policies = load_policies(b, cfg->policies_dir, false, &e, &warn);
    if (cfg->shadow_policies)
        b->shadow = load_policies(b, cfg->shadow_policies, true, &e, &warn);
    if (!e.text)
        note_coverage(b, cfg, &warn);
done:
    if (e.text && warn.text) { /* the files skipped, after the errors that stopped the load */
        warn.text[warn.len ? warn.len - 1 : 0] = '\0';
        add_err(&e, "%s", warn.text);
    }
    free(warn.text);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    if (e.text) {
        if (e.len && e.text[e.len - 1] == '\n')
            e.text[--e.len] = '\0';
        *err = e.text;
        bundle_free(b);
        return NULL;
    }
    return b;
}

void bundle_free(bundle_t *b)
{
    if (!b || --b->refs > 0)
        return;
    for (size_t i = 0; i < b->n_tools; i++)
        tool_clear(&b->tools[i]);
    free(b->tools);
    for (size_t i = 0; i < b->n_prompts; i++)
        prompt_clear(&b->prompts[i]);
    free(b->prompts);
    for (size_t i = 0; i < b->n_resources; i++)
        resource_clear(&b->resources[i]);
    free(b->resources);
    policy_set_free(b->policies);
    policy_set_free(b->shadow);
    free(b->warnings);
    vm_free(b->vm);
    free(b);
}

const tool_t *bundle_find(const bundle_t *b, const char *name)
{
    size_t lo = 0, hi = b->n_tools;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, b->tools[mid].name);
        if (c == 0)
            return avail_on(AVAIL_TOOL, name) ? &b->tools[mid] : NULL;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t bundle_index(const bundle_t *b, const tool_t *t)
{
    return (size_t)(t - b->tools);
}

const prompt_t *bundle_find_prompt(const bundle_t *b, const char *name)
{
    size_t lo = 0, hi = b->n_prompts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, b->prompts[mid].name);
        if (c == 0)
            return avail_on(AVAIL_PROMPT, name) ? &b->prompts[mid] : NULL;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t bundle_prompt_target(const bundle_t *b, const prompt_t *p)
{
    return b->n_tools + (size_t)(p - b->prompts);
}

size_t bundle_resource_target(const bundle_t *b, const resource_t *r)
{
    return b->n_tools + b->n_prompts + (size_t)(r - b->resources);
}

bool bundle_resource_on(const resource_t *r)
{
    return avail_on(AVAIL_RESOURCE, r->key);
}

const resource_t *bundle_find_resource(const bundle_t *b, const char *uri, json_t **vars)
{
    *vars = NULL;
    for (size_t i = 0; i < b->n_resources; i++)
        if (b->resources[i].uri && strcmp(b->resources[i].uri, uri) == 0 &&
            bundle_resource_on(&b->resources[i]))
            return &b->resources[i]; /* switched off, it is as if absent: templates may match */
    for (size_t i = 0; i < b->n_resources; i++)
        if (b->resources[i].uri_template && bundle_resource_on(&b->resources[i]) &&
            resource_template_match(b->resources[i].uri_template, uri, vars))
            return &b->resources[i];
    return NULL;
}

const resource_t *bundle_find_template(const bundle_t *b, const char *tmpl)
{
    for (size_t i = 0; i < b->n_resources; i++)
        if (b->resources[i].uri_template && strcmp(b->resources[i].uri_template, tmpl) == 0)
            return bundle_resource_on(&b->resources[i]) ? &b->resources[i] : NULL;
    return NULL;
}
