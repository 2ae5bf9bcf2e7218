/*
 * clock.h — the two clocks the project reads: sf_now_us(), monotonic
 * microseconds, for durations, deadlines and timeouts (it never jumps back);
 * sf_wall_ms(), wall-clock milliseconds since the epoch, for timestamps that
 * leave the process (telemetry, replies, logs) and compare across hosts.
 * now_us() and wall_ms() are the short names the supervisor's files use.
 */
#ifndef SF_CLOCK_H
#define SF_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

static inline uint64_t sf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t sf_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static inline uint64_t now_us(void)
{
    return sf_now_us();
}

static inline uint64_t wall_ms(void)
{
    return sf_wall_ms();
}

#endif
