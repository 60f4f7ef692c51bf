// AVX2 block kernels for decode (see include/InferenceKernels.h). Weights are widened to int16 and
// multiplied with int16 activations by vpmaddwd (16 products → 8 int32 per instruction), which
// Swift's SIMD types cannot express: about 10 instructions per 32 weights instead of ~24 for the
// Float unpacking path (BlockDotKernels.swift), and no int8 activation rounding.
#include "InferenceKernels.h"
#include <immintrin.h>
#include <math.h>

static inline float half_to_float(const uint8_t *p) {
    uint16_t bits = (uint16_t)(p[0] | (p[1] << 8));
    return _cvtsh_ss(bits);
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void lf_quantize_i16(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums) {
    long blocks = width / 32;
    for (long v = 0; v < vectors; v++) {
        for (long b = 0; b < blocks; b++) {
            const float *xb = x + v * width + b * 32;
            float amax = 0, sum = 0;
            for (int i = 0; i < 32; i++) { float a = fabsf(xb[i]); if (a > amax) amax = a; sum += xb[i]; }
            float d = amax / 32767.0f, id = d > 0 ? 1.0f / d : 0.0f;
            int16_t *qb = q + v * width + b * 32;
            for (int i = 0; i < 32; i++) qb[i] = (int16_t)lrintf(xb[i] * id);
            scale[v * blocks + b] = d;
            sums[v * blocks + b] = sum;
        }
    }
}

// Unpacks one block into 32 int16 weights (elements 0..15, 16..31), its scale d and offset m.
static inline __attribute__((always_inline))
void unpack(int type, const uint8_t *blk, __m256i *w0, __m256i *w1, float *d, float *m) {
    if (type == 8) {  // Q8_0: half d; i8 qs[32]
        *d = half_to_float(blk);
        *m = 0;
        *w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 2)));
        *w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 18)));
        return;
    }
    const __m128i mask = _mm_set1_epi8(0x0F);
    const uint8_t *qs;
    if (type == 3) {  // Q4_1: half d; half m; u8 qs[16]
        *d = half_to_float(blk);
        *m = half_to_float(blk + 2);
        qs = blk + 4;
    } else {          // Q4_0: half d; u8 qs[16]; w = d·(q − 8)
        *d = half_to_float(blk);
        *m = -8.0f * *d;
        qs = blk + 2;
    }
    __m128i bytes = _mm_loadu_si128((const __m128i *)qs);
    *w0 = _mm256_cvtepu8_epi16(_mm_and_si128(bytes, mask));
    *w1 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask));
}

// G activation rows at once (G = 1…4, a constant after inlining), each block unpacked once.
static inline __attribute__((always_inline))
void rows_group(const int G, int type, long block_bytes, const uint8_t *weights, long row_begin, long row_end, long blocks,
                const int16_t *q, const float *scale, const float *sums, long width, float *out, long out_stride) {
    for (long r = row_begin; r < row_end; r++) {
        const uint8_t *row = weights + r * blocks * block_bytes;
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        float offset[4] = {0, 0, 0, 0};
        for (long b = 0; b < blocks; b++) {
            __m256i w0, w1;
            float d, m;
            unpack(type, row + b * block_bytes, &w0, &w1, &d, &m);
            for (int g = 0; g < G; g++) {
                const int16_t *xb = q + g * width + b * 32;
                __m256i p = _mm256_add_epi32(_mm256_madd_epi16(w0, _mm256_loadu_si256((const __m256i *)xb)),
                                             _mm256_madd_epi16(w1, _mm256_loadu_si256((const __m256i *)(xb + 16))));
                acc[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * scale[g * blocks + b]), acc[g]);
                offset[g] += m * sums[g * blocks + b];
            }
        }
        for (int g = 0; g < G; g++) out[g * out_stride + r] = hsum(acc[g]) + offset[g];
    }
}

static inline __attribute__((always_inline))
void rows_typed(int type, long block_bytes, const uint8_t *weights, long row_begin, long row_end, long blocks,
                const int16_t *q, const float *scale, const float *sums, long vectors, float *out, long out_stride) {
    long width = blocks * 32;
    for (long v = 0; v < vectors; v += 4) {
        long left = vectors - v;
        const int16_t *qv = q + v * width;
        const float *sv = scale + v * blocks, *mv = sums + v * blocks;
        float *ov = out + v * out_stride;
        // Row-major over the matrix inside each group keeps weights streaming; groups of 4 re-read
        // the matrix (batched decode at ≤ 8 sequences: twice).
        if (left >= 4) rows_group(4, type, block_bytes, weights, row_begin, row_end, blocks, qv, sv, mv, width, ov, out_stride);
        else if (left == 3) rows_group(3, type, block_bytes, weights, row_begin, row_end, blocks, qv, sv, mv, width, ov, out_stride);
        else if (left == 2) rows_group(2, type, block_bytes, weights, row_begin, row_end, blocks, qv, sv, mv, width, ov, out_stride);
        else rows_group(1, type, block_bytes, weights, row_begin, row_end, blocks, qv, sv, mv, width, ov, out_stride);
    }
}

void lf_rows_i16(int ggml_type, const uint8_t *weights, long row_begin, long row_end, long blocks,
                 const int16_t *q, const float *scale, const float *sums, long vectors,
                 float *out, long out_stride) {
    switch (ggml_type) {
    case 2: rows_typed(2, 18, weights, row_begin, row_end, blocks, q, scale, sums, vectors, out, out_stride); break;
    case 3: rows_typed(3, 20, weights, row_begin, row_end, blocks, q, scale, sums, vectors, out, out_stride); break;
    case 8: rows_typed(8, 34, weights, row_begin, row_end, blocks, q, scale, sums, vectors, out, out_stride); break;
    default: break;
    }
}
