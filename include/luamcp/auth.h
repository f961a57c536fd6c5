/* auth — the host as an OAuth 2.1 resource server: the bearer token of every MCP request is
 * verified (signature with cached keys, then every claim) before any Lua runs, and turned into
 * a verified caller. Also the RFC 9728 protected resource metadata, the WWW-Authenticate
 * challenges, and the development issuer of --dev. */
#ifndef LUAMCP_AUTH_H
#define LUAMCP_AUTH_H

#include <jansson.h>
#include <stdbool.h>

#include "luamcp/config.h"

typedef struct auth auth_t;
typedef struct auth_cache auth_cache_t;

#define AUTH_OWNER_LEN 32

/* Who is calling, as the token says after verification. Reference counted (single thread:
 * a caller belongs to the worker whose cache made it). */
typedef struct auth_caller {
    int refs;
    char *subject;
    char *client_id;
    char *issuer;
    char **scopes;
    size_t n_scopes;
    long long expires_at;
    json_t *claims;
    unsigned char fingerprint[AUTH_OWNER_LEN]; /* SHA-256 of issuer, subject and client id:
                                    * who, for binding sessions and tasks; computed once */
} auth_caller_t;

typedef enum auth_status {
    AUTH_OK,
    AUTH_NO_TOKEN,      /* 401, no error code (RFC 6750 section 3.1) */
    AUTH_BAD_REQUEST,   /* 400 invalid_request: two Authorization headers, token in the URL */
    AUTH_INVALID,       /* 401 invalid_token */
    AUTH_FORBIDDEN,     /* 403 insufficient_scope */
    AUTH_WAIT,          /* keys are being refetched: park the request, retry when woken */
    AUTH_UNAVAILABLE,   /* 503: no keys could be had from the issuer */
} auth_status_t;

/* The last token verified on one connection, and whom it named: a keep-alive client that
 * sends the same bytes again is known by comparing them (in constant time), without hashing
 * them for the worker's cache. It holds a copy of the token (at most JOSE_MAX_TOKEN bytes per
 * connection), wiped by auth_memo_clear when the connection closes: on its worker, or at
 * shutdown on the main thread once the workers have stopped (the caller's refs are not
 * atomic). */
typedef struct auth_memo {
    char *token;
    size_t len, cap;
    auth_caller_t *caller;
    const void *issuer;
    unsigned long generation; /* of the issuer's key set when verified */
} auth_memo_t;

void auth_memo_clear(auth_memo_t *m);

typedef struct auth_request {
    const char *authorization; /* the header's value, or NULL */
    auth_memo_t *memo;         /* the connection's, or NULL */
    int n_authorization;       /* how many Authorization headers came */
    bool token_in_query;       /* an access_token query parameter came */
    bool may_wait;             /* false once the request has waited for a refetch */
    void (*wake)(void *);      /* called (any thread) when a refetch it waits for ends */
    void *wake_arg;
} auth_request_t;

typedef struct auth_result {
    auth_status_t status;
    auth_caller_t *caller;     /* AUTH_OK: a new reference (auth_caller_unref) */
    const char *description;   /* for error_description: static, never token content */
    const char *scope;         /* AUTH_FORBIDDEN: the scopes to ask for (borrowed) */
    char reason[320];          /* for the server log: never token content */
} auth_result_t;

/* port: the bound port, for the development issuer's URLs. NULL with *err. */
auth_t *auth_new(const config_t *cfg, int port, char **err);
void auth_free(auth_t *a);
bool auth_enabled(const auth_t *a);
/* Waits (bounded) for every remote issuer's first key fetch; logs the ones that failed. */
void auth_wait_ready(auth_t *a, int timeout_ms);

auth_cache_t *auth_cache_new(const auth_t *a);
void auth_cache_free(auth_cache_t *c);

void auth_check(auth_t *a, auth_cache_t *cache, const auth_request_t *req, auth_result_t *out);
/* The token of an Authorization header's value "Bearer TOKEN" (the scheme without case, the
 * whitespace around the token aside): its first byte and *len (it may be followed by
 * whitespace), or NULL for another scheme. What auth_check verifies. */
const char *auth_bearer(const char *authorization, size_t *len);
void auth_caller_unref(auth_caller_t *c);
/* Who owns what c opens (sessions, streams, tasks): its fingerprint; all zero without a
 * caller (authentication off). */
void auth_caller_owner(const auth_caller_t *c, unsigned char out[AUTH_OWNER_LEN]);
/* A caller from claims alone, WITHOUT any verification: for `luamcp explain` and tests.
 * Scopes are read and expanded as for a verified token of the matching issuer. */
auth_caller_t *auth_caller_from_claims(const config_t *cfg, json_t *claims);
bool auth_caller_has_scope(const auth_caller_t *c, const char *scope);

/* The WWW-Authenticate value for a failed result. Caller frees. */
char *auth_challenge(auth_t *a, const auth_result_t *r);
/* The 403 insufficient_scope challenge for a policy's step-up, naming scopes. Caller frees. */
char *auth_scope_challenge(const auth_t *a, const char *scopes);
/* The scopes the loaded policies mention (borrowed array): they join the server-wide scopes
 * in scopes_supported and in the scope hint of 401 challenges. */
void auth_set_policy_scopes(auth_t *a, json_t *scopes);

/* Routes outside the MCP endpoint: the protected resource metadata, and in --dev the
 * issuer's metadata, JWKS and token endpoint. Returns true and fills *status, *body (new
 * reference) when url is one of them. */
bool auth_route(auth_t *a, const char *url, const char *method, const char *form_body,
                size_t form_len, const char *basic_auth, int *status, json_t **body);
/* Whether one of those routes reads a request body (the dev issuer's token endpoint). */
bool auth_route_takes_body(const auth_t *a, const char *url, const char *method);

/* The resource URL (our audience), for banners. */
const char *auth_resource(const auth_t *a);
/* The development issuer's key file, when --dev made one. */
const char *auth_dev_key_file(const auth_t *a);

/* `luamcp token`: mints a token from the development issuer's key file. Caller frees. */
char *auth_mint_dev_token(const char *key_file, const char *scope, const char *subject,
                          const char *client_id, long ttl_s, char **err);

#endif
