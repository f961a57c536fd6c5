/* config — server settings: defaults, then the config file (a Lua table, read in an empty
 * sandbox), then command-line flags. Every key is documented in README.md. */
#ifndef LUAMCP_CONFIG_H
#define LUAMCP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct config_limits {
    int cpu_ms;             /* wall-clock budget of one call, milliseconds */
    long long instructions; /* VM instructions per call; 0 = only the time budget */
    size_t memory_bytes;    /* cap on one Lua state's heap */
} config_limits_t;

typedef struct config {
    char *listen;          /* "127.0.0.1:8080", "[::1]:8080" */
    char *scripts_dir;
    char *policies_dir;
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
    unsigned session_idle_s;
    unsigned max_sessions;
    unsigned grace_s;           /* how long SIGTERM waits for in-flight requests */
    char *tls_cert; char *tls_key;
    char *instructions;         /* optional text sent in the initialize result */
    char *log_level;
    config_limits_t limits;
} config_t;

void config_defaults(config_t *c);
/* Reads FILE over c. Relative paths in it are taken from the file's directory.
 * Returns 0, or -1 with *err (caller frees) naming the file, line and key. */
int config_load_file(config_t *c, const char *path, char **err);
/* Checks values that flags and file may both have set. -1 with *err when invalid. */
int config_validate(const config_t *c, char **err);
void config_free(config_t *c);

/* Replaces *slot with a copy of value (NULL allowed). */
void config_set_str(char **slot, const char *value);

#endif
