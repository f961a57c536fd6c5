/* string.find, match, gmatch and gsub over a Lua-pattern matcher of our own that counts its
 * steps and charges them to the call's budget: the library's matcher backtracks in C where no
 * hook sees it, and a pattern such as ("a*"):rep(30).."b" takes it years (any caller can send
 * one wherever a tool does s:find(args.q)). The language is Lua 5.4's, error messages too. */
#include "luamcp/sbxlib.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#include "luamcp/vm.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH    200  /* recursion of the matcher ("pattern too complex") */
#define CHARGE_STEPS 4096 /* matcher steps between budget checks */
#define CAP_OPEN     (-1)
#define CAP_POSITION (-2)
#define SPECIALS     "^$*+?.([%-"

typedef struct matcher {
    lua_State *L;
    const char *s0, *s_end, *p_end; /* subject and pattern (Lua strings: NUL follows the end) */
    int depth;                      /* recursion left */
    int level;                      /* captures open or closed */
    long steps;
    struct {
        const char *at;
        ptrdiff_t len; /* or CAP_OPEN, CAP_POSITION */
    } cap[MAX_CAPTURES];
} matcher_t;

static void step(matcher_t *m, long n)
{
    m->steps += n;
    if (m->steps >= CHARGE_STEPS) {
        long spent = m->steps;
        m->steps = 0;
        if (!vm_charge(m->L, spent))
            luaL_error(m->L, "budget exceeded (in a pattern match)");
    }
}

static void reset(matcher_t *m)
{
    m->level = 0;
    m->depth = MAX_DEPTH;
}

/* The end of the single-character class at p. */
static const char *class_end(matcher_t *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= m->p_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        do { /* the first character of a set is itself even when it is ']' */
            if (p >= m->p_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            if (*p++ == '%' && p < m->p_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

static bool in_class(int c, int cl)
{
    bool r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    default:
        return cl == c;
    }
    return isupper(cl) ? !r : r;
}

/* p at '[', last at the closing ']' */
static bool in_set(int c, const char *p, const char *last)
{
    bool neg = false;
    if (*++p == '^') {
        neg = true;
        p++;
    }
    for (; p < last; p++) {
        if (*p == '%') {
            p++;
            if (in_class(c, (unsigned char)*p))
                return !neg;
        } else if (p[1] == '-' && p + 2 < last) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return !neg;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return !neg;
        }
    }
    return neg;
}

static bool single(const matcher_t *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->s_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return true;
    case '%':
        return in_class(c, (unsigned char)p[1]);
    case '[':
        return in_set(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *match(matcher_t *m, const char *s, const char *p);

static const char *max_expand(matcher_t *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single(m, s + i, p, ep)) {
        step(m, 1);
        i++;
    }
    for (; i >= 0; i--) { /* the longest first, then back off */
        step(m, 1);
        const char *r = match(m, s + i, ep + 1);
        if (r)
            return r;
    }
    return NULL;
}

static const char *min_expand(matcher_t *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        step(m, 1);
        const char *r = match(m, s, ep + 1);
        if (r)
            return r;
        if (!single(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(matcher_t *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->level].at = s;
    m->cap[m->level].len = what;
    m->level++;
    const char *r = match(m, s, p);
    if (!r)
        m->level--;
    return r;
}

static const char *close_capture(matcher_t *m, const char *s, const char *p)
{
    int l = m->level - 1;
    while (l >= 0 && m->cap[l].len != CAP_OPEN)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].at;
    const char *r = match(m, s, p);
    if (!r)
        m->cap[l].len = CAP_OPEN;
    return r;
}

/* %bxy at p (p after "%b") */
static const char *balance(matcher_t *m, const char *s, const char *p)
{
    if (p + 1 >= m->p_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->s_end || *s != p[0])
        return NULL;
    int open = 1;
    while (++s < m->s_end) {
        step(m, 1);
        if (*s == p[1]) {
            if (--open == 0)
                return s + 1;
        } else if (*s == p[0]) {
            open++;
        }
    }
    return NULL;
}

static int capture_index(matcher_t *m, int c)
{
    int l = c - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    return l;
}

static const char *back_reference(matcher_t *m, const char *s, int c)
{
    int l = capture_index(m, c);
    size_t len = (size_t)m->cap[l].len;
    step(m, (long)(len / 16) + 1);
    if ((size_t)(m->s_end - s) >= len && memcmp(m->cap[l].at, s, len) == 0)
        return s + len;
    return NULL;
}

/* %f[set] at p (p after "%f") */
static const char *frontier(matcher_t *m, const char *s, const char **p)
{
    if (**p != '[')
        luaL_error(m->L, "missing '[' after '%%f' in pattern");
    const char *ep = class_end(m, *p);
    int prev = s == m->s0 ? 0 : (unsigned char)s[-1];
    int cur = s < m->s_end ? (unsigned char)*s : 0;
    if (in_set(prev, *p, ep - 1) || !in_set(cur, *p, ep - 1))
        return NULL;
    *p = ep;
    return s;
}

/* Where a match of p starting at s ends, or NULL. */
static const char *match(matcher_t *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    while (s && p < m->p_end) {
        step(m, 1);
        if (*p == '(') {
            s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                            : open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->p_end) {
            s = s == m->s_end ? s : NULL;
            break;
        }
        if (*p == '%' && p[1] == 'b') {
            s = balance(m, s, p + 2);
            p += 4;
            continue;
        }
        if (*p == '%' && p[1] == 'f') {
            p += 2;
            s = frontier(m, s, &p);
            continue;
        }
        if (*p == '%' && isdigit((unsigned char)p[1])) {
            s = back_reference(m, s, p[1]);
            p += 2;
            continue;
        }
        const char *ep = class_end(m, p);
        if (!single(m, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') { /* may match nothing */
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (*ep == '?') {
            const char *r = match(m, s + 1, ep + 1);
            if (r) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (*ep == '+') {
            s = max_expand(m, s + 1, p, ep);
            break;
        }
        if (*ep == '*') {
            s = max_expand(m, s, p, ep);
            break;
        }
        if (*ep == '-') {
            s = min_expand(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return s;
}

/* ---- captures --------------------------------------------------------------------------- */

/* Pushes capture i of the match s..e (the whole match when there are no captures). */
static void push_capture(matcher_t *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (m->cap[i].at - m->s0) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
}

/* Pushes every capture (the whole match when there are none and s is not NULL). */
static int push_captures(matcher_t *m, const char *s, const char *e)
{
    int n = m->level == 0 && s ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* ---- the functions ---------------------------------------------------------------------- */

static void prepare(matcher_t *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    m->L = L;
    m->s0 = s;
    m->s_end = s + ls;
    m->p_end = p + lp;
    m->steps = 0;
    reset(m);
}

/* The start position init (1-based, negative from the end) as an offset, clamped to 0. */
static size_t start_offset(lua_Integer init, size_t len)
{
    if (init > 0)
        return (size_t)init - 1;
    if (init == 0 || init < -(lua_Integer)len)
        return 0;
    return len + (size_t)init;
}

static bool plain(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (p[i] && strchr(SPECIALS, p[i]))
            return false;
    return true;
}

static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || plain(p, lp))) {
        const char *at = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (!vm_charge(L, (long long)((ls - init) / 64)))
            return luaL_error(L, "budget exceeded (in string.find)");
        if (!at) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (at - s) + 1);
        lua_pushinteger(L, (at - s) + (lua_Integer)lp);
        return 2;
    }
    matcher_t m;
    bool anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    prepare(&m, L, s, ls, p, lp);
    const char *from = s + init;
    do {
        reset(&m);
        const char *e = match(&m, from, p);
        if (e) {
            if (!find)
                return push_captures(&m, from, e);
            lua_pushinteger(L, (from - s) + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&m, NULL, NULL) + 2;
        }
    } while (from++ < m.s_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int sbx_find(lua_State *L)
{
    return find_or_match(L, true);
}
static int sbx_match(lua_State *L)
{
    return find_or_match(L, false);
}

typedef struct gmatch_state {
    const char *at, *last, *p;
    matcher_t m;
} gmatch_state_t;

/* upvalues: subject, pattern, state */
static int gmatch_next(lua_State *L)
{
    gmatch_state_t *g = lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L; /* the iterator may run on another coroutine than gmatch did */
    for (const char *from = g->at; from <= g->m.s_end; from++) {
        reset(&g->m);
        const char *e = match(&g->m, from, g->p);
        if (e && e != g->last) {
            g->at = g->last = e;
            return push_captures(&g->m, from, e);
        }
    }
    return 0;
}

static int sbx_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls)
        init = ls + 1; /* matches nothing */
    lua_settop(L, 2);
    gmatch_state_t *g = lua_newuserdatauv(L, sizeof *g, 0);
    prepare(&g->m, L, s, ls, p, lp);
    g->at = s + init;
    g->last = NULL;
    g->p = p;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Adds what replaces the match s..e (repl at index 3) to b. */
static void add_replacement(matcher_t *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    switch (lua_type(L, 3)) {
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
        break;
    default: { /* a string: %0-%9 and %% */
        size_t l;
        const char *r = lua_tolstring(L, 3, &l), *end = r + l;
        for (; r < end; r++) {
            if (*r != '%') {
                luaL_addchar(b, *r);
                continue;
            }
            r++;
            if (r < end && *r == '%') {
                luaL_addchar(b, '%');
            } else if (r < end && *r == '0') {
                luaL_addlstring(b, s, (size_t)(e - s));
            } else if (r < end && isdigit((unsigned char)*r)) {
                push_capture(m, *r - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            } else {
                luaL_error(L, "invalid use of '%%' in replacement string");
            }
        }
        return;
    }
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: the match stays as it was */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int sbx_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    bool anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    matcher_t m;
    prepare(&m, L, s, ls, p, lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *from = s, *last = NULL;
    lua_Integer n = 0;
    while (n < max) {
        reset(&m);
        const char *e = match(&m, from, p);
        if (e && e != last) {
            n++;
            add_replacement(&m, &b, from, e);
            from = last = e;
        } else if (from < m.s_end) {
            step(&m, 1);
            luaL_addchar(&b, *from++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (n == 0) {
        lua_pushvalue(L, 1); /* unchanged */
    } else {
        luaL_addlstring(&b, from, (size_t)(m.s_end - from));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void sbx_patch_patterns(lua_State *L)
{
    static const luaL_Reg fns[] = {{"find", sbx_find},
                                   {"match", sbx_match},
                                   {"gmatch", sbx_gmatch},
                                   {"gsub", sbx_gsub},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
