"""Training and encoding speed of our from-scratch BPE against Hugging Face `tokenizers` and sentencepiece,
on TinyShakespeare to a vocabulary of 2048, all measured in this one run (not a test).

    python bench/bench_tokenizer.py

Target (issue 3): our training within 5x of `tokenizers` (ratio ours / tokenizers <= 5).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokenizers import Tokenizer  # noqa: E402

from llama.tokenizer import BPETokenizer, train_hf_bpe, train_sentencepiece  # noqa: E402

SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
VOCAB = 2048


def median_times(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, run in turns (a, b, c, a, b, c, ...) so that drift in
    machine load affects all alike."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def main():
    text = SHAKESPEARE.read_text(encoding="utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    print(f"TinyShakespeare: {len(text):,} characters, {mb:.2f} MB; vocabulary {VOCAB}; {os.cpu_count()} CPU cores")

    trainers = {
        "ours (Python)": lambda: BPETokenizer.train(text, VOCAB),
        "tokenizers BPE": lambda: train_hf_bpe(text, VOCAB),
        "sentencepiece BPE": lambda: train_sentencepiece(text, VOCAB, "bpe"),
        "sentencepiece Unigram": lambda: train_sentencepiece(text, VOCAB, "unigram"),
    }
    t = median_times(trainers, repeats=3)
    print(f"\ntraining, median of 3\n{'trainer':<22} {'seconds':>8} {'ours time / this':>17}")
    for name, s in t.items():
        print(f"{name:<22} {s:>8.3f} {t['ours (Python)'] / s:>16.2f}x")
    ratio = t["ours (Python)"] / t["tokenizers BPE"]
    print(f"ours / tokenizers = {ratio:.2f}x (target <= 5x: {'met' if ratio <= 5 else 'NOT met'})")

    # Encoding: `tokenizers` runs our own tokenizer.json, so both produce the very same ids.
    ours = BPETokenizer.train(text, VOCAB)
    with tempfile.TemporaryDirectory() as d:
        hf = Tokenizer.from_file(str(ours.save(Path(d) / "tokenizer.json")))
    lines = text.splitlines(keepends=True)
    assert ours.encode(text) == hf.encode(text).ids

    def cold():
        ours._cache.clear()  # first encode of a text: every unique word goes through BPE once
        ours.encode(text)

    encoders = {
        "ours, cold word cache": cold,
        "ours, warm word cache": lambda: ours.encode(text),
        "tokenizers, one string": lambda: hf.encode(text),
        "tokenizers, batch of lines": lambda: hf.encode_batch(lines),
    }
    t = median_times(encoders, repeats=5)
    print("\nencoding all of TinyShakespeare, median of 5")
    print(f"{'encoder':<27} {'seconds':>8} {'MB/s':>7} {'ours warm time / this':>22}")
    for name, s in t.items():
        print(f"{name:<27} {s:>8.3f} {mb / s:>7.2f} {t['ours, warm word cache'] / s:>21.2f}x")


if __name__ == "__main__":
    main()
