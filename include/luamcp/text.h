/* text — small helpers for text that leaves the server (headers, JSON, logs, error paths). */
#ifndef LUAMCP_TEXT_H
#define LUAMCP_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a key that text_put_quoted shows before "...". */
#define TEXT_KEY_SHOW_MAX 48
/* Room for anything text_put_quoted writes, with its terminating NUL. */
#define TEXT_QUOTED_SIZE (TEXT_KEY_SHOW_MAX * 6 + 8)

/* Cuts s (in place) back to its longest prefix that is whole UTF-8: a string truncated by
 * snprintf may end in the middle of a character, which JSON cannot carry. */
void text_utf8_trim(char *s);

/* An OAuth scope token (RFC 6749 section 3.3): 1*( %x21 / %x23-5B / %x5D-7E ), so it can sit in
 * a quoted header parameter without escaping. */
bool text_scope_ok(const char *scope);

/* Length of the well-formed UTF-8 sequence at s (avail bytes readable), or 0 if there is none:
 * RFC 3629, so no overlongs, no surrogates, nothing above U+10FFFF (jansson's rules too). */
size_t text_utf8_sequence_length(const unsigned char *s, size_t avail);

/* A bounded string builder over a caller's buffer (borrowed; buf[len] is kept a NUL once
 * something is written). Appends are all-or-nothing, so the text never ends mid-escape or
 * mid-character; once one does not fit, `full` is set and later appends are dropped.
 * Start one as {buf, cap, 0, false}. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool full;
} text_out;

/* One bit per byte value: the bytes a JSON string carries as they are (printable ASCII and
 * DEL, but '"' and '\\'). */
extern const uint64_t text_json_plain_bytes[4];

static inline bool text_json_plain(unsigned char c)
{
    return (text_json_plain_bytes[c >> 6] >> (c & 63)) & 1;
}

/* Room for any long long in decimal ("-9223372036854775808" and a spare). */
#define TEXT_INT_SIZE 24
/* The decimal text of v, written without printf's format parsing so that it ends at
 * buf + TEXT_INT_SIZE (no NUL): returns where it starts. */
char *text_int(char buf[TEXT_INT_SIZE], long long v);

/* Appends s[0..n). */
void text_put(text_out *o, const char *s, size_t n);

/* Appends the NUL-terminated s. */
void text_put_str(text_out *o, const char *s);

/* Appends s[0..len) in double quotes, JSON-escaped, at most TEXT_KEY_SHOW_MAX source bytes and
 * then "...". Bytes that are not valid UTF-8 appear as \xNN, so the result always is. */
void text_put_quoted(text_out *o, const char *s, size_t len);

/* Appends s[0..len) as a JSON string: quoted, escaped, at most max source bytes (then "..."
 * inside the quotes); bytes that are not valid UTF-8 become U+FFFD, so the result is always
 * valid JSON. */
void text_put_json(text_out *o, const char *s, size_t len, size_t max);

/* Appends one key of a path: ".name" for an identifier-like key, ["odd key"] otherwise; the
 * whole segment or nothing. */
void text_put_key(text_out *o, const char *key, size_t len);

/* One step of a JSON path. */
typedef struct {
    const char *key; /* borrowed; NULL for an array index */
    size_t key_len;
    size_t index; /* 0-based, as JSON sees it */
} text_path_segment;

/* Renders "$", then each segment (keys as text_put_key does, indices as "[3]"), into buf (cap
 * at least 4); a path that does not fit ends in "..." after the last whole segment. */
void text_json_path(char *buf, size_t cap, const text_path_segment *path, int depth);

#endif
