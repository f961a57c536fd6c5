#include "luamcp/secret.h"

#include <jansson.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SECRETS 256
#define MAX_NAME 64
#define ENV_PREFIX "LUAMCP_SECRET_"

extern char **environ;

typedef struct secret {
    char name[MAX_NAME + 1];
    char *value;
    size_t len;
} secret_t;

static secret_t secrets[MAX_SECRETS];
static size_t n_secrets;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Adds or replaces name (the file wins over the environment: it is read second). */
static const char *put(const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (!name_ok(name, nlen))
        return "a secret name is 1 to 64 of A-Z a-z 0-9 _";
    if (vlen < SECRET_MIN_LEN)
        return "a secret value is at least 8 bytes (shorter ones cannot be redacted safely)";
    if (memchr(value, '\0', vlen))
        return "a secret value cannot contain NUL";
    secret_t *s = NULL;
    for (size_t i = 0; i < n_secrets && !s; i++)
        if (strlen(secrets[i].name) == nlen && memcmp(secrets[i].name, name, nlen) == 0)
            s = &secrets[i];
    if (!s) {
        if (n_secrets == MAX_SECRETS)
            return "too many secrets (256 at most)";
        s = &secrets[n_secrets++];
        memcpy(s->name, name, nlen);
        s->name[nlen] = '\0';
    }
    free(s->value);
    s->value = strndup(value, vlen);
    s->len = vlen;
    return s->value ? NULL : "out of memory";
}

static void load_env(void)
{
    size_t plen = strlen(ENV_PREFIX);
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, ENV_PREFIX, plen) != 0)
            continue;
        const char *name = *e + plen, *eq = strchr(name, '=');
        if (eq)
            put(name, (size_t)(eq - name), eq + 1, strlen(eq + 1)); /* bad ones are skipped */
    }
}

int secret_load(const char *file, char **err)
{
    pthread_once(&env_once, load_env);
    if (!file)
        return 0;
    struct stat st;
    FILE *f = fopen(file, "r");
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f)
            fclose(f);
        *err = malloc(strlen(file) + 64);
        if (*err)
            sprintf(*err, "cannot read the secrets file %s", file);
        return -1;
    }
    if (st.st_mode & 077) {
        fclose(f);
        *err = malloc(strlen(file) + 96);
        if (*err)
            sprintf(*err, "%s: readable by others (chmod 600 it)", file);
        return -1;
    }
    char line[8192];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        const char *why = eq ? put(line, (size_t)(eq - line), eq + 1, strlen(eq + 1))
                             : "expected NAME=value";
        if (why) {
            fclose(f);
            *err = malloc(strlen(file) + strlen(why) + 32);
            if (*err)
                sprintf(*err, "%s:%d: %s", file, lineno, why);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

const char *secret_get(const char *name)
{
    pthread_once(&env_once, load_env);
    for (size_t i = 0; i < n_secrets; i++)
        if (strcmp(secrets[i].name, name) == 0)
            return secrets[i].value;
    return NULL;
}

static _Thread_local const json_t *scoped; /* the running call's credential values */

void secret_scope(const json_t *values) { scoped = values; }

/* Replaces each occurrence of value (vlen bytes) in text with mask, which is not longer. */
static void replace_all(char *text, const char *value, size_t vlen, const char *mask)
{
    size_t ml = strlen(mask);
    char *p = text;
    while ((p = strstr(p, value))) {
        memcpy(p, mask, ml);
        memmove(p + ml, p + vlen, strlen(p + vlen) + 1);
        p += ml;
    }
}

void secret_redact(char *text)
{
    size_t k;
    const json_t *v;
    json_array_foreach(scoped, k, v) {
        size_t len = json_string_length(v);
        if (len >= 4) /* the mask must not be longer than what it replaces */
            replace_all(text, json_string_value(v), len,
                        len >= 12 ? "[credential]" : len >= 6 ? "[cred]" : "****");
    }
    size_t mask = strlen(SECRET_MASK);
    for (size_t i = 0; i < n_secrets; i++) {
        char *p = text;
        while ((p = strstr(p, secrets[i].value))) {
            /* the mask is never longer than the value (SECRET_MIN_LEN): shrink in place */
            memcpy(p, SECRET_MASK, mask);
            memmove(p + mask, p + secrets[i].len, strlen(p + secrets[i].len) + 1);
            p += mask;
        }
    }
}

/* The length of the longest k < vlen such that text (tlen bytes) ends with value's first k
 * bytes: what is left of a value the cut went through. */
static size_t tail_prefix(const char *text, size_t tlen, const char *value, size_t vlen)
{
    for (size_t k = vlen - 1 < tlen ? vlen - 1 : tlen; k > 0; k--)
        if (memcmp(text + tlen - k, value, k) == 0)
            return k;
    return 0;
}

size_t secret_redact_cut(char *text, size_t max, bool cut_before)
{
    secret_redact(text);
    size_t len = strlen(text);
    if (len <= max && !cut_before)
        return len;
    if (len > max)
        len = max;
    /* Drop any tail that starts a value: the longest first, until none is left (a shorter
     * cut may expose the start of another value). Bounded: each round shortens the text. */
    for (bool again = true; again && len;) {
        again = false;
        size_t k;
        const json_t *v;
        json_array_foreach(scoped, k, v) {
            size_t d = json_string_length(v) >= 4
                           ? tail_prefix(text, len, json_string_value(v), json_string_length(v))
                           : 0;
            if (d) {
                len -= d;
                again = true;
            }
        }
        for (size_t i = 0; i < n_secrets; i++) {
            size_t d = tail_prefix(text, len, secrets[i].value, secrets[i].len);
            if (d) {
                len -= d;
                again = true;
            }
        }
    }
    text[len] = '\0';
    return len;
}

/* Redacts one JSON string in place (a copy redacted and set back when it carried a value). */
static void scrub_string(json_t *v)
{
    char *copy = strdup(json_string_value(v));
    if (!copy) {
        json_string_set(v, SECRET_MASK);
        return;
    }
    size_t before = strlen(copy);
    secret_redact(copy);
    if (strlen(copy) != before && json_string_set(v, copy) != 0)
        json_string_set(v, SECRET_MASK);
    free(copy);
}

static bool carries_value(const char *s)
{
    size_t k;
    const json_t *v;
    json_array_foreach(scoped, k, v)
        if (json_string_length(v) >= 4 && strstr(s, json_string_value(v)))
            return true;
    for (size_t i = 0; i < n_secrets; i++)
        if (strstr(s, secrets[i].value))
            return true;
    return false;
}

void secret_scrub_json(json_t *v, int depth)
{
    /* results and notifications are built from Lua by conv, at most CONV_MAX_DEPTH (64)
     * containers deep, wrapped in a few more: 256 is never reached */
    if (!v || depth > 256)
        return;
    if (json_is_string(v)) {
        if (carries_value(json_string_value(v)))
            scrub_string(v);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            secret_scrub_json(x, depth + 1);
    } else if (json_is_object(v)) {
        const char *key;
        void *tmp;
        json_t *x;
        json_object_foreach_safe(v, tmp, key, x) {
            secret_scrub_json(x, depth + 1);
            if (carries_value(key)) { /* the key too: moved under its redacted name */
                char *name = strdup(key);
                json_t *keep = json_incref(x);
                json_object_del(v, key);
                if (name) {
                    secret_redact(name);
                    json_object_set_new(v, name, keep);
                    free(name);
                } else {
                    json_decref(keep);
                }
            }
        }
    }
}

bool secret_name_valid(const char *name) { return name_ok(name, strlen(name)); }

static _Thread_local char *const *granted; /* the running handler's `secrets`; borrowed */
static _Thread_local size_t n_granted;
static _Thread_local bool granted_all;     /* mcp.so under busted: no handler runs there */

void secret_grant(char *const *names, size_t n)
{
    granted = names;
    n_granted = names ? n : 0;
}

size_t secret_granted(char *const **names)
{
    *names = granted;
    return n_granted;
}

void secret_grant_all(void) { granted_all = true; }

static bool is_granted(const char *name)
{
    for (size_t i = 0; i < n_granted; i++)
        if (strcmp(granted[i], name) == 0)
            return true;
    return granted_all;
}

/* mcp.secret(name) -> value | nil, "unknown secret NAME". Only a granted name is read: a
 * tool's handler lists what it needs in `secrets`; a policy, a prompt, a resource or a script
 * loading gets none. */
static int l_secret(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!is_granted(name))
        return luaL_error(L, "mcp.secret: secret '%s' is not granted: a tool reads only the "
                             "secrets it lists in 'secrets' (tools only, from the handler)",
                          name);
    const char *v = secret_get(name);
    if (!v) {
        luaL_pushfail(L);
        lua_pushfstring(L, "unknown secret %s (set LUAMCP_SECRET_%s or the secrets file)", name,
                        name);
        return 2;
    }
    lua_pushstring(L, v);
    return 1;
}

void secret_push_api(lua_State *L)
{
    lua_pushcfunction(L, l_secret);
}
