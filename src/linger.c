/* Lingering close (as nginx and Apache do): a connection we close after an early answer (413,
 * 431, 400) may still have a body on its way. Closing a socket with unread bytes makes the
 * kernel send a reset, which can destroy our answer before the client has read it. So such a
 * socket is kept (a dup of libmicrohttpd's descriptor, taken as it closes its own), shut down
 * for writing, and read and discarded until the client closes, for up to LINGER_MS and
 * LINGER_MAX_BYTES, then closed.
 * Worker thread only: each worker has its own slots, in its own epoll set. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_int.h"

#define LINGER_MS 2000
/* curl over TLS sends the whole body before it reads an early answer (over plain HTTP it stops
 * at once): the bound is in time first, bytes only cap the reading work */
#define LINGER_MAX_BYTES (16u << 20)

struct lingering {
    int fd; /* -1: free */
    size_t drained;
    long long until_ms;
    unsigned char peer[PEER_KEY_LEN]; /* its address's count, given back when it closes */
};

bool linger_wanted(int fd, bool refused_early)
{
    if (fd < 0)
        return false;
    int unread = 0;
    return refused_early || (ioctl(fd, FIONREAD, &unread) == 0 && unread > 0);
}

static void finish(worker_t *w, struct lingering *l)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    l->fd = -1;
    w->n_lingering--;
    peers_leave(w->srv->peers, l->peer);
}

bool linger_start(worker_t *w, int fd, const unsigned char *peer)
{
    if (!w->lingering) {
        if (!(w->lingering = calloc(LINGER_SLOTS, sizeof *w->lingering)))
            return false;
        for (unsigned i = 0; i < LINGER_SLOTS; i++)
            w->lingering[i].fd = -1;
    }
    if (w->n_lingering >= LINGER_SLOTS)
        return false; /* a flood of them: closed at once, as before */
    unsigned i = 0;
    while (w->lingering[i].fd >= 0)
        i++;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return false;
    int flags = fcntl(dup_fd, F_GETFL);
    fcntl(dup_fd, F_SETFL, flags | O_NONBLOCK);
    shutdown(dup_fd, SHUT_WR); /* after what libmicrohttpd wrote: our answer, then FIN */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = EV_LINGER | i};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, dup_fd, &ev) != 0) {
        close(dup_fd);
        return false;
    }
    w->lingering[i] = (struct lingering){dup_fd, 0, now_ms() + LINGER_MS, {0}};
    memcpy(w->lingering[i].peer, peer, PEER_KEY_LEN);
    w->n_lingering++;
    return true;
}

void linger_event(worker_t *w, unsigned slot)
{
    if (!w->lingering || slot >= LINGER_SLOTS || w->lingering[slot].fd < 0)
        return;
    struct lingering *l = &w->lingering[slot];
    static _Thread_local char sink[16384];
    for (;;) {
        ssize_t n = read(l->fd, sink, sizeof sink);
        if (n > 0) {
            l->drained += (size_t)n;
            if (l->drained < LINGER_MAX_BYTES)
                continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        finish(w, l); /* end of stream, an error, or enough */
        return;
    }
}

void linger_sweep(worker_t *w, long long now, bool all)
{
    for (unsigned i = 0; w->n_lingering && i < LINGER_SLOTS; i++)
        if (w->lingering[i].fd >= 0 && (all || now >= w->lingering[i].until_ms))
            finish(w, &w->lingering[i]);
    if (all) {
        free(w->lingering);
        w->lingering = NULL;
    }
}
