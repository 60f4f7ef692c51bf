#ifndef LLAVA_FORGE_INFERENCE_KERNELS_H
#define LLAVA_FORGE_INFERENCE_KERNELS_H
#include <stdint.h>

// ---- Activation quantization (int16 per 32-element block) ----

/// Activation rows x [vectors, width] (width a multiple of 32) → per 32-element block an int16
/// copy q (x ≈ scale·q, scale = max|x|/32767, round to nearest) and the exact Float sum of the
/// block. q [vectors·width], scale and sums [vectors·width/32]. ("i16 layout", AVX2 kernels.)
void lf_quantize_i16(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums);

/// The same quantization in the "pair layout" of the AVX-512 kernels: blocks go in pairs
/// (2p, 2p+1; an odd last block gets a zero partner), vectors in panels of 8 (the last panel holds
/// the rest), each panel pair-major. Per pair and vector 64 int16
/// [x_2p[0..15], x_2p+1[0..15], x_2p[16..31], x_2p+1[16..31]] and 16 scales [d_2p ×8, d_2p+1 ×8];
/// vector v of panel P (size S) has pair p's values at q[(P·8·pairs + p·S + v%8)·64] and
/// scale[(P·8·pairs + p·S + v%8)·16] (pairs = ceil(blocks/2)). Block sums (exact, for Q4_1's
/// offsets) are per vector: sums[v·lf_pair_sums_stride(width) + 4p + 1] = Σx_2p, … + 4p + 3 = Σx_2p+1,
/// every other float 0. Sizes: q vectors·pairs·64, scale vectors·pairs·16, sums
/// vectors·lf_pair_sums_stride(width). Needs lf_has_vnni().
void lf_quantize_pairs(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums);

/// Floats of block sums per vector in the pair layout (4 per pair, rounded up to 16).
long lf_pair_sums_stride(long width);

/// 1 when the CPU runs the AVX-512 VNNI kernels (F, BW, DQ, VL, VNNI).
int lf_has_vnni(void);

// ---- Row kernels: out[v·out_stride + r] = W[r] · x[v] for r in [row_begin, row_end) ----
// W holds `blocks` GGML blocks per row of type `ggml_type` (2 = Q4_0, 3 = Q4_1, 8 = Q8_0). Integer
// products are exact (int16 · 4/8-bit weights summed in int32, < 2^24 per lane before conversion);
// the only rounding beyond Float32 accumulation is x's int16 quantization (1/65534 of the block max).

/// AVX2 (vpmaddwd), x in the i16 layout.
void lf_rows_i16(int ggml_type, const uint8_t *weights, long row_begin, long row_end, long blocks,
                 const int16_t *q, const float *scale, const float *sums, long vectors,
                 float *out, long out_stride);

/// AVX-512 VNNI (vpdpwssd), x in the pair layout; bias (or NULL) added. Needs lf_has_vnni().
/// q, scale and sums point at the first vector of a panel (vector 8k of a quantized set) and
/// `vectors` covers whole panels of that set, as lf_linear calls it.
void lf_rows_pairs(int ggml_type, const uint8_t *weights, long row_begin, long row_end, long blocks,
                   const int16_t *q, const float *scale, const float *sums, long vectors,
                   const float *bias, float *out, long out_stride);

// ---- Fused products over the pool ----

#define LF_LAYOUT_I16 0
#define LF_LAYOUT_PAIRS 1

/// One product of a fused step: out[v·out_stride + r] = W[r] · x[v] + bias[r] (bias may be NULL).
typedef struct {
    int type;
    const uint8_t *weights;
    long rows;
    const float *bias;
    float *out;
    long out_stride;
} lf_job;

/// Every job's rows (all reading the same `vectors` activation rows of `blocks` blocks, quantized
/// in `layout`) in one parallel region: rows × vector groups are cut into chunks the pool's
/// threads claim.
void lf_linear(int layout, const lf_job *jobs, int njobs, long blocks, const int16_t *q, const float *scale,
               const float *sums, long vectors);

// ---- Decode attention (one query of one head over its cached keys; AVX2 + FMA) ----

/// scores[j] = scale · q · keys[j·kv_stride ..< +d] for j < valid (q [d]).
void lf_attention_scores(const float *q, long d, const float *keys, long kv_stride, long valid, float scale, float *scores);

/// out[e] = Σ_j probs[j] · values[j·kv_stride + e] for e < d, j < valid (overwrites out [d]).
void lf_attention_values(const float *probs, long valid, const float *values, long kv_stride, long d, float *out);

// ---- Thread pool ----

typedef void (*lf_task)(void *context, long chunk);

/// Threads a parallel region uses, the caller included (default 1: everything inline).
void lf_pool_set_threads(int threads);
int lf_pool_threads(void);

/// Calls task(context, i) for every i in [0, chunks), spread over the pool; returns when all are
/// done. Chunks must be independent. A nested or concurrent call runs its chunks inline.
void lf_pool_run(long chunks, lf_task task, void *context);

#endif
