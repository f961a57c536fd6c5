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
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "luamcp/avail.h"
#include "luamcp/clock.h"
#include "luamcp/log.h"
#include "luamcp/secret.h"
#include "luamcp/server.h"
#include "luamcp/treefile.h"
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
    /* What each watch is for: a tree (any .lua or directory change in it matters), a parent
     * (only the entry named like a watched directory matters), or the config's directory
     * (only the config file matters). One watch may have several roles. */
    struct role {
        int wd;
        enum { ROLE_TREE, ROLE_PARENT, ROLE_CONFIG } kind;
        char name[256];
    } roles[MAX_WATCHES];
    size_t n_roles;
    atomic_bool stop;
    atomic_int requested;
    pthread_mutex_t mu;     /* status below */
    unsigned long long reloads, failures;
    char *last_error;
    char *warnings; /* the live bundle's (files skipped, tools uncovered): luamcp status */
    time_t loaded_at;
    bool restart_needed;
    unsigned char digest[3][32]; /* of the tools, prompts and resources as listed, with what
                                    guards them: list_changed of a kind when its one changes */
};

/* ---- what was on disk ------------------------------------------------------------------ */

static void digest_dir(EVP_MD_CTX *md, const char *dir, int depth)
{
    if (!dir || depth > 4)
        return;
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        struct stat st;
        size_t len = strlen(name);
        /* lstat and treefile_open: a symlink is not followed and a FIFO named x.lua is not
         * opened for reading (that would wait for a writer, holding the reload thread) */
        if (name[0] != '.' && lstat(path, &st) == 0) {
            const char *why = NULL;
            int fd = -1;
            if (S_ISDIR(st.st_mode)) {
                digest_dir(md, path, depth + 1);
            } else if (len > 4 && strcmp(name + len - 4, ".lua") == 0 &&
                       (fd = treefile_open(dir, name, &why)) >= 0) {
                EVP_DigestUpdate(md, path, strlen(path) + 1);
                char buf[8192];
                ssize_t k;
                while ((k = read(fd, buf, sizeof buf)) > 0)
                    EVP_DigestUpdate(md, buf, (size_t)k);
                close(fd);
            }
        }
        free(names[i]);
    }
    free(names);
}

/* A digest of every script (with_scripts) and policy file: equal before and after loading the
 * bundles means every worker's bundle was built from the same files. */
static void tree_digest(const config_t *c, bool with_scripts, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    if (with_scripts)
        digest_dir(md, c->scripts_dir, 0);
    EVP_DigestUpdate(md, "\0policies", 10);
    digest_dir(md, c->policies_dir, 0);
    EVP_DigestUpdate(md, "\0shadow", 8);
    digest_dir(md, c->shadow_policies, 0);
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
}

/* ---- what clients see ---------------------------------------------------------------- */

/* Digest of every tool's descriptor, how many rules cover it and what they need, and of the
 * policy files themselves: if it changes, a client may see a different list (a policy change
 * notifies even when it only changes who sees what). */
/* What clients see of one kind (0 tools, 1 prompts, 2 resources): each listed descriptor and
 * the scopes that guard it. */
static void bundle_digest(const bundle_t *b, const unsigned char policies[32], int kind,
                          unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    if (policies)
        EVP_DigestUpdate(md, policies, 32);
    size_t n = kind == 0 ? b->n_tools : kind == 1 ? b->n_prompts : b->n_resources;
    for (size_t i = 0; i < n; i++) {
        const json_t *desc = kind == 0 ? b->tools[i].descriptor
                             : kind == 1 ? b->prompts[i].descriptor : b->resources[i].descriptor;
        size_t target = kind == 0 ? i
                        : kind == 1 ? bundle_prompt_target(b, &b->prompts[i])
                                    : bundle_resource_target(b, &b->resources[i]);
        char *d = json_dumps(desc, JSON_COMPACT | JSON_SORT_KEYS);
        char *p = policy_describe_scopes(b->policies, target);
        size_t rules = policy_rules_for(b->policies, target);
        EVP_DigestUpdate(md, &rules, sizeof rules);
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
    if (r->last_error)
        secret_redact(r->last_error); /* luamcp status shows it */
    pthread_mutex_unlock(&r->mu);
    log_error("reload (%s) refused, the running version stays:\n%s", why, err ? err : "?");
}

/* Loads one bundle per worker. The files may change while that runs (each worker's bundle is
 * read from disk): the tree digest before and after must agree, or it starts over, so every
 * worker serves the same version. NULL with *err when something does not load. */
static bundle_t **load_all(reloader_t *r, unsigned char policies[32], char **err)
{
    server_t *srv = r->srv;
    int n = srv->n_workers;
    for (int attempt = 0; attempt < 5; attempt++) {
        unsigned char before[32];
        tree_digest(srv->cfg, true, before);
        bundle_t **fresh = calloc((size_t)n, sizeof *fresh);
        int built = 0;
        while (fresh && built < n && (fresh[built] = bundle_load(srv->cfg, err)))
            built++;
        if (fresh && built == n) {
            unsigned char after[32];
            tree_digest(srv->cfg, true, after);
            if (memcmp(before, after, 32) == 0) {
                tree_digest(srv->cfg, false, policies); /* the policies alone: list_changed */
                return fresh;
            }
        }
        for (int i = 0; fresh && i < built; i++)
            bundle_free(fresh[i]);
        bool failed = !fresh || built < n;
        free(fresh);
        if (failed) {
            if (!*err)
                *err = strdup("out of memory");
            return NULL;
        }
        free(*err); /* files changed under us: load them again */
        *err = NULL;
    }
    *err = strdup("the files kept changing while they were loaded; the next change retries");
    return NULL;
}

bool reloader_reload(reloader_t *r, const char *why)
{
    server_t *srv = r->srv;
    int n = srv->n_workers;
    char *err = NULL;
    unsigned char policies[32];
    bundle_t **fresh = load_all(r, policies, &err);
    if (!fresh) {
        record_failure(r, why, err);
        free(err);
        return false;
    }
    unsigned long long version = atomic_fetch_add(&srv->version, 1) + 1;
    unsigned char digest[3][32];
    for (int k = 0; k < 3; k++)
        bundle_digest(fresh[0], policies, k, digest[k]);
    if (fresh[0]->warnings)
        log_warn("%s", fresh[0]->warnings);
    char *warnings = fresh[0]->warnings ? strdup(fresh[0]->warnings) : NULL;
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
    bool kind_changed[3];
    for (int k = 0; k < 3; k++)
        kind_changed[k] = memcmp(digest[k], r->digest[k], 32) != 0;
    bool changed = kind_changed[0];
    memcpy(r->digest, digest, sizeof digest);
    r->reloads++;
    r->loaded_at = time(NULL);
    free(r->last_error);
    r->last_error = NULL;
    free(r->warnings);
    r->warnings = warnings;
    pthread_mutex_unlock(&r->mu);
    log_notice("reload (%s): version %llu, %zu tools, %zu policy rules%s", why, version, n_tools,
               n_rules, changed ? ", the tool list changed" : "");
    for (int k = 0; k < 3; k++)
        if (kind_changed[k])
            listen_list_changed(srv, k);
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

static void add_role(reloader_t *r, int wd, int kind, const char *name)
{
    for (size_t i = 0; i < r->n_roles; i++)
        if (r->roles[i].wd == wd && (int)r->roles[i].kind == kind &&
            strcmp(r->roles[i].name, name) == 0)
            return;
    if (wd < 0 || r->n_roles >= MAX_WATCHES)
        return;
    struct role *ro = &r->roles[r->n_roles++];
    ro->wd = wd;
    ro->kind = kind;
    snprintf(ro->name, sizeof ro->name, "%s", name);
}

static void watch_tree(reloader_t *r, const char *dir, int depth)
{
    if (!dir || depth > 4)
        return;
    int wd = inotify_add_watch(r->ino, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                                IN_CREATE | IN_DELETE | IN_DELETE_SELF |
                                                IN_MOVE_SELF | IN_ONLYDIR | IN_MASK_ADD);
    if (wd < 0)
        return;
    add_role(r, wd, ROLE_TREE, "");
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/lib", dir);
    struct stat st;
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
        watch_tree(r, sub, depth + 1);
}

/* Watches dir's parent for dir itself appearing again (deleted and re-created, or a symlink
 * swapped in by a deploy): events named like it reach read_events as relevant. */
static void watch_parent(reloader_t *r, const char *dir)
{
    if (!dir)
        return;
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == parent)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    int wd = inotify_add_watch(r->ino, slash ? parent : ".", IN_CREATE | IN_MOVED_TO |
                               IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR | IN_MASK_ADD);
    const char *base = strrchr(dir, '/');
    add_role(r, wd, ROLE_PARENT, base ? base + 1 : dir);
}

/* (Re)arms every watch, keeping the inotify descriptor (and so every event queued on it):
 * adding a watch that exists is harmless, and directories may have appeared since. */
static void rewatch(reloader_t *r)
{
    if (r->ino < 0)
        return;
    const config_t *c = r->srv->cfg;
    const char *dirs[] = {c->scripts_dir, c->policies_dir, c->shadow_policies};
    for (int i = 0; i < 3; i++) {
        watch_tree(r, dirs[i], 0);
        watch_parent(r, dirs[i]);
    }
    if (c->config_path) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", c->config_path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        int wd = inotify_add_watch(r->ino, slash ? dir : ".", IN_CLOSE_WRITE | IN_MOVED_TO |
                                   IN_ONLYDIR | IN_MASK_ADD);
        add_role(r, wd, ROLE_CONFIG, r->config_name ? r->config_name : "");
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
            if (ev->mask & IN_IGNORED) { /* the watch is gone (its directory was): forget it */
                for (size_t i = 0; i < r->n_roles;)
                    if (r->roles[i].wd == ev->wd)
                        r->roles[i] = r->roles[--r->n_roles];
                    else
                        i++;
                relevant = true;
                p += sizeof *ev + ev->len;
                continue;
            }
            for (size_t i = 0; i < r->n_roles; i++) {
                const struct role *ro = &r->roles[i];
                if (ro->wd != ev->wd)
                    continue;
                if (ro->kind == ROLE_CONFIG && strcmp(name, ro->name) == 0 &&
                    (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))) {
                    pthread_mutex_lock(&r->mu);
                    bool first = !r->restart_needed;
                    r->restart_needed = true;
                    pthread_mutex_unlock(&r->mu);
                    if (first)
                        log_warn("the configuration file changed: restart luamcp to apply it "
                                 "(scripts and policies reload live; configuration does not)");
                } else if (ro->kind == ROLE_PARENT && strcmp(name, ro->name) == 0) {
                    relevant = true; /* the watched directory itself came or went */
                } else if (ro->kind == ROLE_TREE &&
                           ((ev->mask & (IN_ISDIR | IN_DELETE_SELF | IN_MOVE_SELF)) ||
                            lua_name(name))) {
                    relevant = true;
                }
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
        rewatch(r);
        reply = reloader_status(r);
        json_object_set_new(reply, "ok", json_boolean(ok));
    } else if (strcmp(line, "status") == 0) {
        reply = reloader_status(r);
        /* here, not in /healthz: the names of what is switched off are for operators */
        json_object_set_new(reply, "switched_off", avail_status());
        pthread_mutex_lock(&r->mu); /* files skipped (symlinks, FIFOs …), tools uncovered */
        json_object_set_new(reply, "warnings", r->warnings ? json_string(r->warnings)
                                                           : json_null());
        pthread_mutex_unlock(&r->mu);
        unsigned held, live;
        task_table_counts(r->srv->tasks, &held, &live);
        json_object_set_new(reply, "tasks", json_pack("{s:i, s:i}", "held", (int)held,
                                                      "running_or_waiting", (int)live));
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
        int timeout = due ? (int)(due - clock_mono_ms() > 0 ? due - clock_mono_ms() : 0) : -1;
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
            due = clock_mono_ms() + DEBOUNCE_MS; /* wait for the editor to finish saving */
        if (fds[2].revents & POLLIN)
            admin_serve(r);
        if (atomic_exchange(&r->requested, 0)) {
            due = 0;
            reloader_reload(r, "SIGHUP");
            rewatch(r); /* after failures too: a directory may be back */
        } else if (due && clock_mono_ms() >= due) {
            due = 0;
            reloader_reload(r, "files changed");
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
    const char *w0 = srv->workers[0].bundle->warnings;
    r->warnings = w0 ? strdup(w0) : NULL;
    unsigned char tree[32];
    tree_digest(srv->cfg, false, tree);
    for (int k = 0; k < 3; k++)
        bundle_digest(srv->workers[0].bundle, tree, k, r->digest[k]);
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
    free(r->warnings);
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
