/* Minimal check macros for the C and C++ test programs. Each program ends
 * with `return check_summary("name");`, which prints "name: N passed,
 * N failed" and returns nonzero when a check failed. */
#ifndef MLAK_CHECK_H
#define MLAK_CHECK_H

#include <stdio.h>
#include "mlak.h"

static int check_passed_count = 0;
static int check_failed_count = 0;

/* Counts one check; on failure prints the location, the condition and a
 * printf-style message with the values involved. */
#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (cond) {                                                              \
            check_passed_count++;                                                \
        } else {                                                                 \
            check_failed_count++;                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

/* Checks that `call` returns `expected`, printing mlak_last_error() if not. */
#define CHECK_STATUS(call, expected)                                             \
    do {                                                                         \
        int check_status_ = (int)(call);                                         \
        CHECK(check_status_ == (int)(expected), "%s returned %d (%s), want %d; last error: %s", \
              #call, check_status_, mlak_status_string(check_status_), (int)(expected), \
              mlak_last_error());                                                \
    } while (0)

static int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed_count, check_failed_count);
    return check_failed_count != 0;
}

#endif
