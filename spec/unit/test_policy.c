/* Policies: bundles built from temp dirs of tool scripts and policy files, fake callers filled
 * by hand, and the exact verdict, reason, challenge scopes and deciding rule of each decision. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lua.h>

#include "check.h"
#include "luamcp/bundle.h"
#include "luamcp/policy.h"

static char root[64];
static char scripts_dir[128];
static char policies_dir[128];

/* ---- files and bundles -------------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!CHECK(f != NULL))
        return;
    fputs(text, f);
    fclose(f);
}

static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
}

/* A tool script declaring every name of the space-separated list (each returns "ok"). */
static void write_tools(const char *names)
{
    char *text = calloc(1, 16384);
    size_t len = 0;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", names);
    for (char *save = NULL, *n = strtok_r(copy, " ", &save); n; n = strtok_r(NULL, " ", &save))
        len += (size_t)snprintf(text + len, 16384 - len,
                                "mcp.tool{name='%s', description='d', "
                                "inputSchema={type='object'}, handler=function() return 'ok' "
                                "end}\n", n);
    write_file(scripts_dir, "t.lua", text);
    free(text);
}

static config_t cfg;

/* Loads scripts/t.lua (tools) and policies/p.lua (and q.lua when given). NULL with *err. */
static bundle_t *load(const char *tools, const char *p, const char *q, bool dev, char **err)
{
    clear_dir(scripts_dir);
    clear_dir(policies_dir);
    write_tools(tools);
    if (p)
        write_file(policies_dir, "p.lua", p);
    if (q)
        write_file(policies_dir, "q.lua", q);
    cfg.dev = dev;
    *err = NULL;
    return bundle_load(&cfg, err);
}

/* Like load, but a load error is a failed check (and NULL). */
static bundle_t *load_ok(const char *tools, const char *p, const char *q, bool dev, int line)
{
    char *err = NULL;
    bundle_t *b = load(tools, p, q, dev, &err);
    if (!check_record(b != NULL, __FILE__, line, "bundle loads"))
        fprintf(stderr, "    %s\n", err ? err : "(no error text)");
    free(err);
    return b;
}
#define LOAD(tools, p, q) load_ok((tools), (p), (q), false, __LINE__)

/* ---- callers -------------------------------------------------------------------------------- */

/* scopes: space-separated or NULL; claims: JSON object text or NULL for {}. */
static auth_caller_t *caller(const char *sub, const char *client_id, const char *issuer,
                             const char *scopes, const char *claims)
{
    auth_caller_t *c = calloc(1, sizeof *c);
    c->refs = 1;
    c->subject = sub ? strdup(sub) : NULL;
    c->client_id = client_id ? strdup(client_id) : NULL;
    c->issuer = issuer ? strdup(issuer) : NULL;
    c->expires_at = 4102444800LL;
    c->scopes = calloc(32, sizeof *c->scopes);
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", scopes ? scopes : "");
    for (char *save = NULL, *s = strtok_r(copy, " ", &save); s && c->n_scopes < 32;
         s = strtok_r(NULL, " ", &save))
        c->scopes[c->n_scopes++] = strdup(s);
    json_error_t je;
    c->claims = json_loads(claims ? claims : "{}", 0, &je);
    if (!CHECK(c->claims != NULL))
        c->claims = json_object();
    return c;
}

/* A caller with only scopes. */
static auth_caller_t *with_scopes(const char *scopes)
{
    return caller("alice", "app", "https://idp.example", scopes, NULL);
}

/* ---- deciding --------------------------------------------------------------------------------- */

static size_t tool_index(const bundle_t *b, const char *tool, int line)
{
    const tool_t *t = bundle_find(b, tool);
    if (!check_record(t != NULL, __FILE__, line, "the tool exists"))
        return (size_t)-1;
    return bundle_index(b, t);
}

/* policy_decide, checking on the way that the vm's stack is left as found and that the
 * verdict returned by policy_static agrees with what it wrote. */
static policy_decision_t decide_at(bundle_t *b, const char *tool, const auth_caller_t *c,
                                   const char *args_json, bool dev, int line)
{
    policy_decision_t d;
    memset(&d, 0, sizeof d);
    size_t i = tool_index(b, tool, line);
    if (i == (size_t)-1) {
        d.verdict = POLICY_HIDDEN;
        snprintf(d.reason, sizeof d.reason, "(test: no tool %s)", tool);
        return d;
    }
    json_t *args = NULL;
    if (args_json) {
        json_error_t je;
        args = json_loads(args_json, 0, &je);
        check_record(args != NULL, __FILE__, line, "args parse");
    }
    lua_State *L = vm_lua(b->vm);
    int top = lua_gettop(L);
    policy_decide(b->policies, b->vm, i, tool, c, args, dev, &d);
    check_record(lua_gettop(L) == top, __FILE__, line, "the vm's stack is balanced");
    json_decref(args);
    return d;
}
#define DECIDE(b, tool, c, args) decide_at((b), (tool), (c), (args), false, __LINE__)
#define DECIDE_DEV(b, tool, c, args) decide_at((b), (tool), (c), (args), true, __LINE__)

static policy_decision_t static_at(bundle_t *b, const char *tool, const auth_caller_t *c,
                                   bool dev, int line)
{
    policy_decision_t d;
    memset(&d, 0, sizeof d);
    size_t i = tool_index(b, tool, line);
    if (i == (size_t)-1)
        return d;
    policy_verdict_t v = policy_static(b->policies, i, c, dev, &d);
    check_record(v == d.verdict, __FILE__, line, "policy_static returns its verdict");
    return d;
}
#define STATIC(b, tool, c) static_at((b), (tool), (c), false, __LINE__)

/* The rule text of line n of policies/<file>. */
static const char *where(const char *file, int n)
{
    static char buf[4][300];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s:%d", policies_dir, file, n);
    return buf[k];
}

/* verdict name, reason (NULL: not checked), challenge scopes ("" unless a challenge) */
#define EXPECT(dec, want_verdict, want_reason, want_scopes)                                   \
    do {                                                                                       \
        policy_decision_t d_ = (dec);                                                          \
        CHECK_STR(policy_verdict_name(d_.verdict), (want_verdict));                            \
        const char *why_ = (want_reason);                                                      \
        if (why_)                                                                              \
            CHECK_STR(d_.reason, why_);                                                        \
        CHECK_STR(d_.scopes, (want_scopes));                                                   \
    } while (0)

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_coverage(void)
{
    bundle_t *b = LOAD("a b", "mcp.policy { tool = 'a' }\n", NULL);
    if (!b)
        return;
    auth_caller_t *alice = with_scopes("s");
    CHECK_INT(policy_rules_for(b->policies, tool_index(b, "a", __LINE__)), 1);
    CHECK_INT(policy_rules_for(b->policies, tool_index(b, "b", __LINE__)), 0);
    policy_decision_t d = DECIDE(b, "a", alice, NULL);
    EXPECT(d, "allow", "scopes and conditions met", "");
    CHECK_STR(d.rule, where("p.lua", 1));
    CHECK(!d.unguarded);

    /* deny by default: no rule, the tool is hidden, for everyone */
    d = DECIDE(b, "b", alice, NULL);
    EXPECT(d, "hidden", "no policy covers this tool", "");
    CHECK_STR(d.rule, "");
    EXPECT(DECIDE(b, "b", NULL, NULL), "hidden", "no policy covers this tool", "");
    EXPECT(STATIC(b, "b", alice), "hidden", "no policy covers this tool", "");
    /* --dev lets it through, marked unguarded */
    d = DECIDE_DEV(b, "b", alice, NULL);
    EXPECT(d, "allow", "no policy covers this tool (--dev)", "");
    CHECK(d.unguarded);
    CHECK(!DECIDE_DEV(b, "a", alice, NULL).unguarded);

    /* the operator hears about it */
    CHECK(b->warnings && strstr(b->warnings, "t.lua:2: tool 'b' is covered by no policy: "
                                             "nobody can call it"));
    CHECK(b->warnings && !strstr(b->warnings, "tool 'a'"));
    CHECK(b->warnings && !strstr(b->warnings, "matching no tool"));
    bundle_free(b);

    b = load_ok("a b", "mcp.policy { tool = 'a' }\n", NULL, true, __LINE__);
    if (b) {
        CHECK(b->warnings &&
              strstr(b->warnings, "tool 'b' is covered by no policy: allowed only because of "
                                  "--dev"));
        bundle_free(b);
    }
    /* every tool covered, every rule used: no warnings at all */
    b = LOAD("a b", "mcp.policy { tools = { 'a', 'b' } }\n", NULL);
    if (b) {
        CHECK_STR(b->warnings, NULL);
        bundle_free(b);
    }
    /* no policy file at all: everything hidden */
    b = LOAD("a", NULL, NULL);
    if (b) {
        EXPECT(DECIDE(b, "a", alice, NULL), "hidden", "no policy covers this tool", "");
        bundle_free(b);
    }
    auth_caller_unref(alice);
}

static void test_scopes(void)
{
    bundle_t *b = LOAD("a b c d e",
                       "mcp.policy { tool = 'a', scopes = { 's1', 's2' } }\n"
                       "mcp.policy { tool = 'a', scopes = { 's2', 's3' } }\n"
                       "mcp.policy { tool = 'b', any_scopes = { 'x', 'y' } }\n"
                       "mcp.policy { tool = 'c', scopes = 's', any_scopes = { 'x', 'y' } }\n"
                       "mcp.policy { tool = 'd', scopes = { 'read:all', 'read', 'ad' } }\n"
                       "mcp.policy { tool = 'e', scopes = 'one' }\n",
                       NULL);
    if (!b)
        return;
    auth_caller_t *none = with_scopes(NULL), *s1 = with_scopes("s1"),
                  *s23 = with_scopes("s2 s3"), *s12 = with_scopes("s1 s2"),
                  *all = with_scopes("s3 s2 s1"), *x = with_scopes("x"), *y = with_scopes("y"),
                  *s = with_scopes("s"), *sx = with_scopes("x s");

    /* all-of, over both matching rules: the challenge names every scope of the tool, once,
     * and the rule that came up short */
    policy_decision_t d = DECIDE(b, "a", none, NULL);
    EXPECT(d, "challenge", "insufficient scope", "s1 s2 s3");
    CHECK_STR(d.rule, where("p.lua", 1));
    d = DECIDE(b, "a", s1, NULL);
    EXPECT(d, "challenge", "insufficient scope", "s1 s2 s3");
    CHECK_STR(d.rule, where("p.lua", 1));
    d = DECIDE(b, "a", s23, NULL);
    EXPECT(d, "challenge", "insufficient scope", "s1 s2 s3");
    CHECK_STR(d.rule, where("p.lua", 1));
    d = DECIDE(b, "a", s12, NULL); /* the first rule is met, the second is not */
    EXPECT(d, "challenge", "insufficient scope", "s1 s2 s3");
    CHECK_STR(d.rule, where("p.lua", 2));
    d = DECIDE(b, "a", all, NULL);
    EXPECT(d, "allow", "scopes and conditions met", "");
    CHECK_STR(d.rule, where("p.lua", 2));
    EXPECT(STATIC(b, "a", all), "allow", NULL, "");
    EXPECT(STATIC(b, "a", s1), "challenge", NULL, "s1 s2 s3");

    /* any_scopes: one is enough; none asks for the first */
    EXPECT(DECIDE(b, "b", x, NULL), "allow", NULL, "");
    EXPECT(DECIDE(b, "b", y, NULL), "allow", NULL, "");
    EXPECT(DECIDE(b, "b", none, NULL), "challenge", "insufficient scope", "x");
    EXPECT(DECIDE(b, "b", s, NULL), "challenge", "insufficient scope", "x");
    /* both kinds in one rule */
    EXPECT(DECIDE(b, "c", s, NULL), "challenge", NULL, "s x");
    EXPECT(DECIDE(b, "c", x, NULL), "challenge", NULL, "s");
    EXPECT(DECIDE(b, "c", sx, NULL), "allow", NULL, "");

    /* dedup compares whole scopes, not substrings */
    EXPECT(DECIDE(b, "d", none, NULL), "challenge", NULL, "read:all read ad");
    /* scopes = "one" (a string, not a list) */
    EXPECT(DECIDE(b, "e", none, NULL), "challenge", NULL, "one");

    /* auth off: no caller at all */
    EXPECT(DECIDE(b, "e", NULL, NULL), "challenge", "insufficient scope", "one");
    EXPECT(DECIDE(b, "b", NULL, NULL), "challenge", "insufficient scope", "x");

    auth_caller_t *cs[] = {none, s1, s23, s12, all, x, y, s, sx};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
        auth_caller_unref(cs[i]);
    bundle_free(b);

    /* auth off and a rule with no scope: allowed */
    b = LOAD("a", "mcp.policy { tool = 'a' }\n", NULL);
    if (b) {
        EXPECT(DECIDE(b, "a", NULL, NULL), "allow", "scopes and conditions met", "");
        bundle_free(b);
    }
}

static void test_globs(void)
{
    bundle_t *b = LOAD("get get_date get_time a b echo xget_a",
                       "mcp.policy { tool = 'get_*', scopes = 'g' }\n"
                       "mcp.policy { tool = '?', scopes = 'one_char' }\n"
                       "mcp.policy { tools = { 'e*o', 'g?t' } }\n"
                       "mcp.policy { tool = 'nothing_*' }\n"
                       "mcp.policy { tool = '*', scopes = 'base' }\n"
                       "mcp.policy { tool = 'a?' }\n",
                       NULL);
    if (!b)
        return;
    const struct {
        const char *tool;
        size_t rules;
        const char *challenge;
    } cases[] = {
        {"get", 2, "base"},           {"get_date", 2, "g base"}, {"get_time", 2, "g base"},
        {"a", 2, "one_char base"},    {"b", 2, "one_char base"}, {"echo", 2, "base"},
        {"xget_a", 1, "base"},
    };
    auth_caller_t *none = with_scopes(NULL);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t t = tool_index(b, cases[i].tool, __LINE__);
        if (!CHECK_INT(policy_rules_for(b->policies, t), cases[i].rules))
            fprintf(stderr, "    tool %s\n", cases[i].tool);
        if (!CHECK_STR(DECIDE(b, cases[i].tool, none, NULL).scopes, cases[i].challenge))
            fprintf(stderr, "    tool %s\n", cases[i].tool);
    }
    auth_caller_unref(none);
    /* the globs that matched nothing are named, with file:line */
    char want[400];
    snprintf(want, sizeof want, "policies matching no tool: %s, %s", where("p.lua", 4),
             where("p.lua", 6));
    if (!CHECK(b->warnings && strstr(b->warnings, want)))
        fprintf(stderr, "    warnings: %s\n    want: %s\n", b->warnings, want);
    CHECK(b->warnings && !strstr(b->warnings, "covered by no policy"));
    bundle_free(b);
}

static void test_conditions(void)
{
    bundle_t *b = LOAD("a b c",
                       "mcp.policy {\n"
                       "  tool = 'a', scopes = 's',\n"
                       "  issuers = { 'https://idp.example', 'https://other.example' },\n"
                       "  client_ids = { 'app', 'cli' },\n"
                       "  claims = { dept = 'eng', groups = 'admins', level = { 1, 2 } },\n"
                       "}\n"
                       "mcp.policy { tool = 'b', claims = { email_verified = true } }\n"
                       "mcp.policy { tool = 'c', issuers = 'https://idp.example' }\n"
                       "mcp.policy { tool = 'c', client_ids = 'app' }\n",
                       NULL);
    if (!b)
        return;
    const char *good = "{\"dept\":\"eng\",\"groups\":[\"users\",\"admins\"],\"level\":2}";
    struct {
        const char *client, *issuer, *scopes, *claims, *verdict, *reason;
    } cases[] = {
        {"app", "https://idp.example", "s", good, "allow", "scopes and conditions met"},
        {"cli", "https://other.example", "s", good, "allow", NULL},
        {"app", "https://evil.example", "s", good, "hidden", "issuer not allowed"},
        {"web", "https://idp.example", "s", good, "hidden", "client not allowed"},
        {NULL, "https://idp.example", "s", good, "hidden", "client not allowed"},
        {"app", "https://idp.example", "s",
         "{\"dept\":\"ops\",\"groups\":\"admins\",\"level\":1}", "hidden",
         "claim dept does not match"},
        /* a string claim equal to the value, an array claim holding it */
        {"app", "https://idp.example", "s",
         "{\"dept\":\"eng\",\"groups\":\"admins\",\"level\":1}", "allow", NULL},
        {"app", "https://idp.example", "s",
         "{\"dept\":\"eng\",\"groups\":[\"users\"],\"level\":1}", "hidden",
         "claim groups does not match"},
        {"app", "https://idp.example", "s",
         "{\"dept\":\"eng\",\"groups\":\"admins\",\"level\":3}", "hidden",
         "claim level does not match"},
        {"app", "https://idp.example", "s",
         "{\"dept\":\"eng\",\"groups\":\"admins\",\"level\":\"1\"}", "hidden",
         "claim level does not match"},
        {"app", "https://idp.example", "s", "{\"dept\":\"eng\",\"groups\":\"admins\"}",
         "hidden", "claim level does not match"},
        /* conditions come before scopes: a stranger never learns which scope to ask for */
        {"web", "https://idp.example", NULL, good, "hidden", "client not allowed"},
        {"app", "https://idp.example", NULL, good, "challenge", "insufficient scope"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        auth_caller_t *c =
            caller("alice", cases[i].client, cases[i].issuer, cases[i].scopes, cases[i].claims);
        policy_decision_t d = DECIDE(b, "a", c, NULL);
        bool ok = CHECK_STR(policy_verdict_name(d.verdict), cases[i].verdict);
        if (cases[i].reason)
            ok = CHECK_STR(d.reason, cases[i].reason) && ok;
        if (!ok)
            fprintf(stderr, "    case %zu\n", i);
        if (d.verdict == POLICY_HIDDEN)
            CHECK_STR(d.rule, where("p.lua", 1));
        auth_caller_unref(c);
    }
    EXPECT(DECIDE(b, "a", NULL, NULL), "hidden", "issuer not allowed", "");

    auth_caller_t *v = caller("bob", "x", "y", NULL, "{\"email_verified\":true}");
    auth_caller_t *nv = caller("bob", "x", "y", NULL, "{\"email_verified\":false}");
    auth_caller_t *vs = caller("bob", "x", "y", NULL, "{\"email_verified\":\"true\"}");
    EXPECT(DECIDE(b, "b", v, NULL), "allow", NULL, "");
    EXPECT(DECIDE(b, "b", nv, NULL), "hidden", "claim email_verified does not match", "");
    EXPECT(DECIDE(b, "b", vs, NULL), "hidden", "claim email_verified does not match", "");
    EXPECT(DECIDE(b, "b", NULL, NULL), "hidden", "claim email_verified does not match", "");
    auth_caller_unref(v);
    auth_caller_unref(nv);
    auth_caller_unref(vs);

    /* two rules, each with its own condition: both must hold */
    auth_caller_t *ok = caller("c", "app", "https://idp.example", NULL, NULL);
    auth_caller_t *wrong_client = caller("c", "cli", "https://idp.example", NULL, NULL);
    EXPECT(DECIDE(b, "c", ok, NULL), "allow", NULL, "");
    policy_decision_t d = DECIDE(b, "c", wrong_client, NULL);
    EXPECT(d, "hidden", "client not allowed", "");
    CHECK_STR(d.rule, where("p.lua", 9));
    auth_caller_unref(ok);
    auth_caller_unref(wrong_client);
    bundle_free(b);
}

static const char checks_policy[] =
    /*  1 */ "mcp.policy { tool = 'c_allow', check = function() return mcp.allow() end }\n"
    /*  2 */ "mcp.policy { tool = 'c_true', check = function() return true end }\n"
    /*  3 */ "mcp.policy { tool = 'c_deny', check = function() return mcp.deny('over the limit') "
             "end }\n"
    /*  4 */ "mcp.policy { tool = 'c_false', check = function() return false, 'not today' end }\n"
    /*  5 */ "mcp.policy { tool = 'c_false_bare', check = function() return false end }\n"
    /*  6 */ "mcp.policy { tool = 'c_chal_list', check = function() return mcp.challenge({ 'x' })"
             " end }\n"
    /*  7 */ "mcp.policy { tool = 'c_chal_str', check = function() return mcp.challenge('x', "
             "'step up') end }\n"
    /*  8 */ "mcp.policy { tool = 'c_nothing', check = function() end }\n"
    /*  9 */ "mcp.policy { tool = 'c_string', check = function() return 'allow' end }\n"
    /* 10 */ "mcp.policy { tool = 'c_forged', check = function() return { kind = 'allow' } end }\n"
    /* 11 */ "mcp.policy { tool = 'c_error', check = function() error('boom') end }\n"
    /* 12 */ "mcp.policy { tool = 'c_loop', check = function() while true do end end }\n"
    /* 13 */ "mcp.policy { tool = 'c_pcall_loop', check = function()\n"
    /* 14 */ "  while true do pcall(function() while true do end end) end end }\n"
    /* 15 */ "mcp.policy { tool = 'c_mem', check = function()\n"
    /* 16 */ "  local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 4096) .. i end end }\n"
    /* 17 */ "mcp.policy { tool = 'c_amount', check = function(caller, tool, args)\n"
    /* 18 */ "  if math.type(args.amount) ~= 'integer' then return mcp.deny('amount required') "
             "end\n"
    /* 19 */ "  if args.amount > 100 then return mcp.deny('amount over 100') end\n"
    /* 20 */ "  return true end }\n"
    /* 21 */ "mcp.policy { tool = 'c_claims', check = function(caller)\n"
    /* 22 */ "  return caller.claims.dept == 'eng', 'eng only' end }\n"
    /* 23 */ "mcp.policy { tool = 'c_scopes', check = function(caller)\n"
    /* 24 */ "  if caller.scopes:has('admin') then return mcp.allow() end\n"
    /* 25 */ "  return mcp.challenge('admin', 'admins only') end }\n"
    /* 26 */ "mcp.policy { tool = 'c_view', check = function(caller, tool, args, ctx)\n"
    /* 27 */ "  local s = caller.scopes\n"
    /* 28 */ "  return mcp.deny(string.format('%s|%s|%s|%d|%s|%s|%s|%s|%s|%d|%s|%s|%s|%s',\n"
    /* 29 */ "    caller.subject, caller.client_id, caller.issuer, caller.expires_at,\n"
    /* 30 */ "    tostring(s:has('a')), tostring(s:has('zz')), tostring(s:has('b')), "
             "tostring(s:all{'a','b'}),\n"
    /* 31 */ "    tostring(s:any{'z','b'}), #s, table.concat(s:list(), ','), tool, ctx.tool,\n"
    /* 32 */ "    tostring(ctx.policy))) end }\n"
    /* 33 */ "mcp.policy { tool = 'c_write', check = function(caller) caller.subject = 'root' "
             "return true end }\n"
    /* 34 */ "mcp.policy { tool = 'c_write_scope', check = function(caller) "
             "caller.scopes.admin = true return true end }\n"
    /* 35 */ "mcp.policy { tool = 'c_yield', check = function() coroutine.yield() return true "
             "end }\n"
    /* 36 */ "mcp.policy { tool = 'c_declare', check = function() mcp.policy { tool = '*' } "
             "return true end }\n"
    /* 37 */ "mcp.policy { tool = 'c_nil_caller', check = function(caller) "
             "return caller == nil, 'has a caller' end }\n";

static void test_checks(void)
{
    bundle_t *b = LOAD("c_allow c_true c_deny c_false c_false_bare c_chal_list c_chal_str "
                       "c_nothing c_string c_forged c_error c_loop c_pcall_loop c_mem c_amount "
                       "c_claims c_scopes c_view c_write c_write_scope c_yield c_declare "
                       "c_nil_caller",
                       checks_policy, NULL);
    if (!b)
        return;
    auth_caller_t *alice = caller("alice", "app", "https://idp.example", "a b",
                                  "{\"dept\":\"eng\"}");
    auth_caller_t *bob = caller("bob", "app", "https://idp.example", "admin",
                                "{\"dept\":\"ops\"}");

    policy_decision_t d = DECIDE(b, "c_allow", alice, NULL);
    EXPECT(d, "allow", "check allowed", "");
    CHECK_STR(d.rule, where("p.lua", 1));
    EXPECT(DECIDE(b, "c_true", alice, NULL), "allow", "check allowed", "");
    d = DECIDE(b, "c_deny", alice, NULL);
    EXPECT(d, "deny", "over the limit", "");
    CHECK_STR(d.rule, where("p.lua", 3));
    EXPECT(DECIDE(b, "c_false", alice, NULL), "deny", "not today", "");
    EXPECT(DECIDE(b, "c_false_bare", alice, NULL), "deny", "denied by policy", "");
    d = DECIDE(b, "c_chal_list", alice, NULL);
    EXPECT(d, "challenge", "more scopes are needed", "x");
    CHECK_STR(d.rule, where("p.lua", 6));
    EXPECT(DECIDE(b, "c_chal_str", alice, NULL), "challenge", "step up", "x");
    /* deny by default: only an explicit allow allows */
    EXPECT(DECIDE(b, "c_nothing", alice, NULL), "deny", "the policy check returned no decision",
           "");
    EXPECT(DECIDE(b, "c_string", alice, NULL), "deny", "the policy check returned no decision",
           "");
    EXPECT(DECIDE(b, "c_forged", alice, NULL), "deny", "the policy check returned no decision",
           "");

    /* failures deny, and the server goes on */
    EXPECT(DECIDE(b, "c_error", alice, NULL), "deny", "the policy check failed (error)", "");
    EXPECT(DECIDE(b, "c_allow", alice, NULL), "allow", NULL, "");
    EXPECT(DECIDE(b, "c_loop", alice, NULL), "deny", "the policy check failed (budget)", "");
    EXPECT(DECIDE(b, "c_allow", alice, NULL), "allow", NULL, "");
    EXPECT(DECIDE(b, "c_pcall_loop", alice, NULL), "deny", "the policy check failed (budget)",
           "");
    EXPECT(DECIDE(b, "c_allow", alice, NULL), "allow", NULL, "");
    EXPECT(DECIDE(b, "c_mem", alice, NULL), "deny", "the policy check failed (memory)", "");
    EXPECT(DECIDE(b, "c_allow", alice, NULL), "allow", NULL, "");
    lua_gc(vm_lua(b->vm), LUA_GCCOLLECT);
    CHECK(vm_memory(b->vm) < (4u << 20)); /* nothing holds what the check piled up */
    EXPECT(DECIDE(b, "c_yield", alice, NULL), "deny", "the policy check failed (error)", "");
    EXPECT(DECIDE(b, "c_true", alice, NULL), "allow", NULL, "");

    /* checks read the arguments */
    EXPECT(DECIDE(b, "c_amount", alice, "{\"amount\":50}"), "allow", NULL, "");
    EXPECT(DECIDE(b, "c_amount", alice, "{\"amount\":100}"), "allow", NULL, "");
    EXPECT(DECIDE(b, "c_amount", alice, "{\"amount\":101}"), "deny", "amount over 100", "");
    EXPECT(DECIDE(b, "c_amount", alice, "{\"amount\":\"lots\"}"), "deny", "amount required", "");
    EXPECT(DECIDE(b, "c_amount", alice, NULL), "deny", "amount required", "");

    /* ... and the caller: claims and scopes */
    EXPECT(DECIDE(b, "c_claims", alice, NULL), "allow", NULL, "");
    EXPECT(DECIDE(b, "c_claims", bob, NULL), "deny", "eng only", "");
    EXPECT(DECIDE(b, "c_scopes", bob, NULL), "allow", NULL, "");
    d = DECIDE(b, "c_scopes", alice, NULL);
    EXPECT(d, "challenge", "admins only", "admin");
    CHECK_STR(d.rule, where("p.lua", 23));
    EXPECT(DECIDE(b, "c_view", alice, NULL), "deny",
           "alice|app|https://idp.example|4102444800|true|false|true|true|true|2|a,b|c_view|"
           "c_view|true",
           "");
    /* the caller is read-only */
    EXPECT(DECIDE(b, "c_write", alice, NULL), "deny", "the policy check failed (error)", "");
    EXPECT(DECIDE(b, "c_write_scope", alice, NULL), "deny", "the policy check failed (error)",
           "");
    /* rules can't be declared from a check */
    EXPECT(DECIDE(b, "c_declare", alice, NULL), "deny", "the policy check failed (error)", "");
    CHECK_INT(policy_set_size(b->policies), 23);
    /* auth off: the check sees no caller */
    EXPECT(DECIDE(b, "c_nil_caller", NULL, NULL), "allow", NULL, "");
    EXPECT(DECIDE(b, "c_nil_caller", alice, NULL), "deny", "has a caller", "");
    EXPECT(DECIDE(b, "c_claims", NULL, NULL), "deny", "the policy check failed (error)", "");
    /* --dev changes nothing for a tool a rule covers */
    EXPECT(DECIDE_DEV(b, "c_deny", alice, NULL), "deny", "over the limit", "");
    /* tools/list never runs checks */
    EXPECT(STATIC(b, "c_deny", alice), "allow", "scopes and conditions met", "");
    EXPECT(STATIC(b, "c_error", alice), "allow", "scopes and conditions met", "");

    auth_caller_unref(alice);
    auth_caller_unref(bob);
    bundle_free(b);
}

static void test_check_composition(void)
{
    bundle_t *b = LOAD(
        "two first_denies guarded count hidden_check",
        /* 1 */ "local runs = 0\n"
        /* 2 */ "mcp.policy { tool = 'two', check = function() return true end }\n"
        /* 3 */ "mcp.policy { tool = 'two', scopes = 's', check = function() "
                "return mcp.deny('second') end }\n"
        /* 4 */ "mcp.policy { tool = 'first_denies', check = function() "
                "return mcp.deny('first') end }\n"
        /* 5 */ "mcp.policy { tool = 'first_denies', check = function() error('never') end }\n"
        /* 6 */ "mcp.policy { tool = 'guarded', scopes = 's', check = function() "
                "runs = runs + 1 return true end }\n"
        /* 7 */ "mcp.policy { tool = 'guarded', any_scopes = { 'x', 'y' } }\n"
        /* 8 */ "mcp.policy { tool = 'count', check = function() "
                "return mcp.deny(tostring(runs)) end }\n"
        /* 9 */ "mcp.policy { tool = 'hidden_check', client_ids = 'app', check = function() "
                "error('must not run') end }\n"
        /*10 */ "mcp.policy { tool = 'hidden_check', scopes = 's' }\n",
        NULL);
    if (!b)
        return;
    auth_caller_t *none = with_scopes(NULL), *s = with_scopes("s"), *sx = with_scopes("s x");
    auth_caller_t *stranger = caller("eve", "web", "https://idp.example", "s", NULL);

    policy_decision_t d = DECIDE(b, "two", s, NULL);
    EXPECT(d, "deny", "second", "");
    CHECK_STR(d.rule, where("p.lua", 3));
    d = DECIDE(b, "first_denies", s, NULL);
    EXPECT(d, "deny", "first", "");
    CHECK_STR(d.rule, where("p.lua", 4));

    /* the declarative part refuses first: the check does not run */
    EXPECT(DECIDE(b, "guarded", none, NULL), "challenge", NULL, "s x");
    EXPECT(DECIDE(b, "guarded", s, NULL), "challenge", NULL, "s x");
    EXPECT(DECIDE(b, "count", none, NULL), "deny", "0", "");
    EXPECT(DECIDE(b, "guarded", sx, NULL), "allow", "check allowed", "");
    EXPECT(DECIDE(b, "count", none, NULL), "deny", "1", "");
    EXPECT(STATIC(b, "guarded", sx), "allow", NULL, "");
    EXPECT(DECIDE(b, "count", none, NULL), "deny", "1", "");
    EXPECT(DECIDE_DEV(b, "guarded", none, NULL), "challenge", NULL, "s x");
    EXPECT(DECIDE(b, "count", none, NULL), "deny", "1", "");

    d = DECIDE(b, "hidden_check", stranger, NULL);
    EXPECT(d, "hidden", "client not allowed", "");
    CHECK_STR(d.rule, where("p.lua", 9));
    EXPECT(DECIDE(b, "hidden_check", none, NULL), "challenge", NULL, "s");
    /* and when it does run, its error counts: the two above really did skip it */
    EXPECT(DECIDE(b, "hidden_check", s, NULL), "deny", "the policy check failed (error)", "");

    auth_caller_t *cs[] = {none, s, sx, stranger};
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
        auth_caller_unref(cs[i]);
    bundle_free(b);
}

static void test_loggable_args(void)
{
    bundle_t *b = LOAD("a b",
                       "mcp.policy { tool = 'a', log_args = { 'format', 'mode' } }\n"
                       "mcp.policy { tools = { 'a', 'b' }, log_args = 'algorithm' }\n",
                       NULL);
    if (!b)
        return;
    json_error_t je;
    json_t *args = json_loads("{\"format\":\"hex\",\"algorithm\":\"sha256\",\"secret\":\"s3\","
                              "\"mode\":{\"deep\":[1,2]}}", 0, &je);
    json_t *want = json_loads("{\"format\":\"hex\",\"algorithm\":\"sha256\","
                              "\"mode\":{\"deep\":[1,2]}}", 0, &je);
    json_t *got = policy_loggable_args(b->policies, tool_index(b, "a", __LINE__), args);
    if (!CHECK(got && json_equal(got, want))) {
        char *s = got ? json_dumps(got, JSON_COMPACT) : NULL;
        fprintf(stderr, "    got: %s\n", s ? s : "NULL");
        free(s);
    }
    json_decref(got);
    json_decref(want);
    want = json_loads("{\"algorithm\":\"sha256\"}", 0, &je);
    got = policy_loggable_args(b->policies, tool_index(b, "b", __LINE__), args);
    CHECK(got && json_equal(got, want));
    json_decref(got);
    json_decref(want);
    json_t *none = json_loads("{\"secret\":\"s3\"}", 0, &je);
    CHECK(policy_loggable_args(b->policies, tool_index(b, "a", __LINE__), none) == NULL);
    CHECK(policy_loggable_args(b->policies, tool_index(b, "a", __LINE__), NULL) == NULL);
    json_decref(none);
    json_decref(args);
    bundle_free(b);
}

/* The load error of a policy file (or, with tools_script, of that tool script) must contain
 * "<dir>/<want>": dir is the policies directory, or the scripts directory for a tool script. */
static void expect_error(const char *tools_script, const char *policy, const char *want, int line)
{
    char *err = NULL;
    bundle_t *b;
    if (tools_script) {
        clear_dir(scripts_dir);
        clear_dir(policies_dir);
        write_file(scripts_dir, "t.lua", tools_script);
        if (policy)
            write_file(policies_dir, "p.lua", policy);
        b = bundle_load(&cfg, &err);
    } else {
        b = load("a", policy, NULL, false, &err);
    }
    char full[600];
    snprintf(full, sizeof full, "%s/%s", tools_script ? scripts_dir : policies_dir, want);
    if (!check_record(b == NULL && err && strstr(err, full), __FILE__, line, "load error"))
        fprintf(stderr, "    want: %s\n    got:  %s\n", full, err ? err : "(loaded fine)");
    bundle_free(b);
    free(err);
}
#define EXPECT_ERROR(policy, want) expect_error(NULL, (policy), (want), __LINE__)

static void test_load_errors(void)
{
    EXPECT_ERROR("\nmcp.policy { tool = 'a', scope = 's' }\n",
                 "p.lua:2: unknown field 'scope' (fields: tool or tools, scopes,");
    EXPECT_ERROR("mcp.policy { 'a' }", "p.lua:1: unknown field '?'");
    EXPECT_ERROR("\n\nmcp.policy { scopes = 's' }",
                 "p.lua:3: a policy needs 'tool' (a name or glob such as \"get_*\") or "
                 "'tools'");
    EXPECT_ERROR("mcp.policy { tools = {} }", "p.lua:1: a policy needs 'tool'");
    EXPECT_ERROR("mcp.policy { tool = 'a', tools = { 'a' } }",
                 "p.lua:1: give 'tool' or 'tools', not both");
    EXPECT_ERROR("mcp.policy { tool = 'a', check = 'yes' }",
                 "p.lua:1: 'check' must be a function(caller, tool, args, ctx)");
    EXPECT_ERROR("mcp.policy { tool = 'a', scopes = { 's', 1 } }",
                 "p.lua:1: 'scopes' must be a string or a list of strings (at most 256)");
    /* a map where a list belongs would read as empty and drop the requirement */
    EXPECT_ERROR("mcp.policy { tool = 'a', scopes = { admin = true } }",
                 "p.lua:1: 'scopes' must be a string or a list of strings");
    EXPECT_ERROR("mcp.policy { tool = 'a', client_ids = { app = true } }",
                 "p.lua:1: 'client_ids' must be a string or a list of strings");
    EXPECT_ERROR("mcp.policy { tool = 'a', scopes = { 'read', x = 1 } }",
                 "p.lua:1: 'scopes' must be a string or a list of strings");
    EXPECT_ERROR("mcp.policy { tool = 'a', scopes = { 'has space' } }",
                 "p.lua:1: invalid scope \"has space\"");
    EXPECT_ERROR("mcp.policy { tool = 'a', any_scopes = true }",
                 "p.lua:1: 'any_scopes' must be a string or a list of strings");
    EXPECT_ERROR("mcp.policy { tool = 1 }",
                 "p.lua:1: 'tool' must be a string or a list of strings");
    EXPECT_ERROR("mcp.policy { tool = 'a', issuers = { {} } }",
                 "p.lua:1: 'issuers' must be a string or a list of strings");
    EXPECT_ERROR("mcp.policy { tool = 'a', claims = { 'admin' } }",
                 "p.lua:1: 'claims' must map claim names to a value or a list of values");
    EXPECT_ERROR("mcp.policy { tool = 'a', claims = { f = print } }",
                 "p.lua:1: 'claims' must map claim names");
    EXPECT_ERROR("mcp.policy { tool = 'a', description = {} }",
                 "p.lua:1: 'description' must be a string");
    EXPECT_ERROR("mcp.policy 'a'", "p.lua:1: bad argument #1 to");
    EXPECT_ERROR("\nerror('no policy today')", "p.lua:2: no policy today");
    EXPECT_ERROR("this is not lua", "p.lua:1:");
    EXPECT_ERROR("while true do end", "p.lua: loading exceeded its budget");
    /* each phase has its declaration */
    EXPECT_ERROR("\nmcp.tool { name = 'z', description = 'd', inputSchema = { type = 'object' },"
                 " handler = function() end }",
                 "p.lua:2: mcp.tool can only be called while scripts are loading");
    expect_error("mcp.tool { name = 'a', description = 'd', inputSchema = { type = 'object' }, "
                 "handler = function() end }\nmcp.policy { tool = 'a' }\n",
                 "mcp.policy { tool = 'a' }",
                 "t.lua:2: mcp.policy can only be called while policy files load "
                 "(put it in the policies directory)",
                 __LINE__);

    /* every broken file is reported, not just the first */
    char *err = NULL;
    bundle_t *b = load("a", "mcp.policy { tool = 'a', scope = 's' }",
                       "\nmcp.policy { tool = 'a', check = 1 }", false, &err);
    CHECK(b == NULL);
    char p_want[300], q_want[300];
    snprintf(p_want, sizeof p_want, "%s/p.lua:1: unknown field 'scope'", policies_dir);
    snprintf(q_want, sizeof q_want, "%s/q.lua:2: 'check' must be a function", policies_dir);
    CHECK(err && strstr(err, p_want));
    CHECK(err && strstr(err, q_want));
    free(err);
    bundle_free(b);

    /* rules of several files all count */
    b = LOAD("a", "mcp.policy { tool = 'a', scopes = 'p' }", "mcp.policy { tool = 'a', scopes = "
                                                              "'q' }");
    if (b) {
        auth_caller_t *none = with_scopes(NULL);
        policy_decision_t d = DECIDE(b, "a", none, NULL);
        EXPECT(d, "challenge", NULL, "p q");
        CHECK_STR(d.rule, where("p.lua", 1));
        auth_caller_unref(none);
        bundle_free(b);
    }
}

static void test_scope_lists(void)
{
    bundle_t *b = LOAD("a b c",
                       "mcp.policy { tool = 'a', scopes = { 's1', 's2' } }\n"
                       "mcp.policy { tool = 'a', any_scopes = { 'x', 'y' }, check = function() "
                       "return true end }\n"
                       "mcp.policy { tool = 'b', scopes = { 's2', 'x' } }\n"
                       "mcp.policy { tool = 'b', any_scopes = { 'y', 'z' } }\n"
                       "mcp.policy { tool = 'c' }\n",
                       NULL);
    if (!b)
        return;
    json_t *scopes = policy_scopes(b->policies);
    char *text = json_dumps(scopes, JSON_COMPACT);
    CHECK_STR(text, "[\"s1\",\"s2\",\"x\",\"y\",\"z\"]");
    free(text);
    json_decref(scopes);

    const struct {
        const char *tool, *text;
    } cases[] = {
        {"a", "s1 s2 (any of: x y) +check"},
        {"b", "s2 x (any of: y z)"},
        {"c", "(no scope)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *s = policy_describe_scopes(b->policies, tool_index(b, cases[i].tool, __LINE__));
        CHECK_STR(s, cases[i].text);
        free(s);
    }
    bundle_free(b);

    b = LOAD("a", NULL, NULL);
    if (b) {
        char *s = policy_describe_scopes(b->policies, 0);
        CHECK_STR(s, "(no scope)");
        free(s);
        scopes = policy_scopes(b->policies);
        CHECK_INT(json_array_size(scopes), 0);
        json_decref(scopes);
        bundle_free(b);
    }
    CHECK_STR(policy_verdict_name(POLICY_ALLOW), "allow");
    CHECK_STR(policy_verdict_name(POLICY_HIDDEN), "hidden");
    CHECK_STR(policy_verdict_name(POLICY_CHALLENGE), "challenge");
    CHECK_STR(policy_verdict_name(POLICY_DENY), "deny");
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/luamcp-test-policy-XXXXXX");
    if (!CHECK(mkdtemp(root)))
        return check_report();
    snprintf(scripts_dir, sizeof scripts_dir, "%s/scripts", root);
    snprintf(policies_dir, sizeof policies_dir, "%s/policies", root);
    mkdir(scripts_dir, 0700);
    mkdir(policies_dir, 0700);

    config_defaults(&cfg);
    config_set_str(&cfg.scripts_dir, scripts_dir);
    config_set_str(&cfg.policies_dir, policies_dir);
    /* budgets that end runaway checks by instruction count, not by the clock, so a busy or
     * sanitized machine gives the same answers */
    cfg.limits.cpu_ms = 60000;
    cfg.limits.instructions = 5000000;
    cfg.limits.memory_bytes = 16u << 20;

    test_coverage();
    test_scopes();
    test_globs();
    test_conditions();
    test_checks();
    test_check_composition();
    test_loggable_args();
    test_load_errors();
    test_scope_lists();

    config_free(&cfg);
    clear_dir(scripts_dir);
    clear_dir(policies_dir);
    rmdir(scripts_dir);
    rmdir(policies_dir);
    rmdir(root);
    return check_report();
}
