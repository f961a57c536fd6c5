/* The resource server: bearer extraction, verification through jose and jwks, claim checks,
 * a per-worker cache of verified tokens, challenges and metadata. The development issuer of
 * --dev lives in devissuer.c. */
#include "luamcp/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth_int.h"
#include "luamcp/jose.h"
#include "luamcp/log.h"

#define MAX_SCOPES 256
#define MAX_SCOPE_LEN 512

/* ---- the verified-token cache --------------------------------------------------------- */

typedef struct cache_slot {
    unsigned char key[32]; /* SHA-256 of the token */
    auth_caller_t *caller;
    const issuer_rt_t *issuer;
    unsigned long generation; /* of the issuer's key set when verified */
} cache_slot_t;

struct auth_cache {
    cache_slot_t *slots;
    size_t n;          /* a power of two, or 0 for no cache */
    EVP_MD *sha256;    /* fetched once: an implicit fetch per digest takes OpenSSL's locks */
    EVP_MD_CTX *md;    /* reused for every token this worker hashes */
};

auth_cache_t *auth_cache_new(const auth_t *a)
{
    auth_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    unsigned want = a->cfg->auth.cache_entries;
    size_t n = 0;
    if (want) {
        n = 16;
        while (n < want)
            n <<= 1;
    }
    c->slots = n ? calloc(n, sizeof *c->slots) : NULL;
    c->n = c->slots ? n : 0;
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->md = EVP_MD_CTX_new();
    if (!c->sha256 || !c->md) {
        auth_cache_free(c);
        return NULL;
    }
    return c;
}

void auth_cache_free(auth_cache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        auth_caller_unref(c->slots[i].caller);
    free(c->slots);
    EVP_MD_CTX_free(c->md);
    EVP_MD_free(c->sha256);
    free(c);
}

void auth_caller_owner(const auth_caller_t *c, unsigned char out[AUTH_OWNER_LEN])
{
    if (c)
        memcpy(out, c->fingerprint, AUTH_OWNER_LEN);
    else
        memset(out, 0, AUTH_OWNER_LEN);
}

void auth_caller_unref(auth_caller_t *c)
{
    if (!c || --c->refs > 0)
        return;
    free(c->subject);
    free(c->client_id);
    free(c->issuer);
    for (size_t i = 0; i < c->n_scopes; i++)
        free(c->scopes[i]);
    free(c->scopes);
    json_decref(c->claims);
    free(c);
}

bool auth_caller_has_scope(const auth_caller_t *c, const char *scope)
{
    for (size_t i = 0; i < c->n_scopes; i++)
        if (strcmp(c->scopes[i], scope) == 0)
            return true;
    return false;
}

static long long now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

/* A direct-mapped table: the slot is picked by the hash itself, a collision replaces. */
static cache_slot_t *cache_slot(auth_cache_t *c, const unsigned char key[32])
{
    if (!c || !c->n)
        return NULL;
    size_t h;
    memcpy(&h, key, sizeof h);
    return &c->slots[h & (c->n - 1)];
}

/* ---- reading claims --------------------------------------------------------------------- */

/* A NumericDate: an integer or a real number of seconds, within [0, 10^11) (until the year
 * 5138): anything beyond is no date a real issuer writes, and would only invite overflow. */
#define MAX_NUMERIC_DATE 100000000000LL
static bool numeric_date(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out >= 0 && *out < MAX_NUMERIC_DATE;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0 && d < (double)MAX_NUMERIC_DATE))
            return false;
        *out = (long long)d;
        return true;
    }
    return false;
}

static bool audience_has(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    return false;
}

static bool listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static int add_scope(auth_caller_t *c, const char *s, size_t len)
{
    if (len == 0)
        return 0;
    if (len > MAX_SCOPE_LEN || c->n_scopes >= MAX_SCOPES)
        return -1;
    char *copy = strndup(s, len);
    if (!copy)
        return -1;
    c->scopes[c->n_scopes++] = copy;
    return 0;
}

/* Scopes from the configured claim: a space-delimited string ("scope") or, as Entra and Okta
 * send, a string or an array ("scp"). */
static int read_scopes(auth_caller_t *c, json_t *claims, const char *claim_name)
{
    c->scopes = calloc(MAX_SCOPES, sizeof *c->scopes);
    if (!c->scopes)
        return -1;
    json_t *v = json_object_get(claims, claim_name);
    if (!v && strcmp(claim_name, "scope") == 0)
        v = json_object_get(claims, "scp");
    if (!v)
        return 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s) {
            while (*s == ' ')
                s++;
            const char *end = s;
            while (*end && *end != ' ')
                end++;
            if (add_scope(c, s, (size_t)(end - s)))
                return -1;
            s = end;
        }
        return 0;
    }
    if (!json_is_array(v))
        return -1;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e) || add_scope(c, json_string_value(e), json_string_length(e)))
            return -1;
    }
    return 0;
}

/* Adds every scope the configured hierarchy says the caller's scopes imply, transitively
 * (the list grows while it is walked, so implications of implications are found too). */
static void expand_scopes(auth_caller_t *c, json_t *implies)
{
    for (size_t i = 0; implies && i < c->n_scopes; i++) {
        json_t *more = json_object_get(implies, c->scopes[i]);
        size_t k;
        json_t *v;
        json_array_foreach(more, k, v) {
            const char *s = json_string_value(v);
            if (s && !auth_caller_has_scope(c, s))
                add_scope(c, s, strlen(s));
        }
    }
}

static char *dup_claim(json_t *claims, const char *name)
{
    const char *s = json_string_value(json_object_get(claims, name));
    return s ? strdup(s) : NULL;
}

static bool typ_ok(json_t *header)
{
    json_t *typ = json_object_get(header, "typ");
    if (!typ)
        return true; /* many issuers omit it (Cognito, Entra v1) */
    const char *t = json_string_value(typ);
    return t && (strcasecmp(t, "JWT") == 0 || strcasecmp(t, "at+jwt") == 0 ||
                 strcasecmp(t, "application/at+jwt") == 0);
}

/* The caller a set of claims describes: who, which client, which scopes (with implied ones). */
static auth_caller_t *make_caller(json_t *claims, const char *issuer, const char *scope_claim,
                                  json_t *implies)
{
    auth_caller_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->refs = 1;
    c->client_id = dup_claim(claims, "client_id");
    static const char *const client_claims[] = {"azp", "appid", "cid", NULL};
    for (int i = 0; !c->client_id && client_claims[i]; i++)
        c->client_id = dup_claim(claims, client_claims[i]);
    c->subject = dup_claim(claims, "sub");
    c->issuer = issuer ? strdup(issuer) : NULL;
    c->claims = json_incref(claims);
    if (read_scopes(c, claims, scope_claim) != 0) {
        auth_caller_unref(c);
        return NULL;
    }
    expand_scopes(c, implies);
    /* computed here, once per verified token, so no request has to hash it again; each part
     * is tagged absent (0) or present (1, then its bytes and a NUL), so an absent claim and an
     * empty one never name the same owner */
    const char *parts[3] = {c->issuer, c->subject, c->client_id};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        for (int i = 0; i < 3; i++) {
            EVP_DigestUpdate(md, parts[i] ? "\1" : "\0", 1);
            if (parts[i])
                EVP_DigestUpdate(md, parts[i], strlen(parts[i]) + 1);
        }
        EVP_DigestFinal_ex(md, c->fingerprint, &len);
    }
    EVP_MD_CTX_free(md);
    return c;
}

/* What is wrong with the claims that name the token's owner (sessions, tasks, streams and
 * waiting calls belong to issuer, subject and client together), or NULL. A subject or client
 * id that is present must be a non-empty string (RFC 7519 StringOrURI): dropping a number or an
 * object would merge its holders with every token that has none. A token without sub (a
 * client-credentials token) is owned by its client; one that names neither owns nothing and
 * is refused. */
static const char *owner_problem(json_t *claims)
{
    json_t *sub = json_object_get(claims, "sub");
    if (sub && (!json_is_string(sub) || !json_string_length(sub)))
        return "The access token's subject (sub) is not a non-empty string";
    static const char *const client_claims[] = {"client_id", "azp", "appid", "cid", NULL};
    bool client = false;
    for (int i = 0; client_claims[i]; i++) {
        json_t *v = json_object_get(claims, client_claims[i]);
        if (v && (!json_is_string(v) || !json_string_length(v)))
            return "The access token's client id (client_id, azp, appid or cid) is not a "
                   "non-empty string";
        client = client || v;
    }
    if (!sub && !client)
        return "The access token names neither a subject (sub) nor a client (client_id, azp)";
    return NULL;
}

#define INVALID(desc, ...)                                                                     \
    do {                                                                                       \
        out->status = AUTH_INVALID;                                                            \
        out->description = desc;                                                               \
        snprintf(out->reason, sizeof out->reason, __VA_ARGS__);                                \
        return NULL;                                                                           \
    } while (0)

/* Every claim check, in order. Returns the caller, or NULL with out filled. */
static auth_caller_t *check_claims(const auth_t *a, const issuer_rt_t *is, json_t *header,
                                   json_t *claims, auth_result_t *out)
{
    const config_issuer_t *ic = is->cfg;
    long long now = now_s(), leeway = a->cfg->auth.leeway_s, exp = 0, t = 0;
    if (!typ_ok(header))
        INVALID("The access token is not an access token", "typ header is not JWT or at+jwt");
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    if (!iss || strcmp(iss, ic->issuer) != 0)
        INVALID("The access token was issued by an untrusted issuer", "wrong issuer");
    if (!numeric_date(json_object_get(claims, "exp"), &exp))
        INVALID("The access token has no valid expiry", "exp missing or not a number");
    if (exp < now - leeway) /* written so that no extreme exp can overflow */
        INVALID("The access token expired", "expired %llds ago", now - exp);
    json_t *nbf = json_object_get(claims, "nbf");
    if (nbf && (!numeric_date(nbf, &t) || now + leeway < t))
        INVALID("The access token is not valid yet", "nbf in the future or not a number");
    json_t *iat = json_object_get(claims, "iat");
    if (iat && (!numeric_date(iat, &t) || t > now + leeway))
        INVALID("The access token was issued in the future", "iat in the future or invalid");
    if (ic->cognito) {
        const char *use = json_string_value(json_object_get(claims, "token_use"));
        if (!use || strcmp(use, "access") != 0)
            INVALID("The token is not an access token", "cognito token_use is not access");
    } else {
        json_t *aud = json_object_get(claims, "aud");
        if (!aud || !audience_has(aud, is->audience))
            INVALID("The access token is for another resource", "audience does not name %.100s",
                    is->audience);
    }
    const char *why = owner_problem(claims);
    if (why)
        INVALID(why, "%s", why);
    char *client_id = dup_claim(claims, "client_id");
    static const char *const client_claims[] = {"azp", "appid", "cid", NULL};
    for (int i = 0; !client_id && client_claims[i]; i++)
        client_id = dup_claim(claims, client_claims[i]);
    if (ic->n_client_ids && (!client_id || !listed(ic->client_ids, ic->n_client_ids, client_id))) {
        free(client_id);
        INVALID("The client is not allowed here", "client_id not in the allowlist");
    }
    for (size_t i = 0; i < ic->n_required_claims; i++)
        if (!json_object_get(claims, ic->required_claims[i])) {
            free(client_id);
            INVALID("The access token lacks a required claim", "required claim %.60s missing",
                    ic->required_claims[i]);
        }
    free(client_id);
    auth_caller_t *c = make_caller(claims, ic->issuer, ic->scope_claim,
                                   a->cfg->auth.scope_implies);
    if (!c)
        INVALID("The access token's scopes are malformed", "scope claim malformed or too large");
    c->expires_at = exp;
    return c;
}

auth_caller_t *auth_caller_from_claims(const config_t *cfg, json_t *claims)
{
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *scope_claim = "scope";
    for (size_t i = 0; iss && i < cfg->auth.n_issuers; i++)
        if (strcmp(cfg->auth.issuers[i].issuer, iss) == 0)
            scope_claim = cfg->auth.issuers[i].scope_claim;
    auth_caller_t *c = make_caller(claims, iss, scope_claim, cfg->auth.scope_implies);
    long long exp = 0;
    if (c && numeric_date(json_object_get(claims, "exp"), &exp))
        c->expires_at = exp;
    return c;
}

/* ---- verification ------------------------------------------------------------------------ */

static const issuer_rt_t *pick_issuer(const auth_t *a, const char *token, size_t len)
{
    if (a->n_issuers == 1)
        return &a->issuers[0];
    json_t *claims = jose_peek_claims(token, len);
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const issuer_rt_t *found = NULL;
    for (size_t i = 0; iss && i < a->n_issuers && !found; i++)
        if (strcmp(a->issuers[i].cfg->issuer, iss) == 0)
            found = &a->issuers[i];
    json_decref(claims);
    return found;
}

/* b64token (RFC 6750 section 2.1): 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static bool b64token(const char *s, size_t len)
{
    size_t i = 0;
    for (; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '+' || ch == '/'))
            break;
    }
    if (i == 0)
        return false;
    while (i < len && s[i] == '=')
        i++;
    return i == len;
}

/* A token verified before names its caller still: its expiry has not passed, and the key set
 * that verified it is the one published (a dropped key revokes). */
static bool still_good(const auth_t *a, const auth_caller_t *c, const issuer_rt_t *is,
                       unsigned long generation)
{
    return c->expires_at >= now_s() - a->cfg->auth.leeway_s &&
           jwks_generation(is->keys) == generation;
}

/* a[0..n) == b[0..n), in a time that depends on n only: a connection may carry many clients'
 * requests (a proxy's), and how far a guess matched the memo must not show. */
static bool same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t diff = 0, x, y;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
        __asm__ volatile("" : "+r"(diff)); /* no early exit made of it */
    }
    for (; i < n; i++)
        diff |= (uint64_t)(unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

void auth_memo_clear(auth_memo_t *m)
{
    if (!m)
        return;
    if (m->token) {
        OPENSSL_cleanse(m->token, m->cap);
        free(m->token);
    }
    auth_caller_unref(m->caller);
    *m = (auth_memo_t){0};
}

static void remember(auth_memo_t *m, const char *token, size_t len, auth_caller_t *c,
                     const issuer_rt_t *is, unsigned long generation)
{
    if (!m)
        return;
    if (len > m->cap) {
        auth_memo_clear(m);
        if (!(m->token = malloc(len)))
            return;
        m->cap = len;
    }
    memcpy(m->token, token, len);
    m->len = len;
    c->refs++;
    auth_caller_unref(m->caller);
    m->caller = c;
    m->issuer = is;
    m->generation = generation;
}

static void verify(auth_t *a, auth_cache_t *cache, const auth_request_t *req, const char *token,
                   size_t len, auth_result_t *out)
{
    auth_memo_t *memo = cache->n ? req->memo : NULL; /* no cache, no memo either */
    if (memo && memo->caller && memo->len == len && same_bytes(memo->token, token, len)) {
        if (still_good(a, memo->caller, memo->issuer, memo->generation)) {
            out->status = AUTH_OK;
            out->caller = memo->caller;
            memo->caller->refs++;
            return;
        }
        auth_memo_clear(memo);
    }
    unsigned char key[32];
    unsigned int klen = 0;
    cache_slot_t *slot = NULL;
    if (cache->n && EVP_DigestInit_ex(cache->md, cache->sha256, NULL) &&
        EVP_DigestUpdate(cache->md, token, len) && EVP_DigestFinal_ex(cache->md, key, &klen))
        slot = cache_slot(cache, key);
    if (slot && slot->caller && memcmp(slot->key, key, 32) == 0) {
        /* the very bytes of a token verified before: nothing to check but the clock and keys */
        if (still_good(a, slot->caller, slot->issuer, slot->generation)) {
            out->status = AUTH_OK;
            out->caller = slot->caller;
            slot->caller->refs++;
            remember(memo, token, len, slot->caller, slot->issuer, slot->generation);
            return;
        }
        auth_caller_unref(slot->caller);
        slot->caller = NULL;
    }
    if (len > JOSE_MAX_TOKEN || !b64token(token, len)) {
        out->status = AUTH_INVALID;
        out->description = "The access token is malformed";
        snprintf(out->reason, sizeof out->reason, "malformed bearer token (%zu bytes)", len);
        return;
    }

    const issuer_rt_t *is = pick_issuer(a, token, len);
    if (!is) {
        out->status = AUTH_INVALID;
        out->description = "The access token was issued by an untrusted issuer";
        snprintf(out->reason, sizeof out->reason, "no configured issuer matches the token");
        return;
    }
    unsigned long generation = jwks_generation(is->keys);
    jose_keyset_t *keys = jwks_keys(is->keys);
    if (!keys) {
        if (req->may_wait && jwks_request_refetch(is->keys, req->wake, req->wake_arg)) {
            out->status = AUTH_WAIT;
            return;
        }
        out->status = AUTH_UNAVAILABLE;
        out->description = "The authorization server's keys are unavailable";
        snprintf(out->reason, sizeof out->reason, "no keys for %.80s: %.200s", is->cfg->issuer,
                 jwks_last_error(is->keys) ? jwks_last_error(is->keys) : "not fetched yet");
        return;
    }
    json_t *header = NULL, *claims = NULL;
    char why[120] = "";
    jose_status_t st = jose_verify(keys, token, len, is->algs, &header, &claims, why, sizeof why);
    jose_keyset_unref(keys);
    if (st == JOSE_UNKNOWN_KID && req->may_wait &&
        jwks_request_refetch(is->keys, req->wake, req->wake_arg)) {
        out->status = AUTH_WAIT; /* perhaps the issuer rotated its keys: look again */
        return;
    }
    if (st != JOSE_OK) {
        out->status = AUTH_INVALID;
        out->description = "The access token is invalid";
        snprintf(out->reason, sizeof out->reason, "%s: %s", jose_status_name(st), why);
        return;
    }
    auth_caller_t *c = check_claims(a, is, header, claims, out);
    json_decref(header);
    json_decref(claims);
    if (!c)
        return;
    if (slot) {
        auth_caller_unref(slot->caller);
        memcpy(slot->key, key, 32);
        slot->caller = c;
        slot->issuer = is;
        slot->generation = generation;
        c->refs++;
    }
    remember(memo, token, len, c, is, generation);
    out->status = AUTH_OK;
    out->caller = c;
}

const char *auth_bearer(const char *authorization, size_t *len)
{
    const char *h = authorization;
    while (h && (*h == ' ' || *h == '\t'))
        h++;
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return NULL;
    const char *token = h + 7;
    while (*token == ' ' || *token == '\t')
        token++;
    size_t n = strlen(token);
    while (n && (token[n - 1] == ' ' || token[n - 1] == '\t'))
        n--;
    *len = n;
    return token;
}

void auth_check(auth_t *a, auth_cache_t *cache, const auth_request_t *req, auth_result_t *out)
{
    memset(out, 0, sizeof *out);
    if (!a->enabled) {
        out->status = AUTH_OK;
        return;
    }
    if (req->n_authorization > 1) {
        out->status = AUTH_BAD_REQUEST;
        out->description = "Send exactly one Authorization header";
        snprintf(out->reason, sizeof out->reason, "%d Authorization headers", req->n_authorization);
        return;
    }
    if (req->token_in_query) {
        out->status = AUTH_BAD_REQUEST;
        out->description = "Access tokens are accepted in the Authorization header only";
        snprintf(out->reason, sizeof out->reason, "access_token in the query string");
        return;
    }
    const char *h = req->authorization;
    if (!h) {
        out->status = AUTH_NO_TOKEN;
        snprintf(out->reason, sizeof out->reason, "no Authorization header");
        return;
    }
    size_t len;
    const char *token = auth_bearer(h, &len);
    if (!token) {
        /* another scheme: answered as if no credentials came (RFC 6750 section 3.1) */
        out->status = AUTH_NO_TOKEN;
        snprintf(out->reason, sizeof out->reason, "Authorization scheme is not Bearer");
        return;
    }
    if (len == 0 || len > JOSE_MAX_TOKEN) {
        out->status = AUTH_INVALID;
        out->description = "The access token is malformed";
        snprintf(out->reason, sizeof out->reason, "malformed bearer token (%zu bytes)", len);
        return;
    }
    verify(a, cache, req, token, len, out);
    if (out->status != AUTH_OK)
        return;
    for (size_t i = 0; i < a->cfg->auth.n_scopes; i++)
        if (!auth_caller_has_scope(out->caller, a->cfg->auth.scopes[i])) {
            auth_caller_unref(out->caller);
            out->caller = NULL;
            out->status = AUTH_FORBIDDEN;
            out->description = "The access token lacks a required scope";
            out->scope = a->required_scopes;
            snprintf(out->reason, sizeof out->reason, "missing scope %.100s",
                     a->cfg->auth.scopes[i]);
            return;
        }
}

/* ---- challenges --------------------------------------------------------------------------- */

char *auth_scope_challenge(const auth_t *a, const char *scopes)
{
    char *out = NULL;
    if (asprintf(&out, "Bearer error=\"insufficient_scope\", scope=\"%s\", "
                       "error_description=\"This tool needs more scopes\", "
                       "resource_metadata=\"%s\"", scopes, a->prm_url) < 0)
        out = NULL;
    return out;
}

char *auth_challenge(auth_t *a, const auth_result_t *r)
{
    char buf[2048];
    switch (r->status) {
    case AUTH_NO_TOKEN: {
        /* the hint can be long (every policy scope): sized to fit, never cut mid-scope */
        char *out = NULL;
        pthread_mutex_lock(&a->mu);
        int rc = a->scope_hint ? asprintf(&out, "Bearer resource_metadata=\"%s\", scope=\"%s\"",
                                          a->prm_url, a->scope_hint)
                               : asprintf(&out, "Bearer resource_metadata=\"%s\"", a->prm_url);
        pthread_mutex_unlock(&a->mu);
        return rc < 0 ? NULL : out;
    }
    case AUTH_BAD_REQUEST:
        snprintf(buf, sizeof buf, "Bearer error=\"invalid_request\", error_description=\"%s\", "
                 "resource_metadata=\"%s\"", r->description, a->prm_url);
        break;
    case AUTH_FORBIDDEN:
        snprintf(buf, sizeof buf, "Bearer error=\"insufficient_scope\", scope=\"%s\", "
                 "error_description=\"%s\", resource_metadata=\"%s\"",
                 r->scope ? r->scope : "", r->description, a->prm_url);
        break;
    default:
        snprintf(buf, sizeof buf, "Bearer error=\"invalid_token\", error_description=\"%s\", "
                 "resource_metadata=\"%s\"", r->description ? r->description : "Invalid token",
                 a->prm_url);
        break;
    }
    return strdup(buf);
}
