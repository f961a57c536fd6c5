#include "luamcp/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "luamcp/log.h"

#define BUF_SIZE 65536
#define MAX_LINE 16384 /* a longer record is cut down to its decision fields */

struct audit {
    int fd;
    bool own_fd;
    pthread_mutex_t mu; /* one write at a time keeps lines whole on pipes too */
    atomic_ullong failures;
    atomic_llong last_complaint;
};

struct audit_buf {
    audit_t *a;
    char *data;
    size_t len;
};

audit_t *audit_open(const char *path, char **err)
{
    audit_t *a = calloc(1, sizeof *a);
    if (!a) {
        *err = strdup("out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    if (!path || strcmp(path, "-") == 0) {
        a->fd = STDOUT_FILENO;
        return a;
    }
    a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        *err = malloc(strlen(path) + 96);
        if (*err)
            sprintf(*err, "cannot open the audit file %s: %s", path, strerror(errno));
        free(a);
        return NULL;
    }
    a->own_fd = true;
    return a;
}

void audit_close(audit_t *a)
{
    if (!a)
        return;
    if (a->own_fd)
        close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

unsigned long long audit_failures(const audit_t *a) { return a ? atomic_load(&a->failures) : 0; }

audit_buf_t *audit_buf_new(audit_t *a)
{
    audit_buf_t *b = calloc(1, sizeof *b);
    if (b && !(b->data = malloc(BUF_SIZE))) {
        free(b);
        return NULL;
    }
    if (b)
        b->a = a;
    return b;
}

void audit_buf_free(audit_buf_t *b)
{
    if (!b)
        return;
    audit_flush(b);
    free(b->data);
    free(b);
}

void audit_flush(audit_buf_t *b)
{
    if (!b || !b->len || !b->a)
        return;
    audit_t *a = b->a;
    pthread_mutex_lock(&a->mu);
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(a->fd, b->data + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    pthread_mutex_unlock(&a->mu);
    if (off < b->len) {
        unsigned long long lost = atomic_fetch_add(&a->failures, 1) + 1;
        long long now = (long long)time(NULL);
        if (now - atomic_exchange(&a->last_complaint, now) >= 10)
            log_error("audit: cannot write records (%s); %llu writes lost so far",
                      strerror(errno), lost);
    }
    b->len = 0;
}

void audit_record(audit_buf_t *b, json_t *record)
{
    if (!b || !record) {
        json_decref(record);
        return;
    }
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
    json_object_set_new(record, "time", json_string(when));
    char *line = json_dumps(record, JSON_COMPACT);
    if (line && strlen(line) > MAX_LINE) {
        free(line);
        json_object_del(record, "args");
        json_object_set_new(record, "args_dropped", json_true());
        line = json_dumps(record, JSON_COMPACT);
    }
    json_decref(record);
    if (!line)
        return;
    size_t len = strlen(line);
    if (b->len + len + 1 > BUF_SIZE)
        audit_flush(b);
    if (len + 1 > BUF_SIZE) { /* cannot happen with MAX_LINE < BUF_SIZE; kept as a bound */
        free(line);
        return;
    }
    memcpy(b->data + b->len, line, len);
    b->data[b->len + len] = '\n';
    b->len += len + 1;
    free(line);
}
