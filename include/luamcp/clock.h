/* clock — the two clocks the server reads: the wall clock (deadlines a call carries, times a
 * client sees) and the monotonic one (timers, ttls, latencies: a step of the system clock must
 * not move them). */
#ifndef LUAMCP_CLOCK_H
#define LUAMCP_CLOCK_H

#include <time.h>

static inline long long clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long long clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

static inline double clock_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline long long clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

#endif
