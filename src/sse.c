/* sse — Server-Sent Events: streams (one HTTP response each, fed from any thread, read by
 * libmicrohttpd on its worker) and channels, which make them resumable.
 *
 * A channel is the sequence of events of one logical stream: a session's GET stream, or the
 * answer to one POST. Every event it carries has an id "CHANNEL-SEQ" and is kept in the
 * channel's log (bounded); a stream is only the channel's current writer. When a connection
 * drops, or the server ends it on purpose (ctx.close_stream), the channel lives on for
 * RESUME_WINDOW_MS: a GET with Last-Event-ID on the same session gets every later event of
 * that channel, then what comes next. Channel ids are 64 random bits; a channel answers only
 * its own session and caller. Each caller (each session when there is no verified caller) keeps
 * at most CHAN_PER_OWNER channels registered: its next one evicts its own oldest (idle first),
 * and when the table is full the caller holding the most loses one, so a flood of GETs (from
 * one caller or many) does not take away the resumption of a caller with few. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/log.h"
#include "server_int.h"

#define STREAM_MAX_BUFFER (4u << 20) /* a stream whose client stopped reading is closed */
#define CHAN_MAX_EVENTS 512
#define CHAN_MAX_BYTES (1u << 20)
#define CHAN_MAX 10000
#define CHAN_PER_OWNER 256 /* a caller past this evicts its own oldest, never another's */
#define RESUME_WINDOW_MS 60000
#define RETRY_MS 1000

/* ---- streams -------------------------------------------------------------------------------- */

stream_t *sse_stream_new(worker_t *w, struct MHD_Connection *conn, const char *session)
{
    stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->refs = 1; /* the response's */
    s->w = w;
    s->conn = conn;
    snprintf(s->session, sizeof s->session, "%s", session ? session : "");
    return s;
}

void sse_stream_ref(stream_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->refs++;
    pthread_mutex_unlock(&s->mu);
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sse_stream_release(stream_t *s)
{
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left == 0) {
        if (s->chan)
            sse_chan_release(s->chan);
        free_strings(s->listen_uris, s->n_listen_uris);
        free_strings(s->listen_tasks, s->n_listen_tasks);
        free(s->listen_id);
        pthread_mutex_destroy(&s->mu);
        free(s->buf);
        free(s);
    }
}

/* s->mu held */
static void append_locked(stream_t *s, const char *data, size_t n)
{
    if (s->closed)
        return;
    if (s->off == s->len)
        s->off = s->len = 0;
    if (s->len + n > (s->max ? s->max : STREAM_MAX_BUFFER)) {
        s->closed = true; /* the client is not reading: end the stream, not the server */
        return;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n)
            cap *= 2;
        char *grown = realloc(s->buf, cap);
        if (!grown) {
            s->closed = true;
            return;
        }
        s->buf = grown;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}

void sse_stream_append(stream_t *s, const char *data, size_t n)
{
    pthread_mutex_lock(&s->mu);
    append_locked(s, data, n);
    pthread_mutex_unlock(&s->mu);
    worker_wake(s->w); /* its worker resumes its connection */
}

void sse_stream_close(stream_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    pthread_mutex_unlock(&s->mu);
    worker_wake(s->w);
}

void sse_stream_tick(stream_t *s, bool ping, bool closing)
{
    pthread_mutex_lock(&s->mu);
    if (closing)
        s->closed = true;
    if (ping)
        append_locked(s, ": keepalive\n\n", 13);
    bool resume = s->suspended && (s->off < s->len || s->closed);
    if (resume)
        s->suspended = false;
    pthread_mutex_unlock(&s->mu);
    if (resume)
        MHD_resume_connection(s->conn);
}

ssize_t sse_stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    stream_t *s = cls;
    pthread_mutex_lock(&s->mu);
    if (s->off < s->len) {
        size_t n = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        pthread_mutex_unlock(&s->mu);
        return (ssize_t)n;
    }
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* Nothing to send: park the connection until the worker resumes it. */
    s->suspended = true;
    pthread_mutex_unlock(&s->mu);
    MHD_suspend_connection(s->conn);
    return 0;
}

/* ---- channels ------------------------------------------------------------------------------- */

typedef struct event {
    unsigned long long seq;
    char *text; /* the whole SSE event, id line included */
    size_t len;
} event_t;

struct chan {
    char id[17];
    char session[SESSION_ID_LEN + 1];
    unsigned char owner[SESSION_OWNER_LEN]; /* the caller who opened it (auth_caller_owner) */
    pthread_mutex_t mu;
    int refs;
    event_t *ev;          /* oldest first */
    size_t n, cap, bytes;
    unsigned long long seq;
    stream_t *writer;     /* holds a reference; NULL between connections */
    bool done;            /* no event will come any more */
    bool detached;        /* the server ended the writer on purpose: log only until a resume */
    bool standalone;      /* a session's GET stream (not the answer to a POST) */
    long long idle_since; /* without writer or done since (ms); 0 while it has a writer */
    struct holder *holder; /* its count in srv->chan_holders, while registered */
    chan_t *next;         /* srv->chans */
};

/* ---- who holds channels: the bound per caller ----------------------------------------------- */

/* A caller's count of registered channels (an anonymous caller's per session), in a small hash
 * table under srv->chans_mu; freed when its count falls to 0. */
typedef struct holder {
    unsigned char owner[SESSION_OWNER_LEN];
    char session[SESSION_ID_LEN + 1]; /* "" unless the owner is anonymous */
    unsigned n;
    struct holder *next;
} holder_t;

#define HOLDER_BUCKETS 1024

struct chan_holders {
    holder_t *bucket[HOLDER_BUCKETS];
};

static bool anonymous(const unsigned char owner[SESSION_OWNER_LEN])
{
    for (size_t i = 0; i < SESSION_OWNER_LEN; i++)
        if (owner[i])
            return false;
    return true;
}

static unsigned holder_hash(const unsigned char owner[SESSION_OWNER_LEN], const char *session)
{
    unsigned h = 2166136261u; /* FNV-1a: the owner is a digest already, the session is random */
    for (size_t i = 0; i < 8; i++)
        h = (h ^ owner[i]) * 16777619u;
    for (const char *p = session; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % HOLDER_BUCKETS;
}

/* srv->chans_mu held: c's holder (made when new), or NULL without memory. */
static holder_t *holder_of(server_t *srv, const chan_t *c)
{
    if (!srv->chan_holders && !(srv->chan_holders = calloc(1, sizeof *srv->chan_holders)))
        return NULL;
    const char *session = anonymous(c->owner) ? c->session : "";
    holder_t **b = &srv->chan_holders->bucket[holder_hash(c->owner, session)];
    for (holder_t *h = *b; h; h = h->next)
        if (memcmp(h->owner, c->owner, sizeof h->owner) == 0 && strcmp(h->session, session) == 0)
            return h;
    holder_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    memcpy(h->owner, c->owner, sizeof h->owner);
    snprintf(h->session, sizeof h->session, "%s", session);
    h->next = *b;
    *b = h;
    return h;
}

/* srv->chans_mu held: h out of the table, freed. */
static void holder_unlink(server_t *srv, holder_t *h)
{
    for (holder_t **pp = &srv->chan_holders->bucket[holder_hash(h->owner, h->session)]; *pp;
         pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            free(h);
            return;
        }
}

/* srv->chans_mu held: one channel fewer for h; h is freed at 0. */
static void holder_drop(server_t *srv, holder_t *h)
{
    if (h && --h->n == 0)
        holder_unlink(srv, h);
}

/* srv->chans_mu held: the holder with the most channels, or NULL. */
static holder_t *largest_holder(server_t *srv)
{
    holder_t *best = NULL;
    for (size_t i = 0; srv->chan_holders && i < HOLDER_BUCKETS; i++)
        for (holder_t *h = srv->chan_holders->bucket[i]; h; h = h->next)
            if (!best || h->n > best->n)
                best = h;
    return best;
}

/* srv->chans_mu held: takes h's oldest channel out of the registry (one without a writer
 * first; the list is newest first, so the last match is the oldest); the caller releases the
 * registry's reference. */
static chan_t *unregister_oldest(server_t *srv, holder_t *h)
{
    chan_t **oldest = NULL, **oldest_idle = NULL;
    for (chan_t **pp = &srv->chans; *pp; pp = &(*pp)->next) {
        if ((*pp)->holder != h)
            continue;
        oldest = pp;
        pthread_mutex_lock(&(*pp)->mu);
        if (!(*pp)->writer)
            oldest_idle = pp;
        pthread_mutex_unlock(&(*pp)->mu);
    }
    chan_t **pick = oldest_idle ? oldest_idle : oldest;
    if (!pick)
        return NULL;
    chan_t *gone = *pick;
    *pick = gone->next;
    srv->n_chans--;
    gone->holder = NULL;
    holder_drop(srv, h);
    return gone;
}

/* srv->chans_mu held: registers c, making room first: a holder at its bound loses its own
 * oldest channel; when the table is full, the holder with the most channels loses one, if it
 * has more than c's holder (so a flood of many callers cannot push out a caller with few).
 * Returns the channel that lost its place (to release), and whether c has one in *placed. */
static chan_t *register_locked(server_t *srv, chan_t *c, bool *placed)
{
    *placed = false;
    holder_t *h = holder_of(srv, c);
    if (!h)
        return NULL;
    chan_t *gone = NULL;
    if (h->n >= CHAN_PER_OWNER) {
        gone = unregister_oldest(srv, h);
    } else if (srv->n_chans >= CHAN_MAX) {
        holder_t *big = largest_holder(srv);
        if (big && big->n > h->n + 1)
            gone = unregister_oldest(srv, big);
    }
    if (srv->n_chans >= CHAN_MAX) {
        if (!h->n)
            holder_unlink(srv, h); /* made for nothing */
        return gone;
    }
    h->n++;
    c->holder = h;
    c->next = srv->chans;
    srv->chans = c;
    srv->n_chans++;
    *placed = true;
    return gone;
}

chan_t *sse_chan_new(server_t *srv, const char *session,
                     const unsigned char owner[SESSION_OWNER_LEN], bool standalone)
{
    unsigned char raw[8];
    chan_t *c = calloc(1, sizeof *c);
    if (!c || RAND_bytes(raw, sizeof raw) != 1) {
        free(c);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        snprintf(c->id + 2 * i, 3, "%02x", raw[i]);
    snprintf(c->session, sizeof c->session, "%s", session ? session : "");
    memcpy(c->owner, owner, sizeof c->owner);
    c->standalone = standalone;
    pthread_mutex_init(&c->mu, NULL);
    c->refs = 2; /* the registry's and the caller's */
    c->idle_since = now_ms();
    bool placed;
    pthread_mutex_lock(&srv->chans_mu);
    chan_t *evicted = register_locked(srv, c, &placed);
    pthread_mutex_unlock(&srv->chans_mu);
    sse_chan_release(evicted); /* the registry's reference: it can no longer be resumed */
    if (!placed) {
        /* too many: it works, but cannot be resumed */
        c->refs = 1;
    }
    return c;
}

static void chan_free(chan_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ev[i].text);
    free(c->ev);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void sse_chan_release(chan_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left == 0)
        chan_free(c);
}

const char *sse_chan_id(const chan_t *c) { return c->id; }
bool sse_chan_standalone(const chan_t *c) { return c->standalone; }

/* c->mu held: makes s (or nobody) the writer, closing the previous one. */
static void set_writer(chan_t *c, stream_t *s)
{
    stream_t *old = c->writer;
    c->writer = s;
    c->idle_since = s && !c->done ? 0 : now_ms();
    if (old) {
        sse_stream_close(old);
        sse_stream_release(old); /* the channel's reference */
    }
}

void sse_chan_prime(chan_t *c)
{
    char ev[64];
    pthread_mutex_lock(&c->mu);
    int n = snprintf(ev, sizeof ev, "id: %s-0\nretry: %d\ndata: \n\n", c->id, RETRY_MS);
    if (c->writer)
        sse_stream_append(c->writer, ev, (size_t)n);
    pthread_mutex_unlock(&c->mu);
}

void sse_chan_attach(chan_t *c, stream_t *s, unsigned long long after)
{
    sse_stream_ref(s); /* the channel's */
    pthread_mutex_lock(&c->mu);
    pthread_mutex_lock(&s->mu);
    if (!s->chan) {
        s->chan = c;
        c->refs++;
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].seq > after)
            append_locked(s, c->ev[i].text, c->ev[i].len);
    if (c->done)
        s->closed = true;
    pthread_mutex_unlock(&s->mu);
    c->detached = false;
    set_writer(c, s);
    pthread_mutex_unlock(&c->mu);
    worker_wake(s->w);
}

void sse_chan_emit(chan_t *c, const char *json)
{
    pthread_mutex_lock(&c->mu);
    if (c->done) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    unsigned long long seq = ++c->seq;
    size_t n = strlen(json) + 64;
    char *text = malloc(n);
    if (text) {
        size_t len = (size_t)snprintf(text, n, "id: %s-%llu\nevent: message\ndata: %s\n\n",
                                      c->id, seq, json);
        if (c->writer && !c->detached)
            sse_stream_append(c->writer, text, len);
        /* the log keeps what a resumed stream may need, oldest first out */
        while (c->n && (c->n >= CHAN_MAX_EVENTS || c->bytes + len > CHAN_MAX_BYTES)) {
            c->bytes -= c->ev[0].len;
            free(c->ev[0].text);
            memmove(c->ev, c->ev + 1, --c->n * sizeof *c->ev);
        }
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 8;
            event_t *grown = realloc(c->ev, cap * sizeof *grown);
            if (grown) {
                c->ev = grown;
                c->cap = cap;
            }
        }
        if (c->n < c->cap && len <= CHAN_MAX_BYTES) {
            c->ev[c->n++] = (event_t){seq, text, len};
            c->bytes += len;
            text = NULL;
        }
        free(text);
    }
    pthread_mutex_unlock(&c->mu);
}

void sse_chan_detach_writer(chan_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->detached = true;
    set_writer(c, NULL);
    pthread_mutex_unlock(&c->mu);
}

void sse_chan_finish(chan_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->done = true;
    if (c->writer)
        sse_stream_close(c->writer); /* after what it has */
    c->idle_since = now_ms();
    pthread_mutex_unlock(&c->mu);
}

void sse_chan_lost_writer(chan_t *c, stream_t *s)
{
    pthread_mutex_lock(&c->mu);
    bool mine = c->writer == s;
    if (mine) {
        c->writer = NULL;
        c->idle_since = now_ms();
    }
    pthread_mutex_unlock(&c->mu);
    if (mine)
        sse_stream_release(s); /* the channel's reference */
}

chan_t *sse_chan_find(server_t *srv, const char *event_id, const char *session,
                      const unsigned char owner[SESSION_OWNER_LEN], unsigned long long *after)
{
    const char *dash = strchr(event_id, '-');
    if (!dash || dash - event_id != 16 || !session)
        return NULL;
    char *end;
    unsigned long long seq = strtoull(dash + 1, &end, 10);
    if (*end || dash[1] == '\0')
        return NULL;
    chan_t *found = NULL;
    pthread_mutex_lock(&srv->chans_mu);
    for (chan_t *c = srv->chans; c && !found; c = c->next)
        if (strncmp(c->id, event_id, 16) == 0 && strcmp(c->session, session) == 0 &&
            memcmp(c->owner, owner, SESSION_OWNER_LEN) == 0) {
            pthread_mutex_lock(&c->mu);
            c->refs++;
            pthread_mutex_unlock(&c->mu);
            found = c;
        }
    pthread_mutex_unlock(&srv->chans_mu);
    *after = seq;
    return found;
}

void sse_chan_sweep(server_t *srv, bool all)
{
    long long now = now_ms();
    chan_t *gone = NULL;
    pthread_mutex_lock(&srv->chans_mu);
    for (chan_t **pp = &srv->chans; *pp;) {
        chan_t *c = *pp;
        pthread_mutex_lock(&c->mu);
        bool stale = all || (c->idle_since && now - c->idle_since > RESUME_WINDOW_MS);
        pthread_mutex_unlock(&c->mu);
        if (stale) {
            *pp = c->next;
            srv->n_chans--;
            holder_drop(srv, c->holder);
            c->holder = NULL;
            c->next = gone;
            gone = c;
        } else {
            pp = &c->next;
        }
    }
    if (all) { /* every holder went with its channels */
        free(srv->chan_holders);
        srv->chan_holders = NULL;
    }
    pthread_mutex_unlock(&srv->chans_mu);
    while (gone) {
        chan_t *c = gone;
        gone = c->next;
        sse_chan_release(c); /* the registry's reference */
    }
}
