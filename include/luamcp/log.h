/* log — one line per event on stderr: "2026-11-26T10:00:00.123Z level message".
 * Never pass a token or secret here; callers log reasons, not credentials. */
#ifndef LUAMCP_LOG_H
#define LUAMCP_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERROR };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug", "info", "notice", "warning", "error". Returns -1 when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);
/* The eight levels of MCP's notifications/message, least severe first, NULL-ended; and the
 * index of name among them (-1 when none). The server's own five are the first five. */
extern const char *const log_mcp_levels[];
int log_mcp_level_parse(const char *name);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
