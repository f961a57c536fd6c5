/* credscrub — a caller's credential taken out of what a backend sent back, before Lua sees it.
 *
 * A tool holds a credential only as an opaque value; a backend that echoes it (an
 * introspection endpoint, a debug echo, a token in a JSON body) would hand it back as a plain
 * string that the script could then store, transform and send elsewhere. So every response
 * body, header value and error text is scrubbed of each credential of the call, in the forms
 * a script or a backend cheaply produces: as is, reversed, hex (either case), percent-encoded
 * (either case), JSON-escaped, and base64 / base64url at each of the three alignments it can
 * take inside a longer encoded text. Each becomes "[credential]". Forms shorter than 8 bytes
 * are not searched (too likely to match ordinary text); the value itself from 4 bytes on.
 * Other transforms (a script XOR-ing it with a key the backend knows) are not covered: the
 * guarantee is that the host never hands the value back in these forms. Uses: nothing. */
#ifndef LUAMCP_CREDSCRUB_H
#define LUAMCP_CREDSCRUB_H

#include <stddef.h>

typedef struct credscrub credscrub_t;

/* The forms of each of the n values (borrowed C strings; shorter than 4 bytes: skipped).
 * NULL when out of memory. */
credscrub_t *credscrub_new(const char *const *values, size_t n);
void credscrub_free(credscrub_t *c);
/* A copy of buf (len bytes, may hold NUL) with every form replaced, NUL-terminated, its length
 * in *out_len; caller frees. NULL when nothing matched (or out of memory: then *out_len is
 * SIZE_MAX and the caller must not pass buf on). */
char *credscrub_apply(const credscrub_t *c, const char *buf, size_t len, size_t *out_len);

#endif
