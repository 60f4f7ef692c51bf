#!/usr/bin/env bash
# Parse time of the shared JSON parser (Sources/ForgeCore/JSON) against the parsers it replaced,
# on the real SmolLM2 tokenizer.json (from the GGUF, via transformers) and a safetensors header
# in SmolLM2's layout. The anchors are the pre-merge Tokenizers and Checkpoints parsers, taken
# from git at ANCHOR_COMMIT, compiled into one driver with the current parser (same flags:
# swiftc -O, whole module), so the ratio compares the code, not the build.
#
#   bash bench/json_parse_bench.sh           # 15 interleaved runs per parser, median reported
#   RUNS=31 bash bench/json_parse_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ANCHOR_COMMIT=${ANCHOR_COMMIT:-9fdc448}
RUNS=${RUNS:-15}
GGUF=${GGUF:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=bench/out/json_parse
mkdir -p "$OUT/src"

# 1. Inputs: tokenizer.json as transformers writes it (pretty, ~2 MB) and compact; a header.
if [ ! -f "$OUT/tokenizer.json" ]; then
    python3 - "$GGUF" "$OUT" <<'PY'
import json, os, sys
from transformers import AutoTokenizer
gguf, out = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf))
tok.save_pretrained(out + "/hf")
os.replace(out + "/hf/tokenizer.json", out + "/tokenizer.json")
doc = json.load(open(out + "/tokenizer.json", encoding="utf-8"))
json.dump(doc, open(out + "/tokenizer.compact.json", "w", encoding="utf-8"), ensure_ascii=False, separators=(",", ":"))
# SmolLM2-135M's 272 HF tensors (30 layers), F32 offsets as a safetensors header holds them.
shapes = {"model.embed_tokens.weight": [49152, 576], "model.norm.weight": [576]}
for i in range(30):
    p = f"model.layers.{i}."
    shapes.update({p + "input_layernorm.weight": [576], p + "post_attention_layernorm.weight": [576],
                   p + "self_attn.q_proj.weight": [576, 576], p + "self_attn.k_proj.weight": [192, 576],
                   p + "self_attn.v_proj.weight": [192, 576], p + "self_attn.o_proj.weight": [576, 576],
                   p + "mlp.gate_proj.weight": [1536, 576], p + "mlp.up_proj.weight": [1536, 576], p + "mlp.down_proj.weight": [576, 1536]})
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name in sorted(shapes):
    n = 4
    for d in shapes[name]: n *= d
    header[name] = {"dtype": "F32", "shape": shapes[name], "data_offsets": [offset, offset + n]}
    offset += n
json.dump(header, open(out + "/safetensors_header.json", "w"), separators=(",", ":"))
PY
fi

# 2. The driver: anchors from git (renamed so they sit beside the new parser), new parser from the tree.
git show "$ANCHOR_COMMIT:Sources/Tokenizers/JSON.swift" | grep -v '^import ForgeCore' \
    | sed -E 's/\bJSONReader\b/AnchorTokenizerReader/g; s/\bJSON\b/AnchorTokenizerJSON/g' > "$OUT/src/AnchorTokenizerJSON.swift"
git show "$ANCHOR_COMMIT:Sources/Tokenizers/UnicodeClass.swift" | sed -n '/^@inline(__always)$/,$p' > "$OUT/src/AnchorUTF8.swift"
git show "$ANCHOR_COMMIT:Sources/Checkpoints/JSONValue.swift" \
    | sed -E 's/\bJSONValue\b/AnchorCheckpointJSON/g; s/\bJSONParser\b/AnchorCheckpointParser/g; s/\bJSONSyntaxError\b/AnchorCheckpointSyntaxError/g' \
    > "$OUT/src/AnchorCheckpointJSON.swift"
swiftc -O -wmo -module-name JSONParseBench -o "$OUT/json_parse_bench" bench/json_parse/main.swift "$OUT"/src/*.swift \
    Sources/ForgeCore/JSON/*.swift Sources/ForgeCore/ForgeError.swift Sources/ForgeCore/JSONText.swift

# 3. Run.
{
    echo "# JSON parse time ($(date -u +%Y-%m-%dT%H:%MZ), median of $RUNS interleaved runs, anchor commit $ANCHOR_COMMIT)"
    echo
    "$OUT/json_parse_bench" "$RUNS" "$OUT/tokenizer.json" "$OUT/tokenizer.compact.json" "$OUT/safetensors_header.json"
} | tee "$OUT/results.md"
