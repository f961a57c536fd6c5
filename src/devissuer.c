/* --dev: an issuer inside the server, so the quick start needs no identity provider. A
 * signing key is generated at every start; its JWKS and RFC 8414 metadata are served beside
 * the MCP endpoint; a client_credentials token endpoint accepts any client (development
 * only); and the key is written to a file (mode 0600) from which `luamcp token` mints. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth_int.h"
#include "luamcp/log.h"

#define DEV_MAX_TTL (24 * 3600)

struct dev_issuer {
    jose_signer_t *signer;
    config_issuer_t cfg; /* its strings are owned here */
    char *resource;
    char *key_file;
    char *token_endpoint;
    char *scopes;        /* every scope the server knows: the default grant */
    pthread_mutex_t mu;  /* scopes change on reload while workers grant tokens */
};

static void random_hex(char *out, size_t bytes)
{
    unsigned char raw[32];
    if (bytes > sizeof raw)
        bytes = sizeof raw;
    RAND_bytes(raw, (int)bytes);
    for (size_t i = 0; i < bytes; i++)
        sprintf(out + 2 * i, "%02x", raw[i]);
}

/* mkdir -p of the file's directory, private to the user */
static void make_parent(const char *path)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0700);
            *p = '/';
        }
    mkdir(dir, 0700);
}

static int write_key_file(const struct dev_issuer *d, char **err)
{
    char *pem = jose_signer_private_pem(d->signer);
    json_t *doc = !pem ? NULL
                       : json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "issuer", d->cfg.issuer,
                                   "resource", d->resource, "alg", "RS256", "kid",
                                   jose_signer_kid(d->signer), "private_key_pem", pem, "scopes",
                                   d->scopes ? d->scopes : "");
    free(pem);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    if (!text) {
        *err = strdup("out of memory");
        return -1;
    }
    make_parent(d->key_file);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", d->key_file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0)
        close(fd);
    free(text);
    if (!ok || rename(tmp, d->key_file) != 0) {
        unlink(tmp);
        *err = malloc(strlen(d->key_file) + 64);
        if (*err)
            sprintf(*err, "cannot write the dev key file %s: %s", d->key_file, strerror(errno));
        return -1;
    }
    return 0;
}

dev_issuer_t *dev_issuer_new(const config_t *cfg, const char *origin, const char *resource,
                             char **err)
{
    struct dev_issuer *d = calloc(1, sizeof *d);
    if (!d) {
        *err = strdup("out of memory");
        return NULL;
    }
    pthread_mutex_init(&d->mu, NULL);
    char kid[40] = "dev-";
    random_hex(kid + 4, 8);
    d->signer = jose_signer_generate(JOSE_RS256, kid, err);
    if (!d->signer)
        goto fail;
    d->cfg.issuer = strdup(origin);
    d->cfg.scope_claim = strdup("scope");
    d->cfg.algorithms = JOSE_RS256;
    d->resource = strdup(resource);
    d->key_file = config_runtime_path(cfg->auth.dev_key_file, "dev-issuer", ".json", cfg,
                                      atoi(strrchr(origin, ':') + 1));
    size_t n = strlen(origin) + 16;
    d->token_endpoint = malloc(n);
    if (!d->cfg.issuer || !d->cfg.scope_claim || !d->resource || !d->key_file ||
        !d->token_endpoint) {
        *err = strdup("out of memory");
        goto fail;
    }
    snprintf(d->token_endpoint, n, "%s/dev/token", origin);
    if (write_key_file(d, err) != 0)
        goto fail;
    log_warn("DEVELOPMENT ISSUER %s: tokens for anyone who asks; key in %s", origin, d->key_file);
    return d;
fail:
    dev_issuer_free(d);
    return NULL;
}

void dev_issuer_free(dev_issuer_t *d)
{
    if (!d)
        return;
    if (d->key_file && d->signer) {
        unlink(d->key_file); /* the key dies with the server */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", d->key_file);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            rmdir(dir); /* and .luamcp/ with it when nothing else is left there */
        }
    }
    jose_signer_free(d->signer);
    free(d->cfg.issuer);
    free(d->cfg.scope_claim);
    free(d->resource);
    free(d->key_file);
    free(d->token_endpoint);
    free(d->scopes);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

const config_issuer_t *dev_issuer_config(const dev_issuer_t *d) { return &d->cfg; }

void dev_issuer_set_scopes(dev_issuer_t *d, const char *scopes)
{
    pthread_mutex_lock(&d->mu);
    free(d->scopes);
    d->scopes = scopes ? strdup(scopes) : NULL;
    char *err = NULL;
    int rc = write_key_file(d, &err);
    pthread_mutex_unlock(&d->mu);
    if (rc != 0) {
        log_warn("%s", err ? err : "cannot rewrite the dev key file");
        free(err);
    }
}
const char *dev_issuer_key_file(const dev_issuer_t *d) { return d->key_file; }

jose_keyset_t *dev_issuer_keys(const dev_issuer_t *d)
{
    json_t *jwks = jose_signer_jwks(d->signer);
    char *text = json_dumps(jwks, JSON_COMPACT);
    json_decref(jwks);
    char *warnings = NULL, *err = NULL;
    jose_keyset_t *ks = text ? jose_keyset_from_jwks(text, strlen(text), &warnings, &err) : NULL;
    free(text);
    free(warnings);
    free(err);
    return ks;
}

/* ---- minting ------------------------------------------------------------------------------ */

static char *mint(const jose_signer_t *s, const char *issuer, const char *resource,
                  const char *scope, const char *subject, const char *client_id, long ttl)
{
    char jti[33];
    random_hex(jti, 16);
    long long now = (long long)time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "iss", issuer, "sub", subject, "aud", resource,
                               "client_id", client_id, "scope", scope ? scope : "", "iat",
                               (json_int_t)now, "exp", (json_int_t)(now + ttl), "jti", jti);
    char *token = claims ? jose_sign(s, "at+jwt", claims) : NULL;
    json_decref(claims);
    return token;
}

char *auth_mint_dev_token(const char *key_file, const char *scope, const char *subject,
                          const char *client_id, long ttl_s, char **err)
{
    json_error_t je;
    json_t *doc = json_load_file(key_file, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        *err = malloc(strlen(key_file) + 160);
        if (*err)
            sprintf(*err, "cannot read the development issuer's key file %s (is `luamcp serve "
                          "--dev` running from this directory?)", key_file);
        return NULL;
    }
    const char *pem = json_string_value(json_object_get(doc, "private_key_pem"));
    const char *kid = json_string_value(json_object_get(doc, "kid"));
    const char *issuer = json_string_value(json_object_get(doc, "issuer"));
    const char *resource = json_string_value(json_object_get(doc, "resource"));
    char *token = NULL;
    if (!pem || !kid || !issuer || !resource) {
        *err = strdup("the key file lacks issuer, resource, kid or private_key_pem");
    } else if (ttl_s < 1 || ttl_s > DEV_MAX_TTL) {
        *err = strdup("--ttl must be between 1 and 86400 seconds");
    } else {
        jose_signer_t *s = jose_signer_from_pem(pem, strlen(pem), JOSE_RS256, kid, err);
        /* no --scope: every scope the server knows, so the quick start just works */
        if (!scope)
            scope = json_string_value(json_object_get(doc, "scopes"));
        if (s)
            token = mint(s, issuer, resource, scope, subject, client_id, ttl_s);
        if (s && !token)
            *err = strdup("cannot sign the token");
        jose_signer_free(s);
    }
    json_decref(doc);
    return token;
}

/* ---- routes -------------------------------------------------------------------------------- */

/* Value of name in an application/x-www-form-urlencoded body, decoded; caller frees. */
static char *form_value(const char *form, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = form, *end = form + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            char *out = malloc((size_t)(stop - v) + 1);
            size_t o = 0;
            for (const char *q = v; out && q < stop; q++) {
                if (*q == '+') {
                    out[o++] = ' ';
                } else if (*q == '%' && stop - q >= 3) {
                    char hex[3] = {q[1], q[2], 0};
                    char *e;
                    long c = strtol(hex, &e, 16);
                    if (*e || c <= 0) { /* bad escape, or a NUL byte */
                        free(out);
                        return NULL;
                    }
                    out[o++] = (char)c;
                    q += 2;
                } else {
                    out[o++] = *q;
                }
            }
            if (out)
                out[o] = '\0';
            return out;
        }
        p = stop + 1;
    }
    return NULL;
}

static json_t *oauth_error(int *status, int code, const char *error, const char *description)
{
    *status = code;
    return json_pack("{s:s, s:s}", "error", error, "error_description", description);
}

static json_t *token_endpoint(dev_issuer_t *d, const char *form, size_t len, int *status)
{
    char *grant = form_value(form, len, "grant_type");
    char *scope = form_value(form, len, "scope");
    char *resource = form_value(form, len, "resource");
    char *client = form_value(form, len, "client_id");
    json_t *out;
    if (!grant || strcmp(grant, "client_credentials") != 0) {
        out = oauth_error(status, 400, "unsupported_grant_type",
                          "the development issuer grants client_credentials only");
    } else if (resource && strcmp(resource, d->resource) != 0) {
        out = oauth_error(status, 400, "invalid_target", "unknown resource");
    } else {
        pthread_mutex_lock(&d->mu);
        char *grant_scope = scope ? strdup(scope) : d->scopes ? strdup(d->scopes) : NULL;
        pthread_mutex_unlock(&d->mu);
        char *token = mint(d->signer, d->cfg.issuer, d->resource, grant_scope,
                           client ? client : "dev-client", client ? client : "dev-client", 3600);
        if (token) {
            *status = 200;
            out = json_pack("{s:s, s:s, s:i, s:s}", "access_token", token, "token_type", "Bearer",
                            "expires_in", 3600, "scope", grant_scope ? grant_scope : "");
            free(token);
        } else {
            out = oauth_error(status, 500, "server_error", "cannot sign the token");
        }
        free(grant_scope);
    }
    free(grant);
    free(scope);
    free(resource);
    free(client);
    return out;
}

bool dev_issuer_route(dev_issuer_t *d, const auth_t *a, const char *url, const char *method,
                      const char *form, size_t form_len, const char *basic_auth, int *status,
                      json_t **body)
{
    (void)basic_auth;
    bool get = strcmp(method, "GET") == 0;
    if (strcmp(url, "/.well-known/jwks.json") == 0 && get) {
        *status = 200;
        *body = jose_signer_jwks(d->signer);
        return true;
    }
    if ((strcmp(url, "/.well-known/oauth-authorization-server") == 0 ||
         strcmp(url, "/.well-known/openid-configuration") == 0) && get) {
        char jwks[600];
        snprintf(jwks, sizeof jwks, "%s/.well-known/jwks.json", d->cfg.issuer);
        json_t *scopes = json_array();
        for (size_t i = 0; i < a->cfg->auth.n_scopes; i++)
            json_array_append_new(scopes, json_string(a->cfg->auth.scopes[i]));
        *status = 200;
        *body = json_pack("{s:s, s:s, s:s, s:[s], s:[s,s], s:[], s:o}", "issuer", d->cfg.issuer, "jwks_uri", jwks,
                          "token_endpoint", d->token_endpoint, "grant_types_supported",
                          "client_credentials", "token_endpoint_auth_methods_supported",
                          "client_secret_post", "client_secret_basic",
                          "response_types_supported", "scopes_supported", scopes);
        return true;
    }
    if (strcmp(url, "/dev/token") == 0) {
        if (strcmp(method, "POST") != 0)
            *body = oauth_error(status, 405, "invalid_request", "POST only");
        else
            *body = token_endpoint(d, form ? form : "", form ? form_len : 0, status);
        return true;
    }
    return false;
}
