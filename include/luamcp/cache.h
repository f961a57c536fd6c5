/* cache — mcp.cache: one in-memory key/value store per process, shared by every worker and
 * surviving reloads (like nginx's shared dictionaries). Values are strings, numbers or
 * booleans, with an optional time to live. The store is bounded in bytes; past the bound the
 * least recently used entries of the same shard go first. Locking is per shard, so workers
 * rarely wait for each other. */
#ifndef LUAMCP_CACHE_H
#define LUAMCP_CACHE_H

#include <lua.h>
#include <stddef.h>

#define CACHE_MAX_KEY 256
#define CACHE_MAX_VALUE (1u << 20)

/* Sets the byte bound (before any use; default 16 MiB). */
void cache_configure(size_t max_bytes);
/* Drops every entry and zeroes the counters (tests). */
void cache_clear(void);

/* Pushes the mcp.cache table: get, set, add, incr, delete, stats, shared. Keys live in the
 * namespace of the script file that uses them; mcp.cache.shared(name) gives the same functions
 * over a namespace every script naming it shares. */
void cache_push_api(lua_State *L);

#endif
