/* audit — one JSON line per access decision, for operators. Each worker appends to a buffer
 * of its own; the buffer goes out in one write() when full (64 KiB) or when its oldest record
 * is AUDIT_FLUSH_MS old (the worker's loop wakes for it), so a busy server makes few system
 * calls (a write per turn of the event loop was 4% of a call's cost) and lines never
 * interleave. A failing sink (disk full, closed pipe) is counted and logged, and never
 * stops the serving. */
#ifndef LUAMCP_AUDIT_H
#define LUAMCP_AUDIT_H

#include <jansson.h>
#include <stdbool.h>

#include "luamcp/text.h"

typedef struct audit audit_t;
typedef struct audit_buf audit_buf_t;

/* path: a file (appended to, created 0600) or "-" for standard output. */
audit_t *audit_open(const char *path, char **err);
void audit_close(audit_t *a);
unsigned long long audit_failures(const audit_t *a);

audit_buf_t *audit_buf_new(audit_t *a);
void audit_buf_free(audit_buf_t *b); /* flushes first */
/* Adds "time" and writes record (stolen) as one line. */
void audit_record(audit_buf_t *b, json_t *record);
void audit_flush(audit_buf_t *b);

/* A record waits at most this long in a busy worker's buffer. */
#define AUDIT_FLUSH_MS 10
/* Milliseconds (monotonic, now_ms) until b must be flushed: -1 when empty, 0 when due. */
long long audit_due_in(const audit_buf_t *b, long long now_ms);

/* The same line written field by field, without building JSON values: for the record every
 * call makes. Keys are plain identifiers; string values are cut at AUDIT_FIELD_MAX bytes.
 *   text_out *o = audit_begin(b);      NULL without an audit buffer (then write nothing)
 *   audit_str(o, "decision", "allow"); audit_int(o, "bundle", 3); audit_json(o, "args", v);
 *   audit_end(b);                      adds "time", ends the line and queues it */
#define AUDIT_FIELD_MAX 512
text_out *audit_begin(audit_buf_t *b);
void audit_str(text_out *o, const char *key, const char *value); /* NULL value: no field */
void audit_int(text_out *o, const char *key, long long value);
void audit_fixed2(text_out *o, const char *key, double value);   /* two decimals */
/* v (borrowed) as compact JSON; when the line cannot hold it, KEY_dropped: true instead. */
void audit_json(text_out *o, const char *key, const json_t *v);
void audit_end(audit_buf_t *b);

#endif
