/* check.h — the smallest test harness that still says where and why a check failed.
 *
 *   CHECK(cond)             records a failure with file:line when cond is false
 *   CHECK_STR(got, want)    compares two C strings (NULL-safe) and prints both on failure
 *   CHECK_INT(got, want)    compares two integers and prints both on failure
 *   return check_report();  at the end of main: prints "N passed, M failed", exits 1 on any
 *                           failure
 *
 * Each macro evaluates to whether the check passed, so a test can stop early:
 *   if (!CHECK(s != NULL)) return;
 */
#ifndef LUAMCP_SPEC_CHECK_H
#define LUAMCP_SPEC_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int check_passed_count;
static int check_failed_count;

static inline bool check_record(bool ok, const char *file, int line, const char *what)
{
    if (ok) {
        check_passed_count++;
    } else {
        check_failed_count++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    }
    return ok;
}

static inline bool check_str(const char *got, const char *want, const char *file, int line,
                             const char *expr)
{
    bool ok = (got == NULL || want == NULL) ? got == want : strcmp(got, want) == 0;
    if (!check_record(ok, file, line, expr))
        fprintf(stderr, "    got:  %s%s%s\n    want: %s%s%s\n", got ? "\"" : "",
                got ? got : "NULL", got ? "\"" : "", want ? "\"" : "", want ? want : "NULL",
                want ? "\"" : "");
    return ok;
}

static inline bool check_int(long long got, long long want, const char *file, int line,
                             const char *expr)
{
    bool ok = got == want;
    if (!check_record(ok, file, line, expr))
        fprintf(stderr, "    got:  %lld\n    want: %lld\n", got, want);
    return ok;
}

#define CHECK(cond) check_record((cond) ? true : false, __FILE__, __LINE__, #cond)
#define CHECK_STR(got, want) check_str((got), (want), __FILE__, __LINE__, #got " == " #want)
#define CHECK_INT(got, want)                                                                  \
    check_int((long long)(got), (long long)(want), __FILE__, __LINE__, #got " == " #want)

static inline int check_report(void)
{
    printf("%d passed, %d failed\n", check_passed_count, check_failed_count);
    return check_failed_count == 0 ? 0 : 1;
}

#endif
