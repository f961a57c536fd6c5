/* Threads and loops: one worker per core, each owning a libmicrohttpd daemon in external
 * epoll mode on the shared port, an eventfd to be woken by other threads, and its own Lua
 * bundle. Nothing on the request path takes a lock of ours except the session table. */
#include "luamcp/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "luamcp/cache.h"
#include "luamcp/clock.h"
#include "luamcp/fetch.h"
#include "luamcp/log.h"
#include "luamcp/reload.h"
#include "server_int.h"

#define SWEEP_EVERY_MS 60000
#define MHD_MEMORY_PER_CONN (16 * 1024)

long long now_ms(void)
{
    return clock_mono_ms();
}

void worker_wake(worker_t *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wakefd, &one, sizeof one);
    (void)n; /* a full counter still wakes the worker */
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    log_warn("http: %s", buf);
}

/* ---- address ---------------------------------------------------------------------------- */

static int parse_listen(const char *listen, struct sockaddr_storage *out, bool *loopback,
                        char **err)
{
    char host[256];
    const char *port;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':' || (size_t)(end - listen) >= sizeof host)
            goto bad;
        memcpy(host, listen + 1, (size_t)(end - listen - 1));
        host[end - listen - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= sizeof host)
            goto bad;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p < 0 || p > 65535)
        goto bad;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res) {
        size_t n = strlen(listen) + 128;
        if ((*err = malloc(n)))
            snprintf(*err, n, "listen %s: %s", listen, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (out->ss_family == AF_INET) {
        uint32_t a = ntohl(((struct sockaddr_in *)out)->sin_addr.s_addr);
        *loopback = (a >> 24) == 127;
    } else {
        *loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)out)->sin6_addr);
    }
    return 0;
bad:
    *err = strdup("listen must be HOST:PORT or [IPv6]:PORT");
    return -1;
}

static socklen_t addr_len(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* Workers bind with SO_REUSEPORT, which would also let them join another process already on
 * the port. Bind once without it first so a busy port is an error, not a silent split. */
static int port_free(const struct sockaddr_storage *a, char **err)
{
    int fd = socket(a->ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (const struct sockaddr *)a, addr_len(a));
    int e = errno;
    close(fd);
    if (rc != 0) {
        *err = malloc(128);
        if (*err)
            snprintf(*err, 128, "cannot bind the listen address: %s", strerror(e));
        return -1;
    }
    return 0;
}

/* Port 0 picks a free port: resolve it once so every worker shares it. */
static int resolve_port(struct sockaddr_storage *a, char **err)
{
    in_port_t *port = a->ss_family == AF_INET ? &((struct sockaddr_in *)a)->sin_port
                                              : &((struct sockaddr_in6 *)a)->sin6_port;
    if (*port != 0)
        return port_free(a, err);
    int fd = socket(a->ss_family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    socklen_t len = addr_len(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)a, len) != 0 ||
        getsockname(fd, (struct sockaddr *)a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        *err = strdup("cannot pick a free port");
        return -1;
    }
    close(fd);
    return 0;
}

static int read_file(const char *path, char **out, char **err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        goto fail;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf)
        goto fail;
    buf[n] = '\0';
    *out = buf;
    return 0;
fail:
    *err = malloc(strlen(path) + 64);
    if (*err)
        sprintf(*err, "cannot read %s: %s", path, strerror(errno));
    return -1;
}

/* ---- workers ---------------------------------------------------------------------------- */

static int start_daemon(server_t *srv, worker_t *w, char **err)
{
    const config_t *c = srv->cfg;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (srv->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (srv->tls_cert_pem)
        flags |= MHD_USE_TLS;
    unsigned per = c->max_connections / (unsigned)srv->n_workers;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key_pem},
        {MHD_OPTION_END, 0, NULL}};
    w->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, http_handler, w,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&srv->addr,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_CONNECTION_LIMIT, per ? per : 1u,
        MHD_OPTION_CONNECTION_TIMEOUT, c->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_MEMORY_PER_CONN,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, w,
        MHD_OPTION_NOTIFY_CONNECTION, http_connection, w,
        MHD_OPTION_URI_LOG_CALLBACK, strict_target, w,
        MHD_OPTION_ARRAY, srv->tls_cert_pem ? tls : &tls[2],
        MHD_OPTION_END);
    if (!w->daemon) {
        *err = strdup("cannot start the HTTP daemon (is the address in use or the TLS key "
                      "invalid?)");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_MHD | (uint32_t)info->epoll_fd};
    if (w->epfd < 0 || w->wakefd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, info->epoll_fd, &ev))
        goto fail;
    ev.data.u64 = EV_WAKE | (uint32_t)w->wakefd;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev))
        goto fail;
    if (!(w->fetch = fetch_engine_new(&c->egress, c->dev, w->epfd, EV_FETCH)))
        goto fail;
    return 0;
fail:
    *err = strdup("cannot set up the worker's event loop");
    return -1;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    server_t *srv = w->srv;
    long long stop_at = 0, next_sweep = now_ms() + SWEEP_EVERY_MS;
    w->next_keepalive_ms = now_ms() + 15000;
    for (;;) {
        long long now = now_ms();
        if (atomic_load(&srv->stopping) && !stop_at) {
            MHD_socket ls = MHD_quiesce_daemon(w->daemon);
            if (ls != MHD_INVALID_SOCKET)
                close(ls);
            stop_at = now + (long long)srv->cfg->grace_s * 1000;
            http_service(w, now, true);
            MHD_run(w->daemon);
        }
        if (stop_at && (w->inflight == 0 || now >= stop_at))
            break;
        int timeout = 1000;
        MHD_UNSIGNED_LONG_LONG to;
        if (MHD_get_timeout(w->daemon, &to) == MHD_YES && to < (MHD_UNSIGNED_LONG_LONG)timeout)
            timeout = (int)to;
        if (w->streams && w->next_keepalive_ms - now < timeout)
            timeout = (int)(w->next_keepalive_ms - now > 0 ? w->next_keepalive_ms - now : 0);
        if (w->next_expiry_ms && w->next_expiry_ms - now < timeout)
            timeout = (int)(w->next_expiry_ms - now > 0 ? w->next_expiry_ms - now : 0);
        int fetch_wait = fetch_engine_wait_ms(w->fetch, now);
        if (fetch_wait >= 0 && fetch_wait < timeout)
            timeout = fetch_wait;
        long long audit_wait = audit_due_in(w->audit, now);
        if (audit_wait >= 0 && audit_wait < timeout)
            timeout = (int)audit_wait;
        struct epoll_event evs[64];
        int n = epoll_wait(w->epfd, evs, 64, timeout);
        now = now_ms();
        if (n <= 0) /* idle: nothing to batch the records with */
            audit_flush(w->audit);
        bool woken = false;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64 & ~0xffffffffULL;
            int fd = (int)(uint32_t)evs[i].data.u64;
            if (tag == EV_WAKE) {
                uint64_t v;
                woken = read(w->wakefd, &v, sizeof v) > 0 || woken;
            } else if (tag == EV_FETCH) {
                fetch_engine_socket(w->fetch, fd, evs[i].events); /* may finish tool calls */
            } else if (tag == EV_LINGER) {
                linger_event(w, (unsigned)fd);
            }
        }
        fetch_engine_timeout(w->fetch, now);
        if (woken || (w->streams && now >= w->next_keepalive_ms) ||
            (w->next_expiry_ms && now >= w->next_expiry_ms) || (stop_at && w->auth_waiters) ||
            (w->tool_waiters && now >= w->next_deadline_check_ms)) {
            http_service(w, now, stop_at != 0); /* also: calls whose client did not answer */
            w->next_deadline_check_ms = now + 200;
        }
        bundle_t *fresh = atomic_exchange(&w->pending, NULL);
        if (fresh) {
            /* between requests: nothing of this worker refers to the old bundle any more */
            bundle_free(w->bundle);
            w->bundle = fresh;
        }
        /* Always run MHD after a resume: without its own thread, nothing else would. */
        MHD_run(w->daemon);
        if (now >= w->next_conn_check_ms) {
            http_close_slow(w, now);
            linger_sweep(w, now, false);
            w->next_conn_check_ms = now + 250;
        }
        if (audit_due_in(w->audit, now) == 0)
            audit_flush(w->audit); /* the records of the last AUDIT_FLUSH_MS, in one write */
        if (w->index == 0 && now >= next_sweep) {
            session_sweep(srv->sessions);
            task_table_sweep(srv->tasks, now);
            next_sweep = now + SWEEP_EVERY_MS;
        }
    }
    if (w->inflight)
        log_warn("worker %d: %u requests still in flight after grace_s; closing them", w->index,
                 w->inflight);
    http_abort_waiting(w); /* cancels their transfers; answers go out if the peer still reads */
    /* nothing may stay suspended when the daemon stops: close and resume every stream and
     * parked request, a few turns so what they resume into finishes too */
    for (int i = 0; i < 4; i++) {
        http_service(w, now_ms(), true);
        MHD_run(w->daemon);
    }
    return NULL;
}

/* A task's status changed (any thread): its listeners are told. */
static void task_changed(const char *id, const unsigned char *owner, json_t *detail, void *arg)
{
    listen_task_changed(arg, id, owner, detail);
}

/* A task running on worker i was cancelled (any thread). */
static void task_kick(int i, void *arg)
{
    server_t *srv = arg;
    if (i < 0 || i >= srv->n_workers)
        return;
    atomic_store(&srv->workers[i].task_kick, true);
    worker_wake(&srv->workers[i]);
}

server_t *server_new(const config_t *cfg, char **err)
{
    server_t *srv = calloc(1, sizeof *srv);
    if (!srv) {
        *err = strdup("out of memory");
        return NULL;
    }
    srv->cfg = cfg;
    atomic_init(&srv->stopping, false);
    pthread_mutex_init(&srv->asks_mu, NULL);
    pthread_mutex_init(&srv->chans_mu, NULL);
    pthread_mutex_init(&srv->listen_mu, NULL);
    cache_configure(cfg->cache_max_bytes);
    if (parse_listen(cfg->listen, &srv->addr, &srv->loopback, err) ||
        resolve_port(&srv->addr, err))
        goto fail;
    if (cfg->tls_cert && (read_file(cfg->tls_cert, &srv->tls_cert_pem, err) ||
                          read_file(cfg->tls_key, &srv->tls_key_pem, err)))
        goto fail;
    srv->n_workers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv->n_workers < 1)
        srv->n_workers = 1;
    if (!(srv->auth = auth_new(cfg, server_port(srv), err)) ||
        !(srv->audit = audit_open(cfg->audit_file, err)))
        goto fail;
    auth_wait_ready(srv->auth, (int)cfg->auth.jwks_timeout_ms);
    srv->peers = peers_new(cfg->max_connections_per_address, cfg->per_address_exempt_loopback);
    srv->sessions =
        session_store_new(cfg->max_sessions, cfg->max_sessions_per_caller, cfg->session_idle_s);
    srv->workers = calloc((size_t)srv->n_workers, sizeof *srv->workers);
    srv->tasks = task_table_new(&cfg->tasks, task_kick, srv);
    if (srv->tasks)
        task_table_on_change(srv->tasks, task_changed, srv, &srv->task_listeners);
    if (!srv->sessions || !srv->workers || !srv->tasks || !srv->peers) {
        *err = strdup("out of memory");
        goto fail;
    }
    for (int i = 0; i < srv->n_workers; i++) {
        worker_t *w = &srv->workers[i];
        w->srv = srv;
        w->index = i;
        pthread_mutex_init(&w->inbox_mu, NULL);
        w->epfd = w->wakefd = -1;
        if (!(w->auth_cache = auth_cache_new(srv->auth)) ||
            !(w->audit = audit_buf_new(srv->audit))) {
            *err = strdup("out of memory");
            goto fail;
        }
        if (!(w->bundle = bundle_load(cfg, err)) || start_daemon(srv, w, err))
            goto fail;
        if (i == 0) {
            if (w->bundle->warnings)
                log_warn("%s", w->bundle->warnings);
            json_t *scopes = policy_scopes(w->bundle->policies);
            auth_set_policy_scopes(srv->auth, scopes);
            json_decref(scopes);
        }
    }
    atomic_store(&srv->version, 1);
    http_init(srv);
    if (!(srv->reloader = reloader_new(srv, err)))
        goto fail;
    return srv;
fail:
    server_free(srv);
    return NULL;
}

static void drop_stream(void *stream) { http_stream_close(stream); }

void server_free(server_t *srv)
{
    if (!srv)
        return;
    reloader_free(srv->reloader); /* no reload may hand a bundle to a worker being freed */
    for (int i = 0; srv->workers && i < srv->n_workers; i++) {
        worker_t *w = &srv->workers[i];
        if (w->daemon)
            MHD_stop_daemon(w->daemon); /* after http_abort_waiting: nothing is suspended */
        linger_sweep(w, 0, true);       /* after the daemon: none is added now */
        fetch_engine_free(w->fetch);    /* after every call holding a transfer is gone */
        if (w->epfd >= 0)
            close(w->epfd);
        if (w->wakefd >= 0)
            close(w->wakefd);
        bundle_free(w->bundle);
        bundle_free(atomic_load(&w->pending));
        auth_cache_free(w->auth_cache);
        audit_buf_free(w->audit);
        for (answer_t *a = w->inbox, *next; a; a = next) {
            next = a->next;
            json_decref(a->msg);
            free(a);
        }
        pthread_mutex_destroy(&w->inbox_mu);
    }
    sse_chan_sweep(srv, true); /* after the daemons: no stream writes for a channel now */
    pthread_mutex_destroy(&srv->chans_mu);
    pthread_mutex_destroy(&srv->listen_mu);
    for (ask_t *a = srv->asks, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    pthread_mutex_destroy(&srv->asks_mu);
    session_store_free(srv->sessions, drop_stream);
    peers_free(srv->peers); /* after the daemons: every connection gave its count back */
    task_table_free(srv->tasks);
    auth_free(srv->auth);
    audit_close(srv->audit);
    free(srv->workers);
    free(srv->tls_cert_pem);
    free(srv->tls_key_pem);
    free(srv);
}

int server_port(const server_t *srv)
{
    const struct sockaddr_storage *a = &srv->addr;
    return ntohs(a->ss_family == AF_INET ? ((const struct sockaddr_in *)a)->sin_port
                                         : ((const struct sockaddr_in6 *)a)->sin6_port);
}

int server_run(server_t *srv)
{
    for (int i = 0; i < srv->n_workers; i++)
        if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0) {
            log_error("cannot start worker %d", i);
            atomic_store(&srv->stopping, true);
            for (int k = 0; k < i; k++) {
                worker_wake(&srv->workers[k]);
                pthread_join(srv->workers[k].thread, NULL);
            }
            return -1;
        }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reloader_request(srv->reloader, "SIGHUP");
            continue;
        }
        log_notice("%s: finishing in-flight requests (up to %us)", strsignal(sig),
                   srv->cfg->grace_s);
        break;
    }
    /* Listen no more, now: a worker busy in a handler would close its socket only when the
     * handler ends, and a connection the kernel hands it meanwhile would wait for that. A
     * listening socket shut down leaves the SO_REUSEPORT group (new connections are refused)
     * and its accept fails with EINVAL, which libmicrohttpd takes quietly. Done before the
     * workers are told to stop, so no worker has closed its socket yet. */
    for (int i = 0; i < srv->n_workers; i++) {
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(srv->workers[i].daemon, MHD_DAEMON_INFO_LISTEN_FD);
        if (di && di->listen_fd != MHD_INVALID_SOCKET)
            shutdown(di->listen_fd, SHUT_RD);
    }
    atomic_store(&srv->stopping, true);
    for (int i = 0; i < srv->n_workers; i++)
        worker_wake(&srv->workers[i]);
    for (int i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i].thread, NULL);
    log_notice("stopped");
    return 0;
}
