#ifndef LLAVA_FORGE_INFERENCE_KERNELS_H
#define LLAVA_FORGE_INFERENCE_KERNELS_H
#include <stdint.h>

// ---- Activation quantization (int16 per 32-element block) ----

/// Activation rows x [vectors, width] (width a multiple of 32) → per 32-element block an int16
/// copy q (x ≈ scale·q, scale = max|x|/32767, round to nearest) and the exact Float sum of the
/// block. q [vectors·width], scale and sums [vectors·width/32]. ("i16 layout", AVX2 kernels.)
void lf_quantize_i16(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums);

/// The same quantization in the "panel layout" of the AVX-512 interleaved kernels: vectors in
/// panels of 8 (the last panel holds the rest), each panel block-major. Vector v of panel P (size
/// S) has block b's 32 int16 at q[P·8·width + (b·S + v%8)·32] and its scale and exact Float sum
/// (Q4 offsets) at scale / sums[P·8·blocks + b·S + v%8]. Sizes: q vectors·width, scale and sums
/// vectors·blocks. Needs lf_has_vnni().
void lf_quantize_panels(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums);

/// lf_quantize_panels of silu(gate) ⊙ up (gate, up [vectors, width]) without writing it out: the
/// LLaMA MLP's down-projection input, with an AVX-512 e^x (VectorExp's method, ~1 ulp).
void lf_quantize_panels_swiglu(const float *gate, const float *up, long vectors, long width, int16_t *q, float *scale, float *sums);

/// 1 when the CPU runs the AVX-512 VNNI kernels (F, BW, DQ, VL, VNNI).
int lf_has_vnni(void);

// ---- Row kernels: out[v·out_stride + r] = W[r] · x[v] for r in [row_begin, row_end) ----
// W holds `blocks` GGML blocks per row of type `ggml_type` (2 = Q4_0, 3 = Q4_1, 8 = Q8_0). Integer
// products are exact (int16 · 4/8-bit weights summed in int32: a Q8_0 block's sum can pass 2^24, so
// its conversion to Float32 rounds like any Float32 add); the only rounding beyond Float32
// accumulation is x's int16 quantization (1/65534 of the block max).

/// AVX2 (vpmaddwd), x in the i16 layout.
void lf_rows_i16(int ggml_type, const uint8_t *weights, long row_begin, long row_end, long blocks,
                 const int16_t *q, const float *scale, const float *sums, long vectors,
                 float *out, long out_stride);

/// Bytes of the interleaved copy of a [rows, blocks] matrix of GGML type 2, 3 or 8 (0 for any other
/// type): rows padded to a multiple of 16.
long lf_interleaved_bytes(int ggml_type, long rows, long blocks);

/// GGML blocks [rows, blocks] → the interleaved layout of the AVX-512 kernels (16 rows side by side,
/// see InterleavedKernels.c); `out` holds lf_interleaved_bytes. Q4_0 becomes Q4_1-shaped (m = −8d).
/// Needs lf_has_vnni().
void lf_interleave(int ggml_type, const uint8_t *weights, long rows, long blocks, uint8_t *out);

/// AVX-512 VNNI (vpdpwssd with broadcast activations) over interleaved weights (`ggml_type` the
/// type they were made from), x in the panel layout; bias (or NULL) added. row_begin is a multiple
/// of 16, row_end one too or `rows`. q, scale and sums point at the first vector of a panel (vector
/// 8k of a quantized set) and `vectors` covers whole panels of that set, as lf_linear calls it.
/// Needs lf_has_vnni().
void lf_rows_interleaved(int ggml_type, const uint8_t *weights, long row_begin, long row_end, long rows, long blocks,
                         const int16_t *q, const float *scale, const float *sums, long vectors,
                         const float *bias, float *out, long out_stride);

// ---- Fused products over the pool ----

#define LF_LAYOUT_I16 0
#define LF_LAYOUT_INTERLEAVED 1

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

// ---- Decode attention (one query of a GQA group's heads over their shared cached keys) ----

/// scores[h·score_stride + j] = scale · q_h · keys[j·kv_stride ..< +d] for h < heads, j < valid
/// (q_h = q + h·d: the group's query heads side by side).
void lf_attention_scores(const float *q, long heads, long d, const float *keys, long kv_stride, long valid, float scale, float *scores,
                         long score_stride);

/// out[h·d + e] = Σ_j probs[h·prob_stride + j] · values[j·kv_stride + e] for h < heads, e < d,
/// j < valid (overwrites out [heads·d]).
void lf_attention_values(const float *probs, long prob_stride, long heads, long valid, const float *values, long kv_stride, long d,
                         float *out);

// ---- Thread pool ----

typedef void (*lf_task)(void *context, long chunk);

/// Threads a parallel region uses, the caller included (default 1: everything inline).
void lf_pool_set_threads(int threads);
int lf_pool_threads(void);

/// Calls task(context, i) for every i in [0, chunks), spread over the pool; returns when all are
/// done. Chunks must be independent. A nested or concurrent call runs its chunks inline.
void lf_pool_run(long chunks, lf_task task, void *context);

#endif
