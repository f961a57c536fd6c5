/* luamcp — command line: serve, check, token, explain, reload, status, new, test, --help,
 * --version. */
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "luamcp/auth.h"
#include "luamcp/bundle.h"
#include "luamcp/jose.h"
#include "luamcp/kit.h"
#include "luamcp/policy.h"
#include "luamcp/reload.h"
#include "luamcp/secret.h"
#include "luamcp/config.h"
#include "luamcp/log.h"
#include "luamcp/server.h"
#include "luamcp/smallmem.h"
#include "luamcp/version.h"

static const char usage[] =
    "usage: luamcp serve [options]   serve the tools in the scripts directory\n"
    "       luamcp check [options]   load the scripts as the server would and list the tools\n"
    "       luamcp token [--scope S] [--sub ID] [--client-id ID] [--ttl SECONDS] [--count N]\n"
    "                                mint tokens from the running `serve --dev` issuer\n"
    "       luamcp explain --tool NAME (--token JWT | --claims FILE) [--args JSON]\n"
    "                                the policies' decision for that caller, without calling\n"
    "       luamcp reload | status       reload the running server / show its bundle\n"
    "       luamcp new tool NAME [--scope SCOPE]\n"
    "                                write a tool, its policy and its spec to start from\n"
    "                                (SCOPE defaults to " KIT_DEFAULT_SCOPE ")\n"
    "       luamcp test [PATH...] [-- BUSTED-OPTION...]\n"
    "                                run the busted specs (*_spec.lua) of the scripts and\n"
    "                                policies folders, or of PATH..., with the mcp module\n"
    "       luamcp --help | --version\n"
    "\n"
    "options (each overrides the config file):\n"
    "  --config FILE       configuration file (a Lua table; see docs/configuration.md)\n"
    "  --listen ADDR:PORT  address to bind (default 127.0.0.1:8080; [::1]:8080 for IPv6)\n"
    "  --scripts DIR       tool scripts (default scripts)\n"
    "  --policies DIR      access policies (default policies)\n"
    "  --stateless         no sessions: every POST stands alone (for load balancers)\n"
    "  --workers N         worker threads (default: one per core)\n"
    "  --log-level LEVEL   debug, info, notice, warning or error (default info)\n"
    "  --dev               development mode: loopback only, with a built-in token issuer\n"
    "  --issuer URL        trust tokens from this issuer (keys found through its metadata)\n"
    "  --jwks-uri URL      the issuer's keys, when its metadata cannot be used\n"
    "  --resource URL      this server's URL: the token audience and metadata resource\n"
    "  --algorithms LIST   accepted signature algorithms, e.g. RS256,ES256\n"
    "  --shadow-policies DIR  evaluate these policies beside the live ones, log differences\n"
    "  --admin-socket PATH the server's admin socket (default .luamcp/admin-PORT.sock)\n";

enum { OPT_CONFIG = 256, OPT_LISTEN, OPT_SCRIPTS, OPT_POLICIES, OPT_STATELESS, OPT_WORKERS,
       OPT_LOG_LEVEL, OPT_DEV, OPT_HELP, OPT_VERSION, OPT_ISSUER, OPT_JWKS_URI, OPT_RESOURCE,
       OPT_ALGORITHMS, OPT_SCOPE, OPT_SUB, OPT_CLIENT_ID, OPT_TTL, OPT_COUNT, OPT_TOOL,
       OPT_TOKEN, OPT_CLAIMS, OPT_ARGS, OPT_SHADOW, OPT_ADMIN };

static const struct option options[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"scripts", required_argument, NULL, OPT_SCRIPTS},
    {"policies", required_argument, NULL, OPT_POLICIES},
    {"stateless", no_argument, NULL, OPT_STATELESS},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"dev", no_argument, NULL, OPT_DEV},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"issuer", required_argument, NULL, OPT_ISSUER},
    {"jwks-uri", required_argument, NULL, OPT_JWKS_URI},
    {"resource", required_argument, NULL, OPT_RESOURCE},
    {"algorithms", required_argument, NULL, OPT_ALGORITHMS},
    {"scope", required_argument, NULL, OPT_SCOPE},
    {"sub", required_argument, NULL, OPT_SUB},
    {"client-id", required_argument, NULL, OPT_CLIENT_ID},
    {"ttl", required_argument, NULL, OPT_TTL},
    {"count", required_argument, NULL, OPT_COUNT},
    {"tool", required_argument, NULL, OPT_TOOL},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"claims", required_argument, NULL, OPT_CLAIMS},
    {"args", required_argument, NULL, OPT_ARGS},
    {"shadow-policies", required_argument, NULL, OPT_SHADOW},
    {"admin-socket", required_argument, NULL, OPT_ADMIN},
    {NULL, 0, NULL, 0}};

static const char *progname = "luamcp";

/* Options of `luamcp explain`. */
static struct {
    const char *tool, *token, *claims, *args;
} explain_opts;

/* Options of `luamcp token`. */
static struct {
    const char *scope, *sub, *client_id;
    long ttl, count;
} mint_opts = {NULL, "dev-user", "dev-client", 3600, 1};

/* The words after the command and its options: only `new` and `test` take any. */
static bool takes_words;
static char **words;
static int n_words;

static long number_arg(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        fprintf(stderr, "luamcp: %s must be %ld..%ld\n", flag, lo, hi);
        return -1;
    }
    return n;
}

/* Reads the config file first (wherever --config stands), then applies the other flags. */
static int parse_args(int argc, char **argv, config_t *c)
{
    char *err = NULL;
    for (int i = 1; i < argc; i++) {
        const char *file = NULL;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
        if (file && config_load_file(c, file, &err) != 0) {
            fprintf(stderr, "luamcp: %s\n", err);
            free(err);
            return -1;
        }
    }
    optind = 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_CONFIG: break;
        case OPT_LISTEN: config_set_str(&c->listen, optarg); break;
        case OPT_SCRIPTS: config_set_str(&c->scripts_dir, optarg); break;
        case OPT_POLICIES: config_set_str(&c->policies_dir, optarg); break;
        case OPT_STATELESS: c->stateless = true; break;
        case OPT_DEV: c->dev = true; break;
        case OPT_LOG_LEVEL: config_set_str(&c->log_level, optarg); break;
        case OPT_ISSUER:
            if (!config_add_issuer(c, optarg)) {
                fprintf(stderr, "luamcp: too many issuers\n");
                return -1;
            }
            break;
        case OPT_JWKS_URI:
        case OPT_ALGORITHMS: {
            if (!c->auth.n_issuers) {
                fprintf(stderr, "luamcp: --jwks-uri and --algorithms apply to an --issuer given "
                                "before them\n");
                return -1;
            }
            config_issuer_t *is = &c->auth.issuers[c->auth.n_issuers - 1];
            if (opt == OPT_JWKS_URI) {
                config_set_str(&is->jwks_uri, optarg);
                break;
            }
            char *why = NULL;
            is->algorithms = jose_algs_parse(optarg, &why);
            if (!is->algorithms) {
                fprintf(stderr, "luamcp: --algorithms: %s\n", why ? why : "invalid");
                free(why);
                return -1;
            }
            break;
        }
        case OPT_RESOURCE: config_set_str(&c->auth.resource, optarg); break;
        case OPT_SCOPE: mint_opts.scope = optarg; break;
        case OPT_TOOL: explain_opts.tool = optarg; break;
        case OPT_TOKEN: explain_opts.token = optarg; break;
        case OPT_CLAIMS: explain_opts.claims = optarg; break;
        case OPT_ARGS: explain_opts.args = optarg; break;
        case OPT_SHADOW: config_set_str(&c->shadow_policies, optarg); break;
        case OPT_ADMIN: config_set_str(&c->admin_socket, optarg); break;
        case OPT_SUB: mint_opts.sub = optarg; break;
        case OPT_CLIENT_ID: mint_opts.client_id = optarg; break;
        case OPT_TTL:
            if ((mint_opts.ttl = number_arg("--ttl", optarg, 1, 86400)) < 0)
                return -1;
            break;
        case OPT_COUNT:
            if ((mint_opts.count = number_arg("--count", optarg, 1, 1000000)) < 0)
                return -1;
            break;
        case OPT_WORKERS: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "luamcp: --workers must be 1..256\n");
                return -1;
            }
            c->workers = (int)n;
            break;
        }
        default:
            fputs(usage, stderr);
            return -1;
        }
    }
    if (optind < argc && !takes_words) {
        fprintf(stderr, "luamcp: unexpected argument '%s'\n%s", argv[optind], usage);
        return -1;
    }
    words = argv + optind;
    n_words = argc - optind;
    if (config_validate(c, &err) != 0 || secret_load(c->secrets_file, &err) != 0) {
        fprintf(stderr, "luamcp: %s\n", err);
        free(err);
        return -1;
    }
    log_set_level((enum log_level)log_level_parse(c->log_level));
    return 0;
}

static int admin_command(config_t *c, const char *command)
{
    char *path = config_runtime_path(c->admin_socket, "admin", ".sock", c, 0);
    int rc = path ? reloader_client(path, command) : 2;
    if (!path)
        fprintf(stderr, "luamcp: give --admin-socket PATH or --listen ADDR:PORT of the server\n");
    free(path);
    return rc;
}

static int cmd_reload(config_t *c) { return admin_command(c, "reload"); }
static int cmd_status(config_t *c) { return admin_command(c, "status"); }

static int cmd_token(config_t *c)
{
    char *key_file = config_runtime_path(c->auth.dev_key_file, "dev-issuer", ".json", c, 0);
    for (long i = 0; key_file && i < mint_opts.count; i++) {
        char *err = NULL;
        char *token = auth_mint_dev_token(key_file, mint_opts.scope, mint_opts.sub,
                                          mint_opts.client_id, mint_opts.ttl, &err);
        if (!token) {
            fprintf(stderr, "luamcp token: %s\n", err ? err : "failed");
            free(err);
            free(key_file);
            return 1;
        }
        puts(token);
        free(token);
    }
    if (!key_file)
        fprintf(stderr, "luamcp token: give --listen ADDR:PORT of the dev server\n");
    free(key_file);
    return key_file ? 0 : 2;
}

static int cmd_new(config_t *c)
{
    if (n_words != 2 || strcmp(words[0], "tool") != 0) {
        fprintf(stderr, "luamcp new: give `new tool NAME [--scope SCOPE]` (options: --scripts "
                        "DIR, --policies DIR)\n");
        return 2;
    }
    /* A name another script declares would make the next load fail: say where it is now. A
     * folder that does not load is no reason to refuse (its author may be mid-edit). */
    char *err = NULL;
    bundle_t *b = bundle_load(c, &err);
    const tool_t *dup = b ? bundle_find(b, words[1]) : NULL;
    char own[PATH_MAX];
    snprintf(own, sizeof own, "%s/%s.lua", c->scripts_dir, words[1]);
    if (dup && access(own, F_OK) == 0)
        dup = NULL; /* its own file: kit_new_tool refuses that one */
    if (dup)
        fprintf(stderr, "luamcp new tool: a tool named %s is already declared at %s:%d: nothing "
                        "written\n", words[1], dup->file, dup->line);
    bundle_free(b);
    free(err);
    err = NULL;
    if (dup)
        return 1;
    if (kit_new_tool(c->scripts_dir, c->policies_dir, words[1], mint_opts.scope, &err) != 0) {
        fprintf(stderr, "luamcp new tool: %s\n", err ? err : "out of memory");
        free(err);
        return 1;
    }
    printf("next: edit them, run `%s test`, and call %s on `%s serve --dev` (it picks up new "
           "files live)\n", progname, words[1], progname);
    return 0;
}

/* Where this binary was built: CMake says (see CMakeLists.txt); a build without says nothing. */
#ifndef LUAMCP_SOURCE_DIR
#define LUAMCP_SOURCE_DIR NULL
#endif
#ifndef LUAMCP_VARIANT
#define LUAMCP_VARIANT "plain"
#endif
#ifndef LUAMCP_LIBASAN
#define LUAMCP_LIBASAN NULL
#endif

static int cmd_test(config_t *c)
{
    kit_layout_t k = {LUAMCP_SOURCE_DIR, LUAMCP_VARIANT, LUAMCP_LIBASAN};
    return kit_test(&k, c->scripts_dir, c->policies_dir, words, (size_t)n_words);
}

/* One row of `luamcp check`'s table: target index i of b. */
static void check_row(const bundle_t *b, size_t i, const char *name, const char *file, int line)
{
    char *needs = policy_rules_for(b->policies, i) ? policy_describe_scopes(b->policies, i)
                                                   : strdup("NO POLICY: nobody can call it");
    printf("  %-28s %-44s %s:%d\n", name, needs ? needs : "?", file, line);
    free(needs);
}

static int cmd_check(config_t *c)
{
    char *err = NULL;
    bundle_t *b = bundle_load(c, &err);
    if (!b) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return 1;
    }
    printf("%zu tools", b->n_tools);
    if (b->n_prompts || b->n_resources)
        printf(", %zu prompts, %zu resources", b->n_prompts, b->n_resources);
    printf(" from %s, %zu policy rules from %s%s%s\n\n", c->scripts_dir,
           policy_set_size(b->policies), c->policies_dir, b->shadow ? ", shadow: " : "",
           b->shadow ? c->shadow_policies : "");
    printf("  %-28s %-44s %s\n", "tool", "needs", "declared at");
    for (size_t i = 0; i < b->n_tools; i++)
        check_row(b, i, b->tools[i].name, b->tools[i].file, b->tools[i].line);
    if (b->n_prompts) {
        printf("\n  %-28s %-44s %s\n", "prompt", "needs", "declared at");
        for (size_t i = 0; i < b->n_prompts; i++)
            check_row(b, bundle_prompt_target(b, &b->prompts[i]), b->prompts[i].name,
                      b->prompts[i].file, b->prompts[i].line);
    }
    if (b->n_resources) {
        printf("\n  %-28s %-44s %s\n", "resource", "needs", "declared at");
        for (size_t i = 0; i < b->n_resources; i++)
            check_row(b, bundle_resource_target(b, &b->resources[i]), b->resources[i].key,
                      b->resources[i].file, b->resources[i].line);
    }
    if (b->warnings)
        fprintf(stderr, "\nwarnings:\n%s\n", b->warnings);
    bundle_free(b);
    return 0;
}

/* `luamcp explain`: the decision the policies make for a caller and arguments, without running
 * the tool. The token's claims are read, not verified: this explains, it does not admit. */
static int cmd_explain(config_t *c)
{
    if (!explain_opts.tool || !!explain_opts.token == !!explain_opts.claims) {
        fprintf(stderr, "luamcp explain: give --tool NAME and one of --token JWT or --claims "
                        "FILE [--args JSON]\n");
        return 2;
    }
    json_error_t je;
    json_t *claims = explain_opts.token
                         ? jose_peek_claims(explain_opts.token, strlen(explain_opts.token))
                         : json_load_file(explain_opts.claims, JSON_REJECT_DUPLICATES, &je);
    json_t *args = explain_opts.args ? json_loads(explain_opts.args, 0, &je) : NULL;
    if (!json_is_object(claims) || (explain_opts.args && !json_is_object(args))) {
        fprintf(stderr, "luamcp explain: %s is not a JSON object\n",
                !json_is_object(claims) ? (explain_opts.token ? "the token's payload" : "--claims")
                                        : "--args");
        json_decref(claims);
        json_decref(args);
        return 2;
    }
    char *err = NULL;
    bundle_t *b = bundle_load(c, &err);
    auth_caller_t *caller = auth_caller_from_claims(c, claims);
    int rc = 2;
    if (!b) {
        fprintf(stderr, "%s\n", err);
        free(err);
    } else if (!caller) {
        fprintf(stderr, "luamcp explain: the scope claim is malformed\n");
    } else {
        const tool_t *t = bundle_find(b, explain_opts.tool);
        printf("tool:     %s%s\n", explain_opts.tool, t ? "" : " (no such tool)");
        printf("caller:   sub=%s client_id=%s issuer=%s\n", caller->subject ? caller->subject : "-",
               caller->client_id ? caller->client_id : "-", caller->issuer ? caller->issuer : "-");
        printf("scopes:  ");
        for (size_t i = 0; i < caller->n_scopes; i++)
            printf(" %s", caller->scopes[i]);
        printf("%s\n", caller->n_scopes ? "" : " (none)");
        policy_decision_t d = {.verdict = POLICY_HIDDEN};
        snprintf(d.reason, sizeof d.reason, "no such tool");
        if (t)
            policy_decide(b->policies, b->vm, bundle_index(b, t), t->name, caller, args, c->dev,
                          &d);
        printf("decision: %s\n", policy_verdict_name(d.verdict));
        printf("reason:   %s\n", d.reason);
        if (d.rule[0])
            printf("rule:     %s\n", d.rule);
        if (d.verdict == POLICY_CHALLENGE)
            printf("needs:    %s\n", d.scopes);
        if (explain_opts.token)
            printf("(the token's signature was not verified: explain reads its claims only)\n");
        rc = d.verdict == POLICY_ALLOW ? 0 : 1;
    }
    auth_caller_unref(caller);
    bundle_free(b);
    json_decref(claims);
    json_decref(args);
    return rc;
}

static bool loopback_listen(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]", 5) == 0 ||
           strncmp(listen, "localhost:", 10) == 0;
}

static void print_banner(const config_t *c, int port)
{
    const char *host = strncmp(c->listen, "[::1]", 5) == 0 ? "[::1]" : "127.0.0.1";
    if (!loopback_listen(c->listen))
        host = "HOST";
    char url[160];
    snprintf(url, sizeof url, "%s://%s:%d%s", c->tls_cert ? "https" : "http", host, port,
             c->endpoint);
    fprintf(stderr, "\nluamcp %s is serving the tools in %s at %s%s\n", LUAMCP_VERSION,
            c->scripts_dir, url, c->stateless ? " (stateless)" : "");
    /* The commands that find this server by its port must name the one bound (the configured
     * may be 0, or not the default), and the config file when it set their paths. */
    char where[PATH_MAX + 200];
    snprintf(where, sizeof where, "%s%s --listen %s:%d", c->config_path ? " --config " : "",
             c->config_path ? c->config_path : "", host, port);
    char reload_where[sizeof where + 20];
    if (c->admin_socket)
        snprintf(reload_where, sizeof reload_where, " --admin-socket %s", c->admin_socket);
    else
        snprintf(reload_where, sizeof reload_where, "%s", where);
    const char *auth = "";
    if (c->dev) {
        fprintf(stderr, "  a token: TOKEN=$(%s token%s)\n"
                        "           (every scope the policies name; add --scope \"a b\" for "
                        "fewer)\n", progname, where);
        auth = " -H \"Authorization: Bearer $TOKEN\"";
    } else if (c->auth.enabled) {
        fprintf(stderr, "  tokens:  from your issuer; see %s://%s:%d/.well-known/"
                        "oauth-protected-resource%s\n", c->tls_cert ? "https" : "http", host,
                port, c->endpoint);
        auth = " -H \"Authorization: Bearer $TOKEN\"";
    }
    fprintf(stderr,
            "  a call:  curl -s %s%s \\\n"
            "             -H 'Content-Type: application/json' -H 'Accept: application/json, "
            "text/event-stream' -D - -d \\\n"
            "             '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
            "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":"
            "{\"name\":\"curl\",\"version\":\"1\"}}}'\n"
            "           then the same with -H 'Mcp-Session-Id: <from the answer>' and\n"
            "             '{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
            "{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"}}}'\n"
            "  clients: any MCP client, Streamable HTTP transport, URL %s%s\n"
            "  reload:  saving a file in %s or %s reloads them; or %s reload%s\n"
            "  stop:    Ctrl-C\n\n",
            url, auth, url, c->dev ? " (the dev issuer's client_credentials grant takes any "
                                     "client id and secret)" : "",
            c->scripts_dir, c->policies_dir, progname, reload_where);
}

static int cmd_serve(config_t *c)
{
    if (!loopback_listen(c->listen) && (c->dev || !c->auth.enabled)) {
        /* Without real authentication, tools reachable beyond this machine would be anyone's. */
        fprintf(stderr, "luamcp: refusing to listen on %s: %s serves loopback addresses "
                        "only\n", c->listen, c->dev ? "development mode" : "a server without "
                        "authentication");
        return 1;
    }
    if (c->dev)
        log_warn("DEVELOPMENT MODE: a built-in issuer grants tokens to anyone on this machine");
    if (!c->auth.enabled)
        log_warn("AUTHENTICATION IS OFF: every local process may call every tool");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* workers inherit this; main sigwaits */

    char *err = NULL;
    server_t *srv = server_new(c, &err);
    if (!srv) {
        fprintf(stderr, "luamcp: %s\n", err);
        free(err);
        return 1;
    }
    log_notice("listening on %s port %d, endpoint %s, %s", c->listen, server_port(srv),
               c->endpoint, c->stateless ? "stateless" : "with sessions");
    print_banner(c, server_port(srv));
    int rc = server_run(srv);
    server_free(srv);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    progname = argv[0];
    json_set_alloc_funcs(smallmem_alloc, smallmem_free);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("luamcp %s\n", LUAMCP_VERSION);
        return 0;
    }
    int (*cmd)(config_t *) = strcmp(argv[1], "serve") == 0   ? cmd_serve
                             : strcmp(argv[1], "check") == 0 ? cmd_check
                             : strcmp(argv[1], "token") == 0 ? cmd_token
                             : strcmp(argv[1], "explain") == 0 ? cmd_explain
                             : strcmp(argv[1], "reload") == 0 ? cmd_reload
                             : strcmp(argv[1], "status") == 0 ? cmd_status
                             : strcmp(argv[1], "new") == 0 ? cmd_new
                             : strcmp(argv[1], "test") == 0 ? cmd_test
                                                             : NULL;
    if (!cmd) {
        fprintf(stderr, "luamcp: unknown command '%s'\n%s", argv[1], usage);
        return 2;
    }
    takes_words = cmd == cmd_new || cmd == cmd_test;
    config_t c;
    config_defaults(&c);
    int rc = parse_args(argc, argv, &c) == 0 ? cmd(&c) : 2;
    config_free(&c);
    return rc;
}
