/* task — the table of tasks (the io.modelcontextprotocol/tasks extension of 2026-07-28): a
 * tools/call that goes on after its request was answered with a task handle, polled with
 * tasks/get, fed input with tasks/update, stopped with tasks/cancel.
 *
 * The table is shared by every worker (one mutex): a task runs on the worker that started its
 * current round, and any worker answers for it. A task belongs to the caller that created it:
 * to anyone else its id is unknown, exactly like an id that never existed. Ids are 128 random
 * bits. What the table holds is its own (deep copies), so no JSON value is shared between
 * threads. */
#ifndef LUAMCP_TASK_H
#define LUAMCP_TASK_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "luamcp/auth.h"
#include "luamcp/config.h"

#define TASK_ID_LEN 32 /* hex */
#define TASK_OWNER_LEN AUTH_OWNER_LEN /* who created it (auth_caller_owner) */
#define TASK_EXTENSION "io.modelcontextprotocol/tasks"

typedef struct task_table task_table_t;

typedef enum task_status {
    TASK_WORKING,
    TASK_INPUT_REQUIRED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_CANCELLED,
} task_status_t;

/* What a round needs to run: the task's tool, arguments and what the client answered so far. */
typedef struct task_round {
    char *tool;              /* owned */
    json_t *args;            /* owned */
    json_t *responses;       /* owned: every inputResponses entry delivered so far */
    char *state;             /* owned: ctx.set_state's value of the last round, or NULL */
    long long expires_ms;    /* wall clock: the task's end (no round runs past it) */
} task_round_t;

void task_round_clear(task_round_t *r);

/* kick(worker, arg): a task running on that worker was cancelled (any thread). */
task_table_t *task_table_new(const config_tasks_t *cfg, void (*kick)(int worker, void *arg),
                             void *arg);
/* changed(id, owner, detail, arg): a task's status changed (any thread, outside the table's
 * lock, one change at a time, in the order they were made); detail is its DetailedTask
 * (borrowed), as tasks/get would answer it. Only while *listeners is not 0. */
void task_table_on_change(task_table_t *t,
                          void (*changed)(const char *id, const unsigned char *owner,
                                          json_t *detail, void *arg),
                          void *arg, const atomic_uint *listeners);
void task_table_free(task_table_t *t);

typedef enum task_create_status { TASK_OK, TASK_FULL, TASK_CALLER_FULL } task_create_status_t;

/* A new task (status working) of owner's call of tool with args, responses and state (all
 * borrowed, copied), running on worker. *created: its CreateTaskResult (new). */
task_create_status_t task_create(task_table_t *t, const unsigned char owner[TASK_OWNER_LEN],
                                 const char *tool, json_t *args, json_t *responses,
                                 const char *state, int worker, char id[TASK_ID_LEN + 1],
                                 json_t **created);

/* Whether owner has a task of that id (nothing copied). */
bool task_owned(task_table_t *t, const char *id, const unsigned char owner[TASK_OWNER_LEN]);
/* tasks/get: the DetailedTask (new), or NULL when owner has no task of that id. */
json_t *task_get(task_table_t *t, const char *id, const unsigned char owner[TASK_OWNER_LEN]);

/* tasks/update: the responses to outstanding input requests are kept (other keys ignored).
 * -1 when owner has no such task; 1 when that answered the last outstanding request: the task
 * is working again and *round is what its next round needs (to be started by the caller on
 * `worker`); 0 otherwise. */
int task_update(task_table_t *t, const char *id, const unsigned char owner[TASK_OWNER_LEN],
                json_t *responses, int worker, task_round_t *round);

/* tasks/cancel: -1 when owner has no such task; else 0 (a terminal task is left as it is). */
int task_cancel(task_table_t *t, const char *id, const unsigned char owner[TASK_OWNER_LEN]);

/* From the worker running a round. Whether the task is no longer working (cancelled, failed,
 * gone): its round should stop. */
bool task_stopped(task_table_t *t, const char *id);
/* The round ended with resp, a JSON-RPC response (borrowed): a result completes the task, an
 * error fails it; an input_required result (requests, state: borrowed) parks it. */
void task_settle(task_table_t *t, const char *id, json_t *resp, json_t *requests,
                 const char *state);
/* A progress message of the running round: the task's statusMessage. */
void task_status_message(task_table_t *t, const char *id, const char *message);

/* Whether owner could create a task now (TASK_OK), or which limit stands in the way; a hint:
 * another thread may take the room first. */
task_create_status_t task_room(task_table_t *t, const unsigned char owner[TASK_OWNER_LEN]);
/* Frees tasks past their ttl (mono_ms: the monotonic clock, as now_ms). */
void task_table_sweep(task_table_t *t, long long mono_ms);
/* Tasks held, and how many of them are still working or waiting for input. */
void task_table_counts(task_table_t *t, unsigned *held, unsigned *live);

const char *task_status_name(task_status_t s);

#endif
