/* kit — the tool author's commands: `luamcp new tool` writes a tool, its policy and its spec;
 * `luamcp test` runs the busted specs of the scripts and policies with the mcp module.
 * Uses: text. Knows nothing of the server: it writes files and starts busted. */
#ifndef LUAMCP_KIT_H
#define LUAMCP_KIT_H

#include <stddef.h>

#define KIT_DEFAULT_SCOPE "mcp:tools" /* the scope of the demo tools' policy */

/* Writes scripts_dir/NAME.lua (a tool with a schema and a handler), policies_dir/NAME.lua (a
 * rule letting callers with scope call it) and scripts_dir/spec/NAME_spec.lua (a busted spec
 * that passes as written). All or nothing: when any of the three exists or a write fails,
 * nothing is left behind. scope NULL means KIT_DEFAULT_SCOPE. 0 with the paths written on
 * stdout, or -1 with *err (caller frees). */
int kit_new_tool(const char *scripts_dir, const char *policies_dir, const char *name,
                 const char *scope, char **err);

/* Where `luamcp test` finds what it needs, as the program was built: the build tree's source
 * directory (for spec/lua's helpers) and the variant's folder of mcp.so beside the binary. */
typedef struct kit_layout {
    const char *source_dir; /* NULL when not known */
    const char *variant;    /* "plain", "asan" */
    const char *libasan;    /* the ASan runtime to preload into lua5.4 for an asan mcp.so */
} kit_layout_t;

/* Runs busted (under lua5.4, with the helper and mcp.so) on paths, or on scripts_dir and
 * policies_dir when n_paths is 0. Returns only on failure, with the exit status to use (the
 * message is printed): on success busted replaces this process and its status is ours. */
int kit_test(const kit_layout_t *layout, const char *scripts_dir, const char *policies_dir,
             char *const *paths, size_t n_paths);

#endif
