#include "luamcp/cache.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luamcp/vm.h"

#define SHARDS 16

typedef enum { V_STRING, V_INTEGER, V_NUMBER, V_BOOLEAN } vtype_t;

typedef struct entry {
    struct entry *next_hash;       /* chain in the shard's table */
    struct entry *lru_prev, *lru_next; /* most recent at the head */
    long long expires_ms;          /* 0 = never */
    vtype_t type;
    union {
        lua_Integer i;
        lua_Number n;
        int b;
    } num;
    size_t klen, vlen;
    char data[];                   /* key bytes, then value bytes */
} entry_t;

typedef struct shard {
    pthread_mutex_t mu;
    entry_t **table;
    size_t n_buckets;
    entry_t *lru_head, *lru_tail;
    size_t bytes;
} shard_t;

static shard_t shards[SHARDS];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static size_t max_bytes = 16u << 20;
static atomic_ullong hits, misses, sets, evictions, expired;

static void init(void)
{
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&shards[i].mu, NULL);
        shards[i].n_buckets = 1024;
        shards[i].table = calloc(shards[i].n_buckets, sizeof *shards[i].table);
    }
}

void cache_configure(size_t bytes)
{
    pthread_once(&once, init);
    max_bytes = bytes;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* FNV-1a: keys come from scripts, not from the network, and chains are bounded by the bytes */
static uint64_t hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h;
}

static size_t entry_bytes(const entry_t *e) { return sizeof *e + e->klen + e->vlen; }

static void lru_unlink(shard_t *s, entry_t *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        s->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        s->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push(shard_t *s, entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = s->lru_head;
    if (s->lru_head)
        s->lru_head->lru_prev = e;
    s->lru_head = e;
    if (!s->lru_tail)
        s->lru_tail = e;
}

/* Removes e from its shard and frees it (shard locked). */
static void drop(shard_t *s, entry_t *e, uint64_t h)
{
    entry_t **pp = &s->table[h & (s->n_buckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next_hash;
    if (*pp)
        *pp = e->next_hash;
    lru_unlink(s, e);
    s->bytes -= entry_bytes(e);
    free(e);
}

/* The live entry for key, or NULL; expired entries are dropped on the way (shard locked). */
static entry_t *find(shard_t *s, const char *k, size_t n, uint64_t h)
{
    for (entry_t *e = s->table[h & (s->n_buckets - 1)]; e; e = e->next_hash) {
        if (e->klen != n || memcmp(e->data, k, n) != 0)
            continue;
        if (e->expires_ms && e->expires_ms <= now_ms()) {
            drop(s, e, h);
            atomic_fetch_add(&expired, 1);
            return NULL;
        }
        return e;
    }
    return NULL;
}

static shard_t *shard_of(uint64_t h) { return &shards[(h >> 56) % SHARDS]; }

/* Makes room for need bytes in s by evicting its least recently used entries. */
static void make_room(shard_t *s, size_t need)
{
    size_t budget = max_bytes / SHARDS;
    while (s->lru_tail && s->bytes + need > budget) {
        entry_t *victim = s->lru_tail;
        drop(s, victim, hash(victim->data, victim->klen));
        atomic_fetch_add(&evictions, 1);
    }
}

void cache_clear(void)
{
    pthread_once(&once, init);
    for (int i = 0; i < SHARDS; i++) {
        shard_t *s = &shards[i];
        pthread_mutex_lock(&s->mu);
        while (s->lru_head)
            drop(s, s->lru_head, hash(s->lru_head->data, s->lru_head->klen));
        pthread_mutex_unlock(&s->mu);
    }
    atomic_store(&hits, 0);
    atomic_store(&misses, 0);
    atomic_store(&sets, 0);
    atomic_store(&evictions, 0);
    atomic_store(&expired, 0);
}

/* ---- Lua ---------------------------------------------------------------------------------- */

/* The key at 1, checked and put in its namespace (replacing argument 1): "s:NAME\0key" for
 * the functions of mcp.cache.shared(NAME) (upvalue 1 holds "s:NAME"), else "f:FILE\0key" for
 * the script file calling, so one file's entries are out of every other file's reach. A name
 * or a path holds no NUL, so no key of one namespace spells one of another. In mcp.so (specs,
 * no host) the key stays as it is; in the host, a call no script file owns is refused. */
static const char *check_key(lua_State *L, size_t *n)
{
    luaL_checklstring(L, 1, n);
    if (*n == 0 || *n > CACHE_MAX_KEY)
        luaL_error(L, "mcp.cache: a key is 1 to %d bytes", CACHE_MAX_KEY);
    if (lua_type(L, lua_upvalueindex(1)) == LUA_TSTRING) {
        lua_pushvalue(L, lua_upvalueindex(1));
    } else if (vm_push_owner_file(L)) {
        lua_pushliteral(L, "f:");
        lua_insert(L, -2);
        lua_concat(L, 2);
    } else if (lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.vm") == LUA_TLIGHTUSERDATA) {
        /* in the host, code no script file owns (too deep below one) has no namespace */
        luaL_error(L, "mcp.cache: no script file is calling (use mcp.cache from a script's "
                      "own functions, or name a namespace with mcp.cache.shared)");
    } else {
        lua_pop(L, 1);
        return lua_tolstring(L, 1, n);
    }
    lua_pushlstring(L, "", 1);
    lua_pushvalue(L, 1);
    lua_concat(L, 3);
    lua_replace(L, 1);
    return lua_tolstring(L, 1, n);
}

static long long check_ttl(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    lua_Number ttl = luaL_checknumber(L, idx);
    if (!(ttl > 0 && ttl <= 365 * 86400.0))
        luaL_error(L, "mcp.cache: ttl must be between 0 and one year, in seconds");
    return now_ms() + (long long)(ttl * 1000.0 + 0.5);
}

static void push_value(lua_State *L, const entry_t *e)
{
    switch (e->type) {
    case V_STRING: lua_pushlstring(L, e->data + e->klen, e->vlen); break;
    case V_INTEGER: lua_pushinteger(L, e->num.i); break;
    case V_NUMBER: lua_pushnumber(L, e->num.n); break;
    case V_BOOLEAN: lua_pushboolean(L, e->num.b); break;
    }
}

static int l_get(lua_State *L)
{
    size_t n;
    const char *k = check_key(L, &n);
    uint64_t h = hash(k, n);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    entry_t *e = find(s, k, n, h);
    if (e) {
        lru_unlink(s, e);
        lru_push(s, e);
        push_value(L, e); /* copies: the entry may go once the lock is released */
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(e ? &hits : &misses, 1);
    if (!e)
        lua_pushnil(L);
    return 1;
}

/* set and add: the value at 2, ttl at 3. only_new: fail when a live entry exists. */
static int store(lua_State *L, bool only_new)
{
    size_t n, vlen = 0;
    const char *k = check_key(L, &n);
    const char *v = NULL;
    vtype_t type;
    switch (lua_type(L, 2)) {
    case LUA_TSTRING:
        type = V_STRING;
        v = lua_tolstring(L, 2, &vlen);
        if (vlen > CACHE_MAX_VALUE)
            return luaL_error(L, "mcp.cache: a value is at most %d bytes", CACHE_MAX_VALUE);
        break;
    case LUA_TNUMBER: type = lua_isinteger(L, 2) ? V_INTEGER : V_NUMBER; break;
    case LUA_TBOOLEAN: type = V_BOOLEAN; break;
    default:
        return luaL_error(L, "mcp.cache: values are strings, numbers or booleans (encode tables "
                             "with mcp.json.encode)");
    }
    long long expires = check_ttl(L, 3);
    entry_t *e = malloc(sizeof *e + n + vlen);
    if (!e)
        return luaL_error(L, "mcp.cache: out of memory");
    memset(e, 0, sizeof *e);
    e->type = type;
    e->klen = n;
    e->vlen = vlen;
    e->expires_ms = expires;
    memcpy(e->data, k, n);
    if (v)
        memcpy(e->data + n, v, vlen);
    if (type == V_INTEGER)
        e->num.i = lua_tointeger(L, 2);
    else if (type == V_NUMBER)
        e->num.n = lua_tonumber(L, 2);
    else if (type == V_BOOLEAN)
        e->num.b = lua_toboolean(L, 2);
    if (entry_bytes(e) > max_bytes / SHARDS) {
        free(e);
        lua_pushboolean(L, 0);
        lua_pushstring(L, "value too large for the cache");
        return 2;
    }
    uint64_t h = hash(k, n);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    entry_t *old = find(s, k, n, h);
    if (old && only_new) {
        pthread_mutex_unlock(&s->mu);
        free(e);
        lua_pushboolean(L, 0);
        lua_pushstring(L, "exists");
        return 2;
    }
    if (old)
        drop(s, old, h);
    make_room(s, entry_bytes(e));
    size_t b = h & (s->n_buckets - 1);
    e->next_hash = s->table[b];
    s->table[b] = e;
    lru_push(s, e);
    s->bytes += entry_bytes(e);
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&sets, 1);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_set(lua_State *L) { return store(L, false); }
static int l_add(lua_State *L) { return store(L, true); }

/* incr(key, delta [, init [, ttl]]): adds delta to a number (init when absent, else an error
 * when absent); the ttl applies only when the entry is created. Atomic across workers. */
static int l_incr(lua_State *L)
{
    size_t n;
    const char *k = check_key(L, &n);
    lua_Number delta = luaL_checknumber(L, 2);
    bool has_init = !lua_isnoneornil(L, 3);
    lua_Number init_v = has_init ? luaL_checknumber(L, 3) : 0;
    long long expires = check_ttl(L, 4);
    bool integral = lua_isinteger(L, 2) && (!has_init || lua_isinteger(L, 3));
    uint64_t h = hash(k, n);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    entry_t *e = find(s, k, n, h);
    if (!e && !has_init) {
        pthread_mutex_unlock(&s->mu);
        lua_pushnil(L);
        lua_pushstring(L, "not found");
        return 2;
    }
    if (e && e->type != V_INTEGER && e->type != V_NUMBER) {
        pthread_mutex_unlock(&s->mu);
        lua_pushnil(L);
        lua_pushstring(L, "not a number");
        return 2;
    }
    if (!e) {
        e = calloc(1, sizeof *e + n);
        if (!e) {
            pthread_mutex_unlock(&s->mu);
            return luaL_error(L, "mcp.cache: out of memory");
        }
        e->klen = n;
        memcpy(e->data, k, n);
        e->expires_ms = expires;
        e->type = integral ? V_INTEGER : V_NUMBER;
        if (integral)
            e->num.i = lua_tointeger(L, 3);
        else
            e->num.n = init_v;
        make_room(s, entry_bytes(e));
        size_t b = h & (s->n_buckets - 1);
        e->next_hash = s->table[b];
        s->table[b] = e;
        s->bytes += entry_bytes(e);
    } else {
        lru_unlink(s, e);
    }
    lru_push(s, e);
    if (e->type == V_INTEGER && lua_isinteger(L, 2))
        e->num.i = (lua_Integer)((lua_Unsigned)e->num.i + (lua_Unsigned)lua_tointeger(L, 2));
    else {
        lua_Number cur = e->type == V_INTEGER ? (lua_Number)e->num.i : e->num.n;
        e->type = V_NUMBER;
        e->num.n = cur + delta;
    }
    push_value(L, e);
    pthread_mutex_unlock(&s->mu);
    return 1;
}

static int l_delete(lua_State *L)
{
    size_t n;
    const char *k = check_key(L, &n);
    uint64_t h = hash(k, n);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    entry_t *e = find(s, k, n, h);
    if (e)
        drop(s, e, h);
    pthread_mutex_unlock(&s->mu);
    lua_pushboolean(L, e != NULL);
    return 1;
}

static int l_stats(lua_State *L)
{
    size_t bytes = 0, entries = 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&shards[i].mu);
        bytes += shards[i].bytes;
        for (entry_t *e = shards[i].lru_head; e; e = e->lru_next)
            entries++;
        pthread_mutex_unlock(&shards[i].mu);
    }
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, (lua_Integer)entries);
    lua_setfield(L, -2, "entries");
    lua_pushinteger(L, (lua_Integer)bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, (lua_Integer)max_bytes);
    lua_setfield(L, -2, "max_bytes");
    static const struct { const char *name; atomic_ullong *v; } counters[] = {
        {"hits", &hits}, {"misses", &misses}, {"sets", &sets}, {"evictions", &evictions},
        {"expired", &expired}};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        lua_pushinteger(L, (lua_Integer)atomic_load(counters[i].v));
        lua_setfield(L, -2, counters[i].name);
    }
    return 1;
}

static const luaL_Reg keyed_fns[] = {{"get", l_get},   {"set", l_set},       {"add", l_add},
                                     {"incr", l_incr}, {"delete", l_delete}, {NULL, NULL}};

/* mcp.cache.shared(name): get, set, add, incr and delete over the namespace `name`, which
 * every script naming it shares (a declared meeting point: keep nothing private there). */
static int l_shared(lua_State *L)
{
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    if (n == 0 || n > CACHE_MAX_KEY || strlen(name) != n)
        return luaL_argerror(L, 1, "a namespace name of 1 to 256 bytes, without NUL");
    lua_createtable(L, 0, 5);
    lua_pushfstring(L, "s:%s", name);
    luaL_setfuncs(L, keyed_fns, 1);
    return 1;
}

void cache_push_api(lua_State *L)
{
    pthread_once(&once, init);
    lua_createtable(L, 0, 7);
    luaL_setfuncs(L, keyed_fns, 0);
    lua_pushcfunction(L, l_stats);
    lua_setfield(L, -2, "stats");
    lua_pushcfunction(L, l_shared);
    lua_setfield(L, -2, "shared");
}
