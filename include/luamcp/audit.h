/* audit — one JSON line per access decision, for operators. Each worker appends to a buffer
 * of its own; the buffer goes out in one write() when full and at the end of every event-loop
 * turn, so a busy server makes few system calls and lines never interleave. A failing sink
 * (disk full, closed pipe) is counted and logged, and never stops the serving. */
#ifndef LUAMCP_AUDIT_H
#define LUAMCP_AUDIT_H

#include <jansson.h>

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

#endif
