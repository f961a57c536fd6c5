/* The task table (task.c): ids are fresh and unguessable in form, a task is only its owner's,
 * terminal states never change, input rounds open only when every request is answered, the
 * limits and the ttl hold, a cancel kicks the worker running the task, and many threads at
 * once leave the table consistent. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/task.h"

static const unsigned char ALICE[TASK_OWNER_LEN] = {1};
static const unsigned char BOB[TASK_OWNER_LEN] = {2};
static int kicked = -1;

static void kick(int worker, void *arg)
{
    (void)arg;
    kicked = worker;
}

static const char *status_of(task_table_t *t, const char *id, const unsigned char *owner)
{
    static char buf[32];
    json_t *g = task_get(t, id, owner);
    snprintf(buf, sizeof buf, "%s", g ? json_string_value(json_object_get(g, "status")) : "none");
    json_decref(g);
    return buf;
}

static void create(task_table_t *t, const unsigned char *owner, char id[TASK_ID_LEN + 1])
{
    json_t *created = NULL;
    CHECK_INT(task_create(t, owner, "tool", NULL, NULL, NULL, 0, id, &created), TASK_OK);
    json_decref(created);
}

static json_t *result_of(const char *text)
{
    return json_pack("{s:s, s:i, s:{s:[{s:s, s:s}]}}", "jsonrpc", "2.0", "id", 1, "result",
                     "content", "type", "text", "text", text);
}

typedef struct {
    task_table_t *t;
    unsigned char owner[TASK_OWNER_LEN];
    int made;
} stress_t;

static void *stress(void *arg)
{
    stress_t *s = arg;
    for (int i = 0; i < 500; i++) {
        char id[TASK_ID_LEN + 1];
        json_t *created = NULL;
        if (task_create(s->t, s->owner, "tool", NULL, NULL, NULL, 0, id, &created) != TASK_OK)
            continue;
        s->made++;
        json_decref(created);
        json_t *resp = result_of("x");
        task_settle(s->t, id, resp, NULL, NULL);
        json_decref(resp);
        json_decref(task_get(s->t, id, s->owner));
        task_cancel(s->t, id, s->owner);
    }
    return NULL;
}

int main(void)
{
    config_tasks_t cfg = {.ttl_ms = 60000, .timeout_ms = 1000, .poll_ms = 500, .max = 5,
                          .per_caller = 3, .max_result_bytes = 128};
    task_table_t *t = task_table_new(&cfg, kick, NULL);
    if (!CHECK(t))
        return check_report();

    /* creation: a handle with what a client needs, a fresh 32-hex id */
    char a[TASK_ID_LEN + 1], b[TASK_ID_LEN + 1];
    json_t *args = json_pack("{s:i}", "n", 1), *created = NULL;
    CHECK_INT(task_create(t, ALICE, "tool", args, NULL, "st", 2, a, &created), TASK_OK);
    json_decref(args);
    CHECK_STR(json_string_value(json_object_get(created, "resultType")), "task");
    CHECK_STR(json_string_value(json_object_get(created, "taskId")), a);
    CHECK_STR(json_string_value(json_object_get(created, "status")), "working");
    CHECK_INT(json_integer_value(json_object_get(created, "ttlMs")), 60000);
    CHECK_INT(json_integer_value(json_object_get(created, "pollIntervalMs")), 500);
    CHECK(strspn(a, "0123456789abcdef") == TASK_ID_LEN);
    json_decref(created);
    create(t, ALICE, b);
    CHECK(strcmp(a, b) != 0);

    /* ownership: to anyone else the id does not exist */
    CHECK_STR(status_of(t, a, ALICE), "working");
    CHECK_STR(status_of(t, a, BOB), "none");
    CHECK_INT(task_cancel(t, a, BOB), -1);
    task_round_t round;
    json_t *none = json_object();
    CHECK_INT(task_update(t, a, BOB, none, 0, &round), -1);
    json_decref(none);
    CHECK_STR(status_of(t, "0123456789abcdef0123456789abcdef", ALICE), "none");
    CHECK_STR(status_of(t, "short", ALICE), "none");

    /* input: parks with its requests; a round opens only when all are answered */
    json_t *requests = json_pack("{s:{s:s}, s:{s:s}}", "k1", "method", "elicitation/create",
                                 "k2", "method", "elicitation/create");
    json_t *park = json_pack("{s:{s:s, s:O}}", "result", "resultType", "input_required",
                             "inputRequests", requests);
    task_settle(t, a, park, requests, "state-2");
    json_decref(park);
    CHECK_STR(status_of(t, a, ALICE), "input_required");
    json_t *r1 = json_pack("{s:{s:s}, s:{s:s}}", "k1", "action", "accept", "zz", "action", "x");
    CHECK_INT(task_update(t, a, ALICE, r1, 0, &round), 0);
    json_decref(r1);
    json_t *g = task_get(t, a, ALICE);
    json_t *left = json_object_get(g, "inputRequests");
    CHECK(json_object_size(left) == 1 && json_object_get(left, "k2"));
    json_decref(g);
    json_t *r2 = json_pack("{s:{s:s}}", "k2", "action", "decline");
    CHECK_INT(task_update(t, a, ALICE, r2, 4, &round), 1);
    json_decref(r2);
    CHECK_STR(round.tool, "tool");
    CHECK_STR(round.state, "state-2");
    CHECK_INT(json_integer_value(json_object_get(round.args, "n")), 1);
    CHECK(json_object_get(round.responses, "k1") && json_object_get(round.responses, "k2") &&
          !json_object_get(round.responses, "zz"));
    task_round_clear(&round);
    CHECK_STR(status_of(t, a, ALICE), "working");
    json_decref(requests);

    /* a cancel kicks the worker running it; terminal states never change */
    CHECK_INT(task_cancel(t, a, ALICE), 0);
    CHECK_INT(kicked, 4);
    CHECK(task_stopped(t, a));
    json_t *late = result_of("late");
    task_settle(t, a, late, NULL, NULL);
    json_decref(late);
    CHECK_STR(status_of(t, a, ALICE), "cancelled");
    kicked = -1;
    CHECK_INT(task_cancel(t, a, ALICE), 0);
    CHECK_INT(kicked, -1);

    /* results: inlined without resultType; an error fails; too large fails, saying so */
    json_t *ok = result_of("fine");
    json_object_set_new(json_object_get(ok, "result"), "resultType", json_string("complete"));
    task_settle(t, b, ok, NULL, NULL);
    json_decref(ok);
    g = task_get(t, b, ALICE);
    CHECK_STR(json_string_value(json_object_get(g, "status")), "completed");
    CHECK(!json_object_get(json_object_get(g, "result"), "resultType"));
    CHECK_STR(json_string_value(json_object_get(g, "resultType")), NULL);
    json_decref(g);
    char c[TASK_ID_LEN + 1];
    create(t, BOB, c);
    char text[201];
    memset(text, 'x', 200);
    text[200] = '\0';
    json_t *big = result_of(text);
    task_settle(t, c, big, NULL, NULL);
    json_decref(big);
    g = task_get(t, c, BOB);
    CHECK_STR(json_string_value(json_object_get(g, "status")), "failed");
    CHECK(strstr(json_string_value(json_object_get(json_object_get(g, "error"), "message")),
                 "larger than tasks.max_result_bytes (128)") != NULL);
    json_decref(g);

    /* limits: per caller, then for the server */
    char d[TASK_ID_LEN + 1];
    create(t, ALICE, d);
    CHECK_INT(task_create(t, ALICE, "tool", NULL, NULL, NULL, 0, d, &created), TASK_CALLER_FULL);
    CHECK(created == NULL);
    create(t, BOB, d);
    unsigned char carol[TASK_OWNER_LEN] = {3};
    CHECK_INT(task_create(t, carol, "tool", NULL, NULL, NULL, 0, d, &created), TASK_FULL);
    unsigned held, live;
    task_table_counts(t, &held, &live);
    CHECK_INT(held, 5);
    CHECK_INT(live, 2);

    /* the ttl: gone to every lookup at once, freed by the sweep */
    task_table_free(t);
    cfg.ttl_ms = 100;
    t = task_table_new(&cfg, kick, NULL);
    create(t, ALICE, a);
    usleep(150000);
    CHECK_STR(status_of(t, a, ALICE), "none");
    CHECK(task_stopped(t, a));
    task_table_sweep(t, 0); /* not due by this clock: nothing freed */
    task_table_counts(t, &held, &live);
    CHECK_INT(held, 1);
    task_table_sweep(t, 1LL << 60);
    task_table_counts(t, &held, &live);
    CHECK_INT(held, 0);
    create(t, ALICE, a); /* room again */
    task_table_free(t);

    /* many threads at once */
    cfg = (config_tasks_t){.ttl_ms = 60000, .timeout_ms = 1000, .poll_ms = 500, .max = 100000,
                           .per_caller = 100000, .max_result_bytes = 1 << 20};
    t = task_table_new(&cfg, kick, NULL);
    stress_t s[4] = {{0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        s[i].t = t;
        s[i].owner[0] = (unsigned char)(10 + i);
        pthread_create(&th[i], NULL, stress, &s[i]);
    }
    int made = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        made += s[i].made;
    }
    task_table_counts(t, &held, &live);
    CHECK_INT(made, 2000);
    CHECK_INT(held, 2000);
    CHECK_INT(live, 0);
    task_table_free(t);
    return check_report();
}
