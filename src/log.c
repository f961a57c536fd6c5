#include "luamcp/log.h"
#include "luamcp/secret.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
/* the server's five levels are the first of the eight (RFC 5424's) that MCP clients ask for */
const char *const log_mcp_levels[] = {"debug", "info", "notice", "warning", "error",
                                      "critical", "alert", "emergency", NULL};

void log_set_level(enum log_level level) { min_level = level; }
enum log_level log_get_level(void) { return min_level; }
const char *log_level_name(enum log_level level) { return log_mcp_levels[level]; }

int log_mcp_level_parse(const char *name)
{
    for (int i = 0; name && log_mcp_levels[i]; i++)
        if (strcmp(name, log_mcp_levels[i]) == 0)
            return i;
    return -1;
}

int log_level_parse(const char *name)
{
    int lv = log_mcp_level_parse(name);
    return lv <= LOG_ERROR ? lv : -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                  log_mcp_levels[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated: a log line is bounded like everything else */
    line[len] = '\0';
    secret_redact(line + n); /* no secret value ever reaches the log */
    len = strlen(line);
    /* Control characters from untrusted text cannot forge extra log lines. */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = ' ';
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one write per line: stdio locks the stream */
}
