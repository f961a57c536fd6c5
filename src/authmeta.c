/* Setting up the resource server (issuers and their key sources, the resource URL) and the
 * routes beside the MCP endpoint: RFC 9728 protected resource metadata, and --dev's issuer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_int.h"
#include "luamcp/log.h"

static char *read_small_file(const char *path, size_t *len, char **err)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(1 << 20) : NULL;
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (f)
        fclose(f);
    if (!buf) {
        *err = malloc(strlen(path) + 32);
        if (*err)
            sprintf(*err, "cannot read %s", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static jwks_t *key_source(const config_t *cfg, const config_issuer_t *ic, char **err)
{
    char *why = NULL, *warnings = NULL;
    jose_keyset_t *ks = NULL;
    size_t len = 0;
    if (ic->jwks_file || ic->pem_file) {
        const char *path = ic->jwks_file ? ic->jwks_file : ic->pem_file;
        char *text = read_small_file(path, &len, err);
        if (!text)
            return NULL;
        ks = ic->jwks_file ? jose_keyset_from_jwks(text, len, &warnings, &why)
                           : jose_keyset_from_pem(text, len, NULL, &why);
        free(text);
        if (warnings) {
            log_warn("auth: %s: %s", path, warnings);
            free(warnings);
        }
    } else if (ic->secret_env) {
        const char *secret = getenv(ic->secret_env);
        if (!secret) {
            *err = malloc(strlen(ic->secret_env) + 64);
            if (*err)
                sprintf(*err, "environment variable %s (secret_env) is not set", ic->secret_env);
            return NULL;
        }
        ks = jose_keyset_from_secret((const unsigned char *)secret, strlen(secret), NULL, &why);
    } else {
        return jwks_new_remote(ic->issuer, ic->jwks_uri, &cfg->auth, err);
    }
    if (!ks) {
        size_t n = strlen(ic->issuer) + (why ? strlen(why) : 0) + 32;
        *err = malloc(n);
        if (*err)
            snprintf(*err, n, "keys of %s: %s", ic->issuer, why ? why : "unusable");
        free(why);
        return NULL;
    }
    return jwks_new_static(ks);
}

/* "http://127.0.0.1:8080" from the listen address; TLS makes it https. */
static void default_origin(const config_t *cfg, int port, char *out, size_t n)
{
    const char *host = "127.0.0.1";
    if (strncmp(cfg->listen, "[::1]", 5) == 0)
        host = "[::1]";
    else if (strncmp(cfg->listen, "localhost:", 10) == 0)
        host = "localhost";
    snprintf(out, n, "%s://%s:%d", cfg->tls_cert ? "https" : "http", host, port);
}

/* The metadata URL RFC 9728 section 3.1 derives from the resource: the well-known segment
 * between the origin and the resource's path. */
static int metadata_urls(auth_t *a)
{
    const char *r = a->resource;
    const char *scheme_end = strstr(r, "://");
    if (!scheme_end)
        return -1;
    const char *path = strchr(scheme_end + 3, '/');
    size_t origin_len = path ? (size_t)(path - r) : strlen(r);
    const char *p = path ? path : "";
    if (strcmp(p, "/") == 0)
        p = "";
    size_t n = strlen(r) + 64;
    a->prm_url = malloc(n);
    a->prm_path = malloc(n);
    if (!a->prm_url || !a->prm_path)
        return -1;
    snprintf(a->prm_path, n, "/.well-known/oauth-protected-resource%s", p);
    snprintf(a->prm_url, n, "%.*s%s", (int)origin_len, r, a->prm_path);
    return 0;
}

static char *join(char *const *list, size_t n)
{
    if (!n)
        return NULL;
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(list[i]) + 1;
    char *s = calloc(1, len);
    for (size_t i = 0; s && i < n; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, list[i]);
    }
    return s;
}

static int add_issuer(auth_t *a, const config_issuer_t *ic, jwks_t *keys)
{
    issuer_rt_t *grown = realloc(a->issuers, (a->n_issuers + 1) * sizeof *grown);
    if (!grown)
        return -1;
    a->issuers = grown;
    a->issuers[a->n_issuers++] = (issuer_rt_t){
        .cfg = ic,
        .keys = keys,
        .algs = ic->algorithms ? ic->algorithms : JOSE_ASYMMETRIC,
        .audience = ic->audience ? ic->audience : a->resource,
    };
    return 0;
}

auth_t *auth_new(const config_t *cfg, int port, char **err)
{
    auth_t *a = calloc(1, sizeof *a);
    if (!a) {
        *err = strdup("out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->enabled = cfg->auth.enabled;
    pthread_mutex_init(&a->mu, NULL);
    char origin[128], buf[512];
    default_origin(cfg, port, origin, sizeof origin);
    if (cfg->auth.resource) {
        a->resource = strdup(cfg->auth.resource);
    } else {
        snprintf(buf, sizeof buf, "%s%s", origin, cfg->endpoint);
        a->resource = strdup(buf);
    }
    if (!a->resource || metadata_urls(a) != 0) {
        *err = strdup("auth.resource must be an absolute URL such as https://mcp.example.com/mcp");
        goto fail;
    }
    a->required_scopes = join(cfg->auth.scopes, cfg->auth.n_scopes);
    a->scope_hint = join(cfg->auth.scopes, cfg->auth.n_scopes);
    a->scopes_supported = json_array();
    for (size_t i = 0; i < cfg->auth.n_scopes; i++)
        json_array_append_new(a->scopes_supported, json_string(cfg->auth.scopes[i]));
    if (!a->enabled)
        return a;
    for (size_t i = 0; i < cfg->auth.n_issuers; i++) {
        const config_issuer_t *ic = &cfg->auth.issuers[i];
        jwks_t *keys = key_source(cfg, ic, err);
        if (!keys || add_issuer(a, ic, keys) != 0) {
            jwks_free(keys);
            if (!*err)
                *err = strdup("out of memory");
            goto fail;
        }
    }
    if (cfg->dev) {
        if (!(a->dev = dev_issuer_new(cfg, origin, a->resource, err)))
            goto fail;
        jwks_t *keys = jwks_new_static(dev_issuer_keys(a->dev));
        if (!keys || add_issuer(a, dev_issuer_config(a->dev), keys) != 0) {
            jwks_free(keys);
            *err = strdup("out of memory");
            goto fail;
        }
    }
    if (a->n_issuers == 0) {
        *err = strdup("authentication is on but no token issuer is configured: give --issuer "
                      "URL (or auth.issuers in the config file), use --dev for a development "
                      "issuer, or set auth = { enabled = false } to serve without "
                      "authentication (loopback only)");
        goto fail;
    }
    return a;
fail:
    auth_free(a);
    return NULL;
}

void auth_free(auth_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_issuers; i++)
        jwks_free(a->issuers[i].keys);
    free(a->issuers);
    dev_issuer_free(a->dev);
    free(a->resource);
    free(a->prm_url);
    free(a->prm_path);
    free(a->scope_hint);
    pthread_mutex_destroy(&a->mu);
    free(a->required_scopes);
    json_decref(a->scopes_supported);
    free(a);
}

bool auth_enabled(const auth_t *a) { return a && a->enabled; }
const char *auth_resource(const auth_t *a) { return a->resource; }
const char *auth_dev_key_file(const auth_t *a) { return a->dev ? dev_issuer_key_file(a->dev) : NULL; }

void auth_wait_ready(auth_t *a, int timeout_ms)
{
    for (size_t i = 0; a->enabled && i < a->n_issuers; i++)
        if (!jwks_wait_ready(a->issuers[i].keys, timeout_ms))
            log_warn("auth: no keys yet for %s (%s); tokens from it get 503 until they arrive",
                     a->issuers[i].cfg->issuer,
                     jwks_last_error(a->issuers[i].keys) ? jwks_last_error(a->issuers[i].keys)
                                                         : "still fetching");
}

void auth_set_policy_scopes(auth_t *a, json_t *scopes)
{
    /* server-wide scopes first, then each policy scope once */
    json_t *all = json_array();
    for (size_t i = 0; i < a->cfg->auth.n_scopes; i++)
        json_array_append_new(all, json_string(a->cfg->auth.scopes[i]));
    size_t i, k;
    json_t *v, *have;
    json_array_foreach(scopes, i, v) {
        bool known = false;
        json_array_foreach(all, k, have)
            known = known || json_equal(have, v);
        if (!known)
            json_array_append(all, v);
    }
    size_t len = 1;
    json_array_foreach(all, i, v)
        len += json_string_length(v) + 1;
    char *hint = json_array_size(all) ? calloc(1, len) : NULL;
    json_array_foreach(all, i, v)
        if (hint) {
            if (i)
                strcat(hint, " ");
            strcat(hint, json_string_value(v));
        }
    pthread_mutex_lock(&a->mu);
    free(a->scope_hint);
    a->scope_hint = hint;
    json_decref(a->scopes_supported);
    a->scopes_supported = all;
    pthread_mutex_unlock(&a->mu);
    if (a->dev)
        dev_issuer_set_scopes(a->dev, hint);
}

static json_t *metadata(auth_t *a)
{
    pthread_mutex_lock(&a->mu);
    json_t *servers = json_array(), *scopes = json_deep_copy(a->scopes_supported);
    pthread_mutex_unlock(&a->mu);
    for (size_t i = 0; i < a->n_issuers; i++)
        json_array_append_new(servers, json_string(a->issuers[i].cfg->issuer));
    json_t *doc = json_pack("{s:s, s:o, s:o, s:[s]}", "resource", a->resource, "authorization_servers",
                            servers, "scopes_supported", scopes, "bearer_methods_supported",
                            "header");
    if (a->cfg->auth.resource_documentation)
        json_object_set_new(doc, "resource_documentation",
                            json_string(a->cfg->auth.resource_documentation));
    if (a->cfg->auth.resource_name)
        json_object_set_new(doc, "resource_name", json_string(a->cfg->auth.resource_name));
    return doc;
}

bool auth_route(auth_t *a, const char *url, const char *method, const char *form_body,
                size_t form_len, const char *basic_auth, int *status, json_t **body)
{
    if (!a || !a->enabled)
        return false;
    if (strcmp(url, a->prm_path) == 0 || strcmp(url, "/.well-known/oauth-protected-resource") == 0) {
        if (strcmp(method, "GET") != 0) {
            *status = 405;
            *body = json_pack("{ss}", "error", "method not allowed");
        } else {
            *status = 200;
            *body = metadata(a);
        }
        return true;
    }
    return a->dev && dev_issuer_route(a->dev, a, url, method, form_body, form_len, basic_auth,
                                      status, body);
}

bool auth_route_takes_body(const auth_t *a, const char *url, const char *method)
{
    return a && a->enabled && a->dev && strcmp(method, "POST") == 0 &&
           strcmp(url, "/dev/token") == 0;
}
