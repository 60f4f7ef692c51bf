// AVX-512 VNNI block kernels (see include/InferenceKernels.h, "pair layout"): quant blocks read in
// place, two blocks per 512-bit register, activations as int16 per 32-element block.
//
// Per pair of blocks and activation vector, 5 uops on the two 512-bit ports: 2 × vpdpwssd (64
// int16 products summed into 16 int32 lanes, lanes 0–7 block 0, 8–15 block 1), one int → float
// conversion, one multiply of the scales [d_w0·d_x0 ×8, d_w1·d_x1 ×8] and one FMA. The weights of
// a pair are unpacked once for up to 8 activation vectors (batched decode, prefill), which is
// what makes a batched step cheaper per token than a single one. Measured on this CPU (bench
// bench/pair_kernel_bench.sh): the per-vector uops are what a batched step pays for, so each one
// was removed where it could be:
// - Activations are stored in panels of 8 vectors, pair-major ([pair][vector][64]), so the 8
//   vectors of a pair sit at constant offsets from one pointer (no per-vector address arithmetic).
// - Q4_1's offsets m·Σx do not take one FMA per pair and vector: the row's [d m] values are kept
//   while its pairs are unpacked and dotted with each vector's block sums once at the end of the
//   row (4 floats per pair against [0 Σx0 0 Σx1]: ⌈pairs/4⌉ FMAs per vector instead of `pairs`).
//   Q4_0 is unpacked as signed q − 8, so it has no offset term at all.
// - The 8 row results are reduced together (a transposing tree, ~23 uops) instead of one
//   horizontal sum each (~8 uops each).
// - vpdpwssd is written as inline assembly: LLVM's Intel tuning rewrites an accumulating
//   vpdpwssd as vpmaddwd + vpaddd, one more uop per product on the busiest ports.
//
// Compiled for AVX-512 per function (target attribute) and chosen at run time (lf_has_vnni), so the
// library still runs on AVX2-only CPUs.
#include "InferenceKernels.h"
#include "Reductions.h"
#include <immintrin.h>
#include <string.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE inline __attribute__((always_inline))
// acc += a · *mem (int16 pairs → int32 lanes).
#define DPWSSD(acc, a, mem) __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "m"(*(const __m512i *)(mem)))

int lf_has_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}

static INLINE uint32_t load_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static INLINE uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

long lf_pair_sums_stride(long width) {
    long pairs = (width / 32 + 1) / 2;
    return (4 * pairs + 15) / 16 * 16;
}

VNNI void lf_quantize_pairs(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums) {
    const long blocks = width / 32, pairs = (blocks + 1) / 2, stride = lf_pair_sums_stride(width);
    for (long v = 0; v < vectors; v++) {
        const long panel = v / 8, lane = v % 8, size = vectors - panel * 8 < 8 ? vectors - panel * 8 : 8;
        int16_t *qv = q + (panel * 8 * pairs + lane) * 64;
        float *sv = scale + (panel * 8 * pairs + lane) * 16, *mv = sums + v * stride;
        memset(mv, 0, (size_t)stride * sizeof(float));
        for (long p = 0; p < pairs; p++) {
            const float *x0 = x + v * width + 2 * p * 32;
            const int two = 2 * p + 1 < blocks;  // an odd last block's partner is zeros
            __m512 a = _mm512_loadu_ps(x0), c = _mm512_loadu_ps(x0 + 16);
            __m512 e = two ? _mm512_loadu_ps(x0 + 32) : _mm512_setzero_ps(), f = two ? _mm512_loadu_ps(x0 + 48) : _mm512_setzero_ps();
            float amax0 = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(c)));
            float amax1 = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(e), _mm512_abs_ps(f)));
            float d0 = amax0 / 32767.0f, d1 = amax1 / 32767.0f;
            __m512 i0 = _mm512_set1_ps(d0 > 0 ? 1.0f / d0 : 0.0f), i1 = _mm512_set1_ps(d1 > 0 ? 1.0f / d1 : 0.0f);
            int16_t *qp = qv + p * size * 64;
            _mm256_storeu_si256((__m256i *)(qp), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(a, i0))));
            _mm256_storeu_si256((__m256i *)(qp + 16), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(e, i1))));
            _mm256_storeu_si256((__m256i *)(qp + 32), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(c, i0))));
            _mm256_storeu_si256((__m256i *)(qp + 48), _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(f, i1))));
            float *sp = sv + p * size * 16;
            _mm256_storeu_ps(sp, _mm256_set1_ps(d0));
            _mm256_storeu_ps(sp + 8, _mm256_set1_ps(d1));
            mv[4 * p + 1] = _mm512_reduce_add_ps(_mm512_add_ps(a, c));
            mv[4 * p + 3] = _mm512_reduce_add_ps(_mm512_add_ps(e, f));
        }
    }
}

// Blocks b0, b1 of one row → lo = [b0 q0..15, b1 q0..15], hi = [b0 q16..31, b1 q16..31] as int16
// (Q4_0: q − 8), d = [d0 ×8, d1 ×8]; Q4_1 also stores [d0 m0 d1 m1] to dm. `single`: b1 is absent
// (b0 is read twice, its d and m are 0).
static VNNI INLINE void unpack_pair(const int type, const uint8_t *b0, const uint8_t *b1, int single,
                                    __m512i *lo, __m512i *hi, __m512 *d, float *dm) {
    if (type == 3) {  // Q4_1: half d; half m; u8 qs[16]
        __m256i bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 4))),
                                                _mm_loadu_si128((const __m128i *)(b1 + 4)), 1);
        __m512i z = _mm512_cvtepu8_epi16(bytes);
        *lo = _mm512_and_si512(z, _mm512_set1_epi16(0x0F));
        *hi = _mm512_srli_epi16(z, 4);
        __m128 f = _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128((int)load_u32(b0)), single ? 0 : (int)load_u32(b1), 1));
        _mm_storeu_ps(dm, f);  // [d0 m0 d1 m1]
        *d = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2), _mm512_castps128_ps512(f));
        return;
    }
    uint32_t halves = (uint32_t)load_u16(b0) | (single ? 0u : (uint32_t)load_u16(b1) << 16);
    *d = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                               _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)halves))));
    if (type == 2) {  // Q4_0: half d; u8 qs[16]; w = d·(q − 8)
        __m256i bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 2))),
                                                _mm_loadu_si128((const __m128i *)(b1 + 2)), 1);
        __m512i z = _mm512_cvtepu8_epi16(bytes), eight = _mm512_set1_epi16(8);
        *lo = _mm512_sub_epi16(_mm512_and_si512(z, _mm512_set1_epi16(0x0F)), eight);
        *hi = _mm512_sub_epi16(_mm512_srli_epi16(z, 4), eight);
    } else {          // Q8_0: half d; i8 qs[32]
        *lo = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 2))),
                                                           _mm_loadu_si128((const __m128i *)(b1 + 2)), 1));
        *hi = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 18))),
                                                           _mm_loadu_si128((const __m128i *)(b1 + 18)), 1));
    }
}

// Rows [r0, r1) × one panel of G activation vectors (G ≤ 8, a constant after inlining).
static VNNI INLINE void pair_rows(const int G, const int type, const long block_bytes, const uint8_t *weights, long r0, long r1,
                                  long blocks, const int16_t *q, const float *scale, const float *sums, long sums_stride,
                                  const float *bias, float *out, long out_stride) {
    const long pairs = (blocks + 1) / 2, full = blocks / 2;
    float dm[sums_stride];  // Q4_1: [d0 m0 d1 m1] per pair of the current row, zero-padded
    if (type == 3) memset(dm, 0, sizeof(dm));
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = weights + r * blocks * block_bytes;
        __m512 acc[8];
        for (int g = 0; g < 8; g++) acc[g] = _mm512_setzero_ps();
        for (long p = 0; p < pairs; p++) {
            const uint8_t *b0 = row + 2 * p * block_bytes;
            const int single = p == full;
            __m512i lo, hi;
            __m512 d;
            unpack_pair(type, b0, single ? b0 : b0 + block_bytes, single, &lo, &hi, &d, dm + 4 * p);
            const int16_t *xq = q + p * G * 64;
            const float *xs = scale + p * G * 16;
            for (int g = 0; g < G; g++) {
                __m512i i = _mm512_setzero_si512();
                DPWSSD(i, lo, xq + g * 64);
                DPWSSD(i, hi, xq + g * 64 + 32);
                acc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(d, _mm512_loadu_ps(xs + g * 16)), acc[g]);
            }
        }
        if (type == 3) {
            for (long k = 0; k < sums_stride; k += 16) {
                __m512 m = _mm512_loadu_ps(dm + k);
                for (int g = 0; g < G; g++) acc[g] = _mm512_fmadd_ps(m, _mm512_loadu_ps(sums + g * sums_stride + k), acc[g]);
            }
        }
        const float b = bias ? bias[r] : 0.0f;
        if (G == 1) {
            out[r] = _mm512_reduce_add_ps(acc[0]) + b;
        } else {
            float total[8];
            lf_reduce8_512(acc, total);
            for (int g = 0; g < G; g++) out[g * out_stride + r] = total[g] + b;
        }
    }
}

#define PAIR_CASES(TYPE, BB)                                                                                                 \
    switch (G) {                                                                                                             \
    case 1: pair_rows(1, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, stride, bias, out, out_stride); break;          \
    case 2: pair_rows(2, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, stride, bias, out, out_stride); break;          \
    case 3: pair_rows(3, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, stride, bias, out, out_stride); break;          \
    case 4: pair_rows(4, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, stride, bias, out, out_stride); break;          \
    case 5: pair_rows(5, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, stride, bias, out, out_stride); break;          \
    case 6: pair_rows(6, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, stride, bias, out, out_stride); break;          \
    case 7: pair_rows(7, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, stride, bias, out, out_stride); break;          \
    default: pair_rows(8, TYPE, BB, weights, r0, r1, blocks, q, scale, sums, stride, bias, out, out_stride); break;         \
    }

#define PAIR_PARAMS int G, const uint8_t *weights, long r0, long r1, long blocks, const int16_t *q, const float *scale, \
                    const float *sums, long stride, const float *bias, float *out, long out_stride
static VNNI void pair_rows_q4_0(PAIR_PARAMS) { PAIR_CASES(2, 18) }
static VNNI void pair_rows_q4_1(PAIR_PARAMS) { PAIR_CASES(3, 20) }
static VNNI void pair_rows_q8_0(PAIR_PARAMS) { PAIR_CASES(8, 34) }

void lf_rows_pairs(int ggml_type, const uint8_t *weights, long r0, long r1, long blocks,
                   const int16_t *q, const float *scale, const float *sums, long vectors,
                   const float *bias, float *out, long out_stride) {
    const long pairs = (blocks + 1) / 2, stride = lf_pair_sums_stride(blocks * 32);
    for (long v = 0; v < vectors; v += 8) {  // one panel of ≤ 8 vectors at a time
        int G = (int)(vectors - v < 8 ? vectors - v : 8);
        const int16_t *qv = q + v * pairs * 64;
        const float *sv = scale + v * pairs * 16, *mv = sums + v * stride;
        float *ov = out + v * out_stride;
        switch (ggml_type) {
        case 2: pair_rows_q4_0(G, weights, r0, r1, blocks, qv, sv, mv, stride, bias, ov, out_stride); break;
        case 3: pair_rows_q4_1(G, weights, r0, r1, blocks, qv, sv, mv, stride, bias, ov, out_stride); break;
        case 8: pair_rows_q8_0(G, weights, r0, r1, blocks, qv, sv, mv, stride, bias, ov, out_stride); break;
        default: break;
        }
    }
}
