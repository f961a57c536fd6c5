/* treefile — opening a script, policy or module only inside its tree.
 *
 * A tree is a directory the operator named (scripts/, scripts/lib, policies/); the root
 * itself may be a symlink (deploys swap them), nothing below it may: every component of the
 * relative path is opened with O_NOFOLLOW from the one before, and the last must be a regular
 * file. FIFOs, devices, sockets and directories are refused after an O_NONBLOCK open, so none
 * of them can block the caller. Uses: nothing of ours. */
#ifndef LUAMCP_TREEFILE_H
#define LUAMCP_TREEFILE_H

#include <lua.h>
#include <stddef.h>

#define TREEFILE_MAX_BYTES (16u << 20) /* a bigger script is refused, not read */

/* An fd (O_RDONLY, caller closes) of the regular file rel under root, or -1 with *why set to a
 * static reason ("a symlink", "not a regular file", …). rel is '/'-separated, relative, with
 * no empty, "." or ".." component. */
int treefile_open(const char *root, const char *rel, const char **why);
/* The whole text of root/rel through treefile_open (caller frees; *len its length), or NULL
 * with *why. */
char *treefile_read(const char *root, const char *rel, size_t *len, const char **why);
/* Like luaL_loadfilex(L, "root/rel", "t") but through treefile_open: pushes the chunk and
 * returns LUA_OK, or pushes a message and returns LUA_ERRFILE (refused or unreadable) or the
 * parser's status. The chunk is named "@root/rel". */
int treefile_load(lua_State *L, const char *root, const char *rel);
/* Splits path at its last '/' into a root and a name and loads it as above (root "." when
 * there is no '/'). */
int treefile_load_path(lua_State *L, const char *path);

#endif
