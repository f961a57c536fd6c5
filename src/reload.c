/* One thread watches the files, takes SIGHUP and admin requests, and runs reloads one at a
 * time; workers pick up their new bundle between requests (see worker_main). */
#include "luamcp/reload.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "luamcp/log.h"
#include "luamcp/server.h"
#include "server_int.h"

#define DEBOUNCE_MS 20
#define MAX_WATCHES 1024
#define ADMIN_LINE 64

struct reloader {
    server_t *srv;
    pthread_t thread;
    bool running;
    int ino;                /* inotify, -1 when unavailable */
    int wake;               /* eventfd: requests and stop */
    int admin;              /* listening Unix socket, -1 when none */
    char *admin_path;
    char *config_name;      /* the config file's name, watched in its directory */
    atomic_bool stop;
    atomic_int requested;
    pthread_mutex_t mu;     /* status below */
    unsigned long long reloads, failures;
    char *last_error;
    time_t loaded_at;
    bool restart_needed;
    unsigned char digest[32]; /* of the visible tool set: list_changed when it changes */
};

static long long now_ms_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- what clients see ---------------------------------------------------------------- */

/* Digest of every tool's descriptor and what its policies need: if it changes, clients may
 * see a different list. */
static void bundle_digest(const bundle_t *b, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; i < b->n_tools; i++) {
        char *d = json_dumps(b->tools[i].descriptor, JSON_COMPACT | JSON_SORT_KEYS);
        char *p = policy_describe_scopes(b->policies, i);
        if (d)
            EVP_DigestUpdate(md, d, strlen(d));
        if (p)
            EVP_DigestUpdate(md, p, strlen(p));
        free(d);
        free(p);
    }
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
}

/* ---- reloading -------------------------------------------------------------------------- */

static void record_failure(reloader_t *r, const char *why, const char *err)
{
    pthread_mutex_lock(&r->mu);
    r->failures++;
    free(r->last_error);
    r->last_error = strdup(err ? err : "unknown error");
    pthread_mutex_unlock(&r->mu);
    log_error("reload (%s) refused, the running version stays:\n%s", why, err ? err : "?");
}

bool reloader_reload(reloader_t *r, const char *why)
{
    server_t *srv = r->srv;
    int n = srv->n_workers;
    bundle_t **fresh = calloc((size_t)n, sizeof *fresh);
    char *err = NULL;
    for (int i = 0; fresh && i < n; i++)
        if (!(fresh[i] = bundle_load(srv->cfg, &err)))
            break;
    if (!fresh || !fresh[n - 1]) {
        record_failure(r, why, fresh ? err : "out of memory");
        free(err);
        for (int i = 0; fresh && i < n; i++)
            bundle_free(fresh[i]);
        free(fresh);
        return false;
    }
    unsigned long long version = atomic_fetch_add(&srv->version, 1) + 1;
    unsigned char digest[32];
    bundle_digest(fresh[0], digest);
    if (fresh[0]->warnings)
        log_warn("%s", fresh[0]->warnings);
    size_t n_tools = fresh[0]->n_tools, n_rules = policy_set_size(fresh[0]->policies);
    json_t *scopes = policy_scopes(fresh[0]->policies); /* before fresh[0] is handed over */
    for (int i = 0; i < n; i++) {
        fresh[i]->version = version;
        worker_t *w = &srv->workers[i];
        bundle_t *superseded = atomic_exchange(&w->pending, fresh[i]);
        bundle_free(superseded); /* never used: a newer one came before the worker looked */
        worker_wake(w);
    }
    free(fresh);
    auth_set_policy_scopes(srv->auth, scopes); /* metadata and challenges follow the policies */
    json_decref(scopes);
    pthread_mutex_lock(&r->mu);
    bool changed = memcmp(digest, r->digest, sizeof digest) != 0;
    memcpy(r->digest, digest, sizeof digest);
    r->reloads++;
    r->loaded_at = time(NULL);
    free(r->last_error);
    r->last_error = NULL;
    pthread_mutex_unlock(&r->mu);
    log_notice("reload (%s): version %llu, %zu tools, %zu policy rules%s", why, version, n_tools,
               n_rules, changed ? ", the tool list changed" : "");
    if (changed)
        http_broadcast(srv, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
    return true;
}

void reloader_request(reloader_t *r, const char *why)
{
    (void)why;
    atomic_store(&r->requested, 1);
    uint64_t one = 1;
    ssize_t n = write(r->wake, &one, sizeof one);
    (void)n;
}

json_t *reloader_status(reloader_t *r)
{
    pthread_mutex_lock(&r->mu);
    char when[40] = "";
    struct tm tm;
    gmtime_r(&r->loaded_at, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *st = json_pack("{s:I, s:s, s:I, s:I, s:b}", "version",
                           (json_int_t)atomic_load(&r->srv->version), "loaded_at", when,
                           "reloads", (json_int_t)r->reloads, "failures",
                           (json_int_t)r->failures, "restart_needed", r->restart_needed);
    json_object_set_new(st, "last_error", r->last_error ? json_string(r->last_error)
                                                        : json_null());
    pthread_mutex_unlock(&r->mu);
    return st;
}

/* ---- watching --------------------------------------------------------------------------- */

static void watch_tree(reloader_t *r, const char *dir, int depth)
{
    if (!dir || depth > 4)
        return;
    int wd = inotify_add_watch(r->ino, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                                IN_CREATE | IN_DELETE | IN_DELETE_SELF |
                                                IN_MOVE_SELF | IN_ONLYDIR);
    if (wd < 0)
        return;
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/lib", dir);
    struct stat st;
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
        watch_tree(r, sub, depth + 1);
}

/* (Re)arms every watch: directories may have appeared or been replaced since. */
static void rewatch(reloader_t *r)
{
    if (r->ino < 0)
        return;
    close(r->ino);
    r->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->ino < 0)
        return;
    const config_t *c = r->srv->cfg;
    watch_tree(r, c->scripts_dir, 0);
    watch_tree(r, c->policies_dir, 0);
    watch_tree(r, c->shadow_policies, 0);
    if (c->config_path) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", c->config_path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        inotify_add_watch(r->ino, slash ? dir : ".", IN_CLOSE_WRITE | IN_MOVED_TO);
    }
}

static bool lua_name(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".lua") == 0 && name[0] != '.';
}

/* Drains inotify; true when a reload is due. Notes config edits as needing a restart. */
static bool read_events(reloader_t *r)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool relevant = false;
    for (;;) {
        ssize_t len = read(r->ino, buf, sizeof buf);
        if (len <= 0)
            break;
        for (char *p = buf; p < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            const char *name = ev->len ? ev->name : "";
            if (r->config_name && strcmp(name, r->config_name) == 0) {
                pthread_mutex_lock(&r->mu);
                bool first = !r->restart_needed;
                r->restart_needed = true;
                pthread_mutex_unlock(&r->mu);
                if (first)
                    log_warn("the configuration file changed: restart luamcp to apply it "
                             "(scripts and policies reload live; configuration does not)");
            } else if ((ev->mask & (IN_ISDIR | IN_DELETE_SELF | IN_MOVE_SELF)) ||
                       lua_name(name)) {
                relevant = true;
            }
            p += sizeof *ev + ev->len;
        }
    }
    return relevant;
}

/* ---- the admin socket ------------------------------------------------------------------- */

static int admin_listen(reloader_t *r, const char *path, char **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        *err = strdup("admin_socket path too long");
        return -1;
    }
    strcpy(sa.sun_path, path);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        mkdir(dir, 0700);
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
        close(probe);
        *err = malloc(strlen(path) + 96);
        if (*err)
            sprintf(*err, "another luamcp is using the admin socket %s (set admin_socket)", path);
        return -1;
    }
    if (probe >= 0)
        close(probe);
    unlink(path); /* a stale socket of a server that is gone */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(0177); /* 0600: only our user may reload */
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || listen(fd, 8) != 0) {
        if (fd >= 0)
            close(fd);
        *err = malloc(strlen(path) + 96);
        if (*err)
            sprintf(*err, "cannot listen on the admin socket %s: %s", path, strerror(errno));
        return -1;
    }
    r->admin_path = strdup(path);
    return fd;
}

static void admin_serve(reloader_t *r)
{
    int fd = accept4(r->admin, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char line[ADMIN_LINE] = "";
    ssize_t n = recv(fd, line, sizeof line - 1, 0);
    if (n > 0) {
        line[n] = '\0';
        line[strcspn(line, "\r\n")] = '\0';
    }
    json_t *reply;
    if (strcmp(line, "reload") == 0) {
        bool ok = reloader_reload(r, "luamcp reload");
        if (ok)
            rewatch(r);
        reply = reloader_status(r);
        json_object_set_new(reply, "ok", json_boolean(ok));
    } else if (strcmp(line, "status") == 0) {
        reply = reloader_status(r);
        json_object_set_new(reply, "ok", json_true());
    } else {
        reply = json_pack("{s:b, s:s}", "ok", 0, "error", "commands: reload, status");
    }
    char *text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    if (text) {
        ssize_t w = send(fd, text, strlen(text), MSG_NOSIGNAL);
        (void)w;
        free(text);
    }
    close(fd);
}

/* ---- the thread ------------------------------------------------------------------------- */

static void *run(void *arg)
{
    reloader_t *r = arg;
    long long due = 0; /* a debounced reload is pending until then */
    while (!atomic_load(&r->stop)) {
        struct pollfd fds[3] = {{.fd = r->wake, .events = POLLIN},
                                {.fd = r->ino, .events = POLLIN},
                                {.fd = r->admin, .events = POLLIN}};
        int timeout = due ? (int)(due - now_ms_wall() > 0 ? due - now_ms_wall() : 0) : -1;
        int n = poll(fds, 3, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (fds[0].revents & POLLIN) {
            uint64_t v;
            ssize_t k = read(r->wake, &v, sizeof v);
            (void)k;
        }
        if (atomic_load(&r->stop))
            break;
        if (fds[1].revents & POLLIN && read_events(r))
            due = now_ms_wall() + DEBOUNCE_MS; /* wait for the editor to finish saving */
        if (fds[2].revents & POLLIN)
            admin_serve(r);
        if (atomic_exchange(&r->requested, 0)) {
            due = 0;
            if (reloader_reload(r, "SIGHUP"))
                rewatch(r);
        } else if (due && now_ms_wall() >= due) {
            due = 0;
            if (reloader_reload(r, "files changed"))
                rewatch(r);
        }
    }
    return NULL;
}

reloader_t *reloader_new(server_t *srv, char **err)
{
    reloader_t *r = calloc(1, sizeof *r);
    if (!r) {
        *err = strdup("out of memory");
        return NULL;
    }
    r->srv = srv;
    r->ino = r->admin = -1;
    pthread_mutex_init(&r->mu, NULL);
    r->loaded_at = time(NULL);
    bundle_digest(srv->workers[0].bundle, r->digest);
    r->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    r->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->wake < 0) {
        *err = strdup("cannot create the reload thread's eventfd");
        goto fail;
    }
    if (r->ino < 0)
        log_warn("inotify unavailable (%s): reload with SIGHUP or luamcp reload", strerror(errno));
    if (srv->cfg->config_path) {
        const char *slash = strrchr(srv->cfg->config_path, '/');
        r->config_name = strdup(slash ? slash + 1 : srv->cfg->config_path);
    }
    rewatch(r);
    char *admin = config_runtime_path(srv->cfg->admin_socket, "admin", ".sock", srv->cfg,
                                      server_port(srv));
    if (admin)
        r->admin = admin_listen(r, admin, err);
    free(admin);
    if (admin && r->admin < 0)
        goto fail;
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        *err = strdup("cannot start the reload thread");
        goto fail;
    }
    r->running = true;
    return r;
fail:
    reloader_free(r);
    return NULL;
}

void reloader_free(reloader_t *r)
{
    if (!r)
        return;
    if (r->running) {
        atomic_store(&r->stop, true);
        uint64_t one = 1;
        ssize_t n = write(r->wake, &one, sizeof one);
        (void)n;
        pthread_join(r->thread, NULL);
    }
    if (r->ino >= 0)
        close(r->ino);
    if (r->wake >= 0)
        close(r->wake);
    if (r->admin >= 0) {
        close(r->admin);
        unlink(r->admin_path);
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", r->admin_path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            rmdir(dir); /* .luamcp/ goes when we leave it empty */
        }
    }
    free(r->admin_path);
    free(r->config_name);
    free(r->last_error);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int reloader_client(const char *path, const char *command)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "luamcp: no usable admin socket path\n");
        return 2;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "luamcp: no server answers on %s (%s); is luamcp serve running with "
                        "this admin_socket?\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 2;
    }
    char line[ADMIN_LINE];
    snprintf(line, sizeof line, "%s\n", command);
    ssize_t w = send(fd, line, strlen(line), MSG_NOSIGNAL);
    (void)w;
    char reply[16384];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof reply - 1 && (n = recv(fd, reply + len, sizeof reply - 1 - len, 0)) > 0)
        len += (size_t)n;
    reply[len] = '\0';
    close(fd);
    json_t *doc = json_loads(reply, 0, NULL);
    if (!doc) {
        fprintf(stderr, "luamcp: unreadable answer from the server\n");
        return 2;
    }
    char *pretty = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(pretty ? pretty : reply);
    free(pretty);
    int rc = json_is_true(json_object_get(doc, "ok")) ? 0 : 1;
    json_decref(doc);
    return rc;
}
