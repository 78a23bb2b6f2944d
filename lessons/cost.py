"""How long a page's action takes with the loaded model on this machine: estimated before it runs, so the page can
say so, and used to size the heavy views (fewer steps timed, fewer tokens generated, a shorter text measured) for a
big model. One place for every page; the sentence a learner reads is worded in app/costs.py.

A forward pass of a Llama with P parameters pays for two things (Kaplan et al. 2020, section 2.1: about 2P FLOPs per
token; Pope et al. 2022, section 2: a one-token decode step is bound by reading the weights from memory):

    seconds ≈ passes · P · read_s  +  tokens · P · flop_s

- read_s: seconds per parameter read once (every pass reads every weight: what a one-token decode step pays),
- flop_s: seconds per parameter-token (the ~2 FLOPs each token does per weight: what a long prefill pays).

Both rates are measured once per model and process by `measured_rate`, on the model itself (one token through it,
then 64 tokens), never quoted from a data sheet or from another machine. Attention's own
T² work and each layer's fixed launch cost are left out: at the lengths the pages use (a few hundred tokens at most
for a big model) they are a small share of a 1B model's time, and for the course model every action stays well
under a second anyway. The estimate is "about": the bench (bench/bench_bigmodel.py) prints it beside the time
measured for each page's main action.

    >>> cost = generation(cm, prompt_tokens=12, new_tokens=24, rows=2)   # the sampling page's Generate
    >>> cost.seconds, cost.slow           # e.g. (31.7, True) for a 1.1B model on a 2-core CPU
    >>> most_within(lambda n: kv_timing(cm, 12, n, 1), 2, 13, budget_s=20)   # steps that fit 20 s
"""

from __future__ import annotations


import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable

import torch

SLOW_S = 1.0  # an action estimated at this many seconds or more is announced before it runs
# Parameters above which a model counts as big on a CPU: the heavy views shrink their work for it (the course model,
# 2.6M parameters, and stories260K keep every default as it was).
BIG_MODEL = 100_000_000


@dataclass(frozen=True)
class Rate:
    """This device's speed for a Llama's forward pass (see the module docstring)."""
    read_s: float  # seconds per parameter read once by a pass (fp32)
    flop_s: float  # seconds per parameter-token of arithmetic
    device: str  # "cpu" or "cuda"
    # seconds per parameter for each row after the first in a one-token decode step (several sequences batched, as
    # the sampling page's greedy and sampled rows): on a CPU a batch of 2-3 single tokens costs far more than one
    # more token of a long pass (measured: 2 rows of a 1.1B model took 2-3x one row), so it is measured apart
    row_s: float = 0.0


@dataclass(frozen=True)
class Cost:
    """An action's estimated wall-clock time with one model: what a page says before the learner starts it."""
    seconds: float
    parameters: int  # the model's, for the sentence ("this 1.1B-parameter model")
    device: str  # "cpu" or "cuda"

    @property
    def slow(self) -> bool:
        """Worth announcing: SLOW_S or more."""
        return self.seconds >= SLOW_S

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.seconds + other.seconds, self.parameters, self.device)

    def __mul__(self, k: float) -> "Cost":
        return Cost(self.seconds * k, self.parameters, self.device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# model -> its Rate on its device, measured once (a weak key: a model the picker drops takes its rate with it)
_RATES: "weakref.WeakKeyDictionary[torch.nn.Module, Rate]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def measured_rate(cm, tokens: int = 64) -> Rate:
    """read_s and flop_s of this model on its device, measured once per model and process on the model itself:
    a warm-up pass, the faster of two one-token passes t(1), a pass of T = `tokens` tokens t(T) (output layer at
    the last position only, as generation runs it), and a one-token pass of two rows t(2 rows). From
    t(1) = P·read_s + P·flop_s and t(T) = P·read_s + T·P·flop_s the two rates follow; row_s = (t(2 rows) - t(1)) / P.
    About 5 s for a 1B model on a quiet 2-core CPU; the picker measures it while it loads a big model
    (lessons.models.ModelRegistry.get), so no page waits for it."""
    model = cm.model
    with _LOCK:  # two learners opening pages at once measure once, and do not time each other
        r = _RATES.get(model)
        if r is None:
            r = _RATES[model] = _measure(model, cm.device, min(tokens, cm.config.max_seq_len))
    return r


@torch.inference_mode()
def _measure(model, device: torch.device, T: int) -> Rate:
    P = model.num_parameters()
    ids = torch.arange(1, T + 1, device=device)[None] % model.config.vocab_size  # (1, T) any ids: cost ignores them

    def timed(x: torch.Tensor) -> float:
        _sync(device)
        t = time.perf_counter()
        model(x, logits_to_keep=1)
        _sync(device)
        return time.perf_counter() - t

    timed(ids[:, :1])  # warm up (allocations, thread pool)
    t1 = min(timed(ids[:, :1]), timed(ids[:, :1]))  # the faster of two: a busy moment of a shared machine inflates one
    tT = timed(ids)
    t2 = min(timed(ids[:, :2].T), timed(ids[:, :2].T))  # (2, 1): two rows of one token, a batched decode step
    flop_s = max(tT - t1, 1e-12) / (max(T - 1, 1) * P)
    read_s = max(t1 / P - flop_s, flop_s)  # a pass costs at least one token's arithmetic
    return Rate(read_s, flop_s, device.type, row_s=max(t2 - t1, 0.0) / P)


def parameters(cm) -> int:
    return cm.model.num_parameters()


def rate_for(cm, rate: Rate | None = None) -> Rate:
    return rate if rate is not None else measured_rate(cm)


def passes(cm, tokens: int, n_passes: int = 1, rate: Rate | None = None) -> Cost:
    """`n_passes` forward passes of the model that push `tokens` tokens through it in all.

    Only a big model on a CPU (`big`) is measured and estimated: for any other (the course model, stories260K, any
    model on a GPU) every action takes about a second at most, the cost is 0 s and nothing is announced, so their
    pages read as they always did and no measurement runs for them."""
    return work(cm, tokens * parameters(cm), n_passes, rate)


def work(cm, parameter_tokens: float, n_passes: int = 0, rate: Rate | None = None) -> Cost:
    """Arithmetic of `parameter_tokens` (a matrix of n weights applied to T tokens is n·T of them) in `n_passes`
    passes over the model's weights (see `passes`: 0 s for a model that is not big)."""
    P = parameters(cm)
    if rate is None and not big(cm):
        return Cost(0.0, P, cm.device.type)
    r = rate_for(cm, rate)
    return Cost(n_passes * P * r.read_s + parameter_tokens * r.flop_s, P, r.device)


def generation(cm, prompt_tokens: int, new_tokens: int, rows: int = 1, rate: Rate | None = None) -> Cost:
    """Cached generation of `new_tokens` tokens after a prompt, `rows` sequences batched in one pass per step:
    a prefill of the prompt, then one pass of one token per row for each later token."""
    n = max(int(new_tokens), 1)
    decode = passes(cm, n - 1, n - 1, rate)  # one row
    if rows > 1 and (rate is not None or big(cm)):
        decode = decode + Cost((n - 1) * (rows - 1) * parameters(cm) * rate_for(cm, rate).row_s, decode.parameters,
                               decode.device)
    return passes(cm, rows * prompt_tokens, 1, rate) + decode


def uncached_generation(cm, prompt_tokens: int, new_tokens: int, rate: Rate | None = None) -> Cost:
    """Generation that recomputes every position at every step (no cache): step s pushes prompt + s tokens."""
    n = max(int(new_tokens), 1)
    return passes(cm, sum(prompt_tokens + s for s in range(n)), n, rate)


def kv_timing(cm, prompt_tokens: int, steps: int, repeats: int, rate: Rate | None = None) -> Cost:
    """The KV-cache page's measurement (lessons.kv_cache.compute.time_per_token): each step runs cached and
    uncached `repeats` times; step 0 is the prefill both ways."""
    n = max(int(steps), 1)
    cached = generation(cm, prompt_tokens, n, 1, rate)
    return (cached + uncached_generation(cm, prompt_tokens, n, rate)) * repeats


def big(cm) -> bool:
    """A model whose heavy views shrink on this device: over BIG_MODEL parameters, on a CPU (a GPU runs even a 1B
    model's every action in well under a second). On a ZeroGPU Space a picked model is loaded to "cuda" (its
    weights wait aside until a call lends the GPU: app.context.registry), so it is not big there either."""
    return cm.device.type != "cuda" and parameters(cm) > BIG_MODEL


def most_within(cost_of: Callable[[int], Cost], lo: int, hi: int, budget_s: float) -> int:
    """The largest n in lo..hi whose cost_of(n) stays within budget_s (lo when none does); cost_of grows with n.

        >>> most_within(lambda n: Cost(n * 2.0, 1, "cpu"), 2, 50, 20)
        10
    """
    if hi <= lo or cost_of(lo).seconds > budget_s:
        return lo
    while lo < hi:  # invariant: cost_of(lo) fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost_of(mid).seconds <= budget_s else (lo, mid - 1)
    return lo


def tokens_for_work(cm, work: float, at_least: int) -> int:
    """How many tokens a budget of `work` parameter-tokens buys with this model (at least `at_least`): a fixed,
    machine-independent budget, so a big model's measured numbers do not depend on the server's load.

        >>> tokens_for_work(tinyllama_1b, 2e11, 64)   # 2e11 / 1.1e9
        181
    """
    return max(at_least, int(work / parameters(cm)))


# One loss measurement on held-out text (the RoPE and GQA pages) costs at most this many parameter-tokens for a big
# model: 256 tokens of a 1.1B model (about 5 s on a quiet 2-core CPU, where the full 3,000-character slice, about 800
# tokens, took a minute under load). A fixed budget, not a time: the measured numbers do not depend on the load.
EVAL_WORK = 2.8e11
MIN_EVAL_TOKENS = 64


def eval_chars(cm, text: str) -> int:
    """How many characters of `text` (a held-out slice) a loss measurement scores: all of them, or for a big model
    on a CPU the start that holds about EVAL_WORK / parameters tokens (at least MIN_EVAL_TOKENS)."""
    if not big(cm):
        return len(text)
    most = tokens_for_work(cm, EVAL_WORK, MIN_EVAL_TOKENS)
    n = len(cm.tokenizer.encode(text))
    return len(text) if n <= most else len(text) * most // n


def loss(cm, text: str, window: int, models: int = 1, rate: Rate | None = None) -> Cost:
    """A loss measured on `text` by `models` models (the model and its variants), in windows of `window` tokens."""
    n = len(cm.tokenizer.encode(text))
    passes_each = max(1, n // max(window, 1))
    return passes(cm, models * n, models * passes_each, rate)


def text_pass(cm, text: str, max_tokens: int | None = None, lens: bool = False, rate: Rate | None = None) -> Cost:
    """One forward pass over a learner's text (BOS added, at most max_tokens: the model's context by default), as
    the next-token, attention and assembled pages run it; lens=True adds the logit lens (every layer's stream read
    out through lm_head: L+1 products of T x C by C x V)."""
    from lessons.course import prepare_text  # late: lessons.course imports the model library

    T = len(prepare_text(cm, text, max_tokens=max_tokens or cm.config.max_seq_len).ids)
    c = cm.config
    extra = (c.n_layers + 1) * T * c.vocab_size * c.dim if lens else 0
    return passes(cm, T, 1, rate) + work(cm, extra, 0, rate)
