/* The machine's ceiling for any HTTP/1.1 server, for `make bench`: one thread per core, each
 * with its own SO_REUSEPORT listener and epoll, answering every request (headers, then
 * Content-Length bytes of body, read but never looked at) with the 85-byte answer luamcp
 * gives the echo call. No parsing, no JSON, no auth, no logging: what is left is the kernel's
 * loopback TCP, the system calls and wrk, on the same two cores. A bench tool only.
 *
 *   floor_server PORT [THREADS]      PORT 0: any free one; prints "listening on port N" and
 *                                    serves until killed */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY                                                                                   \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\","        \
    "\"text\":\"hello, world\"}]}}"
static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 85\r\n\r\n" BODY;

typedef struct {
    int fd;
    size_t len;
    char buf[16384];
} conn_t;

static int port;

/* A listener on port (the first one, with port 0, picks it for the others). */
static int listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1024) ||
        getsockname(fd, (struct sockaddr *)&a, &alen)) {
        perror("floor_server: bind/listen");
        exit(1);
    }
    port = ntohs(a.sin_port);
    return fd;
}

/* Answers every whole request at the front of c->buf; -1 when the connection must go. */
static int serve(conn_t *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return c->len == sizeof c->buf ? -1 : 0;
        size_t head = (size_t)(end - c->buf) + 4, body = 0;
        for (char *p = c->buf; p < end; p++)
            if ((*p == 'C' || *p == 'c') && strncasecmp(p, "content-length:", 15) == 0)
                body = strtoul(p + 15, NULL, 10);
        if (head + body > sizeof c->buf)
            return -1;
        if (c->len < head + body)
            return 0;
        if (send(c->fd, answer, sizeof answer - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof answer - 1))
            return -1;
        memmove(c->buf, c->buf + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

static void *loop(void *arg)
{
    int ls = arg ? *(int *)arg : listener(), ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[64];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK), one = 1;
                if (fd < 0)
                    continue;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                c->fd = fd;
                struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                continue;
            }
            ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
            if (got > 0)
                c->len += (size_t)got;
            if ((got <= 0 && errno != EAGAIN) || got == 0 || serve(c) < 0) {
                close(c->fd);
                free(c);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: floor_server PORT [THREADS]\n"), 2;
    port = atoi(argv[1]);
    int threads = argc > 2 ? atoi(argv[2]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    int first = listener();
    printf("listening on port %d, %d threads\n", port, threads);
    fflush(stdout);
    pthread_t t;
    for (int i = 1; i < threads; i++)
        pthread_create(&t, NULL, loop, NULL);
    loop(&first);
}
