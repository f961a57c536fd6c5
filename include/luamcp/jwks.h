/* jwks — where an issuer's verification keys come from, kept fresh.
 *
 * A remote source fetches the JWKS (finding jwks_uri through the issuer's discovery document
 * when not given) on a thread of its own: at start, when the cached set expires
 * (Cache-Control max-age clamped to [min_ttl, max_ttl]), and when a token names a kid the set
 * does not have — at most once per refetch interval. While the issuer is unreachable the last
 * good set keeps serving. A static source holds keys from a file or a secret. */
#ifndef LUAMCP_JWKS_H
#define LUAMCP_JWKS_H

#include <stdbool.h>

#include "luamcp/config.h"
#include "luamcp/jose.h"

typedef struct jwks jwks_t;

/* A source that never changes; takes ownership of ks. */
jwks_t *jwks_new_static(jose_keyset_t *ks);
/* A remote source for issuer; jwks_uri NULL means discovery. Starts its thread. */
jwks_t *jwks_new_remote(const char *issuer, const char *jwks_uri, const config_auth_t *cfg,
                        char **err);
void jwks_free(jwks_t *j);

/* The current keys (a new reference; caller unrefs), or NULL before the first success. */
jose_keyset_t *jwks_keys(jwks_t *j);

/* Waits up to timeout_ms for the first fetch to end (at start). True when keys are there. */
bool jwks_wait_ready(jwks_t *j, int timeout_ms);

/* A token named a kid we do not have. When a refetch may run now (or one is running), arranges
 * for wake(arg) to be called once it ends and returns true; false when the refetch interval
 * has not passed (nothing will change: fail the request now). A static source returns false. */
bool jwks_request_refetch(jwks_t *j, void (*wake)(void *), void *arg);

/* Changes whenever the key set does: what was verified with an older set is checked again. */
unsigned long jwks_generation(jwks_t *j);

/* For logs and /healthz: last error (static string or NULL) and seconds since last success. */
const char *jwks_last_error(jwks_t *j);

#endif
