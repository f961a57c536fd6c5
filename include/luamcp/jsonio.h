/* jsonio — JSON text to and from jansson values, for the request path.
 *
 * jansson's own json_loadb and json_dumps are general and slow for what every request does
 * (about 1.4 µs to read a 110-byte tools/call and 0.7 µs to write its answer here, a sixth of
 * the server's time per call). These read and write the same values, with the same rules,
 * several times faster: they scan plain runs of bytes at once and build values without a
 * lexer's copies. Everything else may keep using jansson directly.
 *
 * The reader is strict RFC 8259: one value, optional whitespace around it, no comments, no
 * trailing commas, no leading zeros, UTF-8 only (no overlongs, no surrogates), paired \u
 * surrogates only. Like jansson, it refuses integers outside long long ("too big integer"),
 * reals that overflow a double, a NUL character in a key, and nesting deeper than
 * JSONIO_MAX_DEPTH. */
#ifndef LUAMCP_JSONIO_H
#define LUAMCP_JSONIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Containers nested deeper than this are refused, both ways (jansson's own limit). */
#define JSONIO_MAX_DEPTH 2048

/* Reads text[0..len). flags: jansson's JSON_DECODE_ANY (a scalar may stand alone; otherwise
 * the text must be an object or an array), JSON_REJECT_DUPLICATES (a key twice in an object is
 * an error; otherwise the last wins) and JSON_ALLOW_NUL (\u0000 in a string value). Returns a
 * new reference, or NULL with err (may be NULL) filled: a message, and the line, column
 * (1-based, in bytes) and byte offset where reading stopped. */
json_t *jsonio_parse(const char *text, size_t len, unsigned flags, json_error_t *err);

/* Writes v compactly (no spaces), keys in insertion order, strings as UTF-8 with only '"', '\\'
 * and control characters escaped, reals in 15 significant digits or, when those do not read
 * back as the same double, 16 or 17 (0.1 is "0.1", not jansson's "0.10000000000000001").
 * Returns a malloc'd NUL-terminated text (caller frees) and its length in *len (may be NULL),
 * or NULL when out of memory, nested past JSONIO_MAX_DEPTH, or a string that is not UTF-8
 * (jansson's json_stringn_nocheck can hold one). */
char *jsonio_dump(const json_t *v, size_t *len);

/* The same into buf[0..cap): the length written (buf[len] is a NUL), or (size_t)-1 when it
 * does not fit in cap - 1 bytes or cannot be written. */
size_t jsonio_dump_into(const json_t *v, char *buf, size_t cap);

#endif
