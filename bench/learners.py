"""Simulated learners for the load and memory benches: every page's main actions, called through gradio_client
by API name, as the browser calls them. Used by bench/bench_load.py and bench/bench_memory.py.

An action is (page, API name, kind, overrides): kind is what the learner did ("slider": moved a slider;
"analyze": pressed a button that runs the model on a text; "generate": started a streamed generation, timed to
its first output; "measure": a multi-second timing or loss measurement; "train": a training run of the lab,
streamed and queued one at a time, timed to its first output). Overrides vary a slider's value so that
not every call is a cache hit; a parameter the endpoint does not have is left out, and an action whose API name
the app does not serve is skipped (pages change), with a note.
"""

from __future__ import annotations

import random
import time

from gradio_client import Client

TEXTS = ["To be, or not to be, that is the question.", "ROMEO:\nBut soft, what light through yonder window breaks?",
         "First Citizen:\nBefore we proceed any further, hear me speak.", "JULIET:\nO Romeo, Romeo! wherefore art thou?",
         "Now is the winter of our discontent made glorious summer.", "Friends, Romans, countrymen, lend me your ears."]


def _pick(seq):
    return lambda r: r.choice(seq)


def _int(lo, hi):
    return lambda r: r.randint(lo, hi)


def _float(lo, hi):
    return lambda r: round(r.uniform(lo, hi), 2)


# page -> [(api_name, kind, {parameter: value maker}), ...]
ACTIONS: dict[str, list[tuple[str, str, dict]]] = {
    "tokenization": [("tokenization_replay", "slider", {"k": _int(0, 700)}),
                     ("tokenization_embed", "analyze", {"sentence": _pick(TEXTS)}),
                     ("tokenization_train", "measure", {"vocab_size": _int(300, 1024)})],
    "attention": [("attention_view", "slider", {"layer": _int(0, 5), "head": _int(0, 5), "query": _int(1, 28)}),
                  ("attention_analyze", "analyze", {"text": _pick(TEXTS)})],
    "rope": [("rope_rotate", "slider", {"m": _int(0, 60), "n": _int(0, 60)}),
             ("rope_spectrum", "slider", {"log_theta": _float(2, 6)}),
             ("rope_tokens", "analyze", {"text": _pick(TEXTS)})],
    "rmsnorm": [("rmsnorm_invariance", "slider", {"b": _float(0.5, 3), "a": _float(0.5, 4)}),
                ("rmsnorm_placement", "slider", {"n": _int(2, 16)}),
                ("rmsnorm_text", "analyze", {"t": _pick(TEXTS)})],
    "swiglu": [("swiglu_curves", "slider", {"beta": _float(0.2, 5)}),
               ("swiglu_gates", "analyze", {"t": _pick(TEXTS)})],
    "gqa": [("gqa_memory", "slider", {"context_tokens": _int(256, 8192), "batch_size": _int(1, 16)}),
            ("gqa_sharing", "slider", {"kv_heads": _pick([1, 3])}),
            ("gqa_attention", "analyze", {"text": _pick(TEXTS)})],
    "kv_cache": [("kv_step", "slider", {"step": _int(0, 10)}),
                 ("kv_memory", "slider", {"positions": _int(256, 8192), "batch": _int(1, 16)}),
                 ("kv_generate", "analyze", {"prompt": _pick(TEXTS)})],
    "sampling": [("sampling_distribution", "slider", {"t": _float(0.2, 2.0), "p": _float(0.5, 1.0)}),
                 ("sampling_generate", "generate", {"text": _pick(TEXTS), "sd": _int(0, 1000)})],
    "assembled": [("assembled_pass", "slider", {"layer_index": _int(0, 5), "head_index": _int(0, 5)}),
                  ("assembled_pass", "analyze", {"text": _pick(TEXTS)})],
    "next_token": [("next_token_score", "analyze", {"text": _pick(TEXTS)})],
    # A training run is a queued multi-second job (one at a time): timed to its first streamed output, which is
    # its wait in the queue plus tokenizing and the first step. The other pages' actions must not wait behind it.
    "training": [("training_snapshot", "slider", {"index": _int(0, 6)}),
                 ("training_train", "train", {"budget": _int(2, 3), "lr": _float(0.001, 0.005)})],
}


class Learner:
    """One browser session: a gradio_client Client (its own session hash) that calls the pages' actions."""

    def __init__(self, url: str, seed: int = 0):
        # A browser waits for a slow page as long as it takes; httpx's default (5 s) would count a class's page
        # loads at once as errors when they are only slow (bench_load prints their time).
        self.client = Client(url, verbose=False, httpx_kwargs={"timeout": 120})
        self.rng = random.Random(seed)
        info = self.client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        self.params = {name.lstrip("/"): [p["parameter_name"] for p in ep["parameters"]] for name, ep in info.items()}

    def served(self) -> dict[str, list[tuple[str, str, dict]]]:
        """ACTIONS less the API names this app does not serve."""
        return {page: [a for a in acts if a[0] in self.params] for page, acts in ACTIONS.items()}

    def new_session(self) -> None:
        """A fresh session hash: the server sees a new browser tab."""
        import uuid

        self.client.session_hash = str(uuid.uuid4())

    def call(self, api_name: str, kind: str, overrides: dict, timeout: float = 120.0) -> tuple[float, float]:
        """Run one action; return (seconds to the first output, seconds to the end). Raises on an app error."""
        kwargs = {k: make(self.rng) for k, make in overrides.items() if k in self.params[api_name]}
        t0 = time.perf_counter()
        job = self.client.submit(api_name="/" + api_name, **kwargs)
        if kind in ("generate", "train"):  # streamed: the first output is the first token (or training update)
            first = None
            for _ in job:
                if first is None:
                    first = time.perf_counter() - t0
            job.result(timeout=timeout)
            end = time.perf_counter() - t0
            return (first if first is not None else end), end
        job.result(timeout=timeout)
        end = time.perf_counter() - t0
        return end, end
