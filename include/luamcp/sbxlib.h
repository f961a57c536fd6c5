/* sbxlib — the sandbox's own versions of the library functions that can run long in C, where
 * no count hook sees them: xpcall (no script handler runs once the budget is spent),
 * string.rep (a result past the memory cap fails as its allocation), table.move/concat/sort/
 * insert/remove (work charged to the call's budget) and the pattern functions string.find,
 * match, gmatch and gsub (a matcher of our own that counts its steps, sbxpat.c).
 *
 * Uses: vm (vm_charge, vm_budget_spent). */
#ifndef LUAMCP_SBXLIB_H
#define LUAMCP_SBXLIB_H

#include <lua.h>

/* stack: G, base (the base still writable) — replaces the functions above in the string and
 * table libraries themselves (the tables behind their read-only proxies, which string methods
 * also reach) and base.xpcall. Leaves the stack as it was. */
void sbx_patch_libs(lua_State *L);

/* The pattern functions (sbxpat.c), for sbx_patch_libs: stack: string table -> same. */
void sbx_patch_patterns(lua_State *L);

#endif
