/* Glue kernels through the C API: LayerNorm with a fused residual stored
 * in place, RMSNorm, GELU, SwiGLU, bias add and RoPE against naive double
 * loops, and the argument checks. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define ROWS 3
#define N 37
#define STRIDE 40

static double value(int i) { return (double)((i * 7919) % 101) / 25.0 - 2.0; }

int main(void) {
    float x[ROWS * STRIDE], res[ROWS * STRIDE], y[ROWS * STRIDE], gamma[N], beta[N];
    for (int i = 0; i < ROWS * STRIDE; i++) {
        x[i] = (float)value(i);
        res[i] = (float)value(i + 13);
    }
    for (int i = 0; i < N; i++) {
        gamma[i] = 1.0f + 0.01f * (float)i;
        beta[i] = 0.5f - 0.02f * (float)i;
    }

    /* LayerNorm of x + res, storing the sum back into res (the residual
     * stream updated in place). */
    float res0[ROWS * STRIDE];
    memcpy(res0, res, sizeof res);
    CHECK_STATUS(mlak_layernorm_f32(x, STRIDE, res, STRIDE, gamma, beta, 1e-5f, y, STRIDE, res, STRIDE, ROWS, N),
                 MLAK_STATUS_OK);
    for (int r = 0; r < ROWS; r++) {
        double h[N], mean = 0, var = 0;
        for (int i = 0; i < N; i++) mean += h[i] = (double)x[r * STRIDE + i] + res0[r * STRIDE + i];
        mean /= N;
        for (int i = 0; i < N; i++) var += (h[i] - mean) * (h[i] - mean);
        var /= N;
        for (int i = 0; i < N; i++) {
            double want = (h[i] - mean) / sqrt(var + 1e-5) * gamma[i] + beta[i];
            CHECK(fabs(y[r * STRIDE + i] - want) <= 1e-5, "layernorm row %d index %d: got %g want %g", r, i,
                  y[r * STRIDE + i], want);
            CHECK(fabs(res[r * STRIDE + i] - h[i]) <= 1e-6, "sum row %d index %d: got %g want %g", r, i,
                  res[r * STRIDE + i], h[i]);
        }
    }

    /* RMSNorm without gamma, in place. */
    float z[ROWS * STRIDE];
    memcpy(z, x, sizeof x);
    CHECK_STATUS(mlak_rmsnorm_f32(z, STRIDE, NULL, 0, NULL, 1e-6f, z, STRIDE, NULL, 0, ROWS, N), MLAK_STATUS_OK);
    double ms = 0;
    for (int i = 0; i < N; i++) ms += (double)x[i] * x[i];
    ms /= N;
    CHECK(fabs(z[5] - x[5] / sqrt(ms + 1e-6)) <= 1e-5, "rmsnorm got %g want %g", z[5], x[5] / sqrt(ms + 1e-6));

    /* GELU (erf form), SwiGLU and bias add. */
    CHECK_STATUS(mlak_gelu_f32(x, STRIDE, y, STRIDE, ROWS, N), MLAK_STATUS_OK);
    for (int i = 0; i < N; i++) {
        double want = 0.5 * x[i] * erfc(-x[i] / sqrt(2.0));
        CHECK(fabs(y[i] - want) <= 1e-6, "gelu index %d: got %g want %g", i, y[i], want);
    }
    CHECK_STATUS(mlak_swiglu_f32(x, STRIDE, res0, STRIDE, y, STRIDE, ROWS, N), MLAK_STATUS_OK);
    double silu = x[7] / (1.0 + exp(-x[7]));
    CHECK(fabs(y[7] - silu * res0[7]) <= 1e-5, "swiglu got %g want %g", y[7], silu * res0[7]);
    CHECK_STATUS(mlak_bias_add_f32(x, STRIDE, beta, y, STRIDE, ROWS, N), MLAK_STATUS_OK);
    CHECK(y[STRIDE + 3] == x[STRIDE + 3] + beta[3], "bias_add got %g", y[STRIDE + 3]);

    /* RoPE, half-split, 2 heads of 8 per token, positions 10 and 11. */
    float q[2 * 16], qr[2 * 16];
    for (int i = 0; i < 32; i++) q[i] = (float)value(i);
    CHECK_STATUS(mlak_rope_f32(q, 16, qr, 16, 2, 2, 8, 8, MLAK_ROPE_LAYOUT_HALF_SPLIT, 10000.0f, 10, NULL),
                 MLAK_STATUS_OK);
    for (int t = 0; t < 2; t++) {
        for (int h = 0; h < 2; h++) {
            for (int i = 0; i < 4; i++) {
                const float *a = q + t * 16 + h * 8;
                double theta = (10 + t) * pow(10000.0, -2.0 * i / 8);
                double want = a[i] * cos(theta) - a[i + 4] * sin(theta);
                double got = qr[t * 16 + h * 8 + i];
                CHECK(fabs(got - want) <= 1e-5, "rope token %d head %d pair %d: got %g want %g", t, h, i, got, want);
            }
        }
    }

    /* Errors: each is rejected with its status and writes nothing. */
    float before[ROWS * STRIDE];
    memcpy(before, y, sizeof y);
    CHECK_STATUS(mlak_layernorm_f32(x, STRIDE, NULL, 0, NULL, NULL, -1.0f, y, STRIDE, NULL, 0, ROWS, N),
                 MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "eps = -1") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_layernorm_f32(x, STRIDE, res, STRIDE, NULL, NULL, 1e-5f, y, STRIDE, y, STRIDE, ROWS, N),
                 MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "overlaps") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_gelu_f32(x, N - 1, y, STRIDE, ROWS, N), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(mlak_gelu_f32(NULL, STRIDE, y, STRIDE, ROWS, N), MLAK_STATUS_NULL_POINTER);
    CHECK_STATUS(mlak_bias_add_f32(x, STRIDE, NULL, y, STRIDE, ROWS, N), MLAK_STATUS_NULL_POINTER);
    CHECK_STATUS(mlak_rope_f32(q, 16, qr, 16, 2, 2, 8, 7, MLAK_ROPE_LAYOUT_HALF_SPLIT, 10000.0f, 0, NULL),
                 MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "rotary_dim = 7") != NULL, "message: %s", mlak_last_error());
    CHECK_STATUS(mlak_rope_f32(q, 16, qr, 16, 2, 2, 8, 8, 5, 10000.0f, 0, NULL), MLAK_STATUS_INVALID_ARGUMENT);
    int64_t bad_positions[2] = {0, -4};
    CHECK_STATUS(mlak_rope_f32(q, 16, qr, 16, 2, 2, 8, 8, MLAK_ROPE_LAYOUT_INTERLEAVED, 10000.0f, 0, bad_positions),
                 MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "positions[1] = -4") != NULL, "message: %s", mlak_last_error());
    CHECK(memcmp(before, y, sizeof y) == 0, "a rejected call wrote its output");

    return check_summary("test_glue");
}
