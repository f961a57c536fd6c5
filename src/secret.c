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

/* mcp.secret(name) -> value | nil, "unknown secret NAME" */
static int l_secret(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
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
