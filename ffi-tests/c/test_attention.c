/* Fused attention through the C API: results against a naive double loop
 * (GQA, causal, padding lengths, f16 and bf16 K/V) and the argument checks. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define B 2
#define HQ 4
#define HKV 2
#define LQ 5
#define LKV 19
#define D 12

/* Widens an IEEE binary16 bit pattern (normal numbers and zero only). */
static float f16_to_float(uint16_t h) {
    int e = (h >> 10) & 0x1f;
    float m = (float)(h & 0x3ff);
    float v = e == 0 ? 0.0f : ldexpf(1.0f + m / 1024.0f, e - 15);
    return (h & 0x8000) ? -v : v;
}

/* Narrows a float in [-2, 2] to binary16 by truncating the mantissa. */
static uint16_t float_to_f16(float f) {
    uint16_t sign = f < 0 ? 0x8000 : 0;
    float a = fabsf(f);
    if (a < 6.2e-5f) return sign;
    int e;
    float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    uint16_t exp16 = (uint16_t)(e - 1 + 15);
    uint16_t man = (uint16_t)((m * 2.0f - 1.0f) * 1024.0f);
    return (uint16_t)(sign | (exp16 << 10) | man);
}

static uint16_t float_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return (uint16_t)(bits >> 16);
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float q[B * HQ * LQ * D], kf[B * HKV * LKV * D], vf[B * HKV * LKV * D];
static uint16_t kh[B * HKV * LKV * D], vh[B * HKV * LKV * D];
static float o[B * HQ * LQ * D], lse[B * HQ * LQ];

/* Reference with K and V given as floats (already widened). */
static void naive(const float *k, const float *v, int causal, const int64_t *lens, double *out, double *out_lse) {
    double scale = 1.0 / sqrt((double)D);
    for (int b = 0; b < B; b++) {
        int len = lens ? (int)lens[b] : LKV;
        for (int h = 0; h < HQ; h++) {
            int kvh = h / (HQ / HKV);
            for (int i = 0; i < LQ; i++) {
                int row = (b * HQ + h) * LQ + i;
                int pos = len - LQ + i;
                double s[LKV], m = -INFINITY, sum = 0.0;
                for (int j = 0; j < len; j++) {
                    double dot = 0.0;
                    for (int d = 0; d < D; d++)
                        dot += (double)q[row * D + d] * k[((b * HKV + kvh) * LKV + j) * D + d];
                    s[j] = (causal && j > pos) ? -INFINITY : scale * dot;
                    if (s[j] > m) m = s[j];
                }
                for (int d = 0; d < D; d++) out[row * D + d] = 0.0;
                if (m == -INFINITY) {
                    out_lse[row] = -INFINITY;
                    continue;
                }
                for (int j = 0; j < len; j++) sum += exp(s[j] - m);
                for (int j = 0; j < len; j++)
                    for (int d = 0; d < D; d++)
                        out[row * D + d] += exp(s[j] - m) / sum * v[((b * HKV + kvh) * LKV + j) * D + d];
                out_lse[row] = m + log(sum);
            }
        }
    }
}

static mlak_attention_params base_params(void) {
    mlak_attention_params p;
    memset(&p, 0, sizeof p);
    p.batch = B;
    p.q_heads = HQ;
    p.kv_heads = HKV;
    p.q_len = LQ;
    p.kv_len = LKV;
    p.head_dim = D;
    p.v_head_dim = D;
    p.q = q;
    p.k = kf;
    p.v = vf;
    p.kv_dtype = MLAK_DTYPE_F32;
    p.o = o;
    p.lse = lse;
    p.scale = 1.0f / sqrtf((float)D);
    int64_t qs[4] = {HQ * LQ * D, LQ * D, D, 1}, ks[4] = {HKV * LKV * D, LKV * D, D, 1};
    memcpy(p.q_strides, qs, sizeof qs);
    memcpy(p.o_strides, qs, sizeof qs);
    memcpy(p.k_strides, ks, sizeof ks);
    memcpy(p.v_strides, ks, sizeof ks);
    return p;
}

/* Compares o and lse with the reference; 1e-5 absolute covers f32
 * rounding of 12-term dot products and 19-key sums of values in [-1, 1]. */
static void compare(const char *what, const double *ref, const double *ref_lse) {
    int bad = 0;
    for (int n = 0; n < B * HQ * LQ * D && !bad; n++)
        if (fabs(o[n] - ref[n]) > 1e-5) {
            CHECK(0, "%s: o[%d] = %g, want %g", what, n, o[n], ref[n]);
            bad = 1;
        }
    for (int r = 0; r < B * HQ * LQ && !bad; r++)
        if (!(fabs(lse[r] - ref_lse[r]) <= 1e-5 || (isinf(lse[r]) && isinf(ref_lse[r])))) {
            CHECK(0, "%s: lse[%d] = %g, want %g", what, r, lse[r], ref_lse[r]);
            bad = 1;
        }
    CHECK(!bad, "%s", what);
}

int main(void) {
    static double ref[B * HQ * LQ * D], ref_lse[B * HQ * LQ];
    static float kw[B * HKV * LKV * D], vw[B * HKV * LKV * D];
    for (int n = 0; n < B * HQ * LQ * D; n++) q[n] = (float)((n * 7919) % 201) / 100.0f - 1.0f;
    for (int n = 0; n < B * HKV * LKV * D; n++) {
        kf[n] = (float)((n * 104729) % 199) / 99.0f - 1.0f;
        vf[n] = (float)((n * 65537) % 197) / 98.0f - 1.0f;
    }

    /* f32 K/V, GQA, causal. */
    mlak_attention_params p = base_params();
    p.causal = true;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_OK);
    naive(kf, vf, 1, NULL, ref, ref_lse);
    compare("f32 causal", ref, ref_lse);

    /* Padding mask as a BERT encoder uses it: per-batch lengths, no causal
     * mask, NaN in the unused slots of batch 1, no lse output. */
    int64_t lens[B] = {LKV, 7};
    p = base_params();
    p.kv_lengths = lens;
    p.lse = NULL;
    for (int h = 0; h < HKV; h++)
        for (int j = 7; j < LKV; j++) kf[((1 * HKV + h) * LKV + j) * D] = NAN;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_OK);
    naive(kf, vf, 0, lens, ref, ref_lse);
    p.lse = lse;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_OK);
    compare("kv_lengths with NaN slots", ref, ref_lse);
    for (int h = 0; h < HKV; h++)
        for (int j = 7; j < LKV; j++) kf[((1 * HKV + h) * LKV + j) * D] = 0.5f;

    /* f16 and bf16 K/V against the reference on the widened values. */
    for (int n = 0; n < B * HKV * LKV * D; n++) {
        kh[n] = float_to_f16(kf[n]);
        vh[n] = float_to_f16(vf[n]);
        kw[n] = f16_to_float(kh[n]);
        vw[n] = f16_to_float(vh[n]);
    }
    p = base_params();
    p.k = kh;
    p.v = vh;
    p.kv_dtype = MLAK_DTYPE_F16;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_OK);
    naive(kw, vw, 0, NULL, ref, ref_lse);
    compare("f16 K/V", ref, ref_lse);
    for (int n = 0; n < B * HKV * LKV * D; n++) {
        kh[n] = float_to_bf16(kf[n]);
        vh[n] = float_to_bf16(vf[n]);
        kw[n] = bf16_to_float(kh[n]);
        vw[n] = bf16_to_float(vh[n]);
    }
    p.kv_dtype = MLAK_DTYPE_BF16;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_OK);
    naive(kw, vw, 0, NULL, ref, ref_lse);
    compare("bf16 K/V", ref, ref_lse);

    /* Empty query: every pointer may be NULL. */
    mlak_attention_params e;
    memset(&e, 0, sizeof e);
    e.batch = 1;
    e.q_heads = 1;
    e.kv_heads = 1;
    e.head_dim = 4;
    e.v_head_dim = 4;
    CHECK_STATUS(mlak_attention(&e), MLAK_STATUS_OK);

    /* Argument checks: each rejected call leaves o untouched. */
    for (int n = 0; n < B * HQ * LQ * D; n++) o[n] = 7.0f;
    CHECK_STATUS(mlak_attention(NULL), MLAK_STATUS_NULL_POINTER);
    p = base_params();
    p.q_heads = 3;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "kv_heads") != NULL, "message: %s", mlak_last_error());
    p = base_params();
    p.k_strides[3] = 2;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "k_strides[3] = 2") != NULL, "message: %s", mlak_last_error());
    p = base_params();
    p.o = NULL;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_NULL_POINTER);
    p = base_params();
    p.o = (float *)q;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "overlaps q") != NULL, "message: %s", mlak_last_error());
    p = base_params();
    p.kv_dtype = 9;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_INVALID_ARGUMENT);
    p = base_params();
    lens[1] = LKV + 1;
    p.kv_lengths = lens;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_INVALID_ARGUMENT);
    p = base_params();
    p.window = -1;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_INVALID_ARGUMENT);
    p = base_params();
    p.q_strides[2] = -D;
    CHECK_STATUS(mlak_attention(&p), MLAK_STATUS_INVALID_ARGUMENT);
    int untouched = 1;
    for (int n = 0; n < B * HQ * LQ * D; n++) untouched &= o[n] == 7.0f;
    CHECK(untouched, "a rejected call wrote o");

    return check_summary("test_attention");
}
