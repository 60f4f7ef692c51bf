// Attention of one query block of one kv group per call — for training, the float forward and
// the quantized engine's prefill: the products as AVX-512 register tiles (6 rows × 64 columns,
// 24 accumulators) and the softmax rows in between. The keys (forward) and values (backward)
// come transposed, once per call and group, not per block.
//
// Why not sgemm: the block's products have D = 64 on one side (q·kᵀ has K = 64, p·v and the
// dk/dv shares have N = 64) and run single-threaded, one item per worker. OpenBLAS ran them at
// 25–38 GFLOP/s per thread, a third of what it reaches on the step's large products
// (bench/train_bench.results.md), and the generic-x86 Swift softmax between them spent as long
// again. Here each product streams a ≤ 32 KB panel from L1 (k-chunks of 8192/D rows, or the
// D × 64 panel of transposed keys), and the causal mask is skipped tile by tile: a 6-row tile
// only forms the columns its last row sees, a key tile of the dk/dv shares only sums the rows
// that see it — instead of whole 128-row blocks up to the diagonal.
//
// Measured (`TrainBench --config smol --kernels`, both paths alternating in one process, two
// workers): a SmolLM2 layer's attention forward 2.2–2.9 ms best wall against 4.0–4.3 ms with
// sgemm, backward 4.0–4.3 against 5.3–6.4; the tiles alone run at ~100 GFLOP/s per core.
//
// Every output element is a fixed sum order of its own products, so a result never depends on
// which worker ran which block.
#include "TrainingKernels.h"
#include <immintrin.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define MR 6   // rows per register tile
#define NV 4   // 16-float vectors per tile row

int lf_attention_blocks_supported(long head_dim) {
    static int known = -1;  // a benign race: every thread computes the same value
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    }
    return known && head_dim > 0 && head_dim % 16 == 0 && head_dim <= 256;
}

static long round16(long n) { return (n + 15) / 16 * 16; }

long lf_attention_block_scratch(long rows, long keys) { return rows * round16(keys); }

// Keys stacked row i sees (1 ... keys).
INLINE long visible(const lf_attention_block *b, long i) {
    if (!b->causal) return b->keys;
    long v = b->first_token + i / b->group + 1;
    return v < b->keys ? v : b->keys;
}

// The first stacked row that sees key j (rows before it have probability 0 there).
INLINE long first_seeing(const lf_attention_block *b, long j) {
    if (!b->causal || j <= b->first_token) return 0;
    return (j - b->first_token) * b->group;
}

static long min_l(long a, long b) { return a < b ? a : b; }

// The register tile: C[0..mr, 0..16·nv) (masked to `last` lanes in the final vector) gets
// alpha · Σ_{kk < kn} A(r, kk) · B[kk, :], with A(r, kk) = a[r·ars + kk·acs] and B rows at ldb;
// `store` writes it, else it is added to C. mr and nv are constants once inlined.
INLINE AVX512 void tile(const int mr, const int nv, __mmask16 last, const float *a, long ars, long acs,
                        const float *b, long ldb, long kn, float *c, long ldc, float alpha, const int store) {
    __m512 acc[MR][NV];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (long kk = 0; kk < kn; kk++) {
        const float *brow = b + kk * ldb;
        __m512 bv[NV];
        for (int v = 0; v < nv; v++) bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(last, brow + 16 * v) : _mm512_loadu_ps(brow + 16 * v);
        const float *acol = a + kk * acs;
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(acol[r * ars]);
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    __m512 al = _mm512_set1_ps(alpha);
    for (int r = 0; r < mr; r++) {
        float *crow = c + r * ldc;
        for (int v = 0; v < nv; v++) {
            __mmask16 m = v == nv - 1 ? last : (__mmask16)0xFFFF;
            __m512 x = _mm512_mul_ps(acc[r][v], al);
            if (!store) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, crow + 16 * v));
            _mm512_mask_storeu_ps(crow + 16 * v, m, x);
        }
    }
}

typedef void (*tile_function)(__mmask16, const float *, long, long, const float *, long, long, float *, long, float);

#define TILE(mr, nv, st) \
    static AVX512 void tile_##mr##_##nv##_##st(__mmask16 last, const float *a, long ars, long acs, const float *b, long ldb, \
                                              long kn, float *c, long ldc, float alpha) { \
        tile(mr, nv, last, a, ars, acs, b, ldb, kn, c, ldc, alpha, st); \
    }
#define TILE_ROW(mr, st) TILE(mr, 1, st) TILE(mr, 2, st) TILE(mr, 3, st) TILE(mr, 4, st)
#define TILES(st) TILE_ROW(1, st) TILE_ROW(2, st) TILE_ROW(3, st) TILE_ROW(4, st) TILE_ROW(5, st) TILE_ROW(6, st)
TILES(0)
TILES(1)
#define ROW_ENTRIES(mr, st) {tile_##mr##_1_##st, tile_##mr##_2_##st, tile_##mr##_3_##st, tile_##mr##_4_##st}
static const tile_function tiles[2][MR][NV] = {
    {ROW_ENTRIES(1, 0), ROW_ENTRIES(2, 0), ROW_ENTRIES(3, 0), ROW_ENTRIES(4, 0), ROW_ENTRIES(5, 0), ROW_ENTRIES(6, 0)},
    {ROW_ENTRIES(1, 1), ROW_ENTRIES(2, 1), ROW_ENTRIES(3, 1), ROW_ENTRIES(4, 1), ROW_ENTRIES(5, 1), ROW_ENTRIES(6, 1)},
};

// A row segment of n ≥ 1 columns as (vectors, mask of the last one).
INLINE int vectors(long n, __mmask16 *last) {
    int nv = (int)((n + 15) / 16);
    long tail = n - 16 * (nv - 1);
    *last = (__mmask16)(tail >= 16 ? 0xFFFF : ((1u << tail) - 1));
    return nv;
}

enum k_range { K_VISIBLE_TO_LAST_ROW, K_FROM_FIRST_SEEING };

// C[m, n] += alpha · Σ_k A(i, k) · B[k, :] over k < kdim, where a row tile's k range is cut by the
// mask: K_VISIBLE_TO_LAST_ROW (rows are query rows, k keys: k < visible(last row of the tile)),
// K_FROM_FIRST_SEEING (rows are keys, k query rows: k ≥ first_seeing(first key of the tile)).
// k runs in chunks whose B rows (≤ 32 KB) stay in L1 across the row tiles.
static AVX512 void product(const lf_attention_block *blk, enum k_range range, long m, long n, long kdim,
                           const float *a, long ars, long acs, const float *b, long ldb, float *c, long ldc, float alpha) {
    long kc = 8192 / n;
    if (kc < 16) kc = 16;
    for (long k0 = 0; k0 < kdim; k0 += kc) {
        long k1 = min_l(kdim, k0 + kc);
        for (long i0 = 0; i0 < m; i0 += MR) {
            int mr = (int)min_l(MR, m - i0);
            long lo = k0, hi = k1;
            if (range == K_VISIBLE_TO_LAST_ROW) hi = min_l(hi, visible(blk, i0 + mr - 1));
            else { long f = first_seeing(blk, i0); if (f > lo) lo = f; }
            if (lo >= hi) continue;
            for (long n0 = 0; n0 < n; n0 += 16 * NV) {
                __mmask16 last;
                int nv = vectors(min_l(16 * NV, n - n0), &last);
                tiles[0][mr - 1][nv - 1](last, a + i0 * ars + lo * acs, ars, acs, b + lo * ldb + n0, ldb, hi - lo,
                                         c + i0 * ldc + n0, ldc, alpha);
            }
        }
    }
}

// C[i, j] = alpha · a_i · bt[:, j] for the columns j < visible(last row of i's tile) — the scores
// q·kᵀ (or dprobs = dout·vᵀ) with the keys transposed to bt `[D, kp]`. Column panels outer, so a
// D × 64 panel of bt stays in L1 while the row tiles that see it pass; the other entries of C are
// left as they were (the softmax rows never read them).
static AVX512 void masked_scores(const lf_attention_block *blk, const float *a, long lda, const float *bt, long kp,
                                 float *c, long ldc, float alpha) {
    long d = blk->head_dim;
    for (long n0 = 0; n0 < blk->keys; n0 += 16 * NV) {
        for (long i0 = first_seeing(blk, n0); i0 < blk->rows; i0 += MR) {
            int mr = (int)min_l(MR, blk->rows - i0);
            long end = visible(blk, i0 + mr - 1);
            __mmask16 last;
            int nv = vectors(min_l(16 * NV, end - n0), &last);
            tiles[1][mr - 1][nv - 1](last, a + i0 * lda, lda, 1, bt + n0, kp, d, c + i0 * ldc + n0, ldc, alpha);
        }
    }
}

// bt[e, j] = x[j, e] for j < keys: `[keys, D]` at ld → `[D, ldt]`, 16 keys per gather.
AVX512 void lf_attention_transpose(const float *x, long ld, long keys, long d, float *bt, long ldt) {
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)ld));
    long j = 0;
    for (; j + 16 <= keys; j += 16)
        for (long e = 0; e < d; e++) _mm512_storeu_ps(bt + e * ldt + j, _mm512_i32gather_ps(rows, x + j * ld + e, 4));
    if (j < keys) {
        __mmask16 tail = (__mmask16)((1u << (keys - j)) - 1);
        for (long e = 0; e < d; e++)
            _mm512_mask_storeu_ps(bt + e * ldt + j, tail, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tail, rows, x + j * ld + e, 4));
    }
}

static void zero_rows(float *c, long rows, long cols, long ld) {
    for (long i = 0; i < rows; i++) memset(c + i * ld, 0, (size_t)cols * sizeof(float));
}

// e^x for x ≤ 0 (−∞ → 0): VectorExp.exp's range reduction and polynomial, 16 lanes.
INLINE AVX512 __m512 exp_nonpositive(__m512 x) {
    const __m512 low = _mm512_set1_ps(-87.3365478515625f);
    __mmask16 under = _mm512_cmp_ps_mask(x, low, _CMP_LT_OQ);
    __m512 v = _mm512_mask_blend_ps(under, x, low);
    const __m512 magic = _mm512_set1_ps(12582912.0f);  // 1.5 · 2²³
    __m512 t = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)), magic);
    __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_sub_ps(v, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic)),
                                                      _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps((__mmask16)~under, y, _mm512_castsi512_ps(bits));
}

// In place: softmax over row[0..<valid) (valid ≥ 1), zeros on [valid, width).
static AVX512 void softmax_row(float *row, long valid, long width) {
    __m512 top = _mm512_set1_ps(-__builtin_inff());
    long j = 0;
    for (; j + 16 <= valid; j += 16) top = _mm512_max_ps(top, _mm512_loadu_ps(row + j));
    __mmask16 tail = (__mmask16)((1u << (valid - j)) - 1);
    if (j < valid) top = _mm512_mask_max_ps(top, tail, top, _mm512_maskz_loadu_ps(tail, row + j));
    __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(top));
    __m512 lanes = _mm512_setzero_ps();
    for (j = 0; j + 16 <= valid; j += 16) {
        __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + j), shift));
        _mm512_storeu_ps(row + j, e);
        lanes = _mm512_add_ps(lanes, e);
    }
    if (j < valid) {
        __m512 e = _mm512_maskz_mov_ps(tail, exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + j), shift)));
        _mm512_mask_storeu_ps(row + j, tail, e);
        lanes = _mm512_add_ps(lanes, e);
    }
    // Each lane holds ≤ 16 sums of values ≤ 1; the reciprocal is taken in double.
    __m512 inverse = _mm512_set1_ps((float)(1.0 / (double)_mm512_reduce_add_ps(lanes)));
    for (j = 0; j + 16 <= valid; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), inverse));
    if (j < valid) _mm512_mask_storeu_ps(row + j, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + j), inverse));
    if (valid < width) memset(row + valid, 0, (size_t)(width - valid) * sizeof(float));
}

// In place on dprobs: dscores = p ⊙ (dprobs − Σ dprobs·p) on [0, valid), zeros on [valid, width).
static AVX512 void softmax_backward_row(float *ds, const float *p, long valid, long width) {
    __m512 lanes = _mm512_setzero_ps();
    long j = 0;
    for (; j + 16 <= valid; j += 16) lanes = _mm512_fmadd_ps(_mm512_loadu_ps(p + j), _mm512_loadu_ps(ds + j), lanes);
    __mmask16 tail = (__mmask16)((1u << (valid - j)) - 1);
    if (j < valid) lanes = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, p + j), _mm512_maskz_loadu_ps(tail, ds + j), lanes);
    __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(lanes));
    for (j = 0; j + 16 <= valid; j += 16)
        _mm512_storeu_ps(ds + j, _mm512_mul_ps(_mm512_loadu_ps(p + j), _mm512_sub_ps(_mm512_loadu_ps(ds + j), dot)));
    if (j < valid)
        _mm512_mask_storeu_ps(ds + j, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, p + j), _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, ds + j), dot)));
    if (valid < width) memset(ds + valid, 0, (size_t)(width - valid) * sizeof(float));
}

AVX512 void lf_attention_block_forward(const lf_attention_block *blk,
                                       const float *q, long ldq, const float *kt, long ldkt, const float *v, long ldv,
                                       float *probs, long ldp, long probs_width, float *out, long ldo) {
    long d = blk->head_dim;
    masked_scores(blk, q, ldq, kt, ldkt, probs, ldp, blk->scale);
    for (long i = 0; i < blk->rows; i++) softmax_row(probs + i * ldp, visible(blk, i), probs_width);
    zero_rows(out, blk->rows, d, ldo);
    product(blk, K_VISIBLE_TO_LAST_ROW, blk->rows, d, blk->keys, probs, ldp, 1, v, ldv, out, ldo, 1.0f);
}

AVX512 void lf_attention_block_backward(const lf_attention_block *blk,
                                        const float *q, long ldq, const float *k, long ldk, const float *vt, long ldvt,
                                        const float *dout, long lddo, const float *probs, long ldp,
                                        float *dq, long lddq, int accumulate_dq,
                                        float *dv_partial, float *dk_partial, float *scratch) {
    long d = blk->head_dim, keys = blk->keys, rows = blk->rows, kp = round16(keys);
    float *ds = scratch;  // [rows, kp]
    masked_scores(blk, dout, lddo, vt, ldvt, ds, kp, 1.0f);  // dprobs
    for (long i = 0; i < rows; i++) softmax_backward_row(ds + i * kp, probs + i * ldp, visible(blk, i), keys);
    if (!accumulate_dq) zero_rows(dq, rows, d, lddq);
    product(blk, K_VISIBLE_TO_LAST_ROW, rows, d, keys, ds, kp, 1, k, ldk, dq, lddq, blk->scale);
    zero_rows(dv_partial, keys, d, d);
    product(blk, K_FROM_FIRST_SEEING, keys, d, rows, probs, 1, ldp, dout, lddo, dv_partial, d, 1.0f);
    zero_rows(dk_partial, keys, d, d);
    product(blk, K_FROM_FIRST_SEEING, keys, d, rows, ds, 1, kp, q, ldq, dk_partial, d, blk->scale);
}
