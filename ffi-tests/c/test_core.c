/* Library-wide C API: version, status strings, dispatch control, threads
 * and their error paths. */
#include <stdint.h>
#include <string.h>

#include "check.h"

int main(void) {
    const char *v = mlak_version();
    CHECK(v != NULL && strlen(v) > 0, "empty version");

    CHECK(strcmp(mlak_status_string(MLAK_STATUS_OK), "success") == 0, "status 0 text: %s", mlak_status_string(0));
    CHECK(strcmp(mlak_status_string(MLAK_STATUS_INVALID_ARGUMENT), "invalid argument") == 0, "status 2 text");
    CHECK(strcmp(mlak_status_string(99), "unknown status") == 0, "status 99 text: %s", mlak_status_string(99));
    CHECK(strcmp(mlak_status_string(-1), "unknown status") == 0, "status -1 text");

    /* Dispatch: the active level is supported, every supported level can be
     * forced and really runs, unsupported and unknown levels are rejected. */
    mlak_isa isa;
    CHECK_STATUS(mlak_get_isa(&isa), MLAK_STATUS_OK);
    CHECK(mlak_isa_supported((uint32_t)isa), "active isa %d not supported", (int)isa);
    CHECK(mlak_best_isa() >= isa || mlak_best_isa() == MLAK_ISA_NEON, "best %d below active %d", (int)mlak_best_isa(), (int)isa);
    CHECK_STATUS(mlak_get_isa(NULL), MLAK_STATUS_NULL_POINTER);
    CHECK(strstr(mlak_last_error(), "out is NULL") != NULL, "message: %s", mlak_last_error());

    float x[5] = {1, 2, 3, 4, 5}, y[5];
    for (uint32_t level = 0; level < 4; level++) {
        if (!mlak_isa_supported(level)) {
            fprintf(stderr, "SKIPPED: %s not supported by this CPU\n", mlak_isa_name(level));
            CHECK_STATUS(mlak_set_isa(level), MLAK_STATUS_UNSUPPORTED_ISA);
            CHECK(strstr(mlak_last_error(), mlak_isa_name(level)) != NULL, "message: %s", mlak_last_error());
            continue;
        }
        CHECK_STATUS(mlak_set_isa(level), MLAK_STATUS_OK);
        CHECK_STATUS(mlak_get_isa(&isa), MLAK_STATUS_OK);
        CHECK((uint32_t)isa == level, "get_isa %d after set_isa %u", (int)isa, level);
        CHECK_STATUS(mlak_softmax_f32(x, 5, y, 5, 1, 5, 1.0f), MLAK_STATUS_OK);
        CHECK(mlak_last_dispatched_isa() == (int32_t)level, "ran %d, forced %u", mlak_last_dispatched_isa(), level);
        CHECK_STATUS(mlak_set_isa_by_name(mlak_isa_name(level)), MLAK_STATUS_OK);
    }
    CHECK_STATUS(mlak_set_isa(4), MLAK_STATUS_UNSUPPORTED_ISA);
    CHECK(strstr(mlak_last_error(), "isa = 4") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_set_isa_by_name("sse9"), MLAK_STATUS_UNSUPPORTED_ISA);
    CHECK(strstr(mlak_last_error(), "\"sse9\"") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_set_isa_by_name(NULL), MLAK_STATUS_NULL_POINTER);
    CHECK(strcmp(mlak_isa_name(7), "unknown") == 0, "name of 7: %s", mlak_isa_name(7));
    CHECK(!mlak_isa_supported(7), "level 7 reported supported");
    CHECK_STATUS(mlak_set_isa((uint32_t)mlak_best_isa()), MLAK_STATUS_OK);

    uint64_t f = mlak_cpu_features();
    if (mlak_isa_supported(MLAK_ISA_AVX2)) {
        CHECK((f & (MLAK_CPU_AVX2 | MLAK_CPU_FMA | MLAK_CPU_F16C)) == (MLAK_CPU_AVX2 | MLAK_CPU_FMA | MLAK_CPU_F16C),
              "avx2 level without its feature bits: %llx", (unsigned long long)f);
    }

    /* Threads: explicit setting, then back to the default. */
    size_t n = 0;
    mlak_set_num_threads(3);
    CHECK_STATUS(mlak_get_num_threads(&n), MLAK_STATUS_OK);
    CHECK(n == 3, "threads %zu after setting 3", n);
    mlak_set_num_threads(0);
    CHECK_STATUS(mlak_get_num_threads(&n), MLAK_STATUS_OK);
    CHECK(n >= 1, "default threads %zu", n);
    CHECK_STATUS(mlak_get_num_threads(NULL), MLAK_STATUS_NULL_POINTER);

    return check_summary("test_core");
}
