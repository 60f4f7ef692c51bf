#!/usr/bin/env python3
"""Golden masking fixtures for Tests/TrainingDataTests: the input_ids and labels LLaVA's published
preprocessing produces for small conversations under tokenizer fixtures the repo already has.

Run from the repository root (needs the HF `tokenizers` package only):

    python3 tools/reference/make_training_data_fixtures.py

Rules reproduced (facts from LLaVA's llava/train/train.py and llava/mm_utils.py):

- `preprocess_multimodal`: a turn containing "<image>" becomes "<image>\\n" + the rest, stripped.
- vicuna_v1 (`SeparatorStyle.TWO`, sep " ", sep2 "</s>", roles USER / ASSISTANT): the prompt is
  system + sep, then per turn `role + ": " + message + (sep, sep2)[i % 2]`.
- `tokenizer_image_token`: the prompt is split at "<image>", each chunk tokenized with special
  tokens; when the first chunk starts with BOS it is kept once and every chunk loses its first
  token; IMAGE_TOKEN_INDEX (-200) stands between chunks.
- `preprocess_v1`: targets = ids; cur_len = 1 (BOS masked); the prompt is split on sep2 into
  rounds; each round is split on sep + "ASSISTANT" + ": " into (instruction, answer);
  round_len = len(tii(round)), instruction_len = len(tii(instruction + sep)) - 2 (minus one each
  for rounds after the first with a non-legacy tokenizer); targets[cur_len : cur_len +
  instruction_len] = -100, cur_len += round_len; everything from cur_len on is -100; a length
  mismatch (cur_len != total tokens) would mask the whole sample, which this script refuses.
- `preprocess_plain` (Stage 1): the first turn collapses to "<image>", the text is "<image>" +
  caption + "\\n", and the first len(tii("<image>")) targets are -100.
- ChatML (SmolLM2-style; LLaVA-NeXT's per-turn tokenization): each turn is tokenized on its own;
  system/user turns and the `<|im_start|>assistant\\n` header are -100, the answer and its
  `<|im_end|>` are trained, the newline after it is -100. The script checks the per-turn ids equal
  the ids of the joined text (so the labels are those of the text the model sees).
"""
import json
import os

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "TrainingDataTests", "Fixtures", "masking")
IGNORE, IMAGE = -100, -200
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")


class HFTokenizer:
    def __init__(self, rel):
        self.rel = rel
        self.tok = Tokenizer.from_file(os.path.join(ROOT, rel))
        self.bos = self.tok.token_to_id("<s>")

    def __call__(self, text):
        return self.tok.encode(text, add_special_tokens=True).ids


def tokenizer_image_token(prompt, tokenizer):
    chunks = [tokenizer(c) for c in prompt.split("<image>")]
    ids, offset = [], 0
    if chunks and chunks[0] and tokenizer.bos is not None and chunks[0][0] == tokenizer.bos:
        offset = 1
        ids.append(chunks[0][0])
    separated = []
    for i, c in enumerate(chunks):
        if i > 0:
            separated.append([IMAGE] * (offset + 1))
        separated.append(c)
    for x in separated:
        ids.extend(x[offset:])
    return ids


def multimodal(turns):
    out = []
    for t in turns:
        v = t["value"]
        if "<image>" in v:
            v = ("<image>\n" + v.replace("<image>", "").strip()).strip()
        out.append({"from": t["from"], "value": v})
    return out


def vicuna_v1(tokenizer, turns, legacy):
    turns = multimodal(turns)
    seps = [" ", "</s>"]
    prompt = VICUNA_SYSTEM + seps[0]
    for i, t in enumerate(turns):
        role = "USER" if t["from"] == "human" else "ASSISTANT"
        prompt += role + ": " + t["value"] + seps[i % 2]
    ids = tokenizer_image_token(prompt, tokenizer)
    target = list(ids)
    total = len(ids)
    sep = seps[0] + "ASSISTANT" + ": "
    cur = 1
    target[:cur] = [IGNORE] * cur
    for i, rou in enumerate(prompt.split(seps[1])):
        if rou == "":
            break
        parts = rou.split(sep)
        if len(parts) != 2:
            break
        parts[0] += sep
        round_len = len(tokenizer_image_token(rou, tokenizer))
        instruction_len = len(tokenizer_image_token(parts[0], tokenizer)) - 2
        if i != 0 and not legacy:
            round_len -= 1
            instruction_len -= 1
        target[cur:cur + instruction_len] = [IGNORE] * instruction_len
        cur += round_len
    target[cur:] = [IGNORE] * (len(target) - cur)
    return prompt, ids, target, cur == total


def plain(tokenizer, turns):
    turns = multimodal(turns)
    assert "<image>" in turns[0]["value"]
    text = "<image>" + turns[1]["value"] + "\n"
    ids = tokenizer_image_token(text, tokenizer)
    target = list(ids)
    n = len(tokenizer_image_token("<image>", tokenizer))
    target[:n] = [IGNORE] * n
    return text, ids, target


def chatml(tokenizer, turns):
    turns = multimodal(turns)
    ids, target, prompt = [], [], ""
    for t in turns:
        if t["from"] == "human":
            piece = "<|im_start|>user\n" + t["value"] + "<|im_end|>\n"
            e = tokenizer_image_token(piece, tokenizer)
            ids += e
            target += [IGNORE] * len(e)
            prompt += piece
        else:
            for piece, trained in [("<|im_start|>assistant\n", False), (t["value"] + "<|im_end|>", True), ("\n", False)]:
                e = tokenizer_image_token(piece, tokenizer)
                ids += e
                target += e if trained else [IGNORE] * len(e)
                prompt += piece
    joined = tokenizer_image_token(prompt, tokenizer)
    assert joined == ids, "per-turn and joined tokenization differ; pick other text"
    return prompt, ids, target


def write(name, record):
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    two_turns = [
        {"from": "human", "value": "What is the cat doing?\n<image>"},
        {"from": "gpt", "value": "The cat is sleeping on a sofa."},
        {"from": "human", "value": "What color is the sofa?"},
        {"from": "gpt", "value": "It is red."},
    ]
    spm = HFTokenizer("Tests/TokenizerTests/Fixtures/spm/tokenizer.json")
    # The fixture tokenizer puts a ▁ before a word after a special token (as LLaVA's "legacy"
    # Llama tokenizers do); LLaVA's length bookkeeping must then agree without the -1 fix.
    for legacy in (True, False):
        prompt, ids, labels, consistent = vicuna_v1(spm, two_turns, legacy)
        if consistent:
            break
    assert consistent, "LLaVA's round lengths do not add up under this tokenizer (it would mask the whole sample)"
    assert labels.count(IGNORE) < len(labels)
    write("vicuna_v1", {"tokenizer": spm.rel, "template": "vicuna_v1", "legacy": legacy, "conversations": two_turns,
                        "prompt": prompt, "input_ids": ids, "labels": labels})

    caption = [{"from": "human", "value": "<image>\nDescribe the image briefly."}, {"from": "gpt", "value": "A cat on a red sofa."}]
    prompt, ids, labels = plain(spm, caption)
    write("plain", {"tokenizer": spm.rel, "template": "plain", "conversations": caption, "prompt": prompt,
                    "input_ids": ids, "labels": labels})

    chat = HFTokenizer("Tests/CLITests/Fixtures/tiny_llava_tokenizer/tokenizer.json")
    prompt, ids, labels = chatml(chat, two_turns)
    write("chatml", {"tokenizer": chat.rel, "template": "chatml", "conversations": two_turns, "prompt": prompt,
                     "input_ids": ids, "labels": labels})

    text_only = [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi there."}]
    prompt, ids, labels, consistent = vicuna_v1(spm, text_only, legacy)
    assert consistent
    write("vicuna_v1_text_only", {"tokenizer": spm.rel, "template": "vicuna_v1", "legacy": legacy, "conversations": text_only,
                                  "prompt": prompt, "input_ids": ids, "labels": labels})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
