/* server — the HTTP server: one worker thread per core, each with its own libmicrohttpd
 * daemon on the shared port (SO_REUSEPORT), its own epoll loop and its own Lua bundle. */
#ifndef LUAMCP_SERVER_H
#define LUAMCP_SERVER_H

#include "luamcp/config.h"

typedef struct server server_t;

/* Loads the scripts once per worker and binds. NULL with *err (caller frees). */
server_t *server_new(const config_t *cfg, char **err);
/* The bound port (useful with port 0). */
int server_port(const server_t *srv);
/* Serves until SIGINT or SIGTERM, then stops listening and drains in-flight requests (up to
 * grace_s). The caller must have blocked SIGINT, SIGTERM, SIGHUP and SIGPIPE in every thread. */
int server_run(server_t *srv);
void server_free(server_t *srv);

#endif
