/* session — Mcp-Session-Id table shared by all workers (one mutex; a lookup is a hash probe).
 * Ids are 32 hex characters from OpenSSL's CSPRNG. Idle sessions expire; the table is
 * bounded. Each session may carry one attached object (the GET stream), opaque here. */
#ifndef LUAMCP_SESSION_H
#define LUAMCP_SESSION_H

#include <stdbool.h>

#include "luamcp/auth.h"

#define SESSION_ID_LEN 32
#define SESSION_OWNER_LEN AUTH_OWNER_LEN /* who opened the session (auth_caller_owner) */

typedef struct session_store session_store_t;

/* At most max_sessions in all, and per_caller (0: no bound) for one authenticated caller;
 * sessions opened without authentication are bound by max_sessions alone. */
session_store_t *session_store_new(unsigned max_sessions, unsigned per_caller, unsigned idle_s);
/* Frees the table; calls on_drop for every attached object still there. */
void session_store_free(session_store_t *st, void (*on_drop)(void *attached));

#define SESSION_FULL (-1)        /* max_sessions are open, none idle */
#define SESSION_CALLER_FULL (-2) /* this caller holds per_caller sessions, none idle */

/* Creates a session for protocol version (a static string), bound to owner: only requests of
 * the same caller may use it (a session is never an authentication). 0, SESSION_FULL (or out
 * of memory) or SESSION_CALLER_FULL. */
int session_create(session_store_t *st, const char *version,
                   const unsigned char owner[SESSION_OWNER_LEN], char id[SESSION_ID_LEN + 1]);
/* What a request needs of its session, read under one lock. */
typedef struct session_info {
    const char *version;   /* negotiated (a static string) */
    int log_level;         /* logging/setLevel; -1 unset */
    unsigned client_caps;  /* SESSION_CAP_* declared at initialize */
} session_info_t;

/* True when id is a live session of owner; *info (may be NULL) gets what it holds. Refreshes
 * its idle timer. Another owner's session is reported as unknown. */
bool session_touch(session_store_t *st, const char *id,
                   const unsigned char owner[SESSION_OWNER_LEN], session_info_t *info);
/* Ends owner's session. Returns false when unknown. *attached gets what was attached (or
 * NULL), now the caller's to close. */
bool session_delete(session_store_t *st, const char *id,
                    const unsigned char owner[SESSION_OWNER_LEN], void **attached);
/* Attaches obj, replacing what was attached: *previous gets it (now the caller's to close).
 * 0, or -1 for an unknown session. */
int session_attach(session_store_t *st, const char *id, void *obj, void **previous);
/* Detaches obj if it is still the one attached; true when it was. */
bool session_detach(session_store_t *st, const char *id, void *obj);
/* Frees sessions idle past the limit (never one with something attached). */
void session_sweep(session_store_t *st);
unsigned session_count(session_store_t *st);
/* Calls fn for every attached object, under the table's lock: fn must not call back in. */
void session_foreach_attached(session_store_t *st, void (*fn)(void *attached, void *arg),
                              void *arg);

/* What the client declared in initialize's capabilities. */
#define SESSION_CAP_SAMPLING 1u
#define SESSION_CAP_ELICITATION 2u
#define SESSION_CAP_TASKS 4u      /* 2026-07-28, per request: the tasks extension */
void session_set_client_caps(session_store_t *st, const char *id, unsigned caps);

/* logging/setLevel of a session; -1 for an unknown session. */
int session_set_log_level(session_store_t *st, const char *id, int level);
/* resources/subscribe (on) and unsubscribe: 0, -1 for an unknown session, -2 when the
 * session already has SESSION_MAX_SUBSCRIPTIONS. */
#define SESSION_MAX_SUBSCRIPTIONS 256
int session_subscribe(session_store_t *st, const char *id, const char *uri, bool on);
/* Calls fn (under the table's lock) for the attached stream of every session subscribed to
 * uri. */
void session_foreach_subscribed(session_store_t *st, const char *uri,
                                void (*fn)(void *attached, void *arg), void *arg);

#endif
