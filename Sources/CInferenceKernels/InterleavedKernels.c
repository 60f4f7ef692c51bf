// AVX-512 VNNI block kernels over the interleaved layout (see include/InferenceKernels.h):
// 16 rows of a matrix side by side, one row per 32-bit lane, activations broadcast.
//
// Why lanes = rows. The previous kernel held two blocks of ONE row per register (lanes = positions
// within the blocks), so every pair of blocks and activation vector needed, besides its 2 vpdpwssd,
// an int → float conversion, a scale product and an FMA — 5 uops, 3 of them on port 0 — and a
// horizontal sum per row at the end. With 16 rows in the lanes, vpdpwssd takes the activation pair
// as a {1to16} broadcast from memory, a block's 32 products accumulate in int32 over 16 vpdpwssd
// with no float work in between, and its scaling (one conversion, one scale product, one FMA, one
// more FMA for the Q4 offset) is paid once per 16 rows × block × vector instead of once per row ×
// 2 blocks × vector. The 16 row results are already in one register: stored, never reduced.
// Measured single-thread, L2-warm (bench/block_kernel_bench.sh --against a5bdc2d, final version):
// 8-vector products 0.35–0.52× the pair kernel's time, 1-vector 0.27–0.41× (Q8_0's 30 MB head:
// 0.49× and 0.66×, the latter memory-bound).
//
// Layout (lf_interleave): rows padded to a multiple of 16; per group of 16 rows and per block,
//   Q4_0/Q4_1: fp16 d[16], fp16 m[16] (Q4_0: m = −8·d, exact in fp16), 8 chunks of 32 bytes:
//              chunk k holds, for row r, bytes 2r, 2r+1 = q[2k] | q[2k+16] << 4, q[2k+1] | q[2k+17] << 4
//              (zero-extended to int16, & 15 gives elements 2k, 2k+1, >> 4 elements 2k+16, 2k+17);
//   Q8_0:      fp16 d[16], 16 chunks of 32 bytes: chunk k holds row r's q[2k], q[2k+1] at 2r, 2r+1.
// 320 bytes per 16 × 32 Q4 weights (5 bits each, as Q4_1), 544 for Q8_0 (8.5 bits).
//
// Exactness: the integer products are exact (|q| ≤ 15 or 128, |x| ≤ 32767, 32 products per lane:
// < 2^27), so the block sums equal the previous kernel's; converting a Q8_0 sum above 2^24 to
// Float32 rounds (2^-24 relative, as any Float32 add), and the accumulation order differs.
#include "InferenceKernels.h"
#include <immintrin.h>
#include <string.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE inline __attribute__((always_inline))
// acc += a · broadcast(*(int32 *)mem): each lane adds a.lo16·x0 + a.hi16·x1 for the activation
// pair (x0, x1) at mem. Inline assembly: LLVM's Intel tuning would split an accumulating vpdpwssd
// into vpmaddwd + vpaddd, one more uop on the busiest port.
#define DPWSSD_BCAST(acc, a, mem) __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*(const int32_t *)(mem)))

int lf_has_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}

static INLINE long group_bytes(int type) { return type == 8 ? 32 + 16 * 32 : 64 + 8 * 32; }
static INLINE long block_bytes(int type) { return type == 3 ? 20 : type == 2 ? 18 : 34; }

long lf_interleaved_bytes(int ggml_type, long rows, long blocks) {
    if (ggml_type != 2 && ggml_type != 3 && ggml_type != 8) return 0;
    return (rows + 15) / 16 * blocks * group_bytes(ggml_type);
}

// Nibble i (0..31) of a Q4 block's 16 quant bytes.
static INLINE uint8_t nibble(const uint8_t *qs, int i) { return i < 16 ? qs[i] & 15 : qs[i - 16] >> 4; }

VNNI void lf_interleave(int ggml_type, const uint8_t *weights, long rows, long blocks, uint8_t *out) {
    const long bb = block_bytes(ggml_type), gb = group_bytes(ggml_type), groups = (rows + 15) / 16;
    memset(out, 0, (size_t)(groups * blocks * gb));  // padding rows: d = m = 0, q = 0
    for (long g = 0; g < groups; g++) {
        for (long b = 0; b < blocks; b++) {
            uint8_t *o = out + (g * blocks + b) * gb;
            for (int lane = 0; lane < 16; lane++) {
                const long r = g * 16 + lane;
                if (r >= rows) break;
                const uint8_t *blk = weights + (r * blocks + b) * bb;
                memcpy(o + 2 * lane, blk, 2);  // d
                if (ggml_type == 8) {
                    for (int k = 0; k < 16; k++) {
                        o[32 + 32 * k + 2 * lane] = blk[2 + 2 * k];
                        o[32 + 32 * k + 2 * lane + 1] = blk[2 + 2 * k + 1];
                    }
                    continue;
                }
                const uint8_t *qs = blk + (ggml_type == 3 ? 4 : 2);
                if (ggml_type == 3) {
                    memcpy(o + 32 + 2 * lane, blk + 2, 2);  // m
                } else {
                    uint16_t d;
                    memcpy(&d, blk, 2);
                    // ×8 is exact in Float32 and the result is an fp16 value again (scales are far below overflow)
                    const uint16_t m = _cvtss_sh(-8.0f * _cvtsh_ss(d), _MM_FROUND_TO_NEAREST_INT);
                    memcpy(o + 32 + 2 * lane, &m, 2);
                }
                for (int k = 0; k < 8; k++) {
                    o[64 + 32 * k + 2 * lane] = (uint8_t)(nibble(qs, 2 * k) | nibble(qs, 2 * k + 16) << 4);
                    o[64 + 32 * k + 2 * lane + 1] = (uint8_t)(nibble(qs, 2 * k + 1) | nibble(qs, 2 * k + 17) << 4);
                }
            }
        }
    }
}

// One 32-element block (a = elements 0–15, c = 16–31) of vector `lane` in a panel of `size`.
static VNNI INLINE void quantize_block(__m512 a, __m512 c, long b, long size, long lane, int16_t *qp, float *sp, float *mp) {
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(c)));
    float d = amax / 32767.0f;
    __m512 inverse = _mm512_set1_ps(d > 0 ? 1.0f / d : 0.0f);
    int16_t *qb = qp + (b * size + lane) * 32;
    _mm256_storeu_si256((__m256i *)qb, _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(a, inverse))));
    _mm256_storeu_si256((__m256i *)(qb + 16), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(c, inverse))));
    sp[b * size + lane] = d;
    mp[b * size + lane] = _mm512_reduce_add_ps(_mm512_add_ps(a, c));
}

// e^x, TensorMath's VectorExp method (Cephes expf: n = round(x·log2 e), r = x − n·ln 2 in two
// parts, degree-6 polynomial, × 2^n), here with FMAs; saturates like it (0 below −87.34, +inf
// above 88.72). Within ~1 ulp.
static VNNI INLINE __m512 exp512(__m512 x) {
    const __m512 low = _mm512_set1_ps(-87.3365478515625f), high = _mm512_set1_ps(88.3762626647949f);
    __m512 v = _mm512_min_ps(_mm512_max_ps(x, low), high);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), v);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512 result = _mm512_scalef_ps(y, n);
    result = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(88.72283905206835f), _CMP_GT_OQ), result, _mm512_set1_ps(__builtin_inff()));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, low, _CMP_LT_OQ), result, _mm512_setzero_ps());
}

// silu(g) · u = g · u / (1 + e^−g)
static VNNI INLINE __m512 swiglu512(__m512 g, __m512 u) {
    return _mm512_div_ps(_mm512_mul_ps(g, u), _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

VNNI void lf_quantize_panels(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums) {
    const long blocks = width / 32;
    for (long v = 0; v < vectors; v++) {
        const long panel = v / 8, lane = v % 8, size = vectors - panel * 8 < 8 ? vectors - panel * 8 : 8;
        for (long b = 0; b < blocks; b++) {
            const float *x0 = x + v * width + b * 32;
            quantize_block(_mm512_loadu_ps(x0), _mm512_loadu_ps(x0 + 16), b, size, lane, q + panel * 8 * width,
                           scale + panel * 8 * blocks, sums + panel * 8 * blocks);
        }
    }
}

VNNI void lf_quantize_panels_swiglu(const float *gate, const float *up, long vectors, long width, int16_t *q, float *scale, float *sums) {
    const long blocks = width / 32;
    for (long v = 0; v < vectors; v++) {
        const long panel = v / 8, lane = v % 8, size = vectors - panel * 8 < 8 ? vectors - panel * 8 : 8;
        for (long b = 0; b < blocks; b++) {
            const float *g0 = gate + v * width + b * 32, *u0 = up + v * width + b * 32;
            quantize_block(swiglu512(_mm512_loadu_ps(g0), _mm512_loadu_ps(u0)), swiglu512(_mm512_loadu_ps(g0 + 16), _mm512_loadu_ps(u0 + 16)),
                           b, size, lane, q + panel * 8 * width, scale + panel * 8 * blocks, sums + panel * 8 * blocks);
        }
    }
}

// Groups [g0, g1) × one panel of G vectors (G ≤ 8, a constant after inlining). C int32 chains per
// vector keep ≥ 8 independent vpdpwssd chains (latency 5, two issued per cycle here: a block's 16
// into one accumulator were a latency chain — 8 vectors with C = 2 took 0.77× the time of C = 1).
static VNNI INLINE void interleaved_rows(const int G, const int C, const int type, const uint8_t *weights, long g0, long g1,
                                         long rows, long blocks, const int16_t *q, const float *scale, const float *sums,
                                         const float *bias, float *out, long out_stride) {
    const long gb = group_bytes(type), lead = G >= 4 ? 2048 : 4096;
    // A chunk starts a new stream: its first `lead` bytes were not prefetched by this thread.
    for (long line = 0; line < lead; line += 64) _mm_prefetch((const char *)weights + g0 * blocks * gb + line, _MM_HINT_T0);
    for (long group = g0; group < g1; group++) {
        const uint8_t *base = weights + group * blocks * gb;
        __m512 acc[8];
        for (int g = 0; g < G; g++) acc[g] = _mm512_setzero_ps();
        for (long b = 0; b < blocks; b++) {
            const uint8_t *o = base + b * gb;
            const int16_t *xb = q + b * G * 32;
            // The weights stream from memory once per step (96 MB for SmolLM2): the hardware
            // prefetcher alone left a cold-weight 8-vector product at 0.6× its L2-warm speed.
            // Measured over 300 MB of cold copies: 8 vectors 14.9 → 8.8 ns per row and vector with
            // 2 KB of lead, 1 vector 52 → 41 ns (then at 8.7 GB/s) with 4 KB.
            for (long line = 0; line < gb; line += 64) _mm_prefetch((const char *)o + lead + line, _MM_HINT_T0);
            __m512i sum[32];
            for (int j = 0; j < G * C; j++) sum[j] = _mm512_setzero_si512();
            // k runs in steps whose inner j loop is unrolled, so every chain index g·C + (j % C) is
            // a constant (a dynamic index would put the accumulators on the stack).
            if (type == 8) {
                for (int k = 0; k < 16; k += 4) {
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) {
                        __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(o + 32 + 32 * (k + j))));
                        for (int g = 0; g < G; g++) DPWSSD_BCAST(sum[g * C + j % C], w, xb + g * 32 + 2 * (k + j));
                    }
                }
            } else {
                for (int k = 0; k < 8; k += 2) {
#pragma GCC unroll 2
                    for (int j = 0; j < 2; j++) {
                        __m512i z = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(o + 64 + 32 * (k + j))));
                        __m512i lo = _mm512_and_si512(z, _mm512_set1_epi16(15)), hi = _mm512_srli_epi16(z, 4);
                        for (int g = 0; g < G; g++) {
                            DPWSSD_BCAST(sum[g * C + (2 * j) % C], lo, xb + g * 32 + 2 * (k + j));
                            DPWSSD_BCAST(sum[g * C + (2 * j + 1) % C], hi, xb + g * 32 + 2 * (k + j) + 16);
                        }
                    }
                }
            }
            __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o));
            for (int g = 0; g < G; g++) {
                __m512i s = sum[g * C];
                for (int c = 1; c < C; c++) s = _mm512_add_epi32(s, sum[g * C + c]);
                acc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(d, _mm512_set1_ps(scale[b * G + g])), acc[g]);
            }
            if (type != 8) {  // + m · Σx of the block
                __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(o + 32)));
                for (int g = 0; g < G; g++) acc[g] = _mm512_fmadd_ps(m, _mm512_set1_ps(sums[b * G + g]), acc[g]);
            }
        }
        const long r0 = group * 16, valid = rows - r0 < 16 ? rows - r0 : 16;
        const __mmask16 mask = (__mmask16)((1u << valid) - 1);
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + r0) : _mm512_setzero_ps();
        for (int g = 0; g < G; g++) _mm512_mask_storeu_ps(out + g * out_stride + r0, mask, _mm512_add_ps(acc[g], bv));
    }
}

#define INTERLEAVED_CASES(TYPE)                                                                                           \
    switch (G) {                                                                                                          \
    case 1: interleaved_rows(1, 4, TYPE, weights, g0, g1, rows, blocks, q, scale, sums, bias, out, out_stride); break;  \
    case 2: interleaved_rows(2, 4, TYPE, weights, g0, g1, rows, blocks, q, scale, sums, bias, out, out_stride); break;  \
    case 3: interleaved_rows(3, 3, TYPE, weights, g0, g1, rows, blocks, q, scale, sums, bias, out, out_stride); break;  \
    case 4: interleaved_rows(4, 2, TYPE, weights, g0, g1, rows, blocks, q, scale, sums, bias, out, out_stride); break;  \
    case 5: interleaved_rows(5, 2, TYPE, weights, g0, g1, rows, blocks, q, scale, sums, bias, out, out_stride); break;  \
    case 6: interleaved_rows(6, 2, TYPE, weights, g0, g1, rows, blocks, q, scale, sums, bias, out, out_stride); break;  \
    case 7: interleaved_rows(7, 2, TYPE, weights, g0, g1, rows, blocks, q, scale, sums, bias, out, out_stride); break;  \
    default: interleaved_rows(8, 2, TYPE, weights, g0, g1, rows, blocks, q, scale, sums, bias, out, out_stride); break; \
    }

#define INTERLEAVED_PARAMS int G, const uint8_t *weights, long g0, long g1, long rows, long blocks, const int16_t *q, \
                           const float *scale, const float *sums, const float *bias, float *out, long out_stride
static VNNI void interleaved_q4(INTERLEAVED_PARAMS) { INTERLEAVED_CASES(3) }
static VNNI void interleaved_q8(INTERLEAVED_PARAMS) { INTERLEAVED_CASES(8) }

void lf_rows_interleaved(int ggml_type, const uint8_t *weights, long row_begin, long row_end, long rows, long blocks,
                         const int16_t *q, const float *scale, const float *sums, long vectors,
                         const float *bias, float *out, long out_stride) {
    const long g0 = row_begin / 16, g1 = (row_end + 15) / 16, width = blocks * 32;
    for (long v = 0; v < vectors; v += 8) {  // one panel of ≤ 8 vectors at a time
        const int G = (int)(vectors - v < 8 ? vectors - v : 8);
        const int16_t *qv = q + v * width;
        const float *sv = scale + v * blocks, *mv = sums + v * blocks;
        float *ov = out + v * out_stride;
        if (ggml_type == 8) interleaved_q8(G, weights, g0, g1, rows, blocks, qv, sv, mv, bias, ov, out_stride);
        else interleaved_q4(G, weights, g0, g1, rows, blocks, qv, sv, mv, bias, ov, out_stride);
    }
}
