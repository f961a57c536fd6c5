/* text — small helpers for text that leaves the server (headers, JSON, logs). */
#ifndef LUAMCP_TEXT_H
#define LUAMCP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Cuts s (in place) back to its longest prefix that is whole UTF-8: a string truncated by
 * snprintf may end in the middle of a character, which JSON cannot carry. */
void text_utf8_trim(char *s);

/* An OAuth scope token (RFC 6749 section 3.3): 1*( %x21 / %x23-5B / %x5D-7E ), so it can sit in
 * a quoted header parameter without escaping. */
bool text_scope_ok(const char *scope);

#endif
