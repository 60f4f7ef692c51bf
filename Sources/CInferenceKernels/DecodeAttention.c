// Decode attention's two products for one query of one head (see include/InferenceKernels.h).
// Swift's SIMD16 dot product per key paid a full horizontal sum per key, and its value loop
// (o[e] += p · v[e] through two pointers the compiler must assume alias) ran scalar: together
// 12 % of a batched 8-sequence decode step at short contexts, for ~2 % of its multiply-adds.
// Here eight keys' dot products are reduced together (one transposing tree per 8 keys), and the
// weighted sum of values keeps the output row in registers. AVX-512 where the CPU has it and the
// head dim is a multiple of 16 (half the FMAs of the AVX2 path), AVX2 + FMA otherwise.
#include "InferenceKernels.h"
#include "Reductions.h"
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

static int has_avx512(void) {
    static int known = -1;  // a benign race: every thread computes the same value
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    }
    return known;
}

static AVX512 long scores_512(const float *q, long d, const float *keys, long kv_stride, long valid, float scale, float *scores) {
    long j = 0;
    for (; j + 8 <= valid; j += 8) {
        const float *k = keys + j * kv_stride;
        __m512 a[8];
        for (int u = 0; u < 8; u++) a[u] = _mm512_setzero_ps();
        for (long e = 0; e < d; e += 16) {
            __m512 qe = _mm512_loadu_ps(q + e);
            for (int u = 0; u < 8; u++) a[u] = _mm512_fmadd_ps(qe, _mm512_loadu_ps(k + u * kv_stride + e), a[u]);
        }
        lf_reduce8_512(a, scores + j);
        _mm256_storeu_ps(scores + j, _mm256_mul_ps(_mm256_loadu_ps(scores + j), _mm256_set1_ps(scale)));
    }
    return j;
}

static AVX512 long values_512(const float *probs, long valid, const float *values, long kv_stride, long d, float *out) {
    long e = 0;
    for (; e + 64 <= d; e += 64) {
        __m512 o0 = _mm512_setzero_ps(), o1 = _mm512_setzero_ps(), o2 = _mm512_setzero_ps(), o3 = _mm512_setzero_ps();
        for (long j = 0; j < valid; j++) {
            const float *v = values + j * kv_stride + e;
            __m512 p = _mm512_set1_ps(probs[j]);
            o0 = _mm512_fmadd_ps(p, _mm512_loadu_ps(v), o0);
            o1 = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 16), o1);
            o2 = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 32), o2);
            o3 = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 48), o3);
        }
        _mm512_storeu_ps(out + e, o0);
        _mm512_storeu_ps(out + e + 16, o1);
        _mm512_storeu_ps(out + e + 32, o2);
        _mm512_storeu_ps(out + e + 48, o3);
    }
    for (; e + 16 <= d; e += 16) {
        __m512 o = _mm512_setzero_ps();
        for (long j = 0; j < valid; j++) o = _mm512_fmadd_ps(_mm512_set1_ps(probs[j]), _mm512_loadu_ps(values + j * kv_stride + e), o);
        _mm512_storeu_ps(out + e, o);
    }
    return e;
}

// Σ lanes of a0..a7 → [Σa0, …, Σa7].
static inline __attribute__((always_inline)) __m256 reduce8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5,
                                                              __m256 a6, __m256 a7) {
    __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));  // per 128 lane: partial [a0 a1 a2 a3]
    __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

void lf_attention_scores(const float *q, long d, const float *keys, long kv_stride, long valid, float scale, float *scores) {
    long j = 0;
    if (d % 16 == 0 && has_avx512()) {
        j = scores_512(q, d, keys, kv_stride, valid, scale, scores);
    } else if (d % 8 == 0) {
        const __m256 s = _mm256_set1_ps(scale);
        for (; j + 8 <= valid; j += 8) {
            const float *k = keys + j * kv_stride;
            __m256 a[8];
            for (int u = 0; u < 8; u++) a[u] = _mm256_setzero_ps();
            for (long e = 0; e < d; e += 8) {
                __m256 qe = _mm256_loadu_ps(q + e);
                for (int u = 0; u < 8; u++) a[u] = _mm256_fmadd_ps(qe, _mm256_loadu_ps(k + u * kv_stride + e), a[u]);
            }
            _mm256_storeu_ps(scores + j, _mm256_mul_ps(reduce8x8(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]), s));
        }
    }
    for (; j < valid; j++) {
        const float *k = keys + j * kv_stride;
        float dot = 0;
        for (long e = 0; e < d; e++) dot += q[e] * k[e];
        scores[j] = dot * scale;
    }
}

void lf_attention_values(const float *probs, long valid, const float *values, long kv_stride, long d, float *out) {
    long e = has_avx512() ? values_512(probs, valid, values, kv_stride, d, out) : 0;
    // (AVX-512 took the multiples of 16 above where the CPU has it.) 8 columns at a time, then the rest.
    for (; e + 8 <= d; e += 8) {
        __m256 o = _mm256_setzero_ps();
        for (long j = 0; j < valid; j++) o = _mm256_fmadd_ps(_mm256_broadcast_ss(probs + j), _mm256_loadu_ps(values + j * kv_stride + e), o);
        _mm256_storeu_ps(out + e, o);
    }
    for (; e < d; e++) {
        float o = 0;
        for (long j = 0; j < valid; j++) o += probs[j] * values[j * kv_stride + e];
        out[e] = o;
    }
}
