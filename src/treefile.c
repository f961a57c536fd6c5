#include "luamcp/treefile.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 16

static bool component_ok(const char *c, size_t n)
{
    return n > 0 && !(n == 1 && c[0] == '.') && !(n == 2 && c[0] == '.' && c[1] == '.');
}

/* The reason an open with O_NOFOLLOW failed, in words an operator acts on. */
static const char *open_reason(int e)
{
    return e == ELOOP || e == EMLINK ? "a symlink (files must be inside their tree)"
           : e == ENOENT             ? "not found"
           : e == ENOTDIR            ? "a symlink or not a directory on the way"
           : e == EACCES             ? "permission denied"
                                     : "cannot be opened";
}

int treefile_open(const char *root, const char *rel, const char **why)
{
    *why = "cannot be opened";
    if (!root || !rel || rel[0] == '/') {
        *why = "not a relative path";
        return -1;
    }
    int dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (dir < 0) {
        *why = open_reason(errno);
        return -1;
    }
    const char *p = rel;
    for (int depth = 0; depth < MAX_DEPTH; depth++) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char name[256];
        if (!component_ok(p, n) || n >= sizeof name) {
            *why = "not a plain path";
            break;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        /* O_NONBLOCK: a FIFO opens at once instead of waiting for a writer */
        int flags =
            O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (slash ? O_DIRECTORY : 0);
        int fd = openat(dir, name, flags);
        if (fd < 0) {
            *why = open_reason(errno);
            break;
        }
        close(dir);
        dir = -1;
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close(fd);
            break;
        }
        if (slash) {
            dir = fd;
            p = slash + 1;
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            *why = S_ISDIR(st.st_mode) ? "a directory, not a file" : "not a regular file";
            close(fd);
            return -1;
        }
        if ((size_t)st.st_size > TREEFILE_MAX_BYTES) {
            *why = "larger than 16 MiB";
            close(fd);
            return -1;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        return fd;
    }
    if (dir >= 0)
        close(dir);
    return -1;
}

/* Reads fd whole (it was a regular file at open) up to TREEFILE_MAX_BYTES; caller frees. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *grown = cap < TREEFILE_MAX_BYTES ? realloc(buf, cap * 2) : NULL;
            if (!grown) {
                free(buf);
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            free(buf);
            return NULL;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    *len = n;
    return buf;
}

char *treefile_read(const char *root, const char *rel, size_t *len, const char **why)
{
    int fd = treefile_open(root, rel, why);
    if (fd < 0)
        return NULL;
    char *text = read_all(fd, len);
    close(fd);
    if (!text)
        *why = "cannot be read";
    return text;
}

/* Loads root/rel as chunk `name` (stack: + chunk or message). */
static int load_named(lua_State *L, const char *root, const char *rel, const char *name)
{
    const char *why = NULL;
    int fd = treefile_open(root, rel, &why);
    if (fd < 0) {
        lua_pushfstring(L, "%s: %s", name + 1, why);
        return LUA_ERRFILE;
    }
    size_t len = 0;
    char *text = read_all(fd, &len);
    close(fd);
    if (!text) {
        lua_pushfstring(L, "%s: cannot be read", name + 1);
        return LUA_ERRFILE;
    }
    /* a first line starting with '#' is skipped, as luaL_loadfilex does (its newline kept,
     * so line numbers stay right) */
    size_t skip = 0;
    while (len && text[0] == '#' && skip < len && text[skip] != '\n')
        skip++;
    int rc = luaL_loadbufferx(L, text + skip, len - skip, name, "t");
    free(text);
    return rc;
}

int treefile_load(lua_State *L, const char *root, const char *rel)
{
    char name[4096];
    snprintf(name, sizeof name, "@%s/%s", root, rel);
    return load_named(L, root, rel, name);
}

int treefile_load_path(lua_State *L, const char *path)
{
    char name[4096], root[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof root || strlen(path) + 2 > sizeof name) {
        lua_pushfstring(L, "%s: path too long", path);
        return LUA_ERRFILE;
    }
    memcpy(root, path, n);
    root[n] = '\0';
    snprintf(name, sizeof name, "@%s", path);
    return load_named(L, !slash ? "." : n ? root : "/", slash ? slash + 1 : path, name);
}
