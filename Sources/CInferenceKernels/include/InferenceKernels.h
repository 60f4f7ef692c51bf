#ifndef LLAVA_FORGE_INFERENCE_KERNELS_H
#define LLAVA_FORGE_INFERENCE_KERNELS_H
#include <stdint.h>

/// Activation rows x [vectors, width] (width a multiple of 32) → per 32-element block an int16
/// copy q (x ≈ scale·q, scale = max|x|/32767, round to nearest) and the exact Float sum of the
/// block. q [vectors·width], scale and sums [vectors·width/32].
void lf_quantize_i16(const float *x, long vectors, long width, int16_t *q, float *scale, float *sums);

/// out[v·out_stride + r] = W[r] · x[v] for r in [row_begin, row_end): W holds `blocks` GGML blocks
/// per row of type `ggml_type` (2 = Q4_0, 3 = Q4_1, 8 = Q8_0) at `weights`; x as made by
/// lf_quantize_i16. Integer products are exact (int16 · 4/8-bit weights summed in int32); the only
/// rounding beyond Float32 accumulation is x's int16 quantization (relative 1/65534 of the block max).
void lf_rows_i16(int ggml_type, const uint8_t *weights, long row_begin, long row_end, long blocks,
                 const int16_t *q, const float *scale, const float *sums, long vectors,
                 float *out, long out_stride);

#endif
