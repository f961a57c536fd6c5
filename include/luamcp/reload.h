/* reload — new scripts and policies go live without a restart and without failing a request.
 *
 * Triggers: inotify on the scripts and policies directories (and their subfolders; debounced,
 * so an editor's temporary files and renames make one reload), SIGHUP, and `luamcp reload`
 * through the admin socket (a Unix socket, mode 0600, never reachable from the network).
 *
 * A reload builds a complete new bundle for every worker, validated exactly as `luamcp check`
 * does, and publishes it only if all of them load; each worker swaps at its next loop turn,
 * between requests. On any error the running bundles stay and the error is logged with
 * file:line, counted, and shown by /healthz and `luamcp status`. */
#ifndef LUAMCP_RELOAD_H
#define LUAMCP_RELOAD_H

#include <jansson.h>
#include <stdbool.h>

typedef struct server server_t;
typedef struct reloader reloader_t;

/* Starts the watcher and the admin socket. NULL with *err. */
reloader_t *reloader_new(server_t *srv, char **err);
void reloader_free(reloader_t *r);

/* Asks for a reload (any thread); returns at once. */
void reloader_request(reloader_t *r, const char *why);

/* Runs one reload now in the calling thread; true when published. */
bool reloader_reload(reloader_t *r, const char *why);

/* {version, loaded_at, reloads, failures, last_error, restart_needed}: new reference. */
json_t *reloader_status(reloader_t *r);

/* `luamcp reload` / `luamcp status`: talks to the admin socket at path; prints the answer.
 * Returns the process exit code. */
int reloader_client(const char *path, const char *command);

#endif
