#include "luamcp/session.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct session {
    char id[SESSION_ID_LEN + 1];
    unsigned char owner[SESSION_OWNER_LEN];
    const char *version;
    time_t last_used;
    void *attached;
    int log_level;          /* logging/setLevel; -1 until the client sets one */
    unsigned client_caps;   /* SESSION_CAP_*: what the client declared at initialize */
    char **subs;            /* resources/subscribe URIs */
    size_t n_subs;
    struct session *next;
} session_t;

/* How many sessions one caller holds, for max_sessions_per_caller. Owners are SHA-256
 * fingerprints, so their first bytes are already a good hash. */
typedef struct holder {
    unsigned char owner[SESSION_OWNER_LEN];
    unsigned n;
    struct holder *next;
} holder_t;

static void session_free(session_t *s)
{
    for (size_t i = 0; i < s->n_subs; i++)
        free(s->subs[i]);
    free(s->subs);
    free(s);
}

struct session_store {
    pthread_mutex_t mu;
    session_t **buckets;
    size_t n_buckets; /* a power of two */
    holder_t **holders; /* n_buckets of them, by owner */
    unsigned count, max, per_caller;
    unsigned idle_s;
};

/* Without authentication every session has the all-zero owner: no caller to count. */
static bool anonymous(const unsigned char owner[SESSION_OWNER_LEN])
{
    for (size_t i = 0; i < SESSION_OWNER_LEN; i++)
        if (owner[i])
            return false;
    return true;
}

static holder_t **holder_link(session_store_t *st, const unsigned char owner[SESSION_OWNER_LEN])
{
    uint64_t h;
    memcpy(&h, owner, sizeof h);
    holder_t **pp = &st->holders[h & (st->n_buckets - 1)];
    while (*pp && memcmp((*pp)->owner, owner, SESSION_OWNER_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

static unsigned held_by(session_store_t *st, const unsigned char owner[SESSION_OWNER_LEN])
{
    holder_t *h = anonymous(owner) ? NULL : *holder_link(st, owner);
    return h ? h->n : 0;
}

/* +1 or -1 for owner; false when a new holder could not be made (out of memory). */
static bool count_holder(session_store_t *st, const unsigned char owner[SESSION_OWNER_LEN],
                         int delta)
{
    if (anonymous(owner))
        return true;
    holder_t **pp = holder_link(st, owner), *h = *pp;
    if (!h) {
        if (delta < 0 || !(h = calloc(1, sizeof *h)))
            return delta < 0;
        memcpy(h->owner, owner, SESSION_OWNER_LEN);
        *pp = h;
    }
    h->n = delta > 0 ? h->n + 1 : h->n - 1;
    if (h->n == 0) {
        *pp = h->next;
        free(h);
    }
    return true;
}

/* Takes s out of the counts and frees it (the caller has unlinked it). */
static void forget(session_store_t *st, session_t *s)
{
    count_holder(st, s->owner, -1);
    st->count--;
    session_free(s);
}

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec;
}

/* Ids are uniformly random, so their leading hex digits are already a good hash. */
static size_t bucket_of(const session_store_t *st, const char *id)
{
    uint64_t h = 0;
    for (int i = 0; i < 16 && id[i]; i++)
        h = h * 131 + (unsigned char)id[i];
    return (size_t)(h & (st->n_buckets - 1));
}

session_store_t *session_store_new(unsigned max_sessions, unsigned per_caller, unsigned idle_s)
{
    session_store_t *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->n_buckets = 64;
    while (st->n_buckets < max_sessions && st->n_buckets < (1u << 20))
        st->n_buckets <<= 1;
    st->buckets = calloc(st->n_buckets, sizeof *st->buckets);
    st->holders = calloc(st->n_buckets, sizeof *st->holders);
    if (!st->buckets || !st->holders) {
        free(st->buckets);
        free(st->holders);
        free(st);
        return NULL;
    }
    st->max = max_sessions;
    st->per_caller = per_caller;
    st->idle_s = idle_s;
    pthread_mutex_init(&st->mu, NULL);
    return st;
}

static void drop_all(session_store_t *st, bool expired_only, void (*on_drop)(void *))
{
    time_t cutoff = now_s() - (time_t)st->idle_s;
    for (size_t b = 0; b < st->n_buckets; b++) {
        session_t **pp = &st->buckets[b];
        while (*pp) {
            session_t *s = *pp;
            if (expired_only && (s->last_used >= cutoff || s->attached)) {
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            if (s->attached && on_drop)
                on_drop(s->attached);
            forget(st, s);
        }
    }
}

void session_store_free(session_store_t *st, void (*on_drop)(void *attached))
{
    if (!st)
        return;
    drop_all(st, false, on_drop);
    pthread_mutex_destroy(&st->mu);
    free(st->buckets);
    free(st->holders);
    free(st);
}

static session_t *find(session_store_t *st, const char *id, session_t ***link)
{
    if (strlen(id) != SESSION_ID_LEN)
        return NULL;
    session_t **pp = &st->buckets[bucket_of(st, id)];
    for (; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->id, id, SESSION_ID_LEN) == 0) {
            if (link)
                *link = pp;
            return *pp;
        }
    }
    return NULL;
}

int session_create(session_store_t *st, const char *version,
                   const unsigned char owner[SESSION_OWNER_LEN], char id[SESSION_ID_LEN + 1])
{
    unsigned char raw[SESSION_ID_LEN / 2];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        id[2 * i] = hex[raw[i] >> 4];
        id[2 * i + 1] = hex[raw[i] & 15];
    }
    id[SESSION_ID_LEN] = '\0';
    session_t *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    memcpy(s->id, id, SESSION_ID_LEN + 1);
    memcpy(s->owner, owner, SESSION_OWNER_LEN);
    s->version = version;
    s->log_level = -1;
    s->last_used = now_s();
    pthread_mutex_lock(&st->mu);
    if (st->count >= st->max || (st->per_caller && held_by(st, owner) >= st->per_caller))
        drop_all(st, true, NULL); /* make room from idle ones first */
    int rc = SESSION_FULL;
    if (st->per_caller && held_by(st, owner) >= st->per_caller) {
        rc = SESSION_CALLER_FULL;
    } else if (st->count < st->max && count_holder(st, owner, +1)) {
        size_t b = bucket_of(st, id);
        s->next = st->buckets[b];
        st->buckets[b] = s;
        st->count++;
        rc = 0;
    }
    pthread_mutex_unlock(&st->mu);
    if (rc)
        free(s);
    return rc;
}

bool session_touch(session_store_t *st, const char *id,
                   const unsigned char owner[SESSION_OWNER_LEN], session_info_t *info)
{
    pthread_mutex_lock(&st->mu);
    session_t *s = find(st, id, NULL);
    if (s && memcmp(s->owner, owner, SESSION_OWNER_LEN) != 0)
        s = NULL; /* another caller's session: as if it did not exist */
    time_t now = now_s();
    if (s && now - s->last_used > (time_t)st->idle_s && !s->attached)
        s = NULL; /* expired; the sweep frees it */
    if (s) {
        s->last_used = now;
        if (info)
            *info = (session_info_t){s->version, s->log_level, s->client_caps};
    }
    pthread_mutex_unlock(&st->mu);
    return s != NULL;
}

bool session_delete(session_store_t *st, const char *id,
                    const unsigned char owner[SESSION_OWNER_LEN], void **attached)
{
    *attached = NULL;
    pthread_mutex_lock(&st->mu);
    session_t **link = NULL;
    session_t *s = find(st, id, &link);
    if (s && memcmp(s->owner, owner, SESSION_OWNER_LEN) != 0)
        s = NULL;
    if (s) {
        *link = s->next;
        *attached = s->attached;
        forget(st, s);
    }
    pthread_mutex_unlock(&st->mu);
    return s != NULL;
}

int session_attach(session_store_t *st, const char *id, void *obj, void **previous)
{
    *previous = NULL;
    pthread_mutex_lock(&st->mu);
    session_t *s = find(st, id, NULL);
    if (s) {
        *previous = s->attached;
        s->attached = obj;
        s->last_used = now_s();
    }
    pthread_mutex_unlock(&st->mu);
    return s ? 0 : -1;
}

bool session_detach(session_store_t *st, const char *id, void *obj)
{
    pthread_mutex_lock(&st->mu);
    session_t *s = find(st, id, NULL);
    bool was = s && s->attached == obj;
    if (was) {
        s->attached = NULL;
        s->last_used = now_s();
    }
    pthread_mutex_unlock(&st->mu);
    return was;
}

void session_sweep(session_store_t *st)
{
    /* A session with an open stream is in use, however quiet: it stays. */
    pthread_mutex_lock(&st->mu);
    drop_all(st, true, NULL);
    pthread_mutex_unlock(&st->mu);
}

unsigned session_count(session_store_t *st)
{
    pthread_mutex_lock(&st->mu);
    unsigned n = st->count;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void session_foreach_attached(session_store_t *st, void (*fn)(void *attached, void *arg),
                              void *arg)
{
    pthread_mutex_lock(&st->mu);
    for (size_t b = 0; b < st->n_buckets; b++)
        for (session_t *s = st->buckets[b]; s; s = s->next)
            if (s->attached)
                fn(s->attached, arg);
    pthread_mutex_unlock(&st->mu);
}

int session_set_log_level(session_store_t *st, const char *id, int level)
{
    pthread_mutex_lock(&st->mu);
    session_t *s = id ? find(st, id, NULL) : NULL;
    if (s)
        s->log_level = level;
    pthread_mutex_unlock(&st->mu);
    return s ? 0 : -1;
}

int session_subscribe(session_store_t *st, const char *id, const char *uri, bool on)
{
    int rc = -1;
    pthread_mutex_lock(&st->mu);
    session_t *s = id ? find(st, id, NULL) : NULL;
    size_t i = 0;
    while (s && i < s->n_subs && strcmp(s->subs[i], uri) != 0)
        i++;
    if (s && !on) {
        if (i < s->n_subs) {
            free(s->subs[i]);
            s->subs[i] = s->subs[--s->n_subs];
        }
        rc = 0;
    } else if (s && i < s->n_subs) {
        rc = 0; /* already */
    } else if (s && s->n_subs < SESSION_MAX_SUBSCRIPTIONS) {
        char **grown = realloc(s->subs, (s->n_subs + 1) * sizeof *grown);
        char *copy = strdup(uri);
        if (grown && copy) {
            s->subs = grown;
            s->subs[s->n_subs++] = copy;
            rc = 0;
        } else {
            if (grown)
                s->subs = grown;
            free(copy);
        }
    } else if (s) {
        rc = -2;
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

void session_foreach_subscribed(session_store_t *st, const char *uri,
                                void (*fn)(void *attached, void *arg), void *arg)
{
    pthread_mutex_lock(&st->mu);
    for (size_t b = 0; b < st->n_buckets; b++)
        for (session_t *s = st->buckets[b]; s; s = s->next) {
            if (!s->attached)
                continue;
            for (size_t i = 0; i < s->n_subs; i++)
                if (strcmp(s->subs[i], uri) == 0) {
                    fn(s->attached, arg);
                    break;
                }
        }
    pthread_mutex_unlock(&st->mu);
}

void session_set_client_caps(session_store_t *st, const char *id, unsigned caps)
{
    pthread_mutex_lock(&st->mu);
    session_t *s = id ? find(st, id, NULL) : NULL;
    if (s)
        s->client_caps = caps;
    pthread_mutex_unlock(&st->mu);
}

