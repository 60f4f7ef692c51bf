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

/// Floats of scratch one backward call needs (its dscores block).
long lf_attention_block_scratch(long rows, long keys);

/// xt[e, j] = x[j, e] for j < keys, e < D: a group's keys or values `[keys, D]` at ld → `[D, ldt]`.
void lf_attention_transpose(const float *x, long ld, long keys, long head_dim, float *xt, long ldt);

/// probs[i, 0..<probs_width] = softmax over the visible keys of scale·q_i·kᵀ (0 past them), and
/// out[i, 0..<D] = probs_i · v. q `[rows, D]` at ldq, kt the keys transposed `[D, ldkt]`
/// (lf_attention_transpose), v `[keys, D]` at ldv, probs at ldp, out at ldo (written).
void lf_attention_block_forward(const lf_attention_block *block,
                                const float *q, long ldq, const float *kt, long ldkt, const float *v, long ldv,
                                float *probs, long ldp, long probs_width, float *out, long ldo);

/// Backward of the same block from dout `[rows, D]`: dq `[rows, D]` (+)= scale · dscores · k
/// (accumulated when accumulate_dq, else written); dv_partial and dk_partial `[keys, D]`
/// (leading dimension D) are written with this block's shares pᵀ · dout and scale · dscoresᵀ · q.
/// k `[keys, D]` at ldk, vt the values transposed `[D, ldvt]`.
void lf_attention_block_backward(const lf_attention_block *block,
                                 const float *q, long ldq, const float *k, long ldk, const float *vt, long ldvt,
                                 const float *dout, long lddo, const float *probs, long ldp,
                                 float *dq, long lddq, int accumulate_dq,
                                 float *dv_partial, float *dk_partial, float *scratch);
