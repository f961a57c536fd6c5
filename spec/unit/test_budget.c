/* Budgets no script can escape: every attack of issue 15 that kept a worker past its deadline
 * (message handlers, pcall and coroutine wrappers, C library functions that loop, patterns
 * that backtrack) must end within the call's budget plus slack with a clear status, and the
 * same state must then serve the next run normally. Each attack runs in a child process with
 * an alarm, so one that hangs is reported by name instead of stalling the suite. The pattern
 * functions are our own (sbxpat.c): their results are checked against Lua 5.4's. */
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/vm.h"

#define CPU_MS   200
#define SLACK_MS 3000 /* ASan on a shared machine */
#define ALARM_S  20

static config_limits_t limits = {.cpu_ms = CPU_MS, .instructions = 0, .memory_bytes = 32u << 20};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Runs code as a fresh coroutine with a script's environment; out gets the message or the
 * first result. */
static vm_status_t run(vm_t *vm, const char *code, char *out, size_t n)
{
    lua_State *L = vm_lua(vm);
    int top = lua_gettop(L);
    out[0] = '\0';
    if (luaL_loadbufferx(L, code, strlen(code), "=attack", "t") != LUA_OK) {
        snprintf(out, n, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return VM_ERROR;
    }
    lua_newtable(L);
    lua_newtable(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.base");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);
    lua_State *co = lua_newthread(L);
    lua_insert(L, -2);
    lua_xmove(L, co, 1);
    int nres = 0;
    char *msg = NULL, *trace = NULL;
    vm_status_t st = vm_resume(vm, co, 0, &nres, &msg, &trace);
    if (st == VM_OK && nres > 0)
        snprintf(out, n, "%s", luaL_tolstring(co, -nres, NULL));
    else if (msg)
        snprintf(out, n, "%s", msg);
    free(msg);
    free(trace);
    lua_settop(L, top);
    return st;
}

/* In a child: the attack ends within CPU_MS + SLACK_MS with status want (and want_msg in its
 * message when given), then the same vm runs a plain chunk. Exit status: 0 passed, 1 failed. */
static int attack_child(const char *code, vm_status_t want, const char *want_msg)
{
    char *err = NULL, out[512];
    vm_t *vm = vm_new(&limits, NULL, &err);
    if (!vm)
        return 1;
    long long t0 = now_ms();
    vm_status_t st = run(vm, code, out, sizeof out);
    long long took = now_ms() - t0;
    int bad = 0;
    if (st != want || (want_msg && !strstr(out, want_msg))) {
        fprintf(stderr, "    status %d (want %d): %s\n", st, want, out);
        bad = 1;
    }
    if (took > CPU_MS + SLACK_MS) {
        fprintf(stderr, "    took %lld ms\n", took);
        bad = 1;
    }
    st = run(vm, "local t = {} for i = 1, 100 do t[i] = i end return #t", out, sizeof out);
    if (st != VM_OK || strcmp(out, "100") != 0) {
        fprintf(stderr, "    the next run: status %d: %s\n", st, out);
        bad = 1;
    }
    vm_free(vm);
    return bad;
}

static void attack(const char *name, const char *code, vm_status_t want, const char *want_msg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(ALARM_S);
        _exit(attack_child(code, want, want_msg));
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    bool ok = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
    if (!CHECK(ok))
        fprintf(stderr, "    attack '%s' %s\n", name,
                WIFSIGNALED(ws)
                    ? (WTERMSIG(ws) == SIGALRM ? "hung (killed by the alarm)" : "crashed")
                    : "failed");
}

#define TIMEOUT VM_TIMEOUT, "exceeded its budget"

static void test_handlers_and_wrappers(void)
{
    attack("xpcall handler loops", "return xpcall(error, function() while true do end end)",
           TIMEOUT);
    attack("xpcall handler loops after a budget error",
           "return xpcall(function() while true do end end, function() while true do end end)",
           TIMEOUT);
    attack("xpcall handler retries under pcall",
           "local function h() while true do pcall(function() while true do end end) end end\n"
           "while true do xpcall(function() while true do end end, h) end",
           TIMEOUT);
    attack("pcall in a loop", "while true do pcall(function() while true do end end) end", TIMEOUT);
    attack("nested pcall", "local function f() while true do pcall(f) end end f()", TIMEOUT);
    attack("coroutine.wrap loop", "coroutine.wrap(function() while true do end end)()", TIMEOUT);
    attack("coroutine.resume loop swallowing",
           "while true do coroutine.resume(coroutine.create(function() while true do end end))"
           " end",
           TIMEOUT);
    attack("coroutine nested three deep",
           "local function deep(n) if n == 0 then while true do end end\n"
           "  return coroutine.wrap(function() while true do pcall(deep, n - 1) end end)() end\n"
           "deep(3)",
           TIMEOUT);
    attack("coroutine made earlier, resumed later",
           "local co = coroutine.create(function() while true do coroutine.yield() end end)\n"
           "coroutine.resume(co)\n"
           "while true do coroutine.resume(co) end",
           TIMEOUT);
    attack("handler of a coroutine's xpcall",
           "local co = coroutine.wrap(function()\n"
           "  xpcall(error, function() while true do end end) end)\n"
           "while true do pcall(co) end",
           TIMEOUT);
    attack("sort comparator loops", "table.sort({3, 2, 1}, function() while true do end end)",
           TIMEOUT);
    attack("gsub callback loops", "('x'):gsub('x', function() while true do end end)", TIMEOUT);
    attack("__index from C loops",
           "table.concat(setmetatable({}, {__index = function() while true do end end}), '', 1,"
           " 2)",
           TIMEOUT);
    attack("__close loops while unwinding",
           "local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
           "while true do end",
           TIMEOUT);
}

static void test_c_functions(void)
{
    attack("string.rep of nothing", "return #string.rep('', math.maxinteger)", VM_OK, "0");
    attack("string.rep of nothing with an empty sep", "return #(''):rep(1 << 62, '')", VM_OK, "0");
    attack("string.rep past the cap", "return ('x'):rep(1e9)", VM_NOMEM, "out of memory");
    attack("string.rep with a separator past the cap", "return (''):rep(1 << 40, 'ab')", VM_NOMEM,
           "out of memory");
    attack("string.rep in a loop",
           "local t = {} while true do t[#t % 8 + 1] = ('x'):rep(1 << 20) end", TIMEOUT);
    attack("table.move of 2^50", "table.move({}, 1, 1 << 50, 2)", VM_TIMEOUT, "budget");
    attack("table.move backwards", "table.move({}, 1, 1 << 50, 0, {})", VM_TIMEOUT, "budget");
    attack("table.insert with a huge __len",
           "table.insert(setmetatable({}, {__len = function() return 1 << 50 end}), 1, 'x')",
           VM_TIMEOUT, "budget");
    attack("table.remove with a huge __len",
           "table.remove(setmetatable({}, {__len = function() return 1 << 50 end}), 1)", VM_TIMEOUT,
           "budget");
    attack("table.concat with a C __index",
           "return table.concat(setmetatable({}, {__index = rawlen}), '', 1, 1 << 50)", VM_TIMEOUT,
           "budget");
    attack("table.sort with a C __index",
           "table.sort(setmetatable({}, {__index = rawlen, __newindex = rawset,\n"
           "  __len = function() return 1 << 30 end}))",
           VM_TIMEOUT, "budget");
    attack("string.format width", "return string.format('%99999d', 1)", VM_ERROR, "invalid");
    attack("load of a chunk over 1 MiB", "return select(2, load(('x = 1 '):rep(200000)))", VM_OK,
           "load: a chunk is at most 1 MiB (this one is 1200000 bytes)");
    attack("load in a loop", "local c = ('x = 1 '):rep(170000) while true do load(c) end",
           TIMEOUT);
    attack("find backtracking", "return ('a'):rep(30):find(('a*'):rep(30) .. 'b')", TIMEOUT);
    attack("match backtracking", "return ('a'):rep(40):match(('a-'):rep(40) .. 'b')", TIMEOUT);
    attack("gmatch backtracking", "for x in ('a'):rep(30):gmatch(('a?'):rep(30) .. 'b') do end",
           TIMEOUT);
    attack("gsub backtracking", "return ('a'):rep(30):gsub(('a*'):rep(30) .. 'b', 'x')", TIMEOUT);
    attack("find backtracking under pcall",
           "while true do pcall(string.find, ('a'):rep(30), ('a*'):rep(30) .. 'b') end", TIMEOUT);
    attack("plain find on a long subject",
           "local s = ('a'):rep(1 << 22) while true do s:find('b', 1, true) end", TIMEOUT);
    attack("a deep pattern", "return ('a'):rep(300):match(('(a)'):rep(31) .. ('a?'):rep(300))",
           VM_ERROR, "pattern too complex");
}

/* Loads code as a script chunk onto a new thread of vm (anchored on the main stack). */
static lua_State *chunk_thread(vm_t *vm, const char *code)
{
    lua_State *L = vm_lua(vm);
    if (luaL_loadbufferx(L, code, strlen(code), "=attack", "t") != LUA_OK)
        return NULL;
    lua_newtable(L);
    lua_newtable(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.base");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);
    lua_State *co = lua_newthread(L);
    lua_insert(L, -2);
    lua_xmove(L, co, 1);
    return co;
}

/* A call's thread, kept by a script while the host holds it suspended (it waits on a backend),
 * is resumed by a later call: it must run under that call's budget, not free. */
static int stale_thread_child(void)
{
    char *err = NULL, *msg = NULL, *trace = NULL;
    vm_t *vm = vm_new(&limits, NULL, &err);
    lua_State *first = vm ? chunk_thread(vm, "coroutine.yield((coroutine.running())) "
                                             "while true do end")
                          : NULL;
    int nres = 0;
    vm_status_t st0 = first ? vm_resume(vm, first, 0, &nres, &msg, &trace) : VM_ERROR;
    if (st0 != VM_YIELD || nres != 1) {
        fprintf(stderr, "    the first run: status %d, %d results: %s\n", st0, nres,
                msg ? msg : "");
        return 1;
    }
    lua_State *later = chunk_thread(vm, "local co = ... return coroutine.resume(co)");
    lua_xmove(first, later, 1); /* the first thread, as the later chunk's argument */
    long long t0 = now_ms();
    vm_status_t st = vm_resume(vm, later, 1, &nres, &msg, &trace);
    int bad = st != VM_TIMEOUT || now_ms() - t0 > CPU_MS + SLACK_MS;
    if (bad)
        fprintf(stderr, "    status %d: %s\n", st, msg ? msg : "");
    free(msg);
    free(trace);
    vm_free(vm);
    return bad;
}

static void test_stale_thread(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(ALARM_S);
        _exit(stale_thread_child());
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    if (!CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0))
        fprintf(stderr, "    a kept call thread resumed later %s\n",
                WIFSIGNALED(ws) ? "hung (killed by the alarm)" : "was not stopped");
}

/* A small fuzzer of the sandbox's library: calls of its functions with extreme arguments,
 * generated from a fixed seed, each wrapped as a script would (in a loop, under pcall). Each
 * run must end within its budget plus slack, whatever it returns. One child runs them all,
 * saying which one it runs, so a hang names its snippet. FUZZ_N=5000 FUZZ_SEED=7 for longer or
 * other runs. */
static const char *const fuzz_fns[] = {
    "string.rep",     "string.format",  "string.byte",   "string.char",  "string.find",
    "string.match",   "string.gsub",    "string.gmatch", "string.pack",  "string.unpack",
    "string.sub",     "string.reverse", "string.upper",  "table.concat", "table.insert",
    "table.remove",   "table.move",     "table.sort",    "table.unpack", "utf8.char",
    "utf8.codepoint", "utf8.len",       "utf8.offset",   "math.fmod",    "math.tointeger",
    "select",         "tostring",       "tonumber",      "pcall",        "xpcall",
    "coroutine.wrap", "setmetatable",   "next",          "ipairs",       "rawlen",
    "os.date"};
static const char *const fuzz_args[] = {
    "0",
    "-1",
    "1",
    "2",
    "math.maxinteger",
    "math.mininteger",
    "1 << 31",
    "1 << 50",
    "1e308",
    "0/0",
    "''",
    "'x'",
    "('a'):rep(200)",
    "('a*'):rep(20) .. 'b'",
    "'%'",
    "'['",
    "'('",
    "'%b()'",
    "'%f[%w]'",
    "'%1'",
    "'(a*)*b'",
    "'i16'",
    "'s1'",
    "'%99d'",
    "'%c%c%c'",
    "{}",
    "{1, 2, 3}",
    "setmetatable({}, {__len = function() return 1 << 50 end})",
    "setmetatable({}, {__index = rawlen, __len = function() return 1 << 40 end})",
    "function() while true do end end",
    "function(...) return ... end",
    "nil",
    "true",
    "string.rep",
    "coroutine.running()"};

static unsigned fuzz_next(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static char fuzz_current[1024]; /* the snippet running, for the alarm to name */

static void fuzz_alarm(int sig)
{
    static const char what[] = "    the fuzz run hung on: ";
    (void)sig;
    ssize_t w = write(2, what, sizeof what - 1);
    w = write(2, fuzz_current, strlen(fuzz_current));
    w = write(2, "\n", 1);
    (void)w;
    _exit(2);
}

static int fuzz_child(int n)
{
    config_limits_t l = limits;
    l.cpu_ms = 50;
    char *err = NULL, out[512], code[1024];
    vm_t *vm = vm_new(&l, NULL, &err);
    if (!vm)
        return 1;
    unsigned seed = getenv("FUZZ_SEED") ? (unsigned)atoi(getenv("FUZZ_SEED")) : 15u;
    size_t nf = sizeof fuzz_fns / sizeof *fuzz_fns, na = sizeof fuzz_args / sizeof *fuzz_args;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int k = snprintf(code, sizeof code, "for _ = 1, 3 do pcall(%s",
                         fuzz_fns[fuzz_next(&seed) % nf]);
        for (unsigned a = fuzz_next(&seed) % 5; a > 0; a--)
            k += snprintf(code + k, sizeof code - (size_t)k, ", %s",
                          fuzz_args[fuzz_next(&seed) % na]);
        snprintf(code + k, sizeof code - (size_t)k, ") end return 'done'");
        memcpy(fuzz_current, code, sizeof code); /* code fits: both 1024 */
        long long t0 = now_ms();
        run(vm, code, out, sizeof out);
        if (now_ms() - t0 > l.cpu_ms + SLACK_MS) {
            fprintf(stderr, "    took %lld ms: %s\n", now_ms() - t0, code);
            bad = 1;
        }
    }
    vm_free(vm);
    return bad;
}

static void test_fuzz(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGALRM, fuzz_alarm);
        alarm(getenv("FUZZ_N") ? 600 : ALARM_S * 3);
        _exit(fuzz_child(getenv("FUZZ_N") ? atoi(getenv("FUZZ_N")) : 400));
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    if (!CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0))
        fprintf(stderr, "    the fuzz run %s\n", WIFSIGNALED(ws) ? "crashed" : "failed (above)");
}

/* The pattern functions give what Lua 5.4's give (expected values written from its manual
 * and checked against lua5.4). */
static void test_pattern_semantics(void)
{
    static const struct {
        const char *code, *want;
    } cases[] = {
        {"return ('hello world'):find('o w')", "5"},
        {"return select(2, ('hello world'):find('o w'))", "7"},
        {"return ('hello'):find('l+')", "3"},
        {"return ('a.b'):find('.', 1, true)", "2"},
        {"return ('abc'):find('b', -1)", "nil"},
        {"return ('abc'):find('', 10)", "nil"},
        {"return ('abc'):find('', 4)", "4"},
        {"return ('  trim me  '):match('^%s*(.-)%s*$')", "trim me"},
        {"return ('key=val'):match('(%w+)=(%w+)')", "key"},
        {"return select(2, ('key=val'):match('(%w+)=(%w+)'))", "val"},
        {"return ('abc'):match('()b()')", "2"},
        {"return ('THE (quick) fox'):find('%((%a+)%)')", "5"},
        {"return ('f(a(b)c)d'):match('%b()')", "(a(b)c)"},
        {"return ('THE (quick) fox'):gsub('%f[%a]%a+', 'W')", "W (W) W"},
        {"return ('hello world'):gsub('o', '0')", "hell0 w0rld"},
        {"return select(2, ('hello world'):gsub('o', '0', 1))", "1"},
        {"return ('hello world'):gsub('(%w+)', '<%1>')", "<hello> <world>"},
        {"return ('abc'):gsub('%w', '%0%0')", "aabbcc"},
        {"return ('abc'):gsub('', '-')", "-a-b-c-"},
        {"return ('hello'):gsub('l', {l = 'L'})", "heLLo"},
        {"return ('hello'):gsub('(h)(e)', function(a, b) return b .. a end)", "ehllo"},
        {"return ('hello'):gsub('x*', '-')", "-h-e-l-l-o-"},
        {"return ('abc'):gsub('^a', 'X')", "Xbc"},
        {"return ('aaa'):gsub('a', false and '' or {})", "aaa"},
        {"local t = {} for k, v in ('a=1, b=2'):gmatch('(%w+)=(%w+)') do t[#t + 1] = k .. v "
         "end return table.concat(t, ',')",
         "a1,b2"},
        {"local n = 0 for w in ('one two  three'):gmatch('%a+') do n = n + 1 end return n", "3"},
        {"local t = {} for w in ('abc'):gmatch('', 2) do t[#t + 1] = '.' end return #t", "3"},
        {"return ('x]y'):match('[]x]+')", "x]"},
        {"return ('a-b'):match('[a%-]+')", "a-"},
        {"return ('A1b2'):gsub('[^%d]', '')", "12"},
        {"return ('abab'):match('(ab)%1')", "ab"},
        {"return ('2024-01-02'):match('^(%d%d%d%d)%-(%d%d)%-(%d%d)$')", "2024"},
        {"return ('x'):match('x$')", "x"},
        {"return ('x$'):match('x$y') == nil", "true"},
        {"return pcall(string.find, 'a', '%')", "false"},
        {"return select(2, pcall(string.find, 'a', '[a'))", "malformed pattern (missing ']')"},
        {"return select(2, pcall(string.gsub, 'a', 'a', '%2'))", "invalid capture index %2"},
        {"return select(2, pcall(string.match, 'a', '(a'))", "unfinished capture"},
        {"return select(2, pcall(string.match, 'a', 'a)'))", "invalid pattern capture"},
        {"return ('hello'):rep(3, ', ')", "hello, hello, hello"},
        {"return ('ab'):rep(0)", ""},
        {"local t = table.move({1, 2, 3}, 1, 3, 2) return table.concat(t, ',')", "1,1,2,3"},
        {"local t = table.move({1, 2, 3}, 2, 3, 1) return table.concat(t, ',')", "2,3,3"},
        {"local t = {5, 2, 8, 1, 9, 3} table.sort(t) return table.concat(t, ',')", "1,2,3,5,8,9"},
        {"local t = {5, 2, 8, 1} table.sort(t, function(a, b) return a > b end) return "
         "table.concat(t, ',')",
         "8,5,2,1"},
        {"local t = {1, 2} table.insert(t, 1, 0) table.insert(t, 9) return table.concat(t, ',')",
         "0,1,2,9"},
        {"local t = {1, 2, 3} local x = table.remove(t, 1) return x .. ':' .. table.concat(t, "
         "',')",
         "1:2,3"},
        {"return table.concat({1, 'a', 2.5}, '-')", "1-a-2.5"},
        {"return select(2, pcall(table.concat, {1, {}, 3}))",
         "invalid value (table) at index 2 in table for 'concat'"},
        {"return select('#', xpcall(function() return 1, 2 end, print))", "3"},
        {"return select(2, xpcall(error, function(m) return 'handled ' .. m end, 'x'))",
         "handled x"},
    };
    char *err = NULL, out[512];
    vm_t *vm = vm_new(&limits, NULL, &err);
    if (!CHECK(vm != NULL))
        return;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        vm_status_t st = run(vm, cases[i].code, out, sizeof out);
        if (!CHECK_INT(st, VM_OK) || !CHECK_STR(out, cases[i].want))
            fprintf(stderr, "    for: %s\n", cases[i].code);
    }
    vm_free(vm);
}

int main(void)
{
    test_pattern_semantics();
    test_handlers_and_wrappers();
    test_c_functions();
    test_stale_thread();
    test_fuzz();
    return check_report();
}
