/* Run-time switches (avail.c): what is switched off is not found by any lookup, every flip
 * (and only a flip) calls the hook with its kind, and the list of switched-off names is
 * bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/avail.h"
#include "luamcp/bundle.h"

static int flips[AVAIL_KINDS];

static void count(avail_kind_t kind)
{
    flips[kind]++;
}

static const char *const SCRIPT =
    "local S = {type='object'}\n"
    "mcp.tool{name='a', description='d', inputSchema=S, handler=function() end}\n"
    "mcp.tool{name='b', description='d', inputSchema=S, handler=function() end}\n"
    "mcp.prompt{name='p', description='d', handler=function() return 'x' end}\n"
    "mcp.static_resource{uri='test://r', name='r', description='d',\n"
    "  handler=function() return 'x' end}\n"
    "mcp.resource_template{uriTemplate='test://t/{id}', name='t', description='d',\n"
    "  handler=function() return 'x' end}\n";

int main(void)
{
    char dir[64] = "/tmp/luamcp-test-avail-XXXXXX";
    if (!CHECK(mkdtemp(dir)))
        return check_report();
    char path[128];
    snprintf(path, sizeof path, "%s/t.lua", dir);
    FILE *f = fopen(path, "w");
    fputs(SCRIPT, f);
    fclose(f);
    config_t cfg;
    config_defaults(&cfg);
    config_set_str(&cfg.scripts_dir, dir);
    char *err = NULL;
    bundle_t *b = bundle_load(&cfg, &err);
    if (!CHECK(b != NULL)) {
        fprintf(stderr, "    %s\n", err);
        return check_report();
    }
    avail_set_hook(count);
    json_t *vars = NULL;

    /* everything is on until switched off */
    CHECK(bundle_find(b, "a") && bundle_find(b, "b") && bundle_find_prompt(b, "p"));
    CHECK(avail_on(AVAIL_TOOL, "never-declared"));

    /* off: not found; the others and same-named entries of other kinds are untouched */
    CHECK_INT(avail_set(AVAIL_TOOL, "a", false), 1);
    CHECK(bundle_find(b, "a") == NULL);
    CHECK(bundle_find(b, "b") != NULL);
    CHECK(!avail_on(AVAIL_TOOL, "a") && avail_on(AVAIL_PROMPT, "a"));
    CHECK_INT(avail_set(AVAIL_TOOL, "a", false), 0); /* already off: no flip, no hook */
    CHECK_INT(flips[AVAIL_TOOL], 1);
    CHECK_INT(avail_set(AVAIL_TOOL, "a", true), 1);
    CHECK(bundle_find(b, "a") != NULL);
    CHECK_INT(avail_set(AVAIL_TOOL, "a", true), 0);
    CHECK_INT(flips[AVAIL_TOOL], 2);

    CHECK_INT(avail_set(AVAIL_PROMPT, "p", false), 1);
    CHECK(bundle_find_prompt(b, "p") == NULL);
    CHECK_INT(flips[AVAIL_PROMPT], 1);
    avail_set(AVAIL_PROMPT, "p", true);

    /* resources by URI, templates by their URI template, both through every lookup */
    const resource_t *r = bundle_find_resource(b, "test://r", &vars);
    CHECK(r != NULL && bundle_resource_on(r));
    CHECK_INT(avail_set(AVAIL_RESOURCE, "test://r", false), 1);
    CHECK(bundle_find_resource(b, "test://r", &vars) == NULL);
    CHECK(r && !bundle_resource_on(r)); /* what listings ask */
    CHECK(bundle_find_resource(b, "test://t/7", &vars) != NULL);
    json_decref(vars);
    CHECK_INT(avail_set(AVAIL_RESOURCE, "test://t/{id}", false), 1);
    CHECK(bundle_find_resource(b, "test://t/7", &vars) == NULL && vars == NULL);
    CHECK(bundle_find_template(b, "test://t/{id}") == NULL);
    avail_set(AVAIL_RESOURCE, "test://t/{id}", true);
    avail_set(AVAIL_RESOURCE, "test://r", true);
    CHECK(bundle_find_template(b, "test://t/{id}") != NULL);
    CHECK_INT(flips[AVAIL_RESOURCE], 4);

    /* bounded: AVAIL_MAX names off at once, then -1 and nothing changes */
    char name[32];
    for (int i = 0; i < AVAIL_MAX; i++) {
        snprintf(name, sizeof name, "t%d", i);
        CHECK_INT(avail_set(AVAIL_TOOL, name, false), 1);
    }
    CHECK_INT(avail_set(AVAIL_TOOL, "a", false), -1);
    CHECK(bundle_find(b, "a") != NULL);
    for (int i = 0; i < AVAIL_MAX; i++) {
        snprintf(name, sizeof name, "t%d", i);
        avail_set(AVAIL_TOOL, name, true);
    }
    CHECK(avail_on(AVAIL_TOOL, "t0"));

    CHECK_INT(avail_kind_of("tool"), AVAIL_TOOL);
    CHECK_INT(avail_kind_of("resource"), AVAIL_RESOURCE);
    CHECK_INT(avail_kind_of("tools"), -1);

    avail_set_hook(NULL);
    bundle_free(b);
    config_free(&cfg);
    unlink(path);
    rmdir(dir);
    return check_report();
}
