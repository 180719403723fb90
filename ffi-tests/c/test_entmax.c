/*
 * C ABI test of the sparse normalizers: sparsemax, entmax-1.5 and
 * alpha-entmax, forward and backward, results and error paths.
 *
 * Build and run from the repository root after `cargo build`:
 *   cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude \
 *      ffi-tests/c/test_entmax.c target/debug/libmlak.a -lm -lpthread -ldl \
 *      -o /tmp/test_entmax && /tmp/test_entmax
 *
 * Prints one line per failed check and "N passed, N failed" at the end;
 * exits nonzero when a check failed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mlak.h"

static int passed;
static int failed;

static void check(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAILED line %d: %s (last error: %s)\n", line, what, mlak_last_error());
    }
}

#define CHECK(cond) check((cond), #cond, __LINE__)

/* Entries are within `tol` of `want`, entry by entry. */
static int close_to(const float *got, const float *want, int n, float tol) {
    int i;
    for (i = 0; i < n; i++) {
        if (!(fabsf(got[i] - want[i]) <= tol)) {
            printf("  index %d: got %.9g, want %.9g\n", i, got[i], want[i]);
            return 0;
        }
    }
    return 1;
}

static int all_equal(const float *got, int n, float value) {
    int i;
    for (i = 0; i < n; i++) {
        if (got[i] != value) {
            return 0;
        }
    }
    return 1;
}

static int error_mentions(const char *text) {
    return strstr(mlak_last_error(), text) != NULL;
}

static void test_sparsemax(void) {
    /* x - max = [0, -0.25, -0.25, -0.5]: tau = -0.5 ties the last entry. */
    const float x[4] = {3.0f, 2.75f, 2.75f, 2.5f};
    const float want[4] = {0.5f, 0.25f, 0.25f, 0.0f};
    float y[4];
    CHECK(mlak_sparsemax_f32(x, 4, y, 4, 1, 4) == MLAK_STATUS_OK);
    CHECK(close_to(y, want, 4, 0.0f));

    /* In place, two rows with a stride of 3. */
    {
        float xy[6] = {1.0f, 0.0f, -7.0f, 0.5f, 0.5f, 99.0f};
        const float want2[5] = {1.0f, 0.0f, -7.0f, 0.5f, 0.5f};
        CHECK(mlak_sparsemax_f32(xy, 3, xy, 3, 2, 2) == MLAK_STATUS_OK);
        CHECK(close_to(xy, want2, 5, 0.0f));
        CHECK(xy[5] == 99.0f);
    }

    /* Non-finite policy: -inf gives 0, NaN or +inf gives a NaN row. */
    {
        const float ninf[3] = {-INFINITY, 2.0f, -INFINITY};
        const float nan_row[3] = {0.0f, NAN, 1.0f};
        const float pinf_row[3] = {0.0f, INFINITY, 1.0f};
        const float all_ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
        float out[3];
        CHECK(mlak_sparsemax_f32(ninf, 3, out, 3, 1, 3) == MLAK_STATUS_OK);
        CHECK(out[0] == 0.0f);
        CHECK(out[1] == 1.0f);
        CHECK(out[2] == 0.0f);
        CHECK(mlak_sparsemax_f32(nan_row, 3, out, 3, 1, 3) == MLAK_STATUS_OK);
        CHECK(isnan(out[0]));
        CHECK(isnan(out[1]));
        CHECK(isnan(out[2]));
        CHECK(mlak_entmax15_f32(pinf_row, 3, out, 3, 1, 3) == MLAK_STATUS_OK);
        CHECK(isnan(out[0]));
        CHECK(isnan(out[1]));
        CHECK(isnan(out[2]));
        CHECK(mlak_entmax15_f32(all_ninf, 3, out, 3, 1, 3) == MLAK_STATUS_OK);
        CHECK(all_equal(out, 3, 0.0f));
    }
}

static void test_entmax15(void) {
    /* Two equal maxima: (0 - tau)^2 = 1/2 each; the third sits 4 below. */
    const float x[3] = {1.0f, 1.0f, -3.0f};
    const float want[3] = {0.5f, 0.5f, 0.0f};
    float y[3];
    CHECK(mlak_entmax15_f32(x, 3, y, 3, 1, 3) == MLAK_STATUS_OK);
    CHECK(close_to(y, want, 3, 1e-6f));
    CHECK(y[2] == 0.0f);
}

static void test_alpha_entmax(void) {
    const float x[8] = {0.3f, -1.2f, 2.0f, 0.9f, 0.3f, -1.2f, 2.0f, 0.9f};
    const float alpha_rows[2] = {2.0f, 1.5f};
    const float alpha_one = 1.0f;
    float y[8];
    float sparse[4];
    float e15[4];
    float soft[4];
    CHECK(mlak_sparsemax_f32(x, 4, sparse, 4, 1, 4) == MLAK_STATUS_OK);
    CHECK(mlak_entmax15_f32(x, 4, e15, 4, 1, 4) == MLAK_STATUS_OK);
    CHECK(mlak_softmax_f32(x, 4, soft, 4, 1, 4, 1.0f) == MLAK_STATUS_OK);

    /* Per-row alpha: row 0 is sparsemax, row 1 entmax-1.5. */
    CHECK(mlak_alpha_entmax_f32(x, 4, y, 4, 2, 4, alpha_rows, 2) == MLAK_STATUS_OK);
    CHECK(close_to(y, sparse, 4, 0.0f));
    CHECK(close_to(y + 4, e15, 4, 0.0f));

    /* alpha = 1 is softmax. */
    CHECK(mlak_alpha_entmax_f32(x, 4, y, 4, 1, 4, &alpha_one, 1) == MLAK_STATUS_OK);
    CHECK(close_to(y, soft, 4, 0.0f));

    /* A general alpha: the row sums to 1 and lies between the neighbors. */
    {
        const float alpha = 1.25f;
        float sum = 0.0f;
        int i;
        CHECK(mlak_alpha_entmax_f32(x, 4, y, 4, 1, 4, &alpha, 1) == MLAK_STATUS_OK);
        for (i = 0; i < 4; i++) {
            sum += y[i];
        }
        CHECK(fabsf(sum - 1.0f) <= 1e-6f);
        /* The largest entry grows with alpha, from softmax to entmax-1.5. */
        CHECK(y[2] >= soft[2]);
        CHECK(y[2] <= e15[2]);
    }
}

static void test_dtype_input(void) {
    /* bf16 bit patterns of 1.0, 0.5 and -2.0 widen exactly. */
    const uint16_t bf16[3] = {0x3F80, 0x3F00, 0xC000};
    const uint16_t f16[3] = {0x3C00, 0x3800, 0xC000};
    const float wide[3] = {1.0f, 0.5f, -2.0f};
    float want[3];
    float y[3];
    CHECK(mlak_sparsemax_f32(wide, 3, want, 3, 1, 3) == MLAK_STATUS_OK);
    CHECK(mlak_sparsemax(MLAK_DTYPE_BF16, bf16, 3, y, 3, 1, 3) == MLAK_STATUS_OK);
    CHECK(close_to(y, want, 3, 0.0f));
    CHECK(mlak_entmax15_f32(wide, 3, want, 3, 1, 3) == MLAK_STATUS_OK);
    CHECK(mlak_entmax15(MLAK_DTYPE_F16, f16, 3, y, 3, 1, 3) == MLAK_STATUS_OK);
    CHECK(close_to(y, want, 3, 0.0f));
    {
        const float alpha = 3.0f;
        CHECK(mlak_alpha_entmax_f32(wide, 3, want, 3, 1, 3, &alpha, 1) == MLAK_STATUS_OK);
        CHECK(mlak_alpha_entmax(MLAK_DTYPE_F32, wide, 3, y, 3, 1, 3, &alpha, 1) == MLAK_STATUS_OK);
        CHECK(close_to(y, want, 3, 0.0f));
    }
}

static void test_backward(void) {
    /* sparsemax: support {0, 1}, dx = dy - mean over the support. */
    const float p[3] = {0.75f, 0.25f, 0.0f};
    const float dy[3] = {1.0f, 3.0f, 5.0f};
    const float want[3] = {-1.0f, 1.0f, 0.0f};
    float dx[3];
    CHECK(mlak_sparsemax_backward_f32(p, 3, dy, 3, dx, 3, 1, 3) == MLAK_STATUS_OK);
    CHECK(close_to(dx, want, 3, 1e-6f));

    /* entmax15: g = sqrt(p) = [0.5, 0.5, 0], so dx = g * (dy - 2). */
    {
        const float p15[3] = {0.25f, 0.25f, 0.0f};
        const float want15[3] = {-0.5f, 0.5f, 0.0f};
        float d[3];
        CHECK(mlak_entmax15_backward_f32(p15, 3, dy, 3, d, 3, 1, 3) == MLAK_STATUS_OK);
        CHECK(close_to(d, want15, 3, 1e-6f));
    }

    /* alpha = 2 matches sparsemax; dy constant gives d_alpha = 0. */
    {
        const float alpha = 2.0f;
        const float ones[3] = {1.0f, 1.0f, 1.0f};
        float d[3];
        float d_alpha = 42.0f;
        CHECK(mlak_alpha_entmax_backward_f32(p, 3, dy, 3, d, 3, 1, 3, &alpha, 1, NULL) == MLAK_STATUS_OK);
        CHECK(close_to(d, want, 3, 1e-6f));
        CHECK(mlak_alpha_entmax_backward_f32(p, 3, ones, 3, d, 3, 1, 3, &alpha, 1, &d_alpha) == MLAK_STATUS_OK);
        CHECK(fabsf(d_alpha) <= 1e-6f);
    }
}

static void test_errors(void) {
    const float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    float y[4] = {7.0f, 7.0f, 7.0f, 7.0f};
    const float bad_alpha = 0.5f;
    const float nan_alpha = NAN;
    const float good_alpha[2] = {1.5f, 1.5f};

    CHECK(mlak_sparsemax_f32(NULL, 4, y, 4, 1, 4) == MLAK_STATUS_NULL_POINTER);
    CHECK(error_mentions("x is NULL"));
    CHECK(mlak_sparsemax_f32(x, 4, y, 4, 1, -1) == MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions("n = -1"));
    CHECK(mlak_entmax15_f32(x, 2, y, 4, 1, 4) == MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions("x_row_stride = 2"));
    CHECK(mlak_alpha_entmax_f32(x, 4, y, 4, 1, 4, &bad_alpha, 1) == MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions("alpha[0] = 0.5"));
    CHECK(mlak_alpha_entmax_f32(x, 4, y, 4, 1, 4, &nan_alpha, 1) == MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions("alpha[0] = NaN"));
    CHECK(mlak_alpha_entmax_f32(x, 4, y, 4, 1, 4, good_alpha, 2) == MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions("alpha_count = 2"));
    CHECK(mlak_alpha_entmax_f32(x, 4, y, 4, 1, 4, NULL, 1) == MLAK_STATUS_NULL_POINTER);
    CHECK(mlak_sparsemax(7, x, 4, y, 4, 1, 4) == MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions("x_dtype = 7"));
    CHECK(mlak_sparsemax_f32((const float *)y + 1, 3, y, 3, 1, 3) == MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(error_mentions("overlaps"));
    CHECK(all_equal(y, 4, 7.0f));
    CHECK(mlak_sparsemax_backward_f32(x, 4, x, 4, y, 4, 1, 4) == MLAK_STATUS_OK);
    CHECK(mlak_alpha_entmax_backward_f32(x, 4, x, 4, y, 4, 1, 4, &bad_alpha, 1, NULL) ==
          MLAK_STATUS_INVALID_ARGUMENT);
    {
        float untouched[4] = {7.0f, 7.0f, 7.0f, 7.0f};
        CHECK(mlak_entmax15_backward_f32(x, 4, x, 4, untouched, 2, 1, 4) == MLAK_STATUS_INVALID_ARGUMENT);
        CHECK(error_mentions("dx_row_stride = 2"));
        CHECK(all_equal(untouched, 4, 7.0f));
    }
    /* Empty shapes accept NULL. */
    CHECK(mlak_sparsemax_f32(NULL, 0, NULL, 0, 0, 0) == MLAK_STATUS_OK);
    CHECK(mlak_entmax15_backward_f32(NULL, 0, NULL, 0, NULL, 0, 3, 0) == MLAK_STATUS_OK);
}

int main(void) {
    test_sparsemax();
    test_entmax15();
    test_alpha_entmax();
    test_dtype_input();
    test_backward();
    test_errors();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
