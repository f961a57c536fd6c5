#include "luamcp/task.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/clock.h"

#define BUCKETS 1024
#define MESSAGE_MAX 512

typedef struct task {
    char id[TASK_ID_LEN + 1];
    unsigned char owner[TASK_OWNER_LEN];
    task_status_t status;
    int worker;              /* the worker running its round; -1 while none does */
    long long created_ms, updated_ms; /* wall clock, for the client */
    long long expires_mono;  /* monotonic: a clock step neither shortens nor stretches a ttl */
    char *message;           /* statusMessage */
    char *tool;
    json_t *args;
    json_t *responses;       /* every input response delivered so far */
    json_t *requests;        /* input_required: the outstanding ones */
    json_t *result;          /* completed */
    json_t *error;           /* failed */
    char *state;
    struct task *next;
} task_t;

struct task_table {
    pthread_mutex_t mu;
    const config_tasks_t *cfg;
    void (*kick)(int worker, void *arg);
    void *kick_arg;
    void (*changed)(const char *id, const unsigned char *owner, json_t *detail, void *arg);
    void *changed_arg;
    const atomic_uint *listeners; /* streams listening for tasks: no work without one */
    pthread_mutex_t notify_mu;    /* changes are told one at a time, in order */
    task_t *buckets[BUCKETS];
    unsigned n;
};

/* Overwrites the strings of v (an argument may be a caller's credential) before it is freed. */
static void wipe(json_t *v)
{
    if (json_is_string(v)) {
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    } else if (json_is_object(v)) {
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x)
            wipe(x);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            wipe(x);
    }
}

static unsigned bucket_of(const char *id)
{
    unsigned h = 2166136261u; /* the id is random already: any mixing will do */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % BUCKETS;
}

const char *task_status_name(task_status_t s)
{
    static const char *const names[] = {"working", "input_required", "completed", "failed",
                                        "cancelled"};
    return names[s];
}

static bool terminal(task_status_t s)
{
    return s == TASK_COMPLETED || s == TASK_FAILED || s == TASK_CANCELLED;
}

void task_round_clear(task_round_t *r)
{
    free(r->tool);
    json_decref(r->args);
    json_decref(r->responses);
    free(r->state);
    memset(r, 0, sizeof *r);
}

task_table_t *task_table_new(const config_tasks_t *cfg, void (*kick)(int worker, void *arg),
                             void *arg)
{
    task_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->notify_mu, NULL);
    t->cfg = cfg;
    t->kick = kick;
    t->kick_arg = arg;
    return t;
}

void task_table_on_change(task_table_t *t,
                          void (*changed)(const char *id, const unsigned char *owner,
                                          json_t *detail, void *arg),
                          void *arg, const atomic_uint *listeners)
{
    t->changed = changed;
    t->changed_arg = arg;
    t->listeners = listeners;
}

static void task_free(task_t *k)
{
    free(k->message);
    free(k->tool);
    wipe(k->args);
    json_decref(k->args);
    wipe(k->responses);
    json_decref(k->responses);
    json_decref(k->requests);
    json_decref(k->result);
    json_decref(k->error);
    free(k->state);
    free(k);
}

void task_table_free(task_table_t *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < BUCKETS; i++)
        while (t->buckets[i]) {
            task_t *k = t->buckets[i];
            t->buckets[i] = k->next;
            task_free(k);
        }
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->notify_mu);
    free(t);
}

/* Under mu: the task of that id, whoever owns it; one past its ttl is gone already, whether
 * or not the sweep has dropped it yet. */
static task_t *find(task_table_t *t, const char *id)
{
    if (!id || strlen(id) != TASK_ID_LEN)
        return NULL;
    for (task_t *k = t->buckets[bucket_of(id)]; k; k = k->next)
        if (strcmp(k->id, id) == 0)
            return clock_mono_ms() < k->expires_mono ? k : NULL;
    return NULL;
}

/* Under mu: the task of that id if owner's (constant-time on the owner: no timing tells
 * whether an id exists). */
static task_t *find_owned(task_table_t *t, const char *id, const unsigned char *owner)
{
    task_t *k = find(t, id);
    if (!k)
        return NULL;
    unsigned char diff = 0;
    for (size_t i = 0; i < TASK_OWNER_LEN; i++)
        diff |= k->owner[i] ^ owner[i];
    return diff ? NULL : k;
}

bool task_owned(task_table_t *t, const char *id, const unsigned char owner[TASK_OWNER_LEN])
{
    pthread_mutex_lock(&t->mu);
    bool mine = find_owned(t, id, owner) != NULL;
    pthread_mutex_unlock(&t->mu);
    return mine;
}

static void iso8601(long long ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* Under mu: the fields every task shape has. */
static json_t *envelope(const task_table_t *t, const task_t *k)
{
    char created[32], updated[32];
    iso8601(k->created_ms, created);
    iso8601(k->updated_ms, updated);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "taskId", k->id, "status",
                          task_status_name(k->status), "createdAt", created, "lastUpdatedAt",
                          updated, "ttlMs", (json_int_t)t->cfg->ttl_ms, "pollIntervalMs",
                          (json_int_t)t->cfg->poll_ms);
    if (o && k->message)
        json_object_set_new(o, "statusMessage", json_string(k->message));
    return o;
}

static void random_id(char out[TASK_ID_LEN + 1])
{
    unsigned char raw[TASK_ID_LEN / 2];
    if (RAND_bytes(raw, sizeof raw) != 1)
        abort(); /* no randomness: an id that can be guessed is worse than no server */
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* Under mu: unlinks the tasks past their ttl; the caller frees the list it returns. */
static task_t *sweep_locked(task_table_t *t, long long now)
{
    task_t *gone = NULL;
    for (unsigned i = 0; i < BUCKETS; i++)
        for (task_t **pp = &t->buckets[i]; *pp;) {
            task_t *k = *pp;
            if (now < k->expires_mono) {
                pp = &k->next;
                continue;
            }
            *pp = k->next; /* a round still running finds it gone and stops */
            k->next = gone;
            gone = k;
            t->n--;
        }
    return gone;
}

static void free_list(task_t *gone)
{
    while (gone) {
        task_t *k = gone;
        gone = k->next;
        task_free(k);
    }
}

/* Under mu: whether owner may have one more task; near a limit, expired tasks are unlinked
 * first (into *gone, for the caller to free outside the lock). */
static task_create_status_t room_locked(task_table_t *t, const unsigned char *owner,
                                        task_t **gone)
{
    unsigned lowest = t->cfg->max < t->cfg->per_caller ? t->cfg->max : t->cfg->per_caller;
    if (t->n < lowest)
        return TASK_OK; /* the common case: no scan */
    *gone = sweep_locked(t, clock_mono_ms());
    unsigned mine = 0;
    for (unsigned i = 0; i < BUCKETS && t->n >= t->cfg->per_caller; i++)
        for (task_t *o = t->buckets[i]; o; o = o->next)
            mine += memcmp(o->owner, owner, TASK_OWNER_LEN) == 0;
    return t->n >= t->cfg->max ? TASK_FULL
           : mine >= t->cfg->per_caller ? TASK_CALLER_FULL : TASK_OK;
}

task_create_status_t task_room(task_table_t *t, const unsigned char owner[TASK_OWNER_LEN])
{
    task_t *gone = NULL;
    pthread_mutex_lock(&t->mu);
    task_create_status_t st = room_locked(t, owner, &gone);
    pthread_mutex_unlock(&t->mu);
    free_list(gone);
    return st;
}

task_create_status_t task_create(task_table_t *t, const unsigned char owner[TASK_OWNER_LEN],
                                 const char *tool, json_t *args, json_t *responses,
                                 const char *state, int worker, char id[TASK_ID_LEN + 1],
                                 json_t **created)
{
    *created = NULL;
    task_t *k = calloc(1, sizeof *k);
    if (!k)
        return TASK_FULL;
    long long now = clock_wall_ms();
    memcpy(k->owner, owner, TASK_OWNER_LEN);
    k->status = TASK_WORKING;
    k->worker = worker;
    k->created_ms = k->updated_ms = now;
    k->expires_mono = clock_mono_ms() + t->cfg->ttl_ms;
    k->tool = strdup(tool);
    k->args = args ? json_deep_copy(args) : json_object();
    k->responses = json_is_object(responses) ? json_deep_copy(responses) : json_object();
    k->state = state ? strdup(state) : NULL;
    if (!k->tool || !k->args || !k->responses || (state && !k->state)) {
        task_free(k);
        return TASK_FULL;
    }
    pthread_mutex_lock(&t->mu);
    task_t *gone = NULL;
    task_create_status_t st = room_locked(t, owner, &gone);
    if (st == TASK_OK) {
        do
            random_id(k->id);
        while (find(t, k->id));
        unsigned b = bucket_of(k->id);
        k->next = t->buckets[b];
        t->buckets[b] = k;
        t->n++;
        memcpy(id, k->id, TASK_ID_LEN + 1);
        *created = envelope(t, k);
        if (*created)
            json_object_set_new(*created, "resultType", json_string("task"));
    }
    pthread_mutex_unlock(&t->mu);
    free_list(gone);
    if (st != TASK_OK)
        task_free(k);
    return st;
}

/* Under mu: the DetailedTask of k (new). */
static json_t *detail(const task_table_t *t, const task_t *k)
{
    json_t *o = envelope(t, k);
    if (o && k->status == TASK_COMPLETED && k->result)
        json_object_set_new(o, "result", json_deep_copy(k->result));
    else if (o && k->status == TASK_FAILED && k->error)
        json_object_set_new(o, "error", json_deep_copy(k->error));
    else if (o && k->status == TASK_INPUT_REQUIRED)
        json_object_set_new(o, "inputRequests",
                            k->requests ? json_deep_copy(k->requests) : json_object());
    return o;
}

/* A status change of k, under mu: what to tell the listeners once the lock is released. */
typedef struct change {
    char id[TASK_ID_LEN + 1];
    unsigned char owner[TASK_OWNER_LEN];
    json_t *detail;
} change_t;

static void changed_locked(const task_table_t *t, const task_t *k, change_t *c)
{
    if (!t->changed || !t->listeners || atomic_load(t->listeners) == 0)
        return; /* nobody listens: no copy of a result is made */
    memcpy(c->id, k->id, sizeof c->id);
    memcpy(c->owner, k->owner, TASK_OWNER_LEN);
    c->detail = detail(t, k);
}

/* Releases mu, then tells the listeners of c. Changes are told in the order they were made:
 * notify_mu is taken before mu is released (lock order: mu, notify_mu, then whatever the hook
 * takes; nothing takes mu while holding notify_mu). */
static void release(task_table_t *t, change_t *c)
{
    if (!c->detail) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    pthread_mutex_lock(&t->notify_mu);
    pthread_mutex_unlock(&t->mu);
    t->changed(c->id, c->owner, c->detail, t->changed_arg);
    pthread_mutex_unlock(&t->notify_mu);
    json_decref(c->detail);
}

json_t *task_get(task_table_t *t, const char *id, const unsigned char owner[TASK_OWNER_LEN])
{
    pthread_mutex_lock(&t->mu);
    task_t *k = find_owned(t, id, owner);
    json_t *o = k ? detail(t, k) : NULL;
    pthread_mutex_unlock(&t->mu);
    return o;
}

int task_update(task_table_t *t, const char *id, const unsigned char owner[TASK_OWNER_LEN],
                json_t *responses, int worker, task_round_t *round)
{
    memset(round, 0, sizeof *round);
    int rc = 0;
    change_t c = {0};
    pthread_mutex_lock(&t->mu);
    task_t *k = find_owned(t, id, owner);
    if (!k) {
        rc = -1;
    } else if (k->status == TASK_INPUT_REQUIRED && json_is_object(k->requests)) {
        const char *key;
        json_t *v;
        bool changed = false;
        json_object_foreach(responses, key, v) {
            if (!json_object_get(k->requests, key))
                continue; /* not asked, or answered already */
            json_object_set_new(k->responses, key, json_deep_copy(v));
            json_object_del(k->requests, key);
            changed = true;
        }
        if (changed)
            k->updated_ms = clock_wall_ms();
        if (json_object_size(k->requests) == 0) {
            round->tool = strdup(k->tool);
            round->args = json_deep_copy(k->args);
            round->responses = json_deep_copy(k->responses);
            round->state = k->state ? strdup(k->state) : NULL;
            round->expires_ms = k->created_ms + t->cfg->ttl_ms;
            json_decref(k->requests);
            k->requests = NULL;
            if (!round->tool || !round->args || !round->responses ||
                (k->state && !round->state)) {
                task_round_clear(round);
                k->status = TASK_FAILED;
                k->error = json_pack("{s:i, s:s}", "code", -32603, "message",
                                     "Internal error: out of memory");
            } else {
                k->status = TASK_WORKING;
                k->worker = worker;
                rc = 1;
            }
            changed_locked(t, k, &c);
        }
    }
    release(t, &c);
    return rc;
}

int task_cancel(task_table_t *t, const char *id, const unsigned char owner[TASK_OWNER_LEN])
{
    int kick = -1;
    change_t c = {0};
    pthread_mutex_lock(&t->mu);
    task_t *k = find_owned(t, id, owner);
    if (k && !terminal(k->status)) {
        if (k->status == TASK_WORKING)
            kick = k->worker;
        k->status = TASK_CANCELLED;
        k->worker = -1;
        k->updated_ms = clock_wall_ms();
        json_decref(k->requests);
        k->requests = NULL;
        changed_locked(t, k, &c);
    }
    release(t, &c);
    if (kick >= 0 && t->kick)
        t->kick(kick, t->kick_arg);
    return k ? 0 : -1;
}

bool task_stopped(task_table_t *t, const char *id)
{
    pthread_mutex_lock(&t->mu);
    task_t *k = find(t, id);
    bool stopped = !k || k->status != TASK_WORKING; /* cancelled, failed, or gone */
    pthread_mutex_unlock(&t->mu);
    return stopped;
}

/* A failed task's error: the JSON-RPC error shape. */
static json_t *rpc_error_of(int code, const char *message)
{
    return json_pack("{s:i, s:s}", "code", code, "message", message);
}

void task_settle(task_table_t *t, const char *id, json_t *resp, json_t *requests,
                 const char *state)
{
    json_t *result = json_object_get(resp, "result"), *error = json_object_get(resp, "error");
    const char *rt = json_string_value(json_object_get(result, "resultType"));
    bool parks = rt && strcmp(rt, "input_required") == 0;
    json_t *kept = NULL;
    char *state_copy = NULL;
    if (error) {
        kept = json_deep_copy(error);
    } else if (parks) {
        kept = json_deep_copy(json_is_object(requests) ? requests : json_object_get(result,
                                                                                   "inputRequests"));
        state_copy = state ? strdup(state) : NULL;
    } else if (result) {
        kept = json_deep_copy(result);
        json_object_del(kept, "resultType");
    }
    size_t size = kept && !error ? json_dumpb(kept, NULL, 0, JSON_COMPACT) : 0;
    if (size > t->cfg->max_result_bytes) { /* what a task keeps is bounded: it fails */
        json_decref(kept);
        char msg[160];
        snprintf(msg, sizeof msg, "Internal error: the %s (%zu bytes) is larger than "
                 "tasks.max_result_bytes (%zu)", parks ? "input requests" : "result", size,
                 t->cfg->max_result_bytes);
        kept = rpc_error_of(-32603, msg);
        error = kept;
        parks = false;
    }
    change_t c = {0};
    pthread_mutex_lock(&t->mu);
    task_t *k = find(t, id);
    if (k && k->status == TASK_WORKING) { /* terminal states never change */
        k->worker = -1;
        k->updated_ms = clock_wall_ms();
        if (error || !kept) {
            k->status = TASK_FAILED;
            k->error = kept ? kept : rpc_error_of(-32603, "Internal error: out of memory");
        } else if (parks) {
            k->status = TASK_INPUT_REQUIRED;
            k->requests = kept;
            free(k->state);
            k->state = state_copy;
            state_copy = NULL;
        } else {
            k->status = TASK_COMPLETED;
            k->result = kept;
        }
        free(k->message);
        k->message = NULL;
        kept = NULL;
        changed_locked(t, k, &c);
    }
    release(t, &c);
    json_decref(kept);
    free(state_copy);
}

void task_status_message(task_table_t *t, const char *id, const char *message)
{
    char *copy = strndup(message, MESSAGE_MAX);
    if (!copy)
        return;
    pthread_mutex_lock(&t->mu);
    task_t *k = find(t, id);
    if (k && k->status == TASK_WORKING) {
        free(k->message);
        k->message = copy;
        copy = NULL;
        k->updated_ms = clock_wall_ms();
    }
    pthread_mutex_unlock(&t->mu);
    free(copy);
}

void task_table_sweep(task_table_t *t, long long now)
{
    pthread_mutex_lock(&t->mu);
    task_t *gone = sweep_locked(t, now);
    pthread_mutex_unlock(&t->mu);
    free_list(gone);
}

void task_table_counts(task_table_t *t, unsigned *held, unsigned *live)
{
    pthread_mutex_lock(&t->mu);
    *held = t->n;
    *live = 0;
    for (unsigned i = 0; i < BUCKETS; i++)
        for (task_t *k = t->buckets[i]; k; k = k->next)
            *live += !terminal(k->status);
    pthread_mutex_unlock(&t->mu);
}
