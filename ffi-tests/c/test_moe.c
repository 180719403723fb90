/* Mixture-of-experts family through the C API: routers, layout, gather,
 * combine and the fused layer against naive double loops, plus argument
 * checks. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define T 6
#define E 8
#define K 2
#define D 12
#define F 5

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Naive SwiGLU FFN of one row in the Linear layout. */
static void naive_ffn(const float *x, const float *gate, const float *up, const float *down, int width, double *y) {
    double h[F];
    for (int j = 0; j < width; j++) {
        double g = 0, u = 0;
        for (int p = 0; p < D; p++) {
            g += (double)gate[j * D + p] * x[p];
            u += (double)up[j * D + p] * x[p];
        }
        h[j] = g * sigmoid(g) * u;
    }
    for (int i = 0; i < D; i++) {
        y[i] = 0;
        for (int j = 0; j < width; j++) y[i] += (double)down[i * width + j] * h[j];
    }
}

/* Checks got[i] == want[i] for i < n, one check per element. */
static void check_i64(const char *what, const int64_t *got, const int64_t *want, int n) {
    for (int i = 0; i < n; i++) {
        CHECK(got[i] == want[i], "%s[%d] = %lld, want %lld", what, i, (long long)got[i], (long long)want[i]);
    }
}

static float value(int i, int salt) { return (float)(((i * 7919 + salt * 104729) % 201) - 100) / 200.0f; }

static void test_routers(void) {
    float logits[T * E];
    for (int i = 0; i < T * E; i++) logits[i] = value(i, 1) * 4.0f;
    logits[3] = logits[5]; /* a tie in row 0 */
    int32_t ids[T * K];
    float w[T * K], probs[T * E];
    CHECK_STATUS(mlak_moe_route_softmax_topk_f32(logits, T, E, K, true, ids, w, probs), MLAK_STATUS_OK);
    for (int t = 0; t < T; t++) {
        const float *row = logits + t * E;
        /* Naive top-2: larger first, lower index on ties. */
        int a = 0;
        for (int e = 1; e < E; e++) if (row[e] > row[a]) a = e;
        int b = a == 0 ? 1 : 0;
        for (int e = 0; e < E; e++) if (e != a && row[e] > row[b]) b = e;
        CHECK(ids[t * K] == a, "row %d first id %d, want %d", t, ids[t * K], a);
        CHECK(ids[t * K + 1] == b, "row %d second id %d, want %d", t, ids[t * K + 1], b);
        double m = row[a], s = 0;
        for (int e = 0; e < E; e++) s += exp(row[e] - m);
        double pa = 1.0 / s, pb = exp(row[b] - m) / s;
        CHECK(fabs(probs[t * E + a] - pa) <= 1e-6, "row %d probability %g want %g", t, probs[t * E + a], pa);
        CHECK(fabs(w[t * K] - pa / (pa + pb)) <= 1e-6, "row %d weight %g want %g", t, w[t * K], pa / (pa + pb));
    }

    /* Grouped: expert 0 has the best biased score, but its group loses. */
    float g_logits[8] = {2.2f, 0.0f, 0.0f, 0.0f, -3.0f, -3.0f, -3.0f, -3.0f};
    float bias[8] = {0.0f, -5.0f, -1.0f, -1.0f, -2.0f, -2.0f, -2.0f, -2.0f};
    mlak_moe_grouped_params gp = {4, 1, 2, 2.5f};
    int32_t g_ids[2] = {-9, -9};
    float g_w[2];
    CHECK_STATUS(mlak_moe_route_grouped_sigmoid_f32(g_logits, 1, 8, &gp, bias, g_ids, g_w, NULL), MLAK_STATUS_OK);
    CHECK(g_ids[0] == 2, "grouped first id %d, want 2", g_ids[0]);
    CHECK(g_ids[1] == 3, "grouped second id %d, want 3", g_ids[1]);
    CHECK(g_w[0] == 1.25f, "grouped first weight %g, want 1.25", g_w[0]);
    CHECK(g_w[1] == 1.25f, "grouped second weight %g, want 1.25", g_w[1]);

    /* Capacity 1 per expert: tokens 1 and 2 overflow expert 0. */
    float c_logits[6] = {1.0f, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f};
    int32_t c_ids[3];
    float c_w[3];
    int64_t dropped[3], capacity = -1, num_dropped = -1;
    CHECK_STATUS(mlak_moe_route_top1_capacity_f32(c_logits, 3, 2, 0.5f, c_ids, c_w, dropped, NULL, &capacity, &num_dropped),
                 MLAK_STATUS_OK);
    CHECK(capacity == 1, "capacity %lld, want 1", (long long)capacity);
    CHECK(num_dropped == 2, "num_dropped %lld, want 2", (long long)num_dropped);
    int64_t want_dropped[2] = {1, 2};
    check_i64("dropped", dropped, want_dropped, 2);
    CHECK(c_ids[1] == -1, "dropped token id %d, want -1", c_ids[1]);
    CHECK(c_w[1] == 0.0f, "dropped token weight %g, want 0", c_w[1]);

    int64_t counts[E];
    float mean[E], aux = -1.0f, z = -1.0f;
    CHECK_STATUS(mlak_moe_load_stats_f32(ids, probs, T, E, K, counts, mean, &aux), MLAK_STATUS_OK);
    int64_t total = 0;
    for (int e = 0; e < E; e++) total += counts[e];
    CHECK(total == T * K, "counts sum to %lld", (long long)total);
    CHECK(aux > 0.0f, "aux loss %g", aux);
    CHECK_STATUS(mlak_moe_router_z_loss_f32(logits, T, E, &z), MLAK_STATUS_OK);
    CHECK(z > 0.0f, "z-loss %g", z);
    float b[4] = {0, 0, 0, 0};
    int64_t loads[4] = {3, 1, 2, 2};
    CHECK_STATUS(mlak_moe_update_bias_f32(b, loads, 4, 0.5f), MLAK_STATUS_OK);
    CHECK(b[0] == -0.5f, "overloaded expert bias %g, want -0.5", b[0]);
    CHECK(b[1] == 0.5f, "underloaded expert bias %g, want 0.5", b[1]);
    CHECK(b[2] == 0.0f, "balanced expert bias %g, want 0", b[2]);
}

static void test_layout_gather_combine(void) {
    int32_t ids[T * K] = {1, 0, 3, 1, 1, 2, 0, 3, -1, 1, 3, 0};
    int64_t counts[4], offsets[5], token_slot[T * K], slot_token[T * K + 4 * 3], num_slots = -1;
    CHECK_STATUS(mlak_moe_layout(ids, T, K, 4, 4, counts, offsets, token_slot, slot_token, T * K + 4 * 3, &num_slots),
                 MLAK_STATUS_OK);
    int64_t want_counts[4] = {3, 4, 1, 3}, want_offsets[5] = {0, 4, 8, 12, 16}, want_expert1[4] = {0, 1, 2, 4};
    check_i64("counts", counts, want_counts, 4);
    check_i64("offsets", offsets, want_offsets, 5);
    check_i64("expert 1 slot_token", slot_token + 4, want_expert1, 4);
    CHECK(num_slots == 16, "num_slots %lld, want 16", (long long)num_slots);
    CHECK(slot_token[3] == -1, "padding slot_token[3] = %lld, want -1", (long long)slot_token[3]);
    CHECK(token_slot[8] == -1, "dropped token_slot[8] = %lld, want -1", (long long)token_slot[8]);
    int64_t send[2];
    CHECK_STATUS(mlak_moe_rank_send_counts(counts, 4, 2, send), MLAK_STATUS_OK);
    int64_t want_send[2] = {7, 4};
    check_i64("send_counts", send, want_send, 2);

    float x[T * D], xs[16 * D];
    uint16_t xh[T * D], xsh[16 * D];
    for (int i = 0; i < T * D; i++) {
        x[i] = value(i, 2);
        xh[i] = (uint16_t)(i * 31);
    }
    CHECK_STATUS(mlak_moe_gather(MLAK_DTYPE_F32, x, D, T, D, slot_token, num_slots, xs, D), MLAK_STATUS_OK);
    CHECK_STATUS(mlak_moe_gather(MLAK_DTYPE_BF16, xh, D, T, D, slot_token, num_slots, xsh, D), MLAK_STATUS_OK);
    for (int s = 0; s < num_slots; s++) {
        for (int c = 0; c < D; c++) {
            float want = slot_token[s] < 0 ? 0.0f : x[slot_token[s] * D + c];
            uint16_t want_h = slot_token[s] < 0 ? 0 : xh[slot_token[s] * D + c];
            CHECK(xs[s * D + c] == want, "gather slot %d column %d: %g want %g", s, c, xs[s * D + c], want);
            CHECK(xsh[s * D + c] == want_h, "bf16 gather slot %d column %d", s, c);
        }
    }

    float w[T * K], out[T * D];
    for (int i = 0; i < T * K; i++) w[i] = 0.25f * (float)(i % 3 + 1);
    CHECK_STATUS(mlak_moe_combine_f32(xs, D, num_slots, D, token_slot, w, T, K, out, D, false), MLAK_STATUS_OK);
    for (int t = 0; t < T; t++) {
        for (int c = 0; c < D; c++) {
            double want = 0;
            for (int j = 0; j < K; j++) {
                if (ids[t * K + j] >= 0) want += (double)w[t * K + j] * x[t * D + c];
            }
            CHECK(fabs(out[t * D + c] - want) <= 1e-6, "combine token %d column %d: %g want %g", t, c, out[t * D + c], want);
        }
    }

    /* Rejected calls write nothing. */
    int64_t bad_counts[4] = {-5, -5, -5, -5};
    int32_t bad_ids[2] = {0, 4};
    CHECK_STATUS(mlak_moe_layout(bad_ids, 2, 1, 4, 1, bad_counts, offsets, token_slot, slot_token, 2, NULL),
                 MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "ids[1] = 4") != NULL, "message: %s", mlak_last_error());
    CHECK(bad_counts[0] == -5, "rejected layout wrote counts");
    CHECK_STATUS(mlak_moe_layout(ids, T, K, 4, 4, counts, offsets, token_slot, slot_token, 15, NULL),
                 MLAK_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(mlak_moe_gather(7, x, D, T, D, slot_token, num_slots, xs, D), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(mlak_moe_gather(MLAK_DTYPE_F32, NULL, D, T, D, slot_token, num_slots, xs, D), MLAK_STATUS_NULL_POINTER);
    CHECK_STATUS(mlak_moe_gather(MLAK_DTYPE_F32, x, D, T, -1, slot_token, num_slots, xs, D), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(mlak_moe_combine_f32(xs, D, 3, D, token_slot, w, T, K, out, D, false), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "num_slots = 3") != NULL, "message: %s", mlak_last_error());
}

static void test_layer(void) {
    static float router[E * D], gate[E * F * D], up[E * F * D], down[E * D * F];
    static float shared_gate[F * D], shared_up[F * D], shared_down[D * F];
    for (int i = 0; i < E * D; i++) router[i] = value(i, 3);
    for (int i = 0; i < E * F * D; i++) {
        gate[i] = value(i, 4);
        up[i] = value(i, 5);
        down[i] = value(i, 6);
    }
    for (int i = 0; i < F * D; i++) {
        shared_gate[i] = value(i, 7);
        shared_up[i] = value(i, 8);
        shared_down[i] = value(i, 9);
    }
    float x[T * D], out[T * D];
    for (int i = 0; i < T * D; i++) x[i] = value(i, 10) * 2.0f;

    mlak_moe_layer_params p;
    memset(&p, 0, sizeof p);
    p.d = D;
    p.experts = E;
    p.ffn_width = F;
    p.shared_width = F;
    p.router = MLAK_MOE_ROUTER_KIND_SOFTMAX_TOP_K;
    p.top_k = K;
    p.renormalize = true;
    p.router_weight = router;
    p.weight_dtype = MLAK_DTYPE_F32;
    p.expert_gate = gate;
    p.expert_up = up;
    p.expert_down = down;
    p.shared_gate = shared_gate;
    p.shared_up = shared_up;
    p.shared_down = shared_down;
    CHECK_STATUS(mlak_moe_layer_f32(&p, x, T, out), MLAK_STATUS_OK);

    for (int t = 0; t < T; t++) {
        const float *xt = x + t * D;
        float logits[E];
        for (int e = 0; e < E; e++) {
            double s = 0;
            for (int c = 0; c < D; c++) s += (double)router[e * D + c] * xt[c];
            logits[e] = (float)s;
        }
        int a = 0;
        for (int e = 1; e < E; e++) if (logits[e] > logits[a]) a = e;
        int b = a == 0 ? 1 : 0;
        for (int e = 0; e < E; e++) if (e != a && logits[e] > logits[b]) b = e;
        double wa = 1.0 / (1.0 + exp(logits[b] - logits[a])), wb = 1.0 - wa;
        double ya[D], yb[D], ys[D];
        naive_ffn(xt, gate + a * F * D, up + a * F * D, down + a * D * F, F, ya);
        naive_ffn(xt, gate + b * F * D, up + b * F * D, down + b * D * F, F, yb);
        naive_ffn(xt, shared_gate, shared_up, shared_down, F, ys);
        for (int c = 0; c < D; c++) {
            double want = wa * ya[c] + wb * yb[c] + ys[c];
            CHECK(fabs(out[t * D + c] - want) <= 1e-5, "layer token %d column %d: %g want %g", t, c, out[t * D + c], want);
        }
    }

    p.router = 9;
    CHECK_STATUS(mlak_moe_layer_f32(&p, x, T, out), MLAK_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(mlak_last_error(), "params.router = 9") != NULL, "message: %s", mlak_last_error());
    p.router = MLAK_MOE_ROUTER_KIND_SOFTMAX_TOP_K;
    p.weight_dtype = MLAK_DTYPE_F16;
    CHECK_STATUS(mlak_moe_layer_f32(&p, x, T, out), MLAK_STATUS_INVALID_ARGUMENT);
    p.weight_dtype = MLAK_DTYPE_F32;
    p.expert_down = NULL;
    CHECK_STATUS(mlak_moe_layer_f32(&p, x, T, out), MLAK_STATUS_NULL_POINTER);
    CHECK_STATUS(mlak_moe_layer_f32(NULL, x, T, out), MLAK_STATUS_NULL_POINTER);
    p.expert_down = down;
    /* No tokens: x and out may be NULL. */
    CHECK_STATUS(mlak_moe_layer_f32(&p, NULL, 0, NULL), MLAK_STATUS_OK);
}

int main(void) {
    test_routers();
    test_layout_gather_combine();
    test_layer();
    return check_summary("test_moe");
}
