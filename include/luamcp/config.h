/* config — server settings: defaults, then the config file (a Lua table, read in an empty
 * sandbox), then command-line flags. Every key is documented in README.md. */
#ifndef LUAMCP_CONFIG_H
#define LUAMCP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_MAX_RESULT_BYTES (4u << 20) /* limits.max_result_bytes when not set (or 0) */

typedef struct config_limits {
    int cpu_ms;             /* time one call may spend running Lua, milliseconds (summed over
                               its resumptions when it waits for backends) */
    int timeout_ms;         /* wall-clock time of one call, waiting included */
    long long instructions; /* VM instructions per call; 0 = only the time budget */
    size_t memory_bytes;    /* cap on one Lua state's heap */
    size_t max_result_bytes; /* a call's result as JSON, and its notifications together */
} config_limits_t;

/* Tasks (the io.modelcontextprotocol/tasks extension of 2026-07-28): a tool call that goes on
 * after its request has been answered, polled with tasks/get. */
typedef struct config_tasks {
    unsigned ttl_ms;        /* a task and its result live this long from creation */
    unsigned timeout_ms;    /* wall-clock time of one round of a task's handler */
    unsigned poll_ms;       /* the polling interval suggested to clients */
    unsigned max;           /* tasks held at once, server-wide */
    unsigned per_caller;    /* of them, by one caller */
    size_t max_result_bytes; /* a bigger result fails the task */
} config_tasks_t;

/* One trusted token issuer. Keys come from jwks_uri, or from the issuer's discovery document
 * when only the issuer is given, or from a static JWKS or PEM file. */
typedef struct config_issuer {
    char *issuer;           /* the exact "iss" */
    char *jwks_uri;
    char *jwks_file;
    char *pem_file;
    char *secret_env;       /* name of an environment variable holding an HS* secret */
    char *audience;         /* overrides auth.resource for this issuer */
    unsigned algorithms;    /* jose_alg_t mask; 0 = every asymmetric algorithm */
    bool cognito;           /* AWS Cognito access tokens: no aud, client_id + token_use */
    char **client_ids;      size_t n_client_ids;      /* allowlist; empty = any */
    char **required_claims; size_t n_required_claims;
    char *scope_claim;      /* "scope" (space-delimited) by default; "scp" also read */
} config_issuer_t;

typedef struct config_auth {
    bool enabled;                /* on by default */
    char *resource;              /* our URL: the audience and the metadata's "resource" */
    config_issuer_t *issuers;    size_t n_issuers;
    char **scopes;               size_t n_scopes;      /* every call needs all of these */
    void *scope_implies;         /* json_t object: scope -> array of scopes it implies */
    int leeway_s;
    unsigned cache_entries;      /* verified tokens remembered per worker */
    unsigned jwks_min_ttl_s, jwks_max_ttl_s, jwks_refetch_s, jwks_timeout_ms;
    char *ca_file;               /* CA bundle for fetching keys; system default if NULL */
    char *resource_documentation;
    char *resource_name;
    char *dev_key_file;          /* where --dev writes its issuer key (default per port) */
} config_auth_t;

/* Outbound requests of tools (mcp.http); see egress.h for how the rules apply. */
typedef struct config_egress {
    char **allow;         size_t n_allow;         /* host patterns; empty = none (but --dev) */
    char **allow_private; size_t n_allow_private; /* CIDRs reachable though private/loopback */
    char **resolve;       size_t n_resolve;       /* "HOST:PORT:ADDRESS" pins, as curl --resolve */
    bool allow_http;              /* plain http:// (default: https only) */
    char *ca_file;                /* CA bundle; system default if NULL */
    unsigned max_redirects;
    size_t max_response_bytes;    /* ceiling of a request's max_bytes */
    unsigned timeout_ms;          /* a request's default timeout (always within the call's) */
    unsigned max_requests;        /* per tool call */
    unsigned max_inflight;        /* transfers at once per worker */
} config_egress_t;

typedef struct config {
    char *listen;          /* "127.0.0.1:8080", "[::1]:8080" */
    char *scripts_dir;
    char *policies_dir;
    char *shadow_policies;      /* a candidate policies directory: decisions compared, logged */
    char *audit_file;           /* one JSON line per decision; "-" = standard output */
    char *admin_socket;         /* Unix socket for luamcp reload/status (default per port) */
    char *config_path;          /* the file read, if any (watched: edits need a restart) */
    char *secrets_file;         /* NAME=value lines for mcp.secret, mode 600 */
    char *endpoint;        /* "/mcp" */
    bool stateless;
    bool dev;
    int workers;           /* 0 = one per core */
    size_t max_body_bytes;
    int page_size;
    char **allowed_origins; size_t n_allowed_origins;
    char **allowed_hosts;   size_t n_allowed_hosts;
    unsigned max_connections;
    unsigned idle_timeout_s;    /* keep-alive / header / body idle timeout */
    unsigned header_timeout_s;  /* a new connection's first request head must be whole by then */
    unsigned max_connections_per_address; /* 0: no bound but max_connections */
    bool per_address_exempt_loopback;     /* loopback peers are not counted */
    unsigned session_idle_s;
    unsigned max_sessions;
    unsigned max_sessions_per_caller; /* 0: no bound but max_sessions */
    unsigned grace_s;           /* how long SIGTERM waits for in-flight requests */
    size_t cache_max_bytes;     /* bound of mcp.cache, shared by every worker */
    char *tls_cert; char *tls_key;
    char *instructions;         /* optional text sent in the initialize result */
    char *log_level;
    config_limits_t limits;
    config_auth_t auth;
    config_egress_t egress;
    config_tasks_t tasks;
} config_t;

void config_defaults(config_t *c);
/* Reads FILE over c. Relative paths in it are taken from the file's directory.
 * Returns 0, or -1 with *err (caller frees) naming the file, line and key. */
int config_load_file(config_t *c, const char *path, char **err);
/* Checks values that flags and file may both have set. -1 with *err when invalid. */
int config_validate(const config_t *c, char **err);
void config_free(config_t *c);

/* Appends an issuer (zeroed but for defaults) and returns it; NULL when out of memory. */
config_issuer_t *config_add_issuer(config_t *c, const char *issuer);

/* A per-server runtime file: the configured path, else .luamcp/STEM-PORT.EXT (port, or the
 * listen address's port when port is 0). Caller frees; NULL when no port is known. */
char *config_runtime_path(const char *configured, const char *stem, const char *ext,
                          const config_t *c, int port);

/* Replaces *slot with a copy of value (NULL allowed). */
void config_set_str(char **slot, const char *value);

#endif
