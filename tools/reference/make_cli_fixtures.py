"""Fixtures for Tests/CLITests: a 300-id byte-level tokenizer for the tiny llava (vocab 300,
image_token_index 299), cut from Tests/TokenizerTests/Fixtures/bytelevel (ids < 296 and the merges
among them) with `<image>` added as id 299, plus the ids HF `tokenizers` gives for the prompts the
test runs (encoded the LLaVA way: chunks around `<image>` separately, the image rows as 299s).

    python3 tools/reference/make_cli_fixtures.py
"""
import json
import os

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "Tests/TokenizerTests/Fixtures/bytelevel/tokenizer.json")
OUT = os.path.join(ROOT, "Tests/CLITests/Fixtures/tiny_llava_tokenizer")
KEEP = 296
IMAGE_ID = 299
IMAGE_ROWS = 9  # tiny_llava: (42 / 14)² patches, default strategy (CLS dropped)

spec = json.load(open(SOURCE, encoding="utf-8"))
vocab = {token: i for token, i in spec["model"]["vocab"].items() if i < KEEP}
merges = []
for merge in spec["model"]["merges"]:
    left, right = merge if isinstance(merge, list) else merge.split(" ")
    if left in vocab and right in vocab and left + right in vocab:
        merges.append([left, right])
spec["model"]["vocab"] = vocab
spec["model"]["merges"] = merges
spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] < KEEP] + [
    {"id": IMAGE_ID, "content": "<image>", "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": False, "special": True}]
os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(spec, f, ensure_ascii=False, separators=(",", ":"))

tokenizer = Tokenizer.from_file(os.path.join(OUT, "tokenizer.json"))


def llava_ids(text):
    ids = []
    for i, chunk in enumerate(text.split("<image>")):
        if i > 0:
            ids += [IMAGE_ID] * IMAGE_ROWS
        ids += tokenizer.encode(chunk).ids
    return ids


question = "What is in the picture?"
cases = {
    "question": question,
    "none_ids": llava_ids("<image>\n" + question),
    "llava_hf_ids": llava_ids("USER: <image>\n" + question + " ASSISTANT:"),
}
assert max(i for i in cases["none_ids"] if i != IMAGE_ID) < KEEP
with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
    json.dump(cases, f, indent=1)
print(len(vocab), "tokens,", len(merges), "merges;", cases)
