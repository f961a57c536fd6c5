/* Connections per client address, across every worker (SO_REUSEPORT spreads one address's
 * connections over all of them, so libmicrohttpd's own per-daemon limit would not bound the
 * total). IPv4 addresses count alone; IPv6 ones by their /64, which one host usually holds
 * whole. Taken when a connection starts and given back when it closes: once per connection,
 * never per request. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

#define PEER_BUCKETS 4096

typedef struct peer {
    unsigned char key[PEER_KEY_LEN];
    unsigned n;
    struct peer *next;
} peer_t;

struct peers {
    pthread_mutex_t mu;
    unsigned max;
    bool exempt_loopback;
    peer_t *buckets[PEER_BUCKETS];
};

peers_t *peers_new(unsigned max, bool exempt_loopback)
{
    peers_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->max = max;
    p->exempt_loopback = exempt_loopback;
    return p;
}

void peers_free(peers_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < PEER_BUCKETS; i++)
        for (peer_t *e = p->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* The counted key of addr; false when it is not counted (exempt, or not IP). */
static bool key_of(const peers_t *p, const struct sockaddr *addr, unsigned char *key)
{
    memset(key, 0, PEER_KEY_LEN);
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        if (p->exempt_loopback && (ntohl(a->sin_addr.s_addr) >> 24) == 127)
            return false;
        key[0] = 4;
        memcpy(key + 1, &a->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        if (p->exempt_loopback && IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return false;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            if (p->exempt_loopback && a->sin6_addr.s6_addr[12] == 127)
                return false;
            key[0] = 4;
            memcpy(key + 1, &a->sin6_addr.s6_addr[12], 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, &a->sin6_addr, 8); /* the /64 */
        }
        return true;
    }
    return false;
}

static size_t bucket_of(const unsigned char *key)
{
    size_t h = 2166136261u;
    for (size_t i = 0; i < PEER_KEY_LEN; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % PEER_BUCKETS;
}

bool peers_enter(peers_t *p, const struct sockaddr *addr, unsigned char *key)
{
    if (!p || !p->max || !addr || !key_of(p, addr, key)) {
        if (key)
            key[0] = 0; /* not counted: nothing to give back */
        return true;
    }
    size_t b = bucket_of(key);
    bool ok = true;
    pthread_mutex_lock(&p->mu);
    peer_t *e = p->buckets[b];
    while (e && memcmp(e->key, key, PEER_KEY_LEN) != 0)
        e = e->next;
    if (!e && (e = calloc(1, sizeof *e))) {
        memcpy(e->key, key, PEER_KEY_LEN);
        e->next = p->buckets[b];
        p->buckets[b] = e;
    }
    if (!e || e->n >= p->max)
        ok = false;
    else
        e->n++;
    pthread_mutex_unlock(&p->mu);
    if (!ok)
        key[0] = 0; /* refused: not counted */
    return ok;
}

void peers_leave(peers_t *p, const unsigned char *key)
{
    if (!p || !key[0])
        return;
    size_t b = bucket_of(key);
    pthread_mutex_lock(&p->mu);
    for (peer_t **at = &p->buckets[b]; *at; at = &(*at)->next)
        if (memcmp((*at)->key, key, PEER_KEY_LEN) == 0) {
            peer_t *e = *at;
            if (e->n && --e->n == 0) {
                *at = e->next;
                free(e);
            }
            break;
        }
    pthread_mutex_unlock(&p->mu);
}
