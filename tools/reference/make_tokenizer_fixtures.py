#!/usr/bin/env python3
"""Golden fixtures for the Swift tokenizer tests (Tests/TokenizerTests/Fixtures).

    flock /tmp/pip.lock python3 -m pip install -q tokenizers gguf
    python3 tools/reference/make_tokenizer_fixtures.py --out-dir Tests/TokenizerTests/Fixtures \
        [--smollm2 /path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Trains two small BPE tokenizers with Hugging Face `tokenizers` on a synthetic mixed corpus and
saves them as tokenizer folders, plus pipeline variants over the same vocabulary:

  bytelevel/        GPT-2 style: ByteLevel pre-tokenizer (GPT-2 regex), ByteLevel decoder,
                    special <|endoftext|> <|im_start|> <|im_end|> <mask>(lstrip), added <image>,
                    [WORD](single_word).
  bytelevel_smollm/ same model, SmolLM pre-tokenizer: Digits(individual) + ByteLevel(add_prefix_space),
                    TemplateProcessing "<|endoftext|> $A".
  bytelevel_llama3/ same model, Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=false).
  spm/              SentencePiece style: Prepend(▁)+Replace(' ',▁) normalizer, byte_fallback with
                    <0x00>..<0xFF> in the vocabulary, fuse_unk, <s>/</s>/<unk>, TemplateProcessing
                    "<s> $A", Replace/ByteFallback/Fuse/Strip decoder, normalized added "foo bar".
  spm_metaspace/    same model, Metaspace(prepend_scheme=first) pre-tokenizer and decoder.

and two metadata-only GGUF files holding the byte-level (tokenizer.ggml.model "gpt2") and the
SentencePiece (model "llama", scores) vocabularies. The GGUF expectations come from a
`tokenizers` pipeline rebuilt from the GGUF metadata the way transformers' GGUF loader builds it
(merges derived from scores for "llama", `generate_merges`).

For every tokenizer, expected.json holds ids (with and without special tokens) and decoded text
(with and without skipping special tokens) for a mixed corpus. With --smollm2, smollm2.json holds
ids for SmolLM2's real GGUF tokenizer (rebuilt from the GGUF with tokenizers: GPT-2 byte-level BPE,
SmolLM's Digits+ByteLevel pre-tokenizer; cross-checked against transformers' GGUF loading when
transformers is importable). Deterministic: same output every run.
"""

import argparse
import json
import os
import random

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

CORPUS = [
    "Hello world! This is a test.",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces",
    " single leading space",
    "trailing spaces   ",
    "multiple   internal    spaces",
    "tabs\tand\nnewlines\n\n\r\n done",
    "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n",
    'for (int i = 0; i < 10; ++i) { printf("%d\\n", i); }',
    "Numbers: 1234567890 3.14159 1,000,000 42nd ٣٤ ½",
    "I love 🦀 and 🐍! 👍🏽 👨‍👩‍👧",
    "日本語のテキストと中文文本。한국어도 있습니다.",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "I'm sure you've seen it, they'll say it's John's. I'D WE'RE",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<s>Hello</s> world </s>",
    "text<|endoftext|>more<|endoftext|>",
    "",
    " ",
    "\n",
    "   \n\t  ",
    "café naïve résumé Ångström",
    "URL: https://example.com/path?q=1&r=2#frag",
    "a" * 90,
    "thequickbrownfoxjumpsoverthelazydog" * 9,
    "a\u00a0b\u2003c\u3000d",
    "e\u0301 and \u00e9",
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions. USER: <image>\nWhat is in the image? ASSISTANT: A cat.</s>",
    "x <mask> y and x<mask>",
    "[WORD] and x[WORD]y [WORD]",
    "foo bar baz and foo  bar",
    "<0x41> literal byte token text",
    "☃❄ ∑∫ → ⇒ © ® ™",
    "Ünïcödé ΑΒΓ абв ſt",
    "a <rs>   b <rs>\tc<rs>",
    "ﬁne ＦＵＬＬ width ① Ⅻ, and... done!? yes;",
]

WORDS = (
    "the of and to in is was for on that with as by at from it this be are or an which have has had not but all "
    "were they their one can there been if more when will would who so no out up into than them about its only "
    "other time some could these two may first then do any like my now over such our man me even most made after "
    "also did many before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here between both life being "
    "under never day same another know while last might us great old year off come since against go came right used "
    "take three image picture photo cat dog person car street table kitchen window people standing sitting holding "
    "large small white black red blue green wooden building train bus plate pizza bicycle airplane horse giraffe"
).split()

CODE = [
    "def main():\n    print('hello')\n", "if (x < 10) { return x * 2; }", "import numpy as np\narr = np.zeros((3, 4))",
    "for i in range(100):\n\tprint(i)\n", "let value = try decoder.decode(T.self, from: data)", "SELECT * FROM t WHERE id = 42;",
]
OTHER = ["日本語のテキスト", "中文文本处理", "한국어 문장", "مرحبا", "नमस्ते", "Привет мир", "Γειά σου Κόσμε", "🦀🐍👍"]


def training_corpus():
    rng = random.Random(1234)
    lines = []
    for i in range(3000):
        n = rng.randint(5, 18)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        line = " ".join(words)
        if rng.random() < 0.2:
            line += " " + str(rng.randint(0, 100000))
        if rng.random() < 0.1:
            line += " " + rng.choice(OTHER)
        line += rng.choice([".", "!", "?", ",", "'s", "n't", ""])
        lines.append(line)
        if i % 10 == 0:
            lines.append(rng.choice(CODE))
    return lines + CORPUS


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_bytelevel():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False),
                            AddedToken("<rs>", rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("<image>", special=False, normalized=False),
                    AddedToken("[WORD]", single_word=True, special=False, normalized=False)])
    return tok


def train_spm():
    # Train with a Metaspace pre-tokenizer (word statistics), then use the LLaMA pipeline.
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=120, show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer)
    data = json.loads(tok.to_str())
    # LLaMA layout: <unk> <s> </s>, then the 256 byte tokens, then the learned vocabulary.
    learned = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for token, _ in learned:
        if token not in vocab:
            vocab[token] = len(vocab)
    data["model"]["vocab"] = vocab
    data["added_tokens"] = [
        {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for t in ["<unk>", "<s>", "</s>"]
    ]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.pre_tokenizer = None
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.add_tokens([AddedToken("foo bar", special=False, normalized=True)])
    return tok


def expectations(tok):
    cases = []
    for text in CORPUS:
        with_special = tok.encode(text, add_special_tokens=True).ids
        without = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "text": text,
            "ids": with_special,
            "ids_no_special": without,
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
        })
    return cases


def save_folder(tok, out_dir, name, config):
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=False)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1, ensure_ascii=False)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"generator": "tokenizers " + __import__("tokenizers").__version__, "cases": expectations(tok)}, f,
                  ensure_ascii=False, indent=0)


def variant_json(tok, edit):
    data = json.loads(tok.to_str())
    edit(data)
    return Tokenizer.from_str(json.dumps(data))


def variant(tok, **changes):
    copy = Tokenizer.from_str(tok.to_str())
    for key, value in changes.items():
        setattr(copy, key, value)
    return copy


# ---- GGUF ----

def token_types(tok):
    """llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte."""
    vocab = tok.get_vocab(with_added_tokens=True)
    added = tok.get_added_tokens_decoder()
    n = max(vocab.values()) + 1
    tokens = [""] * n
    for t, i in vocab.items():
        tokens[i] = t
    types = []
    for i, t in enumerate(tokens):
        if i in added:
            types.append(3 if added[i].special else 4)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(6)
        else:
            types.append(1)
    return tokens, types


def generate_merges(vocab, scores):
    """transformers' generate_merges: every split of a token into two vocabulary pieces, ordered by
    the token's score (descending, stable), inside a token by (id(left), id(right))."""
    merges = []
    for token, score in scores:
        local = []
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)
    return [(m[0], m[1]) for m in merges]


def write_gguf(path, kv):
    import gguf
    writer = gguf.GGUFWriter(path, arch="llama")
    for key, (kind, value) in kv.items():
        if kind == "str":
            writer.add_string(key, value)
        elif kind == "u32":
            writer.add_uint32(key, value)
        elif kind == "bool":
            writer.add_bool(key, value)
        elif kind == "strs":
            writer.add_array(key, value)
        elif kind == "i32s":
            writer.add_array(key, [int(v) for v in value])
        elif kind == "f32s":
            writer.add_array(key, [float(v) for v in value])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_bytelevel(tok, out_dir):
    tokens, types = token_types(tok)
    data = json.loads(tok.to_str())
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    write_gguf(os.path.join(out_dir, "bytelevel.gguf"), {
        "tokenizer.ggml.model": ("str", "gpt2"),
        "tokenizer.ggml.pre": ("str", "gpt2"),
        "tokenizer.ggml.tokens": ("strs", tokens),
        "tokenizer.ggml.token_type": ("i32s", types),
        "tokenizer.ggml.merges": ("strs", merges),
        "tokenizer.ggml.bos_token_id": ("u32", tok.token_to_id("<|endoftext|>")),
        "tokenizer.ggml.eos_token_id": ("u32", tok.token_to_id("<|im_end|>")),
        "tokenizer.ggml.add_bos_token": ("bool", False),
        "tokenizer.chat_template": ("str", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"),
    })
    # What a GGUF reader reconstructs: plain added tokens (no lstrip/single_word flags).
    ref = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ", 1)) for m in merges]))
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    ref.decoder = decoders.ByteLevel()
    add_gguf_added_tokens(ref, tokens, types)
    return ref


def gguf_spm(tok, out_dir):
    tokens, types = token_types(tok)
    # The normalized added token "foo bar" has no GGUF equivalent; drop it from the GGUF vocabulary.
    data = json.loads(tok.to_str())
    merge_list = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    # SentencePiece-like scores: a token made by merge k scores -k; other tokens far below.
    score_of = {a + b: -float(k) for k, (a, b) in enumerate(merge_list)}
    keep = [i for i, t in enumerate(tokens) if t != "foo bar"]
    assert keep == list(range(len(keep))), "foo bar must be the last id"
    tokens = tokens[: len(keep)]
    types = types[: len(keep)]
    types[0] = 2  # <unk>
    scores = [score_of.get(t, -1e6) for t in tokens]
    write_gguf(os.path.join(out_dir, "spm.gguf"), {
        "tokenizer.ggml.model": ("str", "llama"),
        "tokenizer.ggml.tokens": ("strs", tokens),
        "tokenizer.ggml.scores": ("f32s", scores),
        "tokenizer.ggml.token_type": ("i32s", types),
        "tokenizer.ggml.bos_token_id": ("u32", 1),
        "tokenizer.ggml.eos_token_id": ("u32", 2),
        "tokenizer.ggml.unknown_token_id": ("u32", 0),
        "tokenizer.ggml.add_bos_token": ("bool", True),
        "tokenizer.ggml.add_eos_token": ("bool", False),
    })
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = generate_merges(vocab, [(t, s) for t, s in zip(tokens, scores)])
    ref = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    ref.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    ref.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    ref.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    add_gguf_added_tokens(ref, tokens, types)
    return ref


def add_gguf_added_tokens(ref, tokens, types):
    specials = [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k in (2, 3)]
    plain = [AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == 4]
    ref.add_special_tokens(specials)
    ref.add_tokens(plain)


def write_expected(path, tok, generator):
    with open(path, "w") as f:
        json.dump({"generator": generator, "cases": expectations(tok)}, f, ensure_ascii=False, indent=0)


# ---- SmolLM2 ----

SMOLLM_EXTRA = [
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "In 2024, 3 cats ate 1234 fish; π≈3.14159.",
]


def smollm2(gguf_path, out_dir):
    import gguf
    reader = gguf.GGUFReader(gguf_path)

    def field(name):
        f = reader.fields[name]
        return [f.contents(i) for i in range(len(f.data))] if hasattr(f, "contents") else None

    def strings(name):
        f = reader.fields[name]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def ints(name):
        f = reader.fields[name]
        return [int(f.parts[i][0]) for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    types = ints("tokenizer.ggml.token_type")
    vocab = {}
    for i, t in enumerate(tokens):
        vocab[t] = i
    ref = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
    ref.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    ref.decoder = decoders.ByteLevel()
    add_gguf_added_tokens(ref, tokens, types)
    texts = CORPUS + SMOLLM_EXTRA
    generator = ("tokenizers %s BPE rebuilt from the GGUF (tokens, merges, token_type; control tokens special), "
                 "pre-tokenizer Digits(individual_digits) + ByteLevel(add_prefix_space=false), ByteLevel decoder"
                 % __import__("tokenizers").__version__)
    cases = []
    for text in texts:
        ids = ref.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids, "decoded": ref.decode(ids, skip_special_tokens=False),
                      "decoded_skip_special": ref.decode(ids, skip_special_tokens=True)})
    # Cross-check against transformers' own GGUF loading when available.
    crosscheck = "not run (transformers not importable)"
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
        mismatches = [c["text"] for c in cases if hf.encode(c["text"], add_special_tokens=False) != c["ids"]]
        crosscheck = "transformers %s AutoTokenizer(gguf_file=...): %d/%d texts equal%s" % (
            __import__("transformers").__version__, len(cases) - len(mismatches), len(cases),
            "" if not mismatches else "; differing: " + json.dumps(mismatches, ensure_ascii=False))
        add_bos = hf("x")["input_ids"][:1] == [hf.bos_token_id]
        crosscheck += "; transformers adds BOS: %s" % add_bos
    except Exception as error:  # noqa: BLE001 - record why the cross-check did not run
        crosscheck = "not run: %s" % (error,)
    print("SmolLM2 cross-check:", crosscheck)
    with open(os.path.join(out_dir, "smollm2.json"), "w") as f:
        json.dump({"generator": generator, "crosscheck": crosscheck, "vocab_size": len(tokens),
                   "bos": int(reader.fields["tokenizer.ggml.bos_token_id"].parts[-1][0]),
                   "eos": int(reader.fields["tokenizer.ggml.eos_token_id"].parts[-1][0]),
                   "cases": cases}, f, ensure_ascii=False, indent=0)


# ---- benchmark text ----

def bench_text(n_bytes=1_000_000):
    """The same text the Swift timing test builds: WORDS picked by a 64-bit LCG."""
    x = 0x9E3779B97F4A7C15
    out = []
    size = 0
    count = 0
    mask = (1 << 64) - 1
    while size < n_bytes:
        x = (x * 6364136223846793005 + 1442695040888963407) & mask
        word = WORDS[(x >> 33) % len(WORDS)]
        count += 1
        piece = word + (".\n" if count % 12 == 0 else " ")
        out.append(piece)
        size += len(piece)
    return "".join(out)


LLAVA_PROMPTS = [
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and "
    "polite answers to the user's questions. USER: <image>\nWhat is in the image? ASSISTANT: A cat on a mat.</s>"
    "USER: What color is it? ASSISTANT: It is black.</s>",
    "<image>A dog runs on grass.\n",
    "USER: <image>\nDescribe both. <image> ASSISTANT:",
    "no image at all",
]


def tokenizer_image_token(tok, prompt, image_token_index=-200):
    """LLaVA mm_utils.tokenizer_image_token with a `tokenizers` tokenizer."""
    chunks = [tok.encode(chunk, add_special_tokens=True).ids for chunk in prompt.split("<image>")]
    bos = tok.post_processor is not None and chunks and chunks[0][:1] == [tok.token_to_id("<s>")]
    input_ids, offset = [], 0
    if chunks and chunks[0] and bos:
        offset = 1
        input_ids.append(chunks[0][0])
    separated = [x for chunk in zip(chunks, [[image_token_index] * (offset + 1)] * len(chunks)) for x in chunk][:-1]
    for x in separated:
        input_ids.extend(x[offset:])
    return input_ids


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", default="Tests/TokenizerTests/Fixtures")
    parser.add_argument("--smollm2", default=os.environ.get("LLAVA_FORGE_SMOLLM2_GGUF"))
    parser.add_argument("--bench", action="store_true", help="time tokenizers on the 1 MB benchmark text")
    args = parser.parse_args()
    out = args.out_dir
    os.makedirs(out, exist_ok=True)

    byte_level = train_bytelevel()
    config = {"tokenizer_class": "TokenizersBackend", "bos_token": "<|endoftext|>", "eos_token": "<|im_end|>",
              "pad_token": "<|endoftext|>", "unk_token": None}
    save_folder(byte_level, out, "bytelevel", config)
    smollm_style = variant(byte_level,
                           pre_tokenizer=pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                                  pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]),
                           post_processor=processors.TemplateProcessing(single="<|endoftext|> $A",
                                                                        special_tokens=[("<|endoftext|>", 0)]))
    save_folder(smollm_style, out, "bytelevel_smollm", config)
    llama3_regex = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                    r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    llama3_style = variant(byte_level,
                           pre_tokenizer=pre_tokenizers.Sequence([
                               pre_tokenizers.Split(Regex(llama3_regex), behavior="isolated", invert=False),
                               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    llama3_style = variant_json(llama3_style, lambda d: d["model"].update(ignore_merges=True))
    save_folder(llama3_style, out, "bytelevel_llama3", config)
    # NFKC + Lowercase, a Split pattern only ICU handles (merged_with_previous), then ByteLevel.
    normalized_style = variant(byte_level,
                               normalizer=normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()]),
                               pre_tokenizer=pre_tokenizers.Sequence([
                                   pre_tokenizers.Split(Regex(r"[,.!?;:]+"), behavior="merged_with_previous"),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))
    save_folder(normalized_style, out, "bytelevel_norm", config)

    spm = train_spm()
    spm_config = {"tokenizer_class": "TokenizersBackend", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                  "pad_token": None}
    save_folder(spm, out, "spm", spm_config)
    spm_meta = variant(spm, normalizer=None,
                       pre_tokenizer=pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
                       decoder=decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True))
    save_folder(spm_meta, out, "spm_metaspace", spm_config)
    # Metaspace "always" without splitting: each text is one word (long words take the heap path).
    spm_whole = variant(spm, normalizer=None,
                        pre_tokenizer=pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
                        decoder=decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False))
    save_folder(spm_whole, out, "spm_metaspace_whole", spm_config)

    with open(os.path.join(out, "llava_prompts.json"), "w") as f:
        json.dump([{"tokenizer": name, "text": text, "ids": tokenizer_image_token(tok, text)}
                   for name, tok in [("spm", spm), ("bytelevel", byte_level)] for text in LLAVA_PROMPTS],
                  f, ensure_ascii=False, indent=0)

    write_expected(os.path.join(out, "bytelevel_gguf_expected.json"), gguf_bytelevel(byte_level, out),
                   "tokenizers pipeline rebuilt from bytelevel.gguf")
    write_expected(os.path.join(out, "spm_gguf_expected.json"), gguf_spm(spm, out),
                   "tokenizers pipeline rebuilt from spm.gguf (merges from scores, transformers' generate_merges order)")

    if args.smollm2 and os.path.exists(args.smollm2):
        smollm2(args.smollm2, out)
    else:
        print("SmolLM2 GGUF not given; smollm2.json not regenerated")

    if args.bench:
        import time
        text = bench_text()
        start = time.perf_counter()
        ids = byte_level.encode(text, add_special_tokens=False).ids
        seconds = time.perf_counter() - start
        print("tokenizers bytelevel: %d bytes -> %d tokens in %.3f s" % (len(text.encode()), len(ids), seconds))
        start = time.perf_counter()
        spm_ids = spm.encode(text, add_special_tokens=False).ids
        spm_seconds = time.perf_counter() - start
        print("tokenizers spm: %d tokens in %.3f s" % (len(spm_ids), spm_seconds))
        with open(os.path.join(out, "bench.json"), "w") as f:
            json.dump({"bytes": len(text.encode()), "tokens": len(ids), "id_sum": sum(ids), "first_ids": ids[:64],
                       "python_tokenizers_seconds": round(seconds, 3),
                       "spm_tokens": len(spm_ids), "spm_id_sum": sum(spm_ids),
                       "spm_python_tokenizers_seconds": round(spm_seconds, 3)}, f)

if __name__ == "__main__":
    main()
