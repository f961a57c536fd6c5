/* kit_test — `luamcp test [PATH...]`: busted under lua5.4 with the helper of spec/lua and the mcp
 * module this binary was built with, so a spec runs the server's own C bindings and nobody has
 * to set LUA_CPATH. */
#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luamcp/kit.h"

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The full path of program on $PATH into out, or false. */
static bool on_path(const char *program, char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        int n = snprintf(out, size, "%.*s/%s", len ? (int)len : 1, len ? path : ".", program);
        if (n > 0 && (size_t)n < size && is_file(out) && access(out, X_OK) == 0)
            return true;
        path += len + (path[len] == ':');
    }
    return false;
}

/* The directory of the running binary into out, or false. */
static bool exe_dir(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n <= 0)
        return false;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return true;
}

/* Whether dir/a/b names a file, left in out. */
static bool candidate(char *out, size_t size, const char *dir, const char *a, const char *b)
{
    int n = snprintf(out, size, "%s/%s%s", dir, a, b);
    return n > 0 && (size_t)n < size && is_file(out);
}

/* mcp.so and helper.lua into module and helper: the build tree's (the variant's folder beside
 * the binary, the source tree's spec/lua), else an installed layout's (bin/luamcp beside
 * lib/luamcp/mcp.so and share/luamcp/lua/). Never one of each. */
static const char *find_layout(const kit_layout_t *k, const char *bin, char *module, char *helper,
                               size_t size)
{
    if (candidate(module, size, bin, k->variant, "/mcp.so"))
        return k->source_dir && candidate(helper, size, k->source_dir, "spec/lua/", "helper.lua")
                   ? NULL
                   : "the build tree has mcp.so but not its source tree's spec/lua/helper.lua";
    if (!candidate(module, size, bin, "../lib/luamcp/", "mcp.so"))
        return "the mcp module (mcp.so) is not built: run `make build`";
    return candidate(helper, size, bin, "../share/luamcp/lua/", "helper.lua")
               ? NULL
               : "the installed layout has lib/luamcp/mcp.so but not share/luamcp/lua/helper.lua";
}

/* Whether dir holds a *_spec.lua file, at most depth folders down (busted recurses). */
static bool has_specs(const char *dir, int depth)
{
    if (is_file(dir)) { /* busted runs a file given only if its name matches the pattern */
        const char *base = strrchr(dir, '/');
        return strstr(base ? base + 1 : dir, "_spec") != NULL;
    }
    DIR *d = depth > 0 ? opendir(dir) : NULL;
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= (int)sizeof sub)
            continue;
        if (len > 9 && strcmp(de->d_name + len - 9, "_spec.lua") == 0)
            found = is_file(sub);
        else
            found = has_specs(sub, depth - 1);
    }
    closedir(d);
    return found;
}

/* name=value with the absolute form of path; false when path does not exist. */
static bool set_dir_env(const char *name, const char *path)
{
    char abs[PATH_MAX];
    if (!realpath(path, abs))
        return false;
    return setenv(name, abs, 1) == 0;
}

int kit_test(const kit_layout_t *k, const char *scripts_dir, const char *policies_dir,
             char *const *paths, size_t n_paths)
{
    char busted[PATH_MAX], lua[PATH_MAX], bin[PATH_MAX], module[PATH_MAX], helper[PATH_MAX];
    if (!on_path("busted", busted, sizeof busted)) {
        fprintf(stderr, "luamcp test: busted is not installed (on Debian: apt-get install "
                        "lua-busted; or luarocks install busted)\n");
        return 2;
    }
    if (!on_path("lua5.4", lua, sizeof lua)) {
        fprintf(stderr, "luamcp test: lua5.4 is not installed (on Debian: apt-get install "
                        "lua5.4): the specs run under Lua 5.4, as the server's scripts do\n");
        return 2;
    }
    const char *why = exe_dir(bin, sizeof bin) ? find_layout(k, bin, module, helper, PATH_MAX)
                                               : "cannot find where this binary is";
    if (why) {
        fprintf(stderr, "luamcp test: %s (looked in %s/%s/ and %s/../lib/luamcp/)\n", why, bin,
                k->variant, bin);
        return 2;
    }

    /* argv: busted, its options, then the paths (a spec file or a folder to search). */
    size_t n_args = 0;
    char **argv = calloc(n_paths + 8, sizeof *argv);
    char lua_opt[PATH_MAX + 8], helper_opt[PATH_MAX + 12];
    if (!argv) {
        fprintf(stderr, "luamcp test: out of memory\n");
        return 2;
    }
    snprintf(lua_opt, sizeof lua_opt, "--lua=%s", lua);
    snprintf(helper_opt, sizeof helper_opt, "--helper=%s", helper);
    argv[n_args++] = busted;
    argv[n_args++] = lua_opt;
    argv[n_args++] = helper_opt;
    argv[n_args++] = "--pattern=_spec";
    bool any = false;
    size_t n_given = 0; /* paths, not busted options (after --: `luamcp test -- --output=TAP`) */
    for (size_t i = 0; i < n_paths; i++)
        if (paths[i][0] == '-')
            argv[n_args++] = paths[i];
    for (size_t i = 0; i < n_paths; i++) {
        if (paths[i][0] == '-')
            continue;
        n_given++;
        if (access(paths[i], R_OK) != 0) {
            fprintf(stderr, "luamcp test: %s: no such file or folder\n", paths[i]);
            free(argv);
            return 2;
        }
        any = any || has_specs(paths[i], 8);
        argv[n_args++] = paths[i];
    }
    const char *dirs[2] = {scripts_dir, policies_dir};
    for (int i = 0; n_given == 0 && i < 2; i++)
        if (access(dirs[i], R_OK) == 0 && has_specs(dirs[i], 8)) {
            any = true;
            argv[n_args++] = (char *)dirs[i];
        }
    if (!any) {
        if (n_given)
            fprintf(stderr, "luamcp test: no specs (*_spec.lua) in the paths given\n");
        else
            fprintf(stderr,
                    "luamcp test: no specs (*_spec.lua) under %s or %s (`luamcp new "
                    "tool NAME` writes one to start from)\n",
                    scripts_dir, policies_dir);
        free(argv);
        return 1;
    }

    /* Lua 5.4 reads LUA_CPATH_5_4 before LUA_CPATH: the module first, then what was there
     * (";;" is Lua's default path, where busted's own C modules live). */
    char cpath[PATH_MAX + 4096];
    const char *was = getenv("LUA_CPATH_5_4");
    if (!was)
        was = getenv("LUA_CPATH");
    char *slash = strrchr(module, '/');
    snprintf(cpath, sizeof cpath, "%.*s/?.so;%s", (int)(slash - module), module, was ? was : ";");
    char cwd[PATH_MAX];
    if (!set_dir_env("LUAMCP_TEST_SCRIPTS", scripts_dir)) {
        fprintf(stderr, "luamcp test: the scripts folder %s does not exist (give --scripts DIR)\n",
                scripts_dir);
        free(argv);
        return 2;
    }
    if (!set_dir_env("LUAMCP_TEST_POLICIES", policies_dir))
        unsetenv("LUAMCP_TEST_POLICIES"); /* the helper's default: policies/ */
    if (setenv("LUA_CPATH_5_4", cpath, 1) != 0 || !getcwd(cwd, sizeof cwd) ||
        setenv("LUAMCP_TEST_ROOT", cwd, 1) != 0) {
        perror("luamcp test");
        free(argv);
        return 2;
    }
    if (strcmp(k->variant, "asan") == 0 && k->libasan && *k->libasan) {
        /* lua5.4 is not instrumented: the ASan runtime must be loaded first */
        setenv("LD_PRELOAD", k->libasan, 1);
        setenv("ASAN_OPTIONS", "detect_leaks=0", 0);
    }
    fprintf(stderr, "luamcp test: busted");
    for (size_t i = 4; i < n_args; i++)
        fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, " (module %s)\n", module);
    fflush(NULL);
    execv(busted, argv);
    perror("luamcp test: cannot run busted");
    free(argv);
    return 2;
}
