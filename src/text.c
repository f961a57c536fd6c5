#include "luamcp/text.h"

#include <string.h>

void text_utf8_trim(char *s)
{
    size_t n = strlen(s), i = 0, good = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            break;
        bool whole = true;
        for (size_t k = 1; k < len; k++)
            whole = whole && ((unsigned char)s[i + k] >> 6) == 2;
        if (!whole)
            break;
        i += len;
        good = i;
    }
    s[good] = '\0';
}

bool text_scope_ok(const char *scope)
{
    if (!scope || !*scope)
        return false;
    for (const unsigned char *p = (const unsigned char *)scope; *p; p++)
        if (*p < 0x21 || *p == 0x22 || *p == 0x5c || *p > 0x7e)
            return false;
    return true;
}
