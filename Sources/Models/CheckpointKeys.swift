/// The model parts a checkpoint tensor can belong to.
public enum ModelPart: String, Sendable, CaseIterable {
    case language, vision, projector
}

/// The one `sanitize` step: every checkpoint key layout we accept, mapped onto our parameter
/// names (`LlamaParameterNames`, `CLIPParameterNames`, `ProjectorParameterNames`, without the
/// part's prefix). Layouts:
/// - llava-hf on the Hub: `language_model.model.*`, `language_model.lm_head.*`,
///   `vision_tower.vision_model.*`, `multi_modal_projector.*`;
/// - transformers 4.52–4.57: `model.language_model.*`, `model.vision_tower.vision_model.*`,
///   `model.multi_modal_projector.*`, top-level `lm_head.*`;
/// - transformers 5 `save_pretrained`: `language_model.model.*`, `language_model.lm_head.*`,
///   `vision_tower.*` without `vision_model.` (`vision_tower.encoder.…`), `multi_modal_projector.*`;
/// - plain LlamaForCausalLM / Qwen2ForCausalLM: `model.*`, `lm_head.*`;
/// - CLIPVisionModel / CLIPModel: `vision_model.*` (Hub), bare `embeddings.*`/`encoder.*`/… (transformers 5);
///   a CLIPModel's text half is ignored on request;
/// - original LLaVA projector files: `model.mm_projector.{0,2}.*` (mlp2x) or `model.mm_projector.*` (linear);
/// - GGUF llama names: `token_embd`, `blk.N.attn_q`, …, `output_norm`, `output`.
public enum CheckpointKeys {
    public enum Mapping: Equatable, Sendable {
        case parameter(ModelPart, String)
        /// A known tensor that is not a parameter (RoPE's cached inv_freq, CLIP's position_ids).
        case ignored
    }

    /// nil for a key no rule knows (it then stays a leftover and the load fails naming it).
    /// `ignoreCLIPTextTower`: a CLIPModel folder used as a vision tower carries its text tower and
    /// projections too; only then are those keys accepted (and dropped).
    public static func sanitize(_ key: String, ignoreCLIPTextTower: Bool = false) -> Mapping? {
        if key.hasSuffix("rotary_emb.inv_freq") || key.hasSuffix("embeddings.position_ids") { return .ignored }
        if ignoreCLIPTextTower, key.hasPrefix("text_model.") || ["text_projection.weight", "visual_projection.weight", "logit_scale"].contains(key) {
            return .ignored
        }
        if key.hasPrefix("blk.") || ["token_embd.weight", "output_norm.weight", "output.weight"].contains(key) {
            return ggufName(key).map { .parameter(.language, $0) }
        }
        // Ordered: longer, more specific prefixes first.
        let rules: [(String, ModelPart, String)] = [
            ("language_model.model.", .language, ""),
            ("language_model.lm_head.", .language, "lm_head."),
            ("model.language_model.", .language, ""),
            ("language_model.", .language, ""),
            ("model.vision_tower.vision_tower.vision_model.", .vision, ""),  // original LLaVA with the tower saved
            ("model.vision_tower.vision_model.", .vision, ""),
            ("vision_tower.vision_model.", .vision, ""),
            ("model.vision_tower.", .vision, ""),
            ("vision_tower.", .vision, ""),
            ("model.multi_modal_projector.", .projector, ""),
            ("multi_modal_projector.", .projector, ""),
            ("model.mm_projector.0.", .projector, "linear_1."),
            ("model.mm_projector.2.", .projector, "linear_2."),
            ("mm_projector.0.", .projector, "linear_1."),
            ("mm_projector.2.", .projector, "linear_2."),
            ("model.mm_projector.", .projector, "linear_1."),
            ("mm_projector.", .projector, "linear_1."),
            ("vision_model.", .vision, ""),
            ("model.", .language, ""),
            ("lm_head.", .language, "lm_head."),
            // Bare module names: transformers 5 CLIPVisionModel folders, a saved LlamaModel.
            ("embeddings.", .vision, "embeddings."),
            ("encoder.", .vision, "encoder."),
            ("pre_layrnorm.", .vision, "pre_layrnorm."),
            ("post_layernorm.", .vision, "post_layernorm."),
            ("embed_tokens.", .language, "embed_tokens."),
            ("layers.", .language, "layers."),
            ("norm.", .language, "norm."),
        ]
        for (prefix, part, replacement) in rules where key.hasPrefix(prefix) {
            let rest = String(key.dropFirst(prefix.count))
            if rest.isEmpty { return nil }
            // `*.language_model.lm_head` style leftovers never reach here; a language-part name
            // must look like a decoder tensor, a vision name like a tower tensor.
            return .parameter(part, replacement + rest)
        }
        return nil
    }

    /// GGUF llama tensor names → our decoder names.
    static func ggufName(_ key: String) -> String? {
        switch key {
        case "token_embd.weight": return LlamaParameterNames.embedTokens
        case "output_norm.weight": return LlamaParameterNames.finalNorm
        case "output.weight": return LlamaParameterNames.lmHead
        default: break
        }
        let parts = key.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0 else { return nil }
        let kind = String(parts[3])
        guard kind == "weight" || kind == "bias" else { return nil }
        let module: String
        switch parts[2] {
        case "attn_norm": module = "input_layernorm"
        case "attn_q": module = "self_attn.q_proj"
        case "attn_k": module = "self_attn.k_proj"
        case "attn_v": module = "self_attn.v_proj"
        case "attn_output": module = "self_attn.o_proj"
        case "ffn_norm": module = "post_attention_layernorm"
        case "ffn_gate": module = "mlp.gate_proj"
        case "ffn_up": module = "mlp.up_proj"
        case "ffn_down": module = "mlp.down_proj"
        default: return nil
        }
        return LlamaParameterNames.layer(layer, "\(module).\(kind)")
    }

    /// GGUF's llama converter permutes the rows of Q and K within each head so that ggml's
    /// interleaved RoPE (pairs 2i, 2i+1) computes what transformers' rotate-half (pairs i, i+D/2)
    /// does. Undo it at load so one RoPE kernel serves both: GGUF row `h·D + 2i + j` is
    /// transformers row `h·D + j·D/2 + i`. `values` is `[heads·D, columns]` (columns 1 for a bias).
    public static func unpermuteGGUFRows(_ values: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, columns: Int) {
        let half = headDim / 2
        let copy = [Float](UnsafeBufferPointer(start: values, count: heads * headDim * columns))
        copy.withUnsafeBufferPointer { source in
            for h in 0..<heads {
                for i in 0..<half {
                    for j in 0..<2 {
                        let from = (h * headDim + 2 * i + j) * columns
                        let to = (h * headDim + j * half + i) * columns
                        (values + to).update(from: source.baseAddress! + from, count: columns)
                    }
                }
            }
        }
    }
}
