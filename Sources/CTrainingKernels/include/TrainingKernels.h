// Attention blocks of the training step (forward and backward of one query block of one GQA
// group), as AVX-512 register-tiled products fused with the row softmax. See AttentionBlocks.c.
#pragma once

/// One query block of one kv group: `rows` stacked query rows (the group's G heads interleaved,
/// stacked row i is query token first_token + i / group), attending to keys 0..<keys.
typedef struct {
    long rows;
    long keys;
    long head_dim;     // D: a multiple of 16, at most 256
    long group;        // G ≥ 1
    long first_token;  // r0, the block's first query token within its sequence
    int causal;        // row i sees keys 0 ... first_token + i / group; else all `keys`
    float scale;       // applied to q·kᵀ
} lf_attention_block;

/// 1 when this CPU runs the AVX-512 block kernels and head_dim suits them, else 0 (then use sgemm).
int lf_attention_blocks_supported(long head_dim);

/// Floats of scratch one call needs (transposed keys or values + the dscores block).
long lf_attention_block_scratch(long rows, long keys, long head_dim);

/// probs[i, 0..<probs_width] = softmax over the visible keys of scale·q_i·kᵀ (0 past them), and
/// out[i, 0..<D] = probs_i · v. q `[rows, D]` at ldq, k and v `[keys, D]` at ldkv, probs at ldp,
/// out at ldo (written, not accumulated).
void lf_attention_block_forward(const lf_attention_block *block,
                                const float *q, long ldq, const float *k, const float *v, long ldkv,
                                float *probs, long ldp, long probs_width, float *out, long ldo,
                                float *scratch);

/// Backward of the same block from dout `[rows, D]`: dq `[rows, D]` (+)= scale · dscores · k
/// (accumulated when accumulate_dq, else written); dv_partial and dk_partial `[keys, D]`
/// (leading dimension D) are written with this block's shares pᵀ · dout and scale · dscoresᵀ · q.
void lf_attention_block_backward(const lf_attention_block *block,
                                 const float *q, long ldq, const float *k, const float *v, long ldkv,
                                 const float *dout, long lddo, const float *probs, long ldp,
                                 float *dq, long lddq, int accumulate_dq,
                                 float *dv_partial, float *dk_partial, float *scratch);
