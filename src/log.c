#include "luamcp/log.h"
#include "luamcp/secret.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

#define LOG_LINE 2048
#define LOG_FORMAT_MAX (64u << 10) /* formatted whole up to this, then redacted, then cut */

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[LOG_LINE];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                  log_mcp_levels[level]);
    /* The message is redacted whole and cut after: a secret across the cut would otherwise
     * leave its first bytes in the line. */
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int m = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t room = m < 0 ? 1 : (size_t)m + 1 > LOG_FORMAT_MAX ? LOG_FORMAT_MAX : (size_t)m + 1;
    char *msg = malloc(room);
    if (msg) {
        vsnprintf(msg, room, fmt, again);
        secret_redact_cut(msg, sizeof line - 2 - (size_t)n, m < 0 || (size_t)m >= room);
        memcpy(line + n, msg, strlen(msg) + 1);
        free(msg);
    } else {
        snprintf(line + n, sizeof line - (size_t)n, "(a log message lost: out of memory)");
    }
    va_end(again);
    size_t len = strlen(line);
    /* Control characters from untrusted text cannot forge extra log lines. */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = ' ';
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one write per line: stdio locks the stream */
}
