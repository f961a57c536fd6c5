/* vm — one sandboxed lua_State: allocator cap, per-call budget, pure-Lua require from a lib
 * directory, and a run function that returns what happened as an enum.
 *
 * A vm belongs to one thread. Each script file gets its own global table (writes stay in
 * it); reads fall through to a shared, read-only base of safe libraries. */
#ifndef LUAMCP_VM_H
#define LUAMCP_VM_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

#include "luamcp/config.h"

typedef struct vm vm_t;

typedef enum vm_status {
    VM_OK,      /* finished; results on the thread's stack */
    VM_ERROR,   /* raised an error; message in *msg */
    VM_TIMEOUT, /* instruction or time budget exhausted */
    VM_NOMEM,   /* the state's memory cap was hit */
    VM_YIELD,   /* yielded to the host */
} vm_status_t;

typedef enum vm_phase {
    VM_PHASE_IDLE,
    VM_PHASE_LOAD,        /* a tool script is loading: mcp.tool allowed */
    VM_PHASE_LOAD_POLICY, /* a policy file is loading: mcp.policy allowed */
    VM_PHASE_TOOL,
    VM_PHASE_POLICY,      /* a policy check runs: no backends */
} vm_phase_t;

/* lib_dir: where require looks for NAME.lua (may be NULL). Returns NULL with *err. */
vm_t *vm_new(const config_limits_t *limits, const char *lib_dir, char **err);
void vm_free(vm_t *vm);
lua_State *vm_lua(vm_t *vm);

vm_phase_t vm_phase(const vm_t *vm);
void vm_set_phase(vm_t *vm, vm_phase_t phase);
/* The file being loaded (during VM_PHASE_LOAD), borrowed. */
const char *vm_loading_file(const vm_t *vm);

/* Runs one script file with its own global table, in phase (VM_PHASE_LOAD or
 * VM_PHASE_LOAD_POLICY). Returns 0, or -1 with *err = "file:line: message" (caller frees). */
int vm_load_file(vm_t *vm, const char *path, vm_phase_t phase, char **err);

/* Resumes co (a thread of this vm with function and nargs pushed, or a yielded thread with
 * nargs values pushed) under a fresh budget of the configured limits. On VM_OK *nres results
 * are on co's stack. On VM_ERROR, VM_TIMEOUT and VM_NOMEM *msg holds one formatted message
 * (caller frees) and, for VM_ERROR, *trace the traceback when one exists (caller frees). */
vm_status_t vm_resume(vm_t *vm, lua_State *co, int nargs, int *nres, char **msg, char **trace);

/* What a call has used of its budget, carried across resumptions of its coroutine. */
typedef struct vm_budget {
    long long instructions;
    long long cpu_ns;
} vm_budget_t;

/* vm_resume, charging the run to b (and refusing when b is already spent). */
vm_status_t vm_resume_budget(vm_t *vm, lua_State *co, int nargs, int *nres, char **msg,
                             char **trace, vm_budget_t *b);

/* lua_pcall(co, nargs, 0) under the budget and the cap: for host code that reads what a
 * script returned (its metamethods run, and may fail). *msg says why when not VM_OK. */
vm_status_t vm_pcall(vm_t *vm, lua_State *co, int nargs, char **msg, vm_budget_t *b);

/* For C functions that loop without running Lua code (the sandbox's string and table
 * functions): charges steps to the running call's budget. false once it is spent: the caller
 * then raises, and every later instruction of the call traps too. */
bool vm_charge(lua_State *L, long long steps);
/* true once the running call's budget is spent (no script code may run any more). */
bool vm_budget_spent(lua_State *L);

/* The limits the vm was made with (borrowed). */
const config_limits_t *vm_limits(const vm_t *vm);

/* Memory in use by the state, in bytes. */
size_t vm_memory(const vm_t *vm);
/* The vm of a lua_State (any thread of it). */
vm_t *vm_of(lua_State *L);

/* Per-call data that host functions (ctx.*) reach; the serial guards stale closures. */
void vm_set_call(vm_t *vm, void *call, unsigned long long serial);
void *vm_call(vm_t *vm, unsigned long long serial);
/* The call running now, whatever its serial (NULL between calls). */
void *vm_current_call(vm_t *vm);

/* Brackets the host's own pushes before a run (thread, arguments, ctx): they are exempt from
 * the memory cap, so building a call never raises outside a protected call. */
void vm_host_begin(vm_t *vm);
void vm_host_end(vm_t *vm);

/* A __newindex that refuses: "attempt to modify a read-only table". */
int vm_readonly_newindex(lua_State *L);

/* stack: table -> a proxy that reads through to it and refuses writes (pops the table); its
 * iteration hands out the table's keys and values, never the table, and its metatable is
 * protected. Shallow: table values stay as they are (the shared libraries are frozen deep). */
void vm_make_readonly(lua_State *L);

/* Pushes a fresh global table for the script file `file` (reads fall through to the base);
 * its protected metatable records the file and the file's own module cache (see require). */
void vm_push_script_env(lua_State *L, const char *file);

/* Pushes the file of the script on whose behalf the running code acts (the innermost script
 * function on L's stack: a tool or policy file, or a module required by one); returns false,
 * pushing nothing, when no script is running (the host itself, or mcp.so in specs). */
bool vm_push_owner_file(lua_State *L);

/* lua_newthread for the host: a thread a call, a policy check or a load runs on, pushed on L.
 * Such threads are marked, and the sandbox's coroutine.resume and coroutine.close refuse them:
 * coroutine.running() hands a script its call's thread, which another call must never resume
 * or close (it would run or end the first call's handler while the host waits on it). */
lua_State *vm_new_thread(lua_State *L);

/* Whether the value at idx is a thread made by vm_new_thread. */
bool vm_is_host_thread(lua_State *L, int idx);

#endif
