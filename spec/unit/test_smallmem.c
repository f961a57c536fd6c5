/* smallmem: every block has room for what was asked, keeps its bytes until dropped, is an
 * ordinary malloc block (realloc and free take it), and may be dropped on another thread. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/smallmem.h"

#define SLOTS 512
#define ROUNDS 200000

typedef struct {
    unsigned char *p;
    size_t n;
    unsigned char tag;
} slot_t;

/* Blocks one thread hands to the other, to be checked and dropped there. */
static pthread_mutex_t handoff_mu = PTHREAD_MUTEX_INITIALIZER;
static slot_t handoff[SLOTS];
static size_t handoff_n;
static int thread_failures;

static bool intact(const slot_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->p[i] != (unsigned char)(s->tag + i))
            return false;
    return true;
}

static bool fill(slot_t *s, size_t n, unsigned char tag)
{
    s->p = smallmem_alloc(n);
    s->n = n;
    s->tag = tag;
    if (!s->p || malloc_usable_size(s->p) < n)
        return false;
    for (size_t i = 0; i < n; i++)
        s->p[i] = (unsigned char)(tag + i);
    return true;
}

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    slot_t mine[SLOTS] = {0};
    int bad = 0;
    for (int round = 0; round < ROUNDS; round++) {
        slot_t *s = &mine[rand_r(&seed) % SLOTS];
        if (s->p) {
            if (!intact(s))
                bad++;
            unsigned what = rand_r(&seed) % 8;
            if (what == 0) { /* to the other thread */
                pthread_mutex_lock(&handoff_mu);
                if (handoff_n < SLOTS) {
                    handoff[handoff_n++] = *s;
                    s->p = NULL;
                }
                pthread_mutex_unlock(&handoff_mu);
            } else if (what == 1) { /* realloc keeps the bytes it keeps */
                size_t n = (size_t)(rand_r(&seed) % 400);
                unsigned char *q = realloc(s->p, n ? n : 1);
                if (!q) {
                    bad++;
                    continue;
                }
                s->p = q;
                s->n = n < s->n ? n : s->n;
                if (!intact(s))
                    bad++;
                smallmem_free(s->p);
                s->p = NULL;
            } else if (what == 2) {
                free(s->p); /* plain free takes a recycled block */
                s->p = NULL;
            } else {
                smallmem_free(s->p);
                s->p = NULL;
            }
            if (s->p)
                continue;
        }
        pthread_mutex_lock(&handoff_mu);
        slot_t got = handoff_n && rand_r(&seed) % 2 ? handoff[--handoff_n] : (slot_t){0};
        pthread_mutex_unlock(&handoff_mu);
        if (got.p) {
            if (!intact(&got))
                bad++;
            smallmem_free(got.p);
        }
        if (!fill(s, (size_t)(rand_r(&seed) % 300), (unsigned char)round))
            bad++;
    }
    for (int i = 0; i < SLOTS; i++) {
        if (mine[i].p && !intact(&mine[i]))
            bad++;
        smallmem_free(mine[i].p);
    }
    pthread_mutex_lock(&handoff_mu);
    thread_failures += bad;
    pthread_mutex_unlock(&handoff_mu);
    return NULL;
}

static void sizes(void)
{
    for (size_t n = 0; n <= 300; n++) {
        slot_t s;
        CHECK(fill(&s, n, (unsigned char)n));
        smallmem_free(s.p);
        CHECK(fill(&s, n, (unsigned char)(n + 1))); /* perhaps the block just dropped */
        CHECK(intact(&s));
        smallmem_free(s.p);
    }
    smallmem_free(NULL);
}

/* On a fresh thread: a dropped block is the next one handed out, and a class keeps 256. */
static void *lists_of_a_new_thread(void *unused)
{
    (void)unused;
    int *ok = calloc(4, sizeof *ok);
    void *p = smallmem_alloc(40);
    smallmem_free(p);
    ok[0] = smallmem_held() == 1;
    ok[1] = smallmem_alloc(33) == p && smallmem_held() == 0; /* 33..40: the same class */
    smallmem_free(p);
    void *many[300];
    for (int i = 0; i < 300; i++)
        many[i] = smallmem_alloc(100);
    size_t before = smallmem_held();
    for (int i = 0; i < 300; i++)
        smallmem_free(many[i]);
    ok[2] = smallmem_held() - before == 256;
    ok[3] = 1;
    return ok;
}

static void lists(void)
{
    if (!smallmem_on()) { /* ASan or valgrind: plain malloc and free */
        void *p = smallmem_alloc(40);
        smallmem_free(p);
        CHECK(smallmem_held() == 0);
        return;
    }
    pthread_t t;
    int *ok = NULL;
    if (!CHECK(pthread_create(&t, NULL, lists_of_a_new_thread, NULL) == 0))
        return;
    pthread_join(t, (void **)&ok);
    CHECK(ok && ok[0]); /* a dropped block is kept */
    CHECK(ok && ok[1]); /* and handed out again */
    CHECK(ok && ok[2]); /* 256 a class, the rest back to malloc */
    CHECK(ok && ok[3]);
    free(ok);
    /* a block freed twice aborts (in a child) rather than being handed out twice */
    pid_t pid = fork();
    if (pid == 0) {
        void *p = smallmem_alloc(56);
        smallmem_free(p);
        smallmem_free(p);
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

int main(void)
{
    sizes();
    lists();
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL); /* each exit returns its lists to malloc */
    churn((void *)(uintptr_t)7); /* and the main thread, after the others have gone */
    for (size_t i = 0; i < handoff_n; i++) {
        CHECK(intact(&handoff[i]));
        smallmem_free(handoff[i].p);
    }
    CHECK_INT(thread_failures, 0);
    return check_report();
}
