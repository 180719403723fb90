/* Softmax family through the C API: results against a naive double loop
 * and every argument check. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define ROWS 3
#define N 37
#define STRIDE 40

static void naive_softmax(const float *x, int n, double inv_t, double *out) {
    double m = -INFINITY, s = 0.0;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int i = 0; i < n; i++) s += exp((x[i] - m) * inv_t);
    for (int i = 0; i < n; i++) out[i] = exp((x[i] - m) * inv_t) / s;
}

int main(void) {
    float x[ROWS * STRIDE], y[ROWS * STRIDE], z[ROWS * STRIDE];
    for (int i = 0; i < ROWS * STRIDE; i++) x[i] = (float)((i * 7919) % 101) / 10.0f - 5.0f;

    /* Results: probabilities within 1e-6 of double, padding untouched. */
    for (int i = 0; i < ROWS * STRIDE; i++) y[i] = -1.0f;
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, y, STRIDE, ROWS, N, 2.0f), MLAK_STATUS_OK);
    double ref[N];
    for (int r = 0; r < ROWS; r++) {
        naive_softmax(x + r * STRIDE, N, 0.5, ref);
        for (int i = 0; i < N; i++) {
            CHECK(fabs(y[r * STRIDE + i] - ref[i]) <= 1e-6, "row %d index %d: got %g want %g", r, i, y[r * STRIDE + i], ref[i]);
        }
        CHECK(y[r * STRIDE + N] == -1.0f, "padding of row %d written", r);
    }
    CHECK_STATUS(mlak_log_softmax_f32(x, STRIDE, z, STRIDE, ROWS, N, 2.0f), MLAK_STATUS_OK);
    CHECK(fabs(z[1] - log(y[1])) <= 1e-5, "log_softmax %g vs log(softmax) %g", z[1], log(y[1]));

    /* In place with the same stride is allowed. */
    memcpy(z, x, sizeof x);
    CHECK_STATUS(mlak_softmax_f32(z, STRIDE, z, STRIDE, ROWS, N, 2.0f), MLAK_STATUS_OK);
    CHECK(memcmp(z, y, sizeof(float) * N) == 0, "in-place result differs");

    mlak_confidence c[ROWS];
    CHECK_STATUS(mlak_confidence_f32(x, STRIDE, ROWS, N, 1.0f, c), MLAK_STATUS_OK);
    naive_softmax(x, N, 1.0, ref);
    double h = 0, pmax = 0;
    for (int i = 0; i < N; i++) {
        h -= ref[i] > 0 ? ref[i] * log(ref[i]) : 0;
        pmax = ref[i] > pmax ? ref[i] : pmax;
    }
    CHECK(fabs(c[0].entropy - h) <= 1e-5, "entropy %g want %g", c[0].entropy, h);
    CHECK(fabs(c[0].max_prob - pmax) <= 1e-6, "max_prob %g want %g", c[0].max_prob, pmax);

    bool exits[ROWS];
    int64_t count = -1;
    mlak_exit_thresholds t = {INFINITY, 0.0f, 0.0f};
    CHECK_STATUS(mlak_early_exit_f32(x, STRIDE, ROWS, N, 1.0f, &t, exits, NULL, &count), MLAK_STATUS_OK);
    CHECK(count == ROWS, "all rows should pass disabled thresholds, got %lld", (long long)count);

    /* Errors: each is rejected with its status and writes nothing. */
    for (int i = 0; i < ROWS * STRIDE; i++) z[i] = 42.0f;
    CHECK_STATUS(mlak_softmax_f32(NULL, STRIDE, z, STRIDE, ROWS, N, 1.0f), MLAK_STATUS_NULL_POINTER);
    CHECK(strstr(mlak_last_error(), "x is NULL") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, NULL, STRIDE, ROWS, N, 1.0f), MLAK_STATUS_NULL_POINTER);
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, z, STRIDE, -1, N, 1.0f), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "rows = -1") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, z, STRIDE, ROWS, -5, 1.0f), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "n = -5") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_softmax_f32(x, N - 1, z, STRIDE, ROWS, N, 1.0f), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "x_row_stride = 36") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, z, -3, ROWS, N, 1.0f), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(mlak_softmax_f32(x, INT64_MAX, z, STRIDE, ROWS, N, 1.0f), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "isize::MAX") != NULL, "overflow message: %s", mlak_last_error());
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, z, STRIDE, INT64_MAX, INT64_MAX, 1.0f), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, z, STRIDE, ROWS, N, 0.0f), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "temperature = 0") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, z, STRIDE, ROWS, N, NAN), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(mlak_softmax_f32(x, STRIDE, (float *)x + 1, STRIDE, ROWS, N, 1.0f), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "overlaps") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_softmax_f32((const float *)((const char *)x + 1), STRIDE, z, STRIDE, 1, 4, 1.0f),
                 MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "aligned") != NULL, "message: %s", mlak_last_error());
    int untouched = 1;
    for (int i = 0; i < ROWS * STRIDE; i++) untouched &= z[i] == 42.0f;
    CHECK(untouched, "a rejected call wrote its output");

    /* Empty shapes are valid and may pass NULL. */
    CHECK_STATUS(mlak_softmax_f32(NULL, 0, NULL, 0, 0, 0, 1.0f), MLAK_STATUS_OK);
    CHECK_STATUS(mlak_softmax_f32(NULL, 5, NULL, 5, 0, 5, 1.0f), MLAK_STATUS_OK);

    CHECK_STATUS(mlak_confidence_f32(x, STRIDE, ROWS, N, 1.0f, NULL), MLAK_STATUS_NULL_POINTER);
    CHECK_STATUS(mlak_early_exit_f32(x, STRIDE, ROWS, N, 1.0f, NULL, exits, NULL, NULL), MLAK_STATUS_NULL_POINTER);
    mlak_exit_thresholds bad = {NAN, 0.0f, 0.0f};
    CHECK_STATUS(mlak_early_exit_f32(x, STRIDE, ROWS, N, 1.0f, &bad, exits, NULL, NULL), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "max_entropy") != NULL, "message: %s", mlak_last_error());

    return check_summary("test_softmax");
}
