// Single-thread timing and accuracy of the AVX-512 VNNI block kernels (lf_quantize_panels +
// lf_rows_interleaved over lf_interleave'd weights) on SmolLM2-135M's matrix shapes, for 1 and 8
// activation vectors — the batching efficiency the batched decode step depends on. Built by
// bench/block_kernel_bench.sh, optionally with a git revision's pair kernels (PairKernels.c, the
// layout before the interleaved one: symbols renamed by the preprocessor) so both run alternately in
// one process under the same load.
//
// Weights: random Q4_0 / Q4_1 / Q8_0 blocks with small positive fp16 scales; activations: uniform
// with one outlier in 97 (×20). Accuracy: max |Δ| vs a double-precision loop over the same blocks.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int lf_has_vnni(void);
long lf_interleaved_bytes(int, long, long);
void lf_interleave(int, const uint8_t *, long, long, uint8_t *);
void lf_quantize_panels(const float *, long, long, int16_t *, float *, float *);
void lf_rows_interleaved(int, const uint8_t *, long, long, long, long, const int16_t *, const float *, const float *, long,
                         const float *, float *, long);
#ifdef LF_OTHER
void other_quantize_pairs(const float *, long, long, int16_t *, float *, float *);
void other_rows_pairs(int, const uint8_t *, long, long, long, const int16_t *, const float *, const float *, long, const float *, float *, long);
#endif

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);  // CPU time: a preempted repeat does not count its wait
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static float half(const uint8_t *p) { return _cvtsh_ss((uint16_t)(p[0] | p[1] << 8)); }

static double weight(int type, const uint8_t *blk, int i) {
    double d = half(blk);
    if (type == 3) return d * (i < 16 ? blk[4 + i] & 15 : blk[4 + i - 16] >> 4) + half(blk + 2);
    if (type == 2) return d * ((i < 16 ? blk[2 + i] & 15 : blk[2 + i - 16] >> 4) - 8);
    return d * (int8_t)blk[2 + i];
}

int main(int argc, char **argv) {
    if (!lf_has_vnni()) { printf("{\"what\":\"skipped\",\"reason\":\"no AVX-512 VNNI\"}\n"); return 0; }
    int repeats = argc > 1 ? atoi(argv[1]) : 15;
    struct { const char *name; int type; long rows, width; } shapes[] = {
        {"q/o 576x576 Q4_1", 3, 576, 576}, {"gate/up 1536x576 Q4_1", 3, 1536, 576}, {"down 576x1536 Q4_1", 3, 576, 1536},
        {"head 49152x576 Q8_0", 8, 49152, 576}, {"1536x576 Q4_0", 2, 1536, 576}, {"1536x608 Q4_1 (odd pairs)", 3, 1536, 608}};
    const char *names[2] = {"this tree", ""};
    int nk = 1;
#ifdef LF_OTHER
    names[1] = LF_OTHER;
    nk = 2;
#endif
    srand(1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int type = shapes[s].type;
        long rows = shapes[s].rows, width = shapes[s].width, bb = type == 3 ? 20 : type == 2 ? 18 : 34;
        long blocks = width / 32, pairs = (blocks + 1) / 2;
        uint8_t *w = malloc(rows * blocks * bb);
        for (long i = 0; i < rows * blocks * bb; i++) w[i] = (uint8_t)rand();
        for (long r = 0; r < rows * blocks; r++) {
            uint8_t *b = w + r * bb;
            uint16_t h = 0x2000 | (rand() & 0x3ff), m = 0xA000 | (rand() & 0x3ff);
            memcpy(b, &h, 2);
            if (type == 3) memcpy(b + 2, &m, 2);
        }
        float *x = malloc(8 * width * sizeof(float));
        for (long i = 0; i < 8 * width; i++) x[i] = (rand() / (float)RAND_MAX - 0.5f) * (i % 97 == 0 ? 20 : 1);
        double *ref = malloc(8 * rows * sizeof(double)), largest = 0;
        for (int v = 0; v < 8; v++)
            for (long r = 0; r < rows; r++) {
                double sum = 0;
                for (long b = 0; b < blocks; b++)
                    for (int i = 0; i < 32; i++) sum += weight(type, w + (r * blocks + b) * bb, i) * x[v * width + b * 32 + i];
                ref[v * rows + r] = sum;
                if (fabs(sum) > largest) largest = fabs(sum);
            }
        uint8_t *packed = aligned_alloc(64, (size_t)(lf_interleaved_bytes(type, rows, blocks) + 63) / 64 * 64);
        lf_interleave(type, w, rows, blocks, packed);
        // Generous buffers: either kernel version's layout fits.
        int16_t *q = malloc(8 * pairs * 64 * sizeof(int16_t));
        float *scale = malloc(8 * pairs * 16 * sizeof(float)), *sums = malloc(8 * (pairs * 16 + 16) * sizeof(float));
        float *out = malloc(8 * rows * sizeof(float));
        for (int G = 1; G <= 8; G *= 8) {
            double best[2] = {1e9, 1e9}, error[2] = {0, 0};
            int iterations = (int)(2e6 / ((double)rows * width)) + 1;
            for (int rep = 0; rep < repeats; rep++)
                for (int k = 0; k < nk; k++) {
                    double t;
                    if (k == 0) {
                        lf_quantize_panels(x, G, width, q, scale, sums);
                        t = cpu_now();
                        for (int it = 0; it < iterations; it++) lf_rows_interleaved(type, packed, 0, rows, rows, blocks, q, scale, sums, G, NULL, out, rows);
                    } else {
#ifdef LF_OTHER
                        other_quantize_pairs(x, G, width, q, scale, sums);
                        t = cpu_now();
                        for (int it = 0; it < iterations; it++) other_rows_pairs(type, w, 0, rows, blocks, q, scale, sums, G, NULL, out, rows);
#endif
                    }
                    t = (cpu_now() - t) / iterations;
                    if (t < best[k]) best[k] = t;
                    if (rep == 0)
                        for (int v = 0; v < G; v++)
                            for (long r = 0; r < rows; r++) error[k] = fmax(error[k], fabs(out[v * rows + r] - ref[v * rows + r]));
                }
            for (int k = 0; k < nk; k++)
                printf("{\"what\":\"block_kernel\",\"kernel\":\"%s\",\"shape\":\"%s\",\"vectors\":%d,\"ns_per_row_vector\":%.3f,"
                       "\"gmac_per_second\":%.2f,\"max_abs_error\":%.3g,\"max_abs_reference\":%.3g}\n",
                       names[k], shapes[s].name, G, best[k] * 1e9 / (rows * G), rows * width * G / best[k] * 1e-9, error[k], largest);
        }
        free(w); free(packed); free(x); free(ref); free(q); free(scale); free(sums); free(out);
    }
    return 0;
}
