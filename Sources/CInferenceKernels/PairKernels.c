// AVX-512 VNNI block kernels (see include/InferenceKernels.h, "pair layout"): quant blocks read in
// place, two blocks per 512-bit register, activations as int16 per 32-element block.
//
// Per pair of blocks and activation vector: 2 × vpdpwssd (64 int16 products summed into 16 int32
// lanes, lanes 0–7 block 0, 8–15 block 1), one int → float conversion and one FMA with the
// combined scales [d_w0·d_x0 ×8, d_w1·d_x1 ×8]; Q4_1/Q4_0's offsets m·Σx fold into the same
// accumulator through the per-block sums stored /8 in 8 lanes. The weights of a pair are unpacked
// once for up to 8 activation vectors (batched decode, prefill).
//
// Compiled for AVX-512 per function (target attribute) and chosen at run time (lf_has_vnni), so the
// library still runs on AVX2-only CPUs.
#include "InferenceKernels.h"
#include <immintrin.h>
#include <string.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE inline __attribute__((always_inline))

int lf_has_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}

static INLINE uint32_t load_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static INLINE uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

VNNI void lf_quantize_pairs(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums) {
    long blocks = width / 32, pairs = (blocks + 1) / 2;
    for (long v = 0; v < vectors; v++) {
        int16_t *qv = q + v * pairs * 64;
        float *sv = scale + v * pairs * 16, *mv = sums + v * pairs * 16;
        for (long b = 0; b < blocks; b++) {
            const float *xb = x + v * width + b * 32;
            __m512 a = _mm512_loadu_ps(xb), c = _mm512_loadu_ps(xb + 16);
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(c)));
            float sum = _mm512_reduce_add_ps(_mm512_add_ps(a, c));
            float d = amax / 32767.0f, id = d > 0 ? 1.0f / d : 0.0f;
            __m512 idv = _mm512_set1_ps(id);
            long p = b / 2, half = b % 2;
            _mm256_storeu_si256((__m256i *)(qv + p * 64 + half * 16), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(a, idv))));
            _mm256_storeu_si256((__m256i *)(qv + p * 64 + 32 + half * 16), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(c, idv))));
            _mm256_storeu_ps(sv + p * 16 + half * 8, _mm256_set1_ps(d));
            _mm256_storeu_ps(mv + p * 16 + half * 8, _mm256_set1_ps(sum * 0.125f));
        }
        if (blocks % 2) {  // the odd last block's partner is zeros
            long p = blocks / 2;
            _mm256_storeu_si256((__m256i *)(qv + p * 64 + 16), _mm256_setzero_si256());
            _mm256_storeu_si256((__m256i *)(qv + p * 64 + 48), _mm256_setzero_si256());
            _mm256_storeu_ps(sv + p * 16 + 8, _mm256_setzero_ps());
            _mm256_storeu_ps(mv + p * 16 + 8, _mm256_setzero_ps());
        }
    }
}

// Blocks b0, b1 of one row → lo = [b0 q0..15, b1 q0..15], hi = [b0 q16..31, b1 q16..31] as int16,
// d = [d0 ×8, d1 ×8], m = [m0 ×8, m1 ×8]. `single`: b1 is absent (b0 is read twice, its d/m are 0).
static VNNI INLINE void unpack_pair(const int type, const uint8_t *b0, const uint8_t *b1, int single,
                                    __m512i *lo, __m512i *hi, __m512 *d, __m512 *m) {
    const __m512i pick_first = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    if (type == 3) {  // Q4_1: half d; half m; u8 qs[16]
        __m256i bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 4))),
                                                _mm_loadu_si128((const __m128i *)(b1 + 4)), 1);
        __m512i z = _mm512_cvtepu8_epi16(bytes);
        *lo = _mm512_and_si512(z, _mm512_set1_epi16(0x0F));
        *hi = _mm512_srli_epi16(z, 4);
        __m128i h = _mm_insert_epi32(_mm_cvtsi32_si128((int)load_u32(b0)), single ? 0 : (int)load_u32(b1), 1);
        __m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(h));  // [d0 m0 d1 m1]
        *d = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2), f);
        *m = _mm512_permutexvar_ps(_mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3), f);
        return;
    }
    uint32_t halves = (uint32_t)load_u16(b0) | (single ? 0u : (uint32_t)load_u16(b1) << 16);
    __m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)halves)));  // [d0 d1]
    *d = _mm512_permutexvar_ps(pick_first, f);
    if (type == 2) {  // Q4_0: half d; u8 qs[16]; w = d·(q − 8)
        __m256i bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 2))),
                                                _mm_loadu_si128((const __m128i *)(b1 + 2)), 1);
        __m512i z = _mm512_cvtepu8_epi16(bytes);
        *lo = _mm512_and_si512(z, _mm512_set1_epi16(0x0F));
        *hi = _mm512_srli_epi16(z, 4);
        *m = _mm512_mul_ps(*d, _mm512_set1_ps(-8.0f));
    } else {          // Q8_0: half d; i8 qs[32]
        *lo = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 2))),
                                                           _mm_loadu_si128((const __m128i *)(b1 + 2)), 1));
        *hi = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 18))),
                                                           _mm_loadu_si128((const __m128i *)(b1 + 18)), 1));
        *m = _mm512_setzero_ps();
    }
}

// Rows [r0, r1) × G activation vectors (G ≤ 8, a constant after inlining).
static VNNI INLINE void pair_rows(const int G, const int type, const long block_bytes, const uint8_t *weights, long r0, long r1,
                                  long blocks, const int16_t *q, const float *scale, const float *sums,
                                  const float *bias, float *out, long out_stride) {
    const long pairs = (blocks + 1) / 2, full = blocks / 2, qstride = pairs * 64, sstride = pairs * 16;
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = weights + r * blocks * block_bytes;
        // Separate accumulators for the scaled dots and the offsets: two independent FMA chains.
        __m512 acc[8], off[8];
        for (int g = 0; g < G; g++) acc[g] = off[g] = _mm512_setzero_ps();
        for (long p = 0; p < pairs; p++) {
            const uint8_t *b0 = row + 2 * p * block_bytes;
            int single = p == full;
            __m512i lo, hi;
            __m512 d, m;
            unpack_pair(type, b0, single ? b0 : b0 + block_bytes, single, &lo, &hi, &d, &m);
            for (int g = 0; g < G; g++) {
                const int16_t *xq = q + g * qstride + p * 64;
                __m512i i = _mm512_dpwssd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xq));
                i = _mm512_dpwssd_epi32(i, hi, _mm512_loadu_si512(xq + 32));
                __m512 s = _mm512_mul_ps(d, _mm512_loadu_ps(scale + g * sstride + p * 16));
                acc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), s, acc[g]);
                if (type != 8) off[g] = _mm512_fmadd_ps(m, _mm512_loadu_ps(sums + g * sstride + p * 16), off[g]);
            }
        }
        float b = bias ? bias[r] : 0.0f;
        for (int g = 0; g < G; g++) out[g * out_stride + r] = _mm512_reduce_add_ps(type != 8 ? _mm512_add_ps(acc[g], off[g]) : acc[g]) + b;
    }
}

#define PAIR_CASES(TYPE, BB)                                                                                       \
    switch (G) {                                                                                                   \
    case 1: pair_rows(1, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, bias, out, out_stride); break;       \
    case 2: pair_rows(2, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, bias, out, out_stride); break;       \
    case 3: pair_rows(3, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, bias, out, out_stride); break;       \
    case 4: pair_rows(4, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, bias, out, out_stride); break;       \
    case 5: pair_rows(5, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, bias, out, out_stride); break;       \
    case 6: pair_rows(6, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, bias, out, out_stride); break;       \
    case 7: pair_rows(7, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, bias, out, out_stride); break;       \
    default: pair_rows(8, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, bias, out, out_stride); break;      \
    }

static VNNI void pair_rows_q4_0(int G, const uint8_t *weights, long r0, long r1, long blocks, const int16_t *q, const float *scale,
                                const float *sums, const float *bias, float *out, long out_stride) { PAIR_CASES(2, 18) }
static VNNI void pair_rows_q4_1(int G, const uint8_t *weights, long r0, long r1, long blocks, const int16_t *q, const float *scale,
                                const float *sums, const float *bias, float *out, long out_stride) { PAIR_CASES(3, 20) }
static VNNI void pair_rows_q8_0(int G, const uint8_t *weights, long r0, long r1, long blocks, const int16_t *q, const float *scale,
                                const float *sums, const float *bias, float *out, long out_stride) { PAIR_CASES(8, 34) }

void lf_rows_pairs(int ggml_type, const uint8_t *weights, long r0, long r1, long blocks,
                   const int16_t *q, const float *scale, const float *sums, long vectors,
                   const float *bias, float *out, long out_stride) {
    long pairs = (blocks + 1) / 2;
    for (long v = 0; v < vectors; v += 8) {
        int G = (int)(vectors - v < 8 ? vectors - v : 8);
        const int16_t *qv = q + v * pairs * 64;
        const float *sv = scale + v * pairs * 16, *mv = sums + v * pairs * 16;
        float *ov = out + v * out_stride;
        switch (ggml_type) {
        case 2: pair_rows_q4_0(G, weights, r0, r1, blocks, qv, sv, mv, bias, ov, out_stride); break;
        case 3: pair_rows_q4_1(G, weights, r0, r1, blocks, qv, sv, mv, bias, ov, out_stride); break;
        case 8: pair_rows_q8_0(G, weights, r0, r1, blocks, qv, sv, mv, bias, ov, out_stride); break;
        default: break;
        }
    }
}
