#include "luamcp/audit.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "luamcp/clock.h"
#include "luamcp/jsonio.h"
#include "luamcp/log.h"

#define BUF_SIZE 65536
#define MAX_LINE 16384 /* a longer record is cut down to its decision fields */
#define MAX_FAST_LINE 32768 /* audit_begin's: room for every string field at its longest */
#define RESERVE 1024        /* of it, kept free by audit_json for the fields after it */

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
    text_out line;         /* the record audit_begin is writing */
    char *line_buf;        /* MAX_FAST_LINE bytes */
    long long first_ms;    /* monotonic, when the oldest record in data was queued */
    long long stamp_sec;   /* the second `stamp` spells */
    char stamp[24];        /* "YYYY-MM-DDTHH:MM:SS" */
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
    if (b && (!(b->data = malloc(BUF_SIZE)) || !(b->line_buf = malloc(MAX_FAST_LINE)))) {
        free(b->data);
        free(b);
        return NULL;
    }
    if (b)
        b->stamp_sec = -1;
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
    free(b->line_buf);
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
        long long now = (long long)time(NULL), last = atomic_load(&a->last_complaint);
        /* at most every 10 s while writes keep failing (an exchange here would stay silent
         * for as long as they fail more often than that) */
        if (now - last >= 10 && atomic_compare_exchange_strong(&a->last_complaint, &last, now))
            log_error("audit: cannot write records (%s); %llu writes lost so far",
                      strerror(errno), lost);
    }
    b->len = 0;
}

long long audit_due_in(const audit_buf_t *b, long long now_ms)
{
    if (!b || !b->len)
        return -1;
    long long left = b->first_ms + AUDIT_FLUSH_MS - now_ms;
    return left > 0 ? left : 0;
}

/* Now as "YYYY-MM-DDTHH:MM:SS.mmmZ" (the seconds spelt once a second). */
static void timestamp(audit_buf_t *b, char out[48])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if ((long long)ts.tv_sec != b->stamp_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(b->stamp, sizeof b->stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        b->stamp_sec = (long long)ts.tv_sec;
    }
    int ms = (int)(ts.tv_nsec / 1000000) % 1000;
    size_t n = strlen(b->stamp);
    memcpy(out, b->stamp, n);
    out[n] = '.', out[n + 1] = (char)('0' + ms / 100), out[n + 2] = (char)('0' + ms / 10 % 10);
    out[n + 3] = (char)('0' + ms % 10), out[n + 4] = 'Z', out[n + 5] = '\0';
}

/* Queues one whole line (len bytes, without its newline). */
static void queue_line(audit_buf_t *b, const char *line, size_t len)
{
    if (b->len + len + 1 > BUF_SIZE)
        audit_flush(b);
    if (len + 1 > BUF_SIZE) /* cannot happen with MAX_LINE < BUF_SIZE; kept as a bound */
        return;
    if (b->len == 0)
        b->first_ms = clock_mono_ms();
    memcpy(b->data + b->len, line, len);
    b->data[b->len + len] = '\n';
    b->len += len + 1;
}

void audit_record(audit_buf_t *b, json_t *record)
{
    if (!b || !record) {
        json_decref(record);
        return;
    }
    char when[48];
    timestamp(b, when);
    json_object_set_new(record, "time", json_string(when));
    size_t len;
    char *line = jsonio_dump(record, &len);
    if (line && len > MAX_LINE) {
        free(line);
        json_object_del(record, "args");
        json_object_set_new(record, "args_dropped", json_true());
        line = jsonio_dump(record, &len);
    }
    json_decref(record);
    if (line)
        queue_line(b, line, len);
    free(line);
}

text_out *audit_begin(audit_buf_t *b)
{
    if (!b)
        return NULL;
    b->line = (text_out){b->line_buf, MAX_FAST_LINE, 0, false};
    text_put(&b->line, "{", 1);
    return &b->line;
}

/* ,"k": (no comma after the opening brace), in one append: keys are the writer's own names */
static void key(text_out *o, const char *k)
{
    char seg[64];
    size_t n = strlen(k), at = 0;
    if (n > sizeof seg - 4) { /* not one of ours today: the long way */
        text_put(o, o->len > 1 ? ",\"" : "\"", o->len > 1 ? 2 : 1);
        text_put(o, k, n);
        text_put(o, "\":", 2);
        return;
    }
    if (o->len > 1)
        seg[at++] = ',';
    seg[at++] = '"';
    memcpy(seg + at, k, n);
    at += n;
    seg[at++] = '"';
    seg[at++] = ':';
    text_put(o, seg, at);
}

void audit_str(text_out *o, const char *k, const char *value)
{
    if (!o || !value)
        return;
    key(o, k);
    text_put_json(o, value, strlen(value), AUDIT_FIELD_MAX);
}

void audit_int(text_out *o, const char *k, long long value)
{
    if (!o)
        return;
    char num[TEXT_INT_SIZE];
    key(o, k);
    char *p = text_int(num, value);
    text_put(o, p, (size_t)(num + sizeof num - p));
}

void audit_fixed2(text_out *o, const char *k, double value)
{
    if (!o)
        return;
    char num[TEXT_INT_SIZE];
    key(o, k);
    if (!isfinite(value)) { /* JSON has no NaN or infinity */
        text_put(o, "null", 4);
        return;
    }
    if (!(value > -1e15 && value < 1e15)) { /* out of llround's reach: rare, so snprintf */
        char big[320]; /* the largest double in %.2f: 309 digits, the sign, the decimals */
        text_put(o, big, (size_t)snprintf(big, sizeof big, "%.2f", value));
        return;
    }
    long long hundredths = llround(value * 100);
    unsigned long long m = hundredths < 0 ? 0ULL - (unsigned long long)hundredths
                                          : (unsigned long long)hundredths;
    char *p = text_int(num, (long long)(m / 100)); /* below 10^13 */
    if (hundredths < 0)
        *--p = '-';
    char frac[3] = {'.', (char)('0' + m / 10 % 10), (char)('0' + m % 10)};
    text_put(o, p, (size_t)(num + sizeof num - p));
    text_put(o, frac, sizeof frac);
}

void audit_json(text_out *o, const char *k, const json_t *v)
{
    if (!o || !v)
        return;
    size_t mark = o->len;
    key(o, k);
    /* room is kept for what may follow (bundle, latency, other fields' "_dropped", "time"),
     * so only such a field is ever dropped, never the record */
    size_t room = o->cap - RESERVE;
    size_t n = !o->full && room > o->len ? jsonio_dump_into(v, o->buf + o->len, room - o->len)
                                         : (size_t)-1;
    if (n != (size_t)-1) {
        o->len += n;
        return;
    }
    o->len = mark;
    o->buf[o->len] = '\0';
    char dropped[80];
    snprintf(dropped, sizeof dropped, "%s_dropped", k);
    key(o, dropped);
    text_put(o, "true", 4);
}

void audit_end(audit_buf_t *b)
{
    if (!b)
        return;
    char when[48];
    timestamp(b, when);
    text_out *o = &b->line;
    key(o, "time");
    text_put_json(o, when, strlen(when), sizeof when);
    text_put(o, "}", 1);
    if (!o->full) {
        queue_line(b, o->buf, o->len);
        return;
    }
    /* cannot happen with the bounds above; if it ever does, the record still leaves a trace */
    log_error("audit: a record did not fit in %d bytes; written cut short", MAX_FAST_LINE);
    char line[160];
    int n = snprintf(line, sizeof line, "{\"audit_error\":\"record too long\",\"time\":\"%s\"}",
                     when);
    queue_line(b, line, (size_t)n);
}
