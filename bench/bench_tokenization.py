"""Latency of the tokenization lesson's interactions: compute alone, and the gradio_client round trip
against the real app, p50/p95 over 50 calls each (bench/latency.py).

    INSIDE_LLAMA_MODEL=runs/dev python bench/bench_tokenization.py

Targets: compute p95 < 50 ms, round trip p95 < 250 ms. Training five tokenizers on the default text
is the one interaction that cannot meet them: it is real training (our BPE, Hugging Face BPE, two
sentencepiece models) plus encoding the whole text five times, so it shows progress instead. A
2,000-character text is timed too, to show how training scales with the text.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

from bench.latency import report, served_app, time_calls  # noqa: E402
from lessons.course import load_course_model  # noqa: E402
from lessons.tokenization import compute as C  # noqa: E402

N = 50


def cycling(values):
    """A function returning the next of `values` on each call, so repeated calls do not hit one cache entry."""
    state = {"i": 0}

    def nxt():
        state["i"] += 1
        return values[state["i"] % len(values)]
    return nxt


def main():
    torch.set_grad_enabled(False)
    cm = load_course_model(device="cpu")
    text = C.default_text()[:C.MAX_TEXT_CHARS]
    small = text[:2_000]
    vocab = cm.tokenizer.vocab_size
    trained = C.train_lesson(text, vocab, cm.tokenizer).trained
    sentences = [C.DEFAULT_SENTENCE, "Wherefore art thou Romeo?", "Naïve café, 😀 emoji and 12345 digits.",
                 "The tokenizer cuts text into pieces before the model sees it."]
    ks = list(range(0, trained.n_merges + 1, max(1, trained.n_merges // 37)))
    choices = C.count_question()
    print(f"model {cm.path} ({cm.model.num_parameters():,} parameters); default text {len(text):,} characters, "
          f"vocabulary {vocab:,} ({trained.n_merges} merges); {os.cpu_count()} CPU cores; {N} calls each\n")

    s, k, c = cycling(sentences), cycling(ks), cycling(choices)
    compute = {
        f"train, default text ({len(text) // 1000}k chars)": lambda: C.train_lesson(text, vocab, cm.tokenizer),
        "train, 2,000 characters": lambda: C.train_lesson(small, vocab, cm.tokenizer),
        "replay (merge slider / sentence)": lambda: C.replay(trained, k(), s()),
        "embed (heatmap + PCA map)": lambda: (C.embedding_heatmap(cm, s()), C.embedding_map(cm, s())),
        "reveal_count": lambda: C.reveal_count(cm, c()),
        "reveal_merge": lambda: C.reveal_first_merge(trained, C.merge_question(trained)[0]),
    }
    comp_times = {name: time_calls(fn, n=N) for name, fn in compute.items()}

    with served_app() as url:
        client = Client(url, verbose=False)
        client.predict(text, vocab, C.DEFAULT_SENTENCE, api_name="/tokenization_train")  # this session's state
        names = list(compute)
        round_trip = {
            names[0]: lambda: client.predict(text, vocab, s(), api_name="/tokenization_train"),
            names[1]: lambda: client.predict(small, vocab, s(), api_name="/tokenization_train"),
        }
        rt_times = {name: time_calls(fn, n=N) for name, fn in round_trip.items()}
        # Replay against the default-text tokenizer, as a learner would after the page loads.
        client.predict(text, vocab, C.DEFAULT_SENTENCE, api_name="/tokenization_train")
        round_trip = {
            names[2]: lambda: client.predict(k(), s(), api_name="/tokenization_replay"),
            names[3]: lambda: client.predict(s(), api_name="/tokenization_embed"),
            names[4]: lambda: client.predict(c(), api_name="/tokenization_reveal_count"),
            names[5]: lambda: client.predict(C.merge_question(trained)[0], api_name="/tokenization_reveal_merge"),
        }
        rt_times.update({name: time_calls(fn, n=N) for name, fn in round_trip.items()})

    report([(name, comp_times[name], rt_times[name]) for name in compute])
    print("\nTraining is over the targets by design: it trains four tokenizers and encodes the text five times; "
          "the page shows a progress bar while it runs, and every other interaction reuses its result.")


if __name__ == "__main__":
    main()
