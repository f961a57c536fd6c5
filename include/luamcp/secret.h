/* secret — named secrets for scripts: mcp.secret("NAME"). Values come from the environment
 * (LUAMCP_SECRET_NAME=value) and from the secrets file named in the configuration (NAME=value
 * lines; the file must not be readable by group or others). They are read once at start, and
 * every value is redacted wherever text leaves the server through us: log lines, and the
 * error messages clients see. */
#ifndef LUAMCP_SECRET_H
#define LUAMCP_SECRET_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

#define SECRET_MIN_LEN 8 /* shorter values could not be redacted without mangling other text */
#define SECRET_MASK "[secret]"

/* Loads the environment's secrets and, when file is not NULL, the file's. 0, or -1 with *err
 * naming the file and line. Call once, before the workers start. */
int secret_load(const char *file, char **err);
/* The value of name, or NULL. Borrowed; valid for the life of the process. */
const char *secret_get(const char *name);
/* Replaces, in place, every occurrence of a secret value in text with SECRET_MASK, and of a
 * value in this thread's scope (below) with "[credential]" (shorter masks for short values). */
void secret_redact(char *text);
/* Redacts text, then cuts it to at most max bytes; when anything was cut (here, or before by
 * the caller: cut_before), also drops a tail that begins a secret or credential, so a value
 * straddling the cut leaks no prefix. Returns the new length. Redact first, cut after: never
 * the other way round. */
size_t secret_redact_cut(char *text, size_t max, bool cut_before);
/* Redacts every string (and object key) in v, in place, as secret_redact does; depth bounds
 * the walk (pass 0). For results and notifications on their way to a client. */
struct json_t;
void secret_scrub_json(struct json_t *v, int depth);
/* Sets this thread's scoped values (a borrowed jansson array of strings, or NULL to clear):
 * the credentials of the tool call running now. */
void secret_scope(const struct json_t *values);

/* Whether name is a valid secret name (1 to 64 of A-Z a-z 0-9 _). */
bool secret_name_valid(const char *name);
/* Sets the names mcp.secret may read on this thread (borrowed, n of them), for the handler
 * about to run; secret_grant(NULL, 0) after it. Outside a grant (loading, policies, prompts,
 * resources) mcp.secret reads nothing. */
void secret_grant(char *const *names, size_t n);
/* What is granted now (to restore it after a nested grant): the count, the names in *names. */
size_t secret_granted(char *const **names);
/* Every secret readable on this thread: only for mcp.so, the module busted specs load (there
 * is no handler run to grant from). Never called by the server. */
void secret_grant_all(void);

/* Pushes the mcp.secret function. */
void secret_push_api(lua_State *L);

#endif
