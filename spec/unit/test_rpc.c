/* JSON-RPC envelopes and the MCP methods against a real bundle of small tools. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/rpc.h"

static const char tools_lua[] =
    "mcp.tool{name='echo', description='d', inputSchema={type='object', properties={text={"
    "type='string'}}, required={'text'}, additionalProperties=false},"
    " handler=function(a) return a.text end}\n"
    "mcp.tool{name='structured', description='d', inputSchema={type='object'},"
    " handler=function() return {answer=42, list={1,2,3}} end}\n"
    "mcp.tool{name='fail', description='d', inputSchema={type='object'},"
    " handler=function() return nil, 'nope' end}\n"
    "mcp.tool{name='boom', description='d', inputSchema={type='object'},"
    " handler=function() error('secret detail') end}\n"
    "mcp.tool{name='fn', description='d', inputSchema={type='object'},"
    " handler=function() return print end}\n"
    "mcp.tool{name='items', description='d', inputSchema={type='object'},"
    " handler=function() return {mcp.text('a'), mcp.image('AAAA', 'image/png')} end}\n"
    "mcp.tool{name='explicit', description='d', inputSchema={type='object'},"
    " handler=function() return mcp.result{content={mcp.text('x')}, isError=true} end}\n"
    "mcp.tool{name='typed', description='d', inputSchema={type='object'},"
    " outputSchema={type='object', properties={n={type='integer'}}, required={'n'}},"
    " handler=function(a) return a.good and {n=1} or {n='one'} end}\n"
    "mcp.tool{name='progress', description='d', inputSchema={type='object'},"
    " handler=function(a, ctx) ctx.progress(1, 2, 'half') ctx.progress(2) return 'ok' end}\n"
    "mcp.tool{name='nothing', description='d', inputSchema={type='object'},"
    " handler=function() end}\n";

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    if (!v)
        fprintf(stderr, "bad test JSON: %s\n", e.text);
    return v;
}

static int error_code(json_t *resp)
{
    return (int)json_integer_value(json_object_get(json_object_get(resp, "error"), "code"));
}

static void test_classify(void)
{
    static const struct { const char *msg; int code; bool id_echoed; } bad[] = {
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", RPC_INVALID_REQUEST, false},
        {"42", RPC_INVALID_REQUEST, false},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", RPC_INVALID_REQUEST, true},
        {"{\"id\":1,\"method\":\"ping\"}", RPC_INVALID_REQUEST, true},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", RPC_INVALID_REQUEST, true},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", RPC_INVALID_REQUEST, false},
        {"{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", RPC_INVALID_REQUEST, false},
        {"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", RPC_INVALID_REQUEST, false},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", RPC_INVALID_REQUEST, true},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *m = parse(bad[i].msg), *err = NULL;
        rpc_msg_t out;
        CHECK_INT(rpc_classify(m, &out, &err), -1);
        if (!CHECK_INT(error_code(err), bad[i].code))
            fprintf(stderr, "    for %s\n", bad[i].msg);
        json_t *id = json_object_get(err, "id");
        CHECK(bad[i].id_echoed ? json_integer_value(id) == 1 : json_is_null(id));
        json_decref(err);
        json_decref(m);
    }
    rpc_msg_t out;
    json_t *err = NULL;
    json_t *m = parse("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    CHECK_INT(rpc_classify(m, &out, &err), 0);
    CHECK_INT(out.kind, RPC_NOTIFICATION);
    json_decref(m);
    m = parse("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}");
    CHECK_INT(rpc_classify(m, &out, &err), 0);
    CHECK_INT(out.kind, RPC_RESPONSE);
    json_decref(m);
    m = parse("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/list\"}");
    CHECK_INT(rpc_classify(m, &out, &err), 0);
    CHECK_INT(out.kind, RPC_REQUEST);
    CHECK_STR(out.method, "tools/list");
    json_decref(m);
}

/* Runs one request; returns the response (caller frees); notes gets notifications. */
static json_t *call(rpc_env_t *env, const char *req)
{
    json_t *m = parse(req), *err = NULL;
    rpc_msg_t msg;
    if (rpc_classify(m, &msg, &err) != 0) {
        json_decref(m);
        return err;
    }
    json_decref(env->notifications);
    env->notifications = NULL;
    json_t *resp = rpc_dispatch(env, &msg);
    json_decref(m);
    return resp;
}

static const char *result_text(json_t *resp)
{
    json_t *content = json_object_get(json_object_get(resp, "result"), "content");
    return json_string_value(json_object_get(json_array_get(content, 0), "text"));
}

static bool is_error_result(json_t *resp)
{
    return json_is_true(json_object_get(json_object_get(resp, "result"), "isError"));
}

static void test_initialize(rpc_env_t *env)
{
    json_t *r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                          "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{}}}");
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "result"),
                                                "protocolVersion")), "2025-06-18");
    CHECK_STR(env->negotiated, "2025-06-18");
    json_decref(r);
    r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                  "{\"protocolVersion\":\"1999-01-01\"}}");
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "result"),
                                                "protocolVersion")), RPC_LATEST_VERSION);
    json_decref(r);
    r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}");
    CHECK_INT(error_code(r), RPC_INVALID_PARAMS);
    json_decref(r);
    r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"params\":[1]}");
    CHECK_INT(error_code(r), RPC_INVALID_PARAMS); /* a method-level error, answered 200 */
    json_decref(r);
    r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
    CHECK(json_is_object(json_object_get(r, "result")));
    json_decref(r);
    r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/nope\"}");
    CHECK_INT(error_code(r), RPC_METHOD_NOT_FOUND);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
              "Method not found: resources/nope");
    json_decref(r);
}

static void test_list(rpc_env_t *env)
{
    char req[256];
    const char *cursor = NULL;
    size_t seen = 0;
    json_t *prev = NULL;
    for (int page = 0; page < 20; page++) {
        if (cursor)
            snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
                     "\"params\":{\"cursor\":\"%s\"}}", cursor);
        else
            snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
        json_t *r = call(env, req);
        json_t *tools = json_object_get(json_object_get(r, "result"), "tools");
        CHECK(json_array_size(tools) <= 3);
        seen += json_array_size(tools);
        json_decref(prev);
        prev = r;
        cursor = json_string_value(json_object_get(json_object_get(r, "result"), "nextCursor"));
        if (!cursor)
            break;
    }
    json_decref(prev);
    CHECK_INT(seen, env->bundle->n_tools);
    static const char *const bad[] = {"\"abc\"", "\"0\"", "\"999\"", "5", "\"-1\"", "\"1x\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
                 "\"params\":{\"cursor\":%s}}", bad[i]);
        json_t *r = call(env, req);
        if (!CHECK_INT(error_code(r), RPC_INVALID_PARAMS))
            fprintf(stderr, "    for cursor %s\n", bad[i]);
        json_decref(r);
    }
}

#define CALL(name, args)                                                                      \
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"" name    \
    "\",\"arguments\":" args "}}"

static void test_call(rpc_env_t *env)
{
    json_t *r = call(env, CALL("echo", "{\"text\":\"hi\"}"));
    CHECK_STR(result_text(r), "hi");
    CHECK(!is_error_result(r));
    CHECK_INT(json_integer_value(json_object_get(r, "id")), 7);
    json_decref(r);

    r = call(env, CALL("echo", "{\"text\":5}"));
    CHECK(is_error_result(r));
    CHECK_STR(result_text(r), "Invalid arguments: $.text: expected string, got integer");
    json_decref(r);
    r = call(env, CALL("echo", "{}"));
    CHECK(is_error_result(r));
    CHECK_STR(result_text(r), "Invalid arguments: $: missing required property \"text\"");
    json_decref(r);

    r = call(env, CALL("nope", "{}"));
    CHECK_INT(error_code(r), RPC_INVALID_PARAMS);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
              "Unknown tool: nope");
    json_decref(r);
    r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}");
    CHECK_INT(error_code(r), RPC_INVALID_PARAMS);
    json_decref(r);
    r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}");
    CHECK_INT(error_code(r), RPC_INVALID_PARAMS);
    json_decref(r);
    r = call(env, CALL("echo", "[1]"));
    CHECK_INT(error_code(r), RPC_INVALID_PARAMS);
    json_decref(r);

    r = call(env, CALL("structured", "{}"));
    json_t *sc = json_object_get(json_object_get(r, "result"), "structuredContent");
    CHECK_INT(json_integer_value(json_object_get(sc, "answer")), 42);
    CHECK_INT(json_array_size(json_object_get(sc, "list")), 3);
    json_t *text = parse(result_text(r));
    CHECK(json_equal(text, sc));
    json_decref(text);
    json_decref(r);

    r = call(env, CALL("fail", "{}"));
    CHECK(is_error_result(r));
    CHECK_STR(result_text(r), "nope");
    json_decref(r);

    r = call(env, CALL("boom", "{}"));
    CHECK(is_error_result(r));
    CHECK_STR(result_text(r), "tool 'boom' failed (see server log)");
    json_decref(r);

    r = call(env, CALL("fn", "{}"));
    CHECK(is_error_result(r));
    CHECK_STR(result_text(r), "tool returned a value that cannot be converted to an MCP result");
    json_decref(r);

    r = call(env, CALL("items", "{}"));
    json_t *content = json_object_get(json_object_get(r, "result"), "content");
    CHECK_INT(json_array_size(content), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(content, 1), "type")), "image");
    json_decref(r);

    r = call(env, CALL("explicit", "{}"));
    CHECK(is_error_result(r));
    CHECK_STR(result_text(r), "x");
    json_decref(r);

    r = call(env, CALL("typed", "{\"good\":true}"));
    CHECK(!is_error_result(r));
    json_decref(r);
    r = call(env, CALL("typed", "{}"));
    CHECK(is_error_result(r));
    CHECK_STR(result_text(r), "Invalid result: $.n: expected integer, got string");
    json_decref(r);

    r = call(env, CALL("nothing", "{}"));
    CHECK_INT(json_array_size(json_object_get(json_object_get(r, "result"), "content")), 0);
    json_decref(r);
}

static void test_progress(rpc_env_t *env)
{
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"progress\",\"_meta\":{\"progressToken\":\"tok\"}}}";
    env->progress_ok = true;
    json_t *r = call(env, req);
    CHECK_STR(result_text(r), "ok");
    CHECK_INT(json_array_size(env->notifications), 2);
    json_t *p = json_object_get(json_array_get(env->notifications, 0), "params");
    CHECK_STR(json_string_value(json_object_get(p, "progressToken")), "tok");
    CHECK(json_real_value(json_object_get(p, "total")) == 2.0);
    CHECK_STR(json_string_value(json_object_get(p, "message")), "half");
    json_decref(r);
    env->progress_ok = false; /* JSON-only client: nothing to deliver them on */
    r = call(env, req);
    CHECK(env->notifications == NULL);
    json_decref(r);
    r = call(env, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{"
                  "\"name\":\"progress\",\"_meta\":{\"progressToken\":1.5}}}");
    CHECK_INT(error_code(r), RPC_INVALID_PARAMS);
    json_decref(r);
}

int main(void)
{
    char dir[] = "/tmp/luamcp-test-rpc-XXXXXX";
    if (!CHECK(mkdtemp(dir)))
        return check_report();
    char path[256];
    snprintf(path, sizeof path, "%s/tools.lua", dir);
    FILE *f = fopen(path, "w");
    fputs(tools_lua, f);
    fclose(f);

    char pdir[300];
    snprintf(pdir, sizeof pdir, "%s/policies", dir);
    mkdir(pdir, 0700);
    char ppath[400];
    snprintf(ppath, sizeof ppath, "%s/all.lua", pdir);
    f = fopen(ppath, "w");
    fputs("mcp.policy { tool = '*' }\n", f);
    fclose(f);

    config_t cfg;
    config_defaults(&cfg);
    config_set_str(&cfg.scripts_dir, dir);
    config_set_str(&cfg.policies_dir, pdir);
    cfg.page_size = 3;
    char *err = NULL;
    bundle_t *b = bundle_load(&cfg, &err);
    if (!CHECK(b != NULL)) {
        fprintf(stderr, "%s\n", err);
        return check_report();
    }
    CHECK_INT(b->n_tools, 10);
    rpc_env_t env = {.cfg = &cfg, .bundle = b};
    test_classify();
    test_initialize(&env);
    test_list(&env);
    test_call(&env);
    test_progress(&env);
    json_decref(env.notifications);
    bundle_free(b);
    config_free(&cfg);
    unlink(path);
    unlink(ppath);
    rmdir(pdir);
    rmdir(dir);
    return check_report();
}
