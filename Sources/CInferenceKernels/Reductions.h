// Horizontal sums shared by the kernels (private header of CInferenceKernels).
#ifndef LLAVA_FORGE_REDUCTIONS_H
#define LLAVA_FORGE_REDUCTIONS_H
#include <immintrin.h>

// Σ lanes of acc[g] → sums8[g] for 8 accumulators at once (~23 uops instead of 8 horizontal sums).
static inline __attribute__((always_inline, target("avx512f,avx512dq"))) void lf_reduce8_512(const __m512 *acc, float *sums8) {
    // [a.lo256 + a.hi256, b.lo256 + b.hi256]: 8 partial sums of two vectors
    __m512 t01 = _mm512_add_ps(_mm512_shuffle_f32x4(acc[0], acc[1], 0x44), _mm512_shuffle_f32x4(acc[0], acc[1], 0xEE));
    __m512 t23 = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2], acc[3], 0x44), _mm512_shuffle_f32x4(acc[2], acc[3], 0xEE));
    __m512 t45 = _mm512_add_ps(_mm512_shuffle_f32x4(acc[4], acc[5], 0x44), _mm512_shuffle_f32x4(acc[4], acc[5], 0xEE));
    __m512 t67 = _mm512_add_ps(_mm512_shuffle_f32x4(acc[6], acc[7], 0x44), _mm512_shuffle_f32x4(acc[6], acc[7], 0xEE));
    // 128-bit lane k = 4 partial sums of vector k (u0: 0–3, u1: 4–7)
    __m512 u0 = _mm512_add_ps(_mm512_shuffle_f32x4(t01, t23, 0x88), _mm512_shuffle_f32x4(t01, t23, 0xDD));
    __m512 u1 = _mm512_add_ps(_mm512_shuffle_f32x4(t45, t67, 0x88), _mm512_shuffle_f32x4(t45, t67, 0xDD));
    __m512 w = _mm512_add_ps(_mm512_unpacklo_ps(u0, u1), _mm512_unpackhi_ps(u0, u1));
    w = _mm512_add_ps(w, _mm512_permute_ps(w, 0x4E));  // lane k: [Σ vector k, Σ vector 4 + k, …]
    __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm256_storeu_ps(sums8, _mm512_castps512_ps256(_mm512_permutexvar_ps(order, w)));
}

#endif
