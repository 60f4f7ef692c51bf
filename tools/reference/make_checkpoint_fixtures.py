#!/usr/bin/env python3
"""Golden fixtures for Tests/CheckpointTests (safetensors and GGUF readers, the safetensors writer).

Every expected value comes from the reference implementations, never from our Swift code:
  - GGUF files are written by gguf-py's GGUFWriter; quantized blocks come from
    gguf.quants.quantize (legacy types) or are random bytes with sane scales (K-quants, which
    gguf-py cannot quantize); expected Float32 values come from gguf.quants.dequantize.
  - safetensors files are written by the `safetensors` package (numpy API; BF16 through its torch
    API because numpy has no bfloat16); expected values are numpy's float32 conversions.
  - writer_*.safetensors are the bytes the reference writer produces for tensors whose values
    the Swift test recomputes from the same formula, so the Swift writer must match byte for byte.
  - smollm2_expected.json records metadata and dequantized-tensor checksums of the real
    SmolLM2-135M-Instruct Q4_1 GGUF (scripts/fetch_model.sh), when that file is present.

Usage (from the repo root):
  flock /tmp/pip.lock python3 -m pip install -q gguf numpy safetensors   # torch for BF16
  python3 tools/reference/make_checkpoint_fixtures.py [--smollm2 models/SmolLM2-135M-Instruct.Q4_1.gguf]

Outputs go to Tests/CheckpointTests/Fixtures/ (a few tens of KB in all).
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file as save_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "CheckpointTests", "Fixtures")

# --------------------------------------------------------------------------------------------
# Expected-value blob: every expected Float32 array is appended to one little-endian file and
# referenced from the JSON manifests by (offset in floats, count).


class Blob:
    def __init__(self):
        self.parts = []
        self.count = 0

    def add(self, values):
        values = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
        offset = self.count
        self.parts.append(values)
        self.count += values.size
        return {"expected_offset": offset, "count": int(values.size)}

    def write(self, path):
        data = np.concatenate(self.parts) if self.parts else np.zeros(0, "<f4")
        data.astype("<f4").tofile(path)


def sha256_f32(values):
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<f4").tobytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# GGUF


def f16_bytes(values):
    return np.asarray(values, dtype="<f2").view(np.uint8)


def random_kquant_blocks(qtype, n_blocks, rng):
    """Random bytes for every field (all bit patterns of quants and scales), with the f16/f32 super-block
    scales replaced by small finite values so the expected output has no inf/NaN."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    d = rng.uniform(0.001, 0.05, size=n_blocks)
    dmin = rng.uniform(0.001, 0.05, size=n_blocks)
    for b in range(n_blocks):
        if qtype in (Q.Q4_K, Q.Q5_K):  # half d; half dmin at bytes 0..4
            blocks[b, 0:2] = f16_bytes([d[b]])
            blocks[b, 2:4] = f16_bytes([dmin[b]])
        elif qtype == Q.Q2_K:  # ... half d; half dmin at the end
            blocks[b, 80:82] = f16_bytes([d[b]])
            blocks[b, 82:84] = f16_bytes([dmin[b]])
        elif qtype in (Q.Q3_K, Q.Q6_K):  # ... half d at the end
            blocks[b, type_size - 2:] = f16_bytes([d[b]])
        elif qtype == Q.Q8_K:  # float d first
            blocks[b, 0:4] = np.asarray([d[b]], dtype="<f4").view(np.uint8)
        else:
            raise ValueError(qtype)
    return blocks


def random_legacy_blocks(qtype, n_blocks, rng):
    """Random quant bytes with finite f16 d (and m) for the 32-element block types."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for b in range(n_blocks):
        blocks[b, 0:2] = f16_bytes([rng.uniform(-0.05, 0.05)])
        if qtype in (Q.Q4_1, Q.Q5_1):
            blocks[b, 2:4] = f16_bytes([rng.uniform(-1, 1)])
    return blocks


def dequantize_q8_k(blocks):
    """gguf-py has no Q8_K; ggml's dequantize_row_q8_K is y = d * q (float d, int8 qs[256])."""
    d = blocks[:, 0:4].copy().view("<f4").astype(np.float32)
    qs = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
    return d * qs


def quant_tensor(qtype, rows, cols, rng):
    """(raw uint8 bytes [rows, row_bytes], expected float32 [rows, cols]).
    Row 0 is quantized from normal data where gguf-py can quantize; other rows are random blocks."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    per_row = cols // block_size
    k_quant = qtype in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_K)
    raw_rows = []
    for r in range(rows):
        if r == 0 and not k_quant:
            data = rng.normal(0, 1, size=(1, cols)).astype(np.float32)
            raw_rows.append(gguf.quants.quantize(data, qtype).reshape(-1))
        elif k_quant:
            raw_rows.append(random_kquant_blocks(qtype, per_row, rng).reshape(-1))
        else:
            raw_rows.append(random_legacy_blocks(qtype, per_row, rng).reshape(-1))
    raw = np.stack(raw_rows).astype(np.uint8)
    if qtype == Q.Q8_K:
        expected = dequantize_q8_k(raw.reshape(-1, type_size)).reshape(rows, cols)
    else:
        expected = gguf.quants.dequantize(raw, qtype).reshape(rows, cols)
    return raw, expected.astype(np.float32)


def metadata_expectation(value, vtype, sub=None):
    return {"type": vtype, "value": value} if sub is None else {"type": vtype, "value": value, "element": sub}


def write_quants_gguf(blob, rng):
    path = os.path.join(OUT, "quants_v3.gguf")
    w = gguf.GGUFWriter(path, arch="testarch")
    meta = {"general.architecture": metadata_expectation("testarch", "string")}
    # One key per metadata value type, plus arrays (nested ones too).
    w.add_uint8("test.u8", 200); meta["test.u8"] = metadata_expectation(200, "uint8")
    w.add_int8("test.i8", -100); meta["test.i8"] = metadata_expectation(-100, "int8")
    w.add_uint16("test.u16", 65000); meta["test.u16"] = metadata_expectation(65000, "uint16")
    w.add_int16("test.i16", -32000); meta["test.i16"] = metadata_expectation(-32000, "int16")
    w.add_uint32("test.u32", 4_000_000_000); meta["test.u32"] = metadata_expectation(4_000_000_000, "uint32")
    w.add_int32("test.i32", -2_000_000_000); meta["test.i32"] = metadata_expectation(-2_000_000_000, "int32")
    w.add_float32("test.f32", 3.14159); meta["test.f32"] = metadata_expectation(float(np.float32(3.14159)), "float32")
    w.add_bool("test.bool_true", True); meta["test.bool_true"] = metadata_expectation(True, "bool")
    w.add_bool("test.bool_false", False); meta["test.bool_false"] = metadata_expectation(False, "bool")
    w.add_string("test.string", "héllo ✓ 🦙"); meta["test.string"] = metadata_expectation("héllo ✓ 🦙", "string")
    w.add_key_value("test.empty_string", "", gguf.GGUFValueType.STRING)  # add_string skips empty values; meta["test.empty_string"] = metadata_expectation("", "string")
    w.add_uint64("test.u64", 18_000_000_000_000_000_000); meta["test.u64"] = metadata_expectation(18_000_000_000_000_000_000, "uint64")
    w.add_int64("test.i64", -9_000_000_000_000_000_000); meta["test.i64"] = metadata_expectation(-9_000_000_000_000_000_000, "int64")
    w.add_float64("test.f64", 2.718281828459045); meta["test.f64"] = metadata_expectation(2.718281828459045, "float64")
    w.add_array("test.array_i32", [1, -2, 3]); meta["test.array_i32"] = metadata_expectation([1, -2, 3], "array", "int32")
    w.add_array("test.array_f32", [0.5, -1.25]); meta["test.array_f32"] = metadata_expectation([0.5, -1.25], "array", "float32")
    w.add_array("test.array_bool", [True, False, True]); meta["test.array_bool"] = metadata_expectation([True, False, True], "array", "bool")
    w.add_array("test.array_string", ["a", "ü", "", "<0x0A>"]); meta["test.array_string"] = metadata_expectation(["a", "ü", "", "<0x0A>"], "array", "string")
    w.add_array("test.array_u8", b"\x00\x7f\xff"); meta["test.array_u8"] = metadata_expectation([0, 127, 255], "array", "uint8")
    w.add_array("test.nested_i32", [[1, 2], [3, 4, 5]]); meta["test.nested_i32"] = metadata_expectation([[1, 2], [3, 4, 5]], "array", "array")
    w.add_array("test.nested_str", [["x", "y"], ["z"]]); meta["test.nested_str"] = metadata_expectation([["x", "y"], ["z"]], "array", "array")
    w.add_key_value("test.array_u64", [1, 2 ** 40], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT64)
    meta["test.array_u64"] = metadata_expectation([1, 2 ** 40], "array", "uint64")

    tensors = []

    def add(name, raw, qtype, shape, expected):
        """shape is the PyTorch/HF order (outermost first); ggml's ne is its reverse."""
        w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        entry = {"name": name, "type": qtype.name, "shape": list(shape)}
        if expected is not None:
            entry.update(blob.add(expected))
        tensors.append(entry)

    f32 = rng.normal(0, 1, size=(3, 5)).astype(np.float32)
    add("plain.f32", f32, Q.F32, (3, 5), f32)
    f16 = rng.normal(0, 1, size=(2, 7)).astype(np.float16)
    add("plain.f16", f16, Q.F16, (2, 7), f16.astype(np.float32))
    bf16_raw = gguf.quants.quantize(rng.normal(0, 1, size=(4, 3)).astype(np.float32), Q.BF16)
    add("plain.bf16", bf16_raw, Q.BF16, (4, 3), gguf.quants.dequantize(bf16_raw, Q.BF16))
    f64 = rng.normal(0, 1, size=(6,)).astype(np.float64)
    add("plain.f64", f64, Q.F64, (6,), f64.astype(np.float32))
    for qtype in (Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_K):
        raw, expected = quant_tensor(qtype, 2, 256, rng)
        add("quant." + qtype.name.lower(), raw, qtype, (2, 256), expected)
    # Types we do not dequantize: the reader must load them and fail clearly on conversion.
    iq = rng.integers(0, 256, size=(1, gguf.GGML_QUANT_SIZES[Q.IQ4_NL][1] * 2), dtype=np.uint8)
    add("unsupported.iq4_nl", iq, Q.IQ4_NL, (1, 64), None)
    ints = np.array([[1, -2, 3], [-4, 5, -6]], dtype=np.int8)
    add("integer.i8", ints, Q.I8, (2, 3), None)
    i32 = np.array([7, -8, 2 ** 30], dtype=np.int32)
    add("integer.i32", i32, Q.I32, (3,), None)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, meta, tensors


def write_aligned_gguf(blob, rng):
    """GGUF v2 (the version field patched: v2 and v3 share the little-endian layout) with
    general.alignment = 64 and tensor sizes that need padding between them."""
    path = os.path.join(OUT, "aligned_v2.gguf")
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_custom_alignment(64)
    w.add_block_count(1)
    w.add_context_length(16)
    tensors = []
    for name, shape in (("a", (3, 5)), ("b", (7,)), ("c", (1, 1))):
        data = rng.normal(0, 1, size=shape).astype(np.float32)
        w.add_tensor(name, data)
        tensors.append({"name": name, "type": "F32", "shape": list(shape), **blob.add(data)})
    raw, expected = quant_tensor(Q.Q8_0, 3, 32, rng)
    w.add_tensor("q", raw, raw_shape=raw.shape, raw_dtype=Q.Q8_0)
    tensors.append({"name": "q", "type": "Q8_0", "shape": [3, 32], **blob.add(expected)})
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", 2))
    meta = {
        "general.alignment": metadata_expectation(64, "uint32"),
        "llama.block_count": metadata_expectation(1, "uint32"),
        "llama.context_length": metadata_expectation(16, "uint32"),
    }
    return path, meta, tensors


def describe_gguf(path, meta, tensors):
    """Adds what gguf-py's reader says about the file: version, data offset, absolute tensor offsets."""
    reader = gguf.GGUFReader(path)
    version = int(reader.fields["GGUF.version"].parts[-1][0])
    by_name = {t.name: t for t in reader.tensors}
    for entry in tensors:
        t = by_name[entry["name"]]
        entry["absolute_offset"] = int(t.data_offset)
        entry["byte_count"] = int(t.n_bytes)
        entry["ne"] = [int(x) for x in t.shape]
    return {
        "version": version,
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata_keys": [k for k in reader.fields.keys() if not k.startswith("GGUF.")],
        "metadata": meta,
        "tensors": tensors,
    }


# --------------------------------------------------------------------------------------------
# safetensors


def st_entry(name, dtype, array, blob):
    entry = {"name": name, "dtype": dtype, "shape": list(array.shape)}
    if dtype in ("F32", "F16", "BF16"):
        entry.update(blob.add(array))
    else:
        entry["ints"] = [int(x) for x in np.asarray(array).reshape(-1)]
    return entry


def write_safetensors(blob, rng):
    files = {}
    f32 = {
        "model.embed_tokens.weight": rng.normal(0, 1, size=(4, 6)).astype(np.float32),
        "model.norm.weight": rng.normal(0, 1, size=(6,)).astype(np.float32),
        "scalar": np.array(1.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    # Two metadata keys: the reference writer's map order varies between runs, so this file's bytes
    # may differ on regeneration while its content does not.
    save_numpy(f32, os.path.join(OUT, "f32.safetensors"), metadata={"format": "pt", "note": "fixture"})
    files["f32.safetensors"] = {"metadata": {"format": "pt", "note": "fixture"},
                                "tensors": [st_entry(k, "F32", v, blob) for k, v in sorted(f32.items())]}

    f16 = {"w": rng.normal(0, 1, size=(3, 4)).astype(np.float16),
           "special": np.array([65504, -65504, 6e-8, 0.0, -0.0, np.inf, -np.inf, 1e-5], dtype=np.float16)}
    save_numpy(f16, os.path.join(OUT, "f16.safetensors"))
    files["f16.safetensors"] = {"metadata": {}, "tensors": [st_entry(k, "F16", v.astype(np.float32), blob) for k, v in sorted(f16.items())]}

    import torch
    from safetensors.torch import save_file as save_torch
    bf_values = rng.normal(0, 1, size=(5, 3)).astype(np.float32)
    bf = torch.from_numpy(bf_values).to(torch.bfloat16)
    save_torch({"w": bf}, os.path.join(OUT, "bf16.safetensors"), metadata={"format": "pt"})
    files["bf16.safetensors"] = {"metadata": {"format": "pt"}, "tensors": [st_entry("w", "BF16", bf.to(torch.float32).numpy(), blob)]}

    ints = {"ids64": np.array([[1, -2], [2 ** 40, 3]], dtype=np.int64),
            "ids32": np.array([5, -6, 7], dtype=np.int32),
            "bytes": np.array([0, 128, 255, 1], dtype=np.uint8),
            "x": np.array([0.25, -0.5], dtype=np.float32)}
    save_numpy(ints, os.path.join(OUT, "mixed.safetensors"))
    dtypes = {"ids64": "I64", "ids32": "I32", "bytes": "U8", "x": "F32"}
    files["mixed.safetensors"] = {"metadata": {}, "tensors": [st_entry(k, dtypes[k], v, blob) for k, v in sorted(ints.items())]}

    # A 2-shard checkpoint in Hugging Face's layout.
    shard_dir = os.path.join(OUT, "sharded")
    os.makedirs(shard_dir, exist_ok=True)
    shard1 = {"model.layers.0.weight": rng.normal(0, 1, size=(2, 3)).astype(np.float32),
              "model.embed.weight": rng.normal(0, 1, size=(4, 3)).astype(np.float32)}
    shard2 = {"model.layers.1.weight": rng.normal(0, 1, size=(2, 3)).astype(np.float32),
              "lm_head.weight": rng.normal(0, 1, size=(4, 3)).astype(np.float32)}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    save_numpy(shard1, os.path.join(shard_dir, names[0]), metadata={"format": "pt"})
    save_numpy(shard2, os.path.join(shard_dir, names[1]), metadata={"format": "pt"})
    weight_map = {k: names[0] for k in shard1} | {k: names[1] for k in shard2}
    total = sum(v.nbytes for v in list(shard1.values()) + list(shard2.values()))
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    all_tensors = shard1 | shard2
    files["sharded"] = {"metadata": {"format": "pt"}, "tensors": [st_entry(k, "F32", v, blob) for k, v in sorted(all_tensors.items())]}
    return files


def writer_values(index, count):
    """The formula the Swift test repeats: Float(i) * 0.1 - 1.3 + Float(index) (scaled for index 3),
    evaluated in float32 with one rounding per operation."""
    i = np.arange(count, dtype=np.float32)
    v = (i * np.float32(0.1) - np.float32(1.3)) + np.float32(index)
    if index == 3:
        v = v * np.float32(30000)  # exceeds F16's range: ±inf there, finite in BF16
    return v.astype(np.float32)


WRITER_TENSORS = [("layers.2.w", [2, 3]), ("layers.10.w", [4]), ("b", [3, 1, 2]), ("A", [5]), ("a.weight", []), ("empty", [0, 2])]


def write_writer_references():
    """Reference bytes for SafeTensorsWriter: same tensors and metadata, written by the safetensors
    package. One metadata key, since the reference writer's metadata map has no fixed order."""
    import torch
    from safetensors.torch import save_file as save_torch
    out = {}
    for dtype in ("F32", "F16", "BF16"):
        tensors = {}
        for index, (name, shape) in enumerate(WRITER_TENSORS):
            count = int(np.prod(shape)) if shape else 1
            values = writer_values(index, count).reshape(shape)
            t = torch.from_numpy(values.copy())
            tensors[name] = t.to({"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype])
        name = f"writer_{dtype.lower()}.safetensors"
        save_torch(tensors, os.path.join(OUT, name), metadata={"format": "pt"})
        out[dtype] = name
    return {"files": out, "tensors": [{"name": n, "shape": s} for n, s in WRITER_TENSORS], "metadata": {"format": "pt"}}


# --------------------------------------------------------------------------------------------
# The real SmolLM2 GGUF


def describe_smollm2(path):
    reader = gguf.GGUFReader(path)

    def field(key):
        return reader.fields[key].contents()

    meta = {
        "general.architecture": field("general.architecture"),
        "llama.block_count": int(field("llama.block_count")),
        "llama.embedding_length": int(field("llama.embedding_length")),
        "llama.feed_forward_length": int(field("llama.feed_forward_length")),
        "llama.attention.head_count": int(field("llama.attention.head_count")),
        "llama.attention.head_count_kv": int(field("llama.attention.head_count_kv")),
        "llama.context_length": int(field("llama.context_length")),
        "llama.vocab_size": int(field("llama.vocab_size")),
        "llama.rope.freq_base": float(field("llama.rope.freq_base")),
        "tokenizer.ggml.model": field("tokenizer.ggml.model"),
        "tokenizer.ggml.tokens.count": len(reader.fields["tokenizer.ggml.tokens"].data),
        "tokenizer.ggml.tokens.first": field("tokenizer.ggml.tokens")[:5],
        "tokenizer.ggml.merges.count": len(reader.fields["tokenizer.ggml.merges"].data),
    }
    by_name = {t.name: t for t in reader.tensors}
    checks = []

    def dequant(name):
        t = by_name[name]
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        return t, np.asarray(values, dtype=np.float32).reshape(list(reversed([int(x) for x in t.shape])))

    for name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.29.ffn_down.weight", "output_norm.weight", "blk.7.attn_norm.weight"):
        t, values = dequant(name)
        checks.append({"name": name, "type": t.tensor_type.name, "shape": list(values.shape),
                       "first": [float(x) for x in values.reshape(-1)[:8]],
                       "sha256": sha256_f32(values), "sum": float(values.astype(np.float64).sum())})
    t, emb = dequant("token_embd.weight")
    rows = [(0, 2), (1000, 1003), (emb.shape[0] - 2, emb.shape[0])]
    checks.append({"name": "token_embd.weight", "type": t.tensor_type.name, "shape": list(emb.shape),
                   "first": [float(x) for x in emb.reshape(-1)[:8]],
                   "sum": float(emb.astype(np.float64).sum()),
                   "rows": [{"start": a, "end": b, "sha256": sha256_f32(emb[a:b])} for a, b in rows]})
    return {"file": os.path.basename(path), "size": os.path.getsize(path), "version": int(reader.fields["GGUF.version"].parts[-1][0]),
            "tensor_count": len(reader.tensors), "metadata": meta, "tensors": checks}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smollm2", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240607)
    blob = Blob()

    gguf_files = {}
    for writer in (write_quants_gguf, write_aligned_gguf):
        path, meta, tensors = writer(blob, rng)
        gguf_files[os.path.basename(path)] = describe_gguf(path, meta, tensors)
    st_files = write_safetensors(blob, rng)
    writer_refs = write_writer_references()
    blob.write(os.path.join(OUT, "expected.f32"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"gguf": gguf_files, "safetensors": st_files, "writer": writer_refs}, f, indent=1, ensure_ascii=False)
        f.write("\n")

    if os.path.exists(args.smollm2):
        with open(os.path.join(OUT, "smollm2_expected.json"), "w") as f:
            json.dump(describe_smollm2(args.smollm2), f, indent=1, ensure_ascii=False)
            f.write("\n")
        print("smollm2_expected.json written from", args.smollm2)
    else:
        print("SmolLM2 GGUF not found at", args.smollm2, "- smollm2_expected.json left as is", file=sys.stderr)
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"fixtures in {OUT}: {total} bytes")


if __name__ == "__main__":
    main()
