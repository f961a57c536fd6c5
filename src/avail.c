/* avail — run-time switches (see avail.h). A short list under a read-write lock: it is looked
 * at only while something is off (workers read it side by side), and then by a name lookup
 * that is already a string compare. */
#include "luamcp/avail.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct off {
    avail_kind_t kind;
    char *name;
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER; /* workers read, handlers flip */
static struct off offs[AVAIL_MAX];
static atomic_size_t n_off; /* read without the lock: nothing off, nothing to look up */
static void (*hook)(avail_kind_t kind);

static size_t find_locked(avail_kind_t kind, const char *name)
{
    size_t n = atomic_load(&n_off);
    for (size_t i = 0; i < n; i++)
        if (offs[i].kind == kind && strcmp(offs[i].name, name) == 0)
            return i;
    return n;
}

bool avail_on(avail_kind_t kind, const char *name)
{
    if (atomic_load_explicit(&n_off, memory_order_acquire) == 0)
        return true;
    pthread_rwlock_rdlock(&lock);
    bool on = find_locked(kind, name) == atomic_load(&n_off);
    pthread_rwlock_unlock(&lock);
    return on;
}

int avail_set(avail_kind_t kind, const char *name, bool on)
{
    pthread_rwlock_wrlock(&lock);
    size_t n = atomic_load(&n_off), i = find_locked(kind, name);
    int rc = 0;
    if (on && i < n) {
        free(offs[i].name);
        offs[i] = offs[n - 1];
        atomic_store(&n_off, n - 1);
        rc = 1;
    } else if (!on && i == n) {
        char *copy = n < AVAIL_MAX ? strdup(name) : NULL;
        if (copy) {
            offs[n] = (struct off){kind, copy};
            atomic_store_explicit(&n_off, n + 1, memory_order_release);
            rc = 1;
        } else {
            rc = -1;
        }
    }
    void (*changed)(avail_kind_t) = hook;
    pthread_rwlock_unlock(&lock);
    if (rc == 1 && changed)
        changed(kind);
    return rc;
}

void avail_set_hook(void (*changed)(avail_kind_t kind))
{
    pthread_rwlock_wrlock(&lock);
    hook = changed;
    pthread_rwlock_unlock(&lock);
}

static const char *const words[AVAIL_KINDS] = {"tool", "prompt", "resource"};

json_t *avail_status(void)
{
    json_t *out = json_object();
    pthread_rwlock_rdlock(&lock);
    size_t n = atomic_load(&n_off);
    for (size_t i = 0; i < n; i++) {
        json_t *list = json_object_get(out, words[offs[i].kind]);
        if (!list) {
            list = json_array();
            json_object_set_new(out, words[offs[i].kind], list);
        }
        json_array_append_new(list, json_string(offs[i].name));
    }
    pthread_rwlock_unlock(&lock);
    return out;
}

int avail_kind_of(const char *word)
{
    for (int k = 0; k < AVAIL_KINDS; k++)
        if (strcmp(word, words[k]) == 0)
            return k;
    return -1;
}
