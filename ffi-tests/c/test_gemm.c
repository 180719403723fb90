/*
 * cblas_sgemm, sgemm_ and mlak_sgemm against a naive triple loop,
 * including the BLAS-style reporting of invalid arguments.
 *
 * Self-contained: prints "N passed, N failed" and exits nonzero on any
 * failure. Build (C99, warning-free under -Wall -Wextra -Werror -pedantic):
 *   cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude \
 *      ffi-tests/c/test_gemm.c target/debug/libmlak.a -lpthread -ldl -lm
 *
 * Tolerance per element: (k + 4) * FLT_EPSILON * (|alpha| * sum_p |a||b| +
 * |beta| * |c|), the forward error bound of an f32 dot product in any
 * summation order plus the scaling and the final rounding.
 */
#include "mlak.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed = 0;
static int failed = 0;

static void check(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL line %d: %s\n", line, what);
    }
}
#define CHECK(cond, what) check((cond), (what), __LINE__)

static unsigned rng_state = 12345u;
static float rnd(void) {
    rng_state = rng_state * 1103515245u + 12345u;
    return (float)((rng_state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* Element (i, j) of the op of a matrix stored with leading dimension ld. */
static float op_at(const float *x, int row_major, int trans, int ld, int i, int j) {
    if (trans) {
        int t = i;
        i = j;
        j = t;
    }
    return row_major ? x[(size_t)i * ld + j] : x[i + (size_t)j * ld];
}

/* Compares C after a call with the naive product over c0 (C before). */
static int matches(int row_major, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, const float *c0, const float *c, int ldc) {
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double acc = 0.0, scale = 0.0;
            for (int p = 0; p < k; p++) {
                double x = op_at(a, row_major, ta, lda, i, p), y = op_at(b, row_major, tb, ldb, p, j);
                acc += x * y;
                scale += fabs(x * y);
            }
            size_t idx = row_major ? (size_t)i * ldc + j : i + (size_t)j * ldc;
            double want = alpha * acc + (beta != 0.0f ? beta * (double)c0[idx] : 0.0);
            double tol = (k + 4) * FLT_EPSILON * (fabs(alpha) * scale + fabs(beta * (double)c0[idx])) + 1e-30;
            if (!(fabs(c[idx] - want) <= tol)) {
                printf("  C[%d, %d] = %g, want %g (tol %g), m=%d n=%d k=%d\n", i, j, c[idx], want, tol, m, n, k);
                return 0;
            }
        }
    }
    return 1;
}

static float *filled(size_t len) {
    float *x = malloc((len ? len : 1) * sizeof(float));
    for (size_t i = 0; i < len; i++) {
        x[i] = rnd();
    }
    return x;
}

/* Runs one cblas_sgemm (or sgemm_ when fortran is set; column-major only). */
static void run_case(int fortran, int row_major, int ta, int tb, int m, int n, int k, float alpha, float beta,
                     int pad, int nan_c) {
    int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    int lda = (row_major ? ac : ar) + pad, ldb = (row_major ? bc : br) + pad, ldc = (row_major ? n : m) + pad;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    if (ldc < 1) ldc = 1;
    size_t alen = (size_t)lda * (row_major ? ar : ac), blen = (size_t)ldb * (row_major ? br : bc);
    size_t clen = (size_t)ldc * (row_major ? m : n);
    float *a = filled(alen), *b = filled(blen), *c = filled(clen), *c0 = malloc((clen ? clen : 1) * sizeof(float));
    if (nan_c) {
        for (size_t i = 0; i < clen; i++) c[i] = NAN;
    }
    memcpy(c0, c, clen * sizeof(float));
    if (fortran) {
        char tra = ta ? 'T' : 'n', trb = tb ? 'c' : 'N';
        sgemm_(&tra, &trb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
    } else {
        cblas_sgemm(row_major ? MLAK_CBLAS_ROW_MAJOR : MLAK_CBLAS_COL_MAJOR, ta ? MLAK_CBLAS_TRANS : MLAK_CBLAS_NO_TRANS,
                    tb ? MLAK_CBLAS_CONJ_TRANS : MLAK_CBLAS_NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
    char what[160];
    snprintf(what, sizeof what, "%s row_major=%d ta=%d tb=%d m=%d n=%d k=%d alpha=%g beta=%g pad=%d nan_c=%d",
             fortran ? "sgemm_" : "cblas_sgemm", row_major, ta, tb, m, n, k, alpha, beta, pad, nan_c);
    CHECK(mlak_blas_last_error_parameter() == 0, what);
    if (nan_c) {
        /* beta = 0: C must hold alpha*A*B with no NaN from the old C. */
        for (size_t i = 0; i < clen; i++) c0[i] = 0.0f;
        int leaked = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                leaked |= isnan(c[row_major ? (size_t)i * ldc + j : i + (size_t)j * ldc]);
        CHECK(!leaked, what);
        if (!leaked) CHECK(matches(row_major, ta, tb, m, n, k, alpha, a, lda, b, ldb, 0.0f, c0, c, ldc), what);
    } else {
        CHECK(matches(row_major, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, c, ldc), what);
    }
    free(a);
    free(b);
    free(c);
    free(c0);
}

static void valid_calls(void) {
    static const int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {13, 33, 17}, {40, 9, 65}, {3, 300, 50}, {0, 4, 4}, {4, 0, 4}, {6, 5, 0}};
    static const float alphas[] = {1.0f, -0.5f, 0.0f};
    static const float betas[] = {0.0f, 1.0f, 0.25f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int layout = 0; layout < 2; layout++) {
            for (int ta = 0; ta < 2; ta++) {
                for (int tb = 0; tb < 2; tb++) {
                    for (int v = 0; v < 3; v++) {
                        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                        run_case(0, layout, ta, tb, m, n, k, alphas[v], betas[v], v, 0);
                        run_case(0, layout, ta, tb, m, n, k, alphas[v], 0.0f, 0, 1);
                        if (!layout) {
                            run_case(1, 0, ta, tb, m, n, k, alphas[v], betas[v], v, 0);
                        }
                    }
                }
            }
        }
    }
}

/* Calls cblas_sgemm with one bad argument and checks INFO and C. */
static void cblas_error(int order, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc, int want,
                        const char *what) {
    float a[64], b[64], c[64];
    for (int i = 0; i < 64; i++) a[i] = b[i] = 1.0f, c[i] = 42.0f;
    cblas_sgemm(order, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
    int info = mlak_blas_last_error_parameter();
    if (info != want) printf("  %s: INFO %d, want %d\n", what, info, want);
    CHECK(info == want, what);
    int untouched = 1;
    for (int i = 0; i < 64; i++) untouched &= c[i] == 42.0f;
    CHECK(untouched, what);
    CHECK(strlen(mlak_last_error()) > 0, what);
}

static void sgemm_error(char ta, char tb, int m, int n, int k, int lda, int ldb, int ldc, int want, const char *what) {
    float a[64], b[64], c[64], alpha = 1.0f, beta = 0.0f;
    for (int i = 0; i < 64; i++) a[i] = b[i] = 1.0f, c[i] = 42.0f;
    sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
    int info = mlak_blas_last_error_parameter();
    if (info != want) printf("  %s: INFO %d, want %d\n", what, info, want);
    CHECK(info == want, what);
    int untouched = 1;
    for (int i = 0; i < 64; i++) untouched &= c[i] == 42.0f;
    CHECK(untouched, what);
}

static void invalid_calls(void) {
    const int R = MLAK_CBLAS_ROW_MAJOR, C = MLAK_CBLAS_COL_MAJOR, N = MLAK_CBLAS_NO_TRANS, T = MLAK_CBLAS_TRANS;
    cblas_error(7, N, N, 2, 2, 2, 2, 2, 2, 1, "cblas order");
    cblas_error(R, 0, N, 2, 2, 2, 2, 2, 2, 2, "cblas trans_a");
    cblas_error(R, N, 114, 2, 2, 2, 2, 2, 2, 3, "cblas trans_b");
    cblas_error(R, N, N, -1, 2, 2, 2, 2, 2, 4, "cblas m");
    cblas_error(R, N, N, 2, -1, 2, 2, 2, 2, 5, "cblas n");
    cblas_error(R, N, N, 2, 2, -1, 2, 2, 2, 6, "cblas k");
    cblas_error(R, N, N, 2, 3, 4, 3, 3, 3, 9, "cblas lda row-major (needs k)");
    cblas_error(R, T, N, 5, 3, 4, 4, 3, 3, 9, "cblas lda row-major transposed (needs m)");
    cblas_error(C, N, N, 3, 2, 4, 2, 4, 3, 9, "cblas lda column-major (needs m)");
    cblas_error(R, N, N, 2, 3, 4, 4, 2, 3, 11, "cblas ldb");
    cblas_error(C, N, T, 2, 3, 4, 2, 2, 2, 11, "cblas ldb column-major transposed (needs n)");
    cblas_error(R, N, N, 2, 3, 4, 4, 3, 2, 14, "cblas ldc row-major (needs n)");
    cblas_error(C, N, N, 3, 2, 2, 3, 2, 2, 14, "cblas ldc column-major (needs m)");
    cblas_error(R, N, N, 0, 0, 0, 0, 1, 1, 9, "cblas lda 0 with empty shape");

    /* A valid call afterwards resets INFO to 0. */
    float one = 1.0f, out = 0.0f;
    cblas_sgemm(R, N, N, 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &out, 1);
    CHECK(mlak_blas_last_error_parameter() == 0, "cblas valid call after an error keeps a stale parameter");
    CHECK(out == 1.0f, "cblas valid call after an error computes 1 x 1");

    /* NULL C with a non-empty result (beyond reference CBLAS). */
    cblas_sgemm(R, N, N, 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, NULL, 1);
    CHECK(mlak_blas_last_error_parameter() == 13, "cblas NULL c");

    sgemm_error('X', 'N', 2, 2, 2, 2, 2, 2, 1, "sgemm_ transa");
    sgemm_error('N', '?', 2, 2, 2, 2, 2, 2, 2, "sgemm_ transb");
    sgemm_error('N', 'N', -3, 2, 2, 2, 2, 2, 3, "sgemm_ m");
    sgemm_error('N', 'N', 2, -3, 2, 2, 2, 2, 4, "sgemm_ n");
    sgemm_error('N', 'N', 2, 2, -3, 2, 2, 2, 5, "sgemm_ k");
    sgemm_error('N', 'N', 3, 2, 2, 2, 2, 3, 8, "sgemm_ lda");
    sgemm_error('T', 'N', 3, 2, 4, 3, 4, 3, 8, "sgemm_ lda transposed (needs k)");
    sgemm_error('N', 'N', 2, 2, 4, 2, 3, 2, 10, "sgemm_ ldb");
    sgemm_error('N', 'N', 3, 2, 2, 3, 2, 2, 13, "sgemm_ ldc");
}

static void native_calls(void) {
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, c[4] = {NAN, NAN, NAN, NAN};
    /* A 2x3 row-major, B 3x2 row-major, C 2x2 row-major. */
    mlak_status s = mlak_sgemm(2, 2, 3, 1.0f, a, 3, 1, b, 2, 1, 0.0f, c, 2, 1);
    CHECK(s == MLAK_STATUS_OK, "mlak_sgemm status");
    CHECK(c[0] == 4, "mlak_sgemm C[0] with NaN C and beta 0");
    CHECK(c[1] == 5, "mlak_sgemm C[1] with NaN C and beta 0");
    CHECK(c[2] == 10, "mlak_sgemm C[2] with NaN C and beta 0");
    CHECK(c[3] == 11, "mlak_sgemm C[3] with NaN C and beta 0");
    s = mlak_sgemm(-1, 2, 3, 1.0f, a, 3, 1, b, 2, 1, 0.0f, c, 2, 1);
    CHECK(s == MLAK_STATUS_INVALID_ARGUMENT, "mlak_sgemm negative m rejected");
    CHECK(c[0] == 4, "mlak_sgemm negative m leaves C untouched");
    s = mlak_sgemm(2, 2, 3, 1.0f, NULL, 3, 1, b, 2, 1, 0.0f, c, 2, 1);
    CHECK(s == MLAK_STATUS_NULL_POINTER, "mlak_sgemm NULL a rejected");
    s = mlak_sgemm(2, 2, 3, 1.0f, a, 3, 1, b, 2, 1, 0.0f, (float *)a, 2, 1);
    CHECK(s == MLAK_STATUS_INVALID_ARGUMENT, "mlak_sgemm C overlapping A rejected");
    s = mlak_sgemm(0, 0, 0, 1.0f, NULL, 0, 0, NULL, 0, 0, 0.0f, NULL, 0, 0);
    CHECK(s == MLAK_STATUS_OK, "mlak_sgemm empty with NULL pointers");

    /* bf16 A (1.0, 2.0, ... as bit patterns) times f32 B. */
    uint16_t abf[6];
    for (int i = 0; i < 6; i++) {
        float v = a[i];
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        abf[i] = (uint16_t)(bits >> 16);
    }
    s = mlak_gemm_mixed(2, 2, 3, 1.0f, abf, MLAK_DTYPE_BF16, 3, 1, b, MLAK_DTYPE_F32, 2, 1, 0.0f, c, 2, 1);
    CHECK(s == MLAK_STATUS_OK, "mlak_gemm_mixed bf16 x f32 status");
    CHECK(c[0] == 4, "mlak_gemm_mixed bf16 x f32 C[0]");
    CHECK(c[3] == 11, "mlak_gemm_mixed bf16 x f32 C[3]");
    s = mlak_gemm_mixed(2, 2, 3, 1.0f, abf, 9, 3, 1, b, MLAK_DTYPE_F32, 2, 1, 0.0f, c, 2, 1);
    CHECK(s == MLAK_STATUS_INVALID_ARGUMENT, "mlak_gemm_mixed unknown dtype rejected");
}

int main(void) {
    valid_calls();
    invalid_calls();
    native_calls();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
