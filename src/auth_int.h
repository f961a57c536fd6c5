/* Shared by auth.c (verification), authmeta.c (setup, metadata, routes) and devissuer.c. */
#ifndef LUAMCP_AUTH_INT_H
#define LUAMCP_AUTH_INT_H

#include <pthread.h>

#include "luamcp/auth.h"
#include "luamcp/jose.h"
#include "luamcp/jwks.h"

typedef struct issuer_rt {
    const config_issuer_t *cfg;
    jwks_t *keys;
    unsigned algs;        /* what tokens of this issuer may be signed with */
    const char *audience; /* borrowed: cfg->audience or the server's resource */
} issuer_rt_t;

typedef struct dev_issuer dev_issuer_t;

struct auth {
    const config_t *cfg;
    bool enabled;
    char *resource;
    char *prm_url;     /* absolute URL of our protected resource metadata */
    char *prm_path;    /* its path, e.g. /.well-known/oauth-protected-resource/mcp */
    char *required_scopes; /* the server-wide scopes, space-separated; NULL when none */
    /* Server-wide and policy scopes; replaced by reloads, so read and written under mu. */
    pthread_mutex_t mu;
    char *scope_hint;         /* space-separated; NULL when none */
    json_t *scopes_supported; /* the same as an array */
    issuer_rt_t *issuers;
    size_t n_issuers;
    dev_issuer_t *dev;
};

/* devissuer.c */
dev_issuer_t *dev_issuer_new(const config_t *cfg, const char *origin, const char *resource,
                             char **err);
void dev_issuer_free(dev_issuer_t *d);
const config_issuer_t *dev_issuer_config(const dev_issuer_t *d);
jose_keyset_t *dev_issuer_keys(const dev_issuer_t *d);
const char *dev_issuer_key_file(const dev_issuer_t *d);
void dev_issuer_set_scopes(dev_issuer_t *d, const char *scopes);
bool dev_issuer_route(dev_issuer_t *d, const auth_t *a, const char *url, const char *method,
                      const char *form, size_t form_len, const char *basic_auth, int *status,
                      json_t **body);

#endif
