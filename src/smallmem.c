/* Per-thread free lists of small malloc blocks: see smallmem.h. */
#include "luamcp/smallmem.h"

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define SMALLMEM_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SMALLMEM_OFF 1
#endif
#endif

#ifdef SMALLMEM_OFF

bool smallmem_on(void)
{
    return false;
}

void *smallmem_alloc(size_t n)
{
    return malloc(n);
}

void smallmem_free(void *p)
{
    free(p);
}

size_t smallmem_held(void)
{
    return 0;
}

#else

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() false
#endif

/* Class k holds blocks whose usable size is exactly 24 + 16k bytes (what glibc gives for
 * requests of 1..24, 25..40, ...). A block is filed by malloc_usable_size when it is dropped,
 * so a block taken from class k always has room for any request that maps to k. */
#define CLASSES 15    /* usable sizes 24 .. 248 */
#define KEEP 256      /* blocks kept per class and thread: at most ~0.5 MiB a thread */

/* A block on a list: its next, and FILED while it is there (every class has room for both). */
typedef struct block {
    struct block *next;
    uintptr_t filed;
} block_t;

#define FILED ((uintptr_t)0x5a17e3d1c0de5eedULL)

static _Thread_local block_t *lists[CLASSES];
static _Thread_local unsigned counts[CLASSES];
static _Thread_local bool registered;

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static bool lists_on; /* set once by make_key */

static void release(void *unused)
{
    (void)unused;
    for (int k = 0; k < CLASSES; k++) {
        while (lists[k]) {
            block_t *b = lists[k];
            lists[k] = b->next;
            free(b);
        }
        counts[k] = 0;
    }
    registered = false; /* a later destructor's free registers again, and is released again */
}

/* The lists are used when a thread's can be returned at its exit (a key with a destructor),
 * and not under valgrind, so that valgrind sees every free: without them every block goes
 * straight back to malloc (nothing is filed, so nothing is handed out from a list either). */
static void make_key(void)
{
    lists_on = !UNDER_VALGRIND() && pthread_key_create(&exit_key, release) == 0;
}

bool smallmem_on(void)
{
    pthread_once(&exit_once, make_key);
    return lists_on;
}

/* The thread's lists are returned when it exits (a key's destructor runs only for a non-NULL
 * value). */
static bool register_thread(void)
{
    if (!smallmem_on() || pthread_setspecific(exit_key, &registered) != 0)
        return false;
    registered = true;
    return true;
}

/* Whether b is on this thread's list k: asked only of a block that looks filed already, so
 * bytes that happen to match FILED cost a walk, never an abort. */
static bool on_list(size_t k, const block_t *b)
{
    for (const block_t *x = lists[k]; x; x = x->next)
        if (x == b)
            return true;
    return false;
}

size_t smallmem_held(void)
{
    size_t n = 0;
    for (int k = 0; k < CLASSES; k++)
        n += counts[k];
    return n;
}

void *smallmem_alloc(size_t n)
{
    size_t k = n <= 24 ? 0 : (n - 24 + 15) / 16;
    if (k < CLASSES && lists[k]) {
        block_t *b = lists[k];
        lists[k] = b->next;
        counts[k]--;
        b->filed = 0;
        return b;
    }
    return malloc(n ? n : 1);
}

void smallmem_free(void *p)
{
    if (!p)
        return;
    size_t u = malloc_usable_size(p);
    size_t k = (u - 24) / 16;
    if (u >= 24 && (u - 24) % 16 == 0 && k < CLASSES && counts[k] < KEEP &&
        (registered || register_thread())) {
        block_t *b = p;
        if (b->filed == FILED && on_list(k, b)) {
            /* glibc would have caught this; handing the block out twice would not */
            fputs("smallmem: a block freed twice\n", stderr);
            abort();
        }
        b->filed = FILED;
        b->next = lists[k];
        lists[k] = b;
        counts[k]++;
        return;
    }
    free(p);
}

#endif
