/* luamcp — command line: serve, check, --help, --version. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/bundle.h"
#include "luamcp/config.h"
#include "luamcp/log.h"
#include "luamcp/server.h"
#include "luamcp/version.h"

static const char usage[] =
    "usage: luamcp serve [options]   serve the tools in the scripts directory\n"
    "       luamcp check [options]   load the scripts as the server would and list the tools\n"
    "       luamcp --help | --version\n"
    "\n"
    "options (each overrides the config file):\n"
    "  --config FILE       configuration file (a Lua table; see README.md)\n"
    "  --listen ADDR:PORT  address to bind (default 127.0.0.1:8080; [::1]:8080 for IPv6)\n"
    "  --scripts DIR       tool scripts (default scripts)\n"
    "  --policies DIR      access policies (default policies)\n"
    "  --stateless         no sessions: every POST stands alone (for load balancers)\n"
    "  --workers N         worker threads (default: one per core)\n"
    "  --log-level LEVEL   debug, info, notice, warning or error (default info)\n"
    "  --dev               development mode (loopback only)\n";

enum { OPT_CONFIG = 256, OPT_LISTEN, OPT_SCRIPTS, OPT_POLICIES, OPT_STATELESS, OPT_WORKERS,
       OPT_LOG_LEVEL, OPT_DEV, OPT_HELP, OPT_VERSION };

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
    {NULL, 0, NULL, 0}};

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
    if (optind < argc) {
        fprintf(stderr, "luamcp: unexpected argument '%s'\n%s", argv[optind], usage);
        return -1;
    }
    if (config_validate(c, &err) != 0) {
        fprintf(stderr, "luamcp: %s\n", err);
        free(err);
        return -1;
    }
    log_set_level((enum log_level)log_level_parse(c->log_level));
    return 0;
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
    printf("%zu tools from %s:\n", b->n_tools, c->scripts_dir);
    for (size_t i = 0; i < b->n_tools; i++)
        printf("  %-32s %s:%d\n", b->tools[i].name, b->tools[i].file, b->tools[i].line);
    bundle_free(b);
    return 0;
}

static void print_banner(const config_t *c, int port)
{
    const char *host = strncmp(c->listen, "[::1]", 5) == 0 ? "[::1]" : "127.0.0.1";
    if (strncmp(c->listen, "127.", 4) != 0 && strncmp(c->listen, "[::1]", 5) != 0)
        host = "HOST";
    char url[128];
    snprintf(url, sizeof url, "%s://%s:%d%s", c->tls_cert ? "https" : "http", host, port,
             c->endpoint);
    fprintf(stderr,
            "\nluamcp %s is serving the tools in %s at %s%s\n"
            "  health:  curl -s %s://%s:%d/healthz\n"
            "  a call:  curl -s %s -H 'Content-Type: application/json' \\\n"
            "             -H 'Accept: application/json, text/event-stream' -D - -d \\\n"
            "             '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
            "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":"
            "{\"name\":\"curl\",\"version\":\"1\"}}}'\n"
            "           then repeat with -H 'Mcp-Session-Id: <from the answer>' and\n"
            "             '{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
            "{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"}}}'\n"
            "  inspect: npx @modelcontextprotocol/inspector  (Streamable HTTP, URL above)\n"
            "  stop:    Ctrl-C\n\n",
            LUAMCP_VERSION, c->scripts_dir, url, c->stateless ? " (stateless)" : "",
            c->tls_cert ? "https" : "http", host, port, url);
}

static int cmd_serve(config_t *c)
{
    if (strncmp(c->listen, "127.", 4) != 0 && strncmp(c->listen, "[::1]", 5) != 0 &&
        strncmp(c->listen, "localhost:", 10) != 0) {
        /* No authentication exists in this version: exposing tools beyond this machine
         * would hand them to anyone who can reach the port. */
        fprintf(stderr, "luamcp: refusing to listen on %s: this version has no "
                        "authentication, so it serves loopback addresses only\n", c->listen);
        return 1;
    }
    if (c->dev)
        log_warn("DEVELOPMENT MODE: for trying things out on this machine only");

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
                                                             : NULL;
    if (!cmd) {
        fprintf(stderr, "luamcp: unknown command '%s'\n%s", argv[1], usage);
        return 2;
    }
    config_t c;
    config_defaults(&c);
    int rc = parse_args(argc, argv, &c) == 0 ? cmd(&c) : 2;
    config_free(&c);
    return rc;
}
