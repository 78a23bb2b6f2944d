"""Turning next-token logits into text: filters, sampling and the generation loop.

Each step of generation is: logits of the last position -> temperature ->
top-k -> top-p -> sample (or argmax when temperature is 0). The filters are
separate functions so the sampling lesson can show what each one keeps.

With `use_cache=True` the prompt is run once (the prefill) and every later
step feeds only the newest token, reading earlier keys and values from a
`KVCache`; with `use_cache=False` every step re-runs the whole sequence. Both
give the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import math
import numbers
import operator

import torch

from .model import KVCache, Llama

# A decode step: (ids (B, T), input_pos (T,), cache) -> next-token logits (B, V), growing the cache.
DecodeFn = Callable[[torch.Tensor, torch.Tensor, list[KVCache]], torch.Tensor]


def filter_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the k largest logits (last dim), set the rest to -inf. k=None, 0 (transformers' "off") or k>=V keeps all.

        >>> filter_top_k(torch.tensor([1.0, 3.0, 2.0]), 2)
        tensor([-inf, 3., 2.])
    """
    if k is None or k == 0 or k >= logits.shape[-1]:
        return logits
    if k < 0:
        raise ValueError(f"top_k must be >= 0 (0 or None for no limit), not {k}")
    kth = torch.topk(logits, int(k), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability adds up to p.

    A token survives when the probability of the tokens ranked above it is still below p,
    so the most likely token always survives.

        >>> filter_top_p(torch.log(torch.tensor([0.5, 0.3, 0.2])), 0.7)
        tensor([-0.6931, -1.2040,    -inf])
        >>> filter_top_p(torch.log(torch.tensor([0.5, 0.3, 0.2])), 0.0)  # as in transformers: at least one
        tensor([-0.6931,    -inf,    -inf])
    """
    if p is None or p >= 1.0:
        return logits
    probs, order = torch.softmax(logits.float(), dim=-1).sort(dim=-1, descending=True)
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False  # p = 0 (or p below the top probability) still keeps the most likely token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """The renormalised probabilities that sampling draws from, (..., V)."""
    logits = logits.float() / max(temperature, 1e-8)
    return torch.softmax(filter_top_p(filter_top_k(logits, top_k), top_p), dim=-1)


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> int:
    """One token id from the logits of one position (V,). Temperature 0 means greedy (argmax)."""
    if temperature <= 0.0:
        return int(torch.argmax(logits))
    probs = next_token_distribution(logits, temperature, top_k, top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def _is_number(x) -> bool:
    """A finite real number (numpy's included), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _whole(x) -> bool:
    """An integer (int, numpy's, a 0-d integer tensor), not a bool or a float."""
    try:
        operator.index(x)
    except TypeError:
        return False
    return not isinstance(x, bool)


def _check_args(model: Llama, prompt_ids: Sequence[int], max_new_tokens: int, temperature: float,
                top_k: int | None, top_p: float | None, seed: int | None = None) -> None:
    """Refuse, naming the argument, what generation cannot honour (rather than sampling from NaNs, or failing
    deep inside the model with an index error): the limits are transformers' (top_k 0 = no limit, top_p in
    [0, 1], temperature >= 0)."""
    ctx, V = model.config.max_seq_len, model.config.vocab_size
    if len(prompt_ids) == 0:
        raise ValueError("the prompt is empty: give at least one token (for example BOS)")
    if len(prompt_ids) > ctx:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens but the model's context is {ctx}")
    bad = next((i for i in prompt_ids if not _whole(i) or not 0 <= operator.index(i) < V), None)
    if bad is not None:
        raise ValueError(f"prompt_ids must be token ids in 0..{V - 1} (the model's vocabulary), not {bad!r}")
    if not _whole(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a whole number >= 0, not {max_new_tokens!r}")
    if not _is_number(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), not {temperature!r}")
    if top_k is not None and (not _whole(top_k) or top_k < 0):
        raise ValueError(f"top_k must be a whole number >= 0 (0 or None for no limit), not {top_k!r}")
    if top_p is not None and (not _is_number(top_p) or not 0.0 <= top_p <= 1.0):
        raise ValueError(f"top_p must be in [0, 1] (or None for no limit; 0 keeps only the most likely token), "
                         f"not {top_p!r}")
    if seed is not None and not _whole(seed):
        raise ValueError(f"seed must be a whole number (or None), not {seed!r}")


def _eos_ids(model: Llama, eos_id) -> tuple[int, ...]:
    if isinstance(eos_id, str) and eos_id == "config":
        return model.config.eos_ids
    if eos_id is None:
        return ()
    return tuple(int(i) for i in eos_id) if isinstance(eos_id, (list, tuple, set)) else (int(eos_id),)


def stream_generate(model: Llama, prompt_ids: Sequence[int], max_new_tokens: int, temperature: float = 0.0,
                    top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                    seed: int | None = None, eos_id: int | Sequence[int] | None | str = "config",
                    decode_step: DecodeFn | None = None) -> Iterator[int]:
    """Yield new token ids one at a time. Stops after max_new_tokens, after yielding an EOS id, or when
    the context is full. eos_id="config" stops at any of the model's eos ids (Llama 3 has several);
    an int or a list gives them explicitly; None never stops early. The one-row case of
    `stream_generate_rows` (the one generation loop)."""
    row = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
    for toks in stream_generate_rows(model, prompt_ids, max_new_tokens, [row], eos_id=eos_id, use_cache=use_cache,
                                     decode_step=decode_step):
        yield toks[0]


def generate(model: Llama, prompt_ids: Sequence[int], max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, use_cache: bool = True, seed: int | None = None,
             eos_id: int | Sequence[int] | None | str = "config", on_token: Callable[[int], None] | None = None,
             decode_step: DecodeFn | None = None) -> list[int]:
    """The new token ids after the prompt (greedy at temperature 0). `on_token` is called with each id as
    it is produced; `stream_generate` is the same loop as a generator."""
    out = []
    for tok in stream_generate(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, use_cache, seed, eos_id,
                               decode_step):
        out.append(tok)
        if on_token is not None:
            on_token(tok)
    return out


@torch.inference_mode()
def stream_generate_rows(model: Llama, prompt_ids: Sequence[int], max_new_tokens: int, rows: Sequence[dict],
                         eos_id: int | Sequence[int] | None | str = "config",
                         use_cache: bool = True, decode_step: DecodeFn | None = None) -> Iterator[list[int | None]]:
    """The generation loop: several continuations of one prompt, one batched forward pass per step (a batch of
    len(rows), one KV cache row each). Each row is a dict of sampling arguments (temperature, top_k, top_p,
    seed; missing keys mean greedy, no filter, no seed). `stream_generate` is the one-row case.

    Yields one list per step: the new token of each row, or None for a row that has already stopped (it
    yielded an EOS id). Stops after max_new_tokens, when every row has stopped, or when the context is full.
    Row r gives the tokens a single-row run gives with the same arguments, up to float rounding (a batched
    matrix product may round differently from a single row, which matters only at near-ties).

    The KV cache is allocated for this request only: prompt + max_new_tokens positions, capped at the context
    (a model with a million positions does not allocate a million-position cache). use_cache=False recomputes
    every position at every step (the KV-cache lesson's comparison).

    decode_step is a speed knob for the caller: a `llama.fast.DecodeStep(model)` computes the cached steps
    with fused weights (and torch.compile if asked); None runs the model's own forward pass. Same tokens.

        >>> steps = list(stream_generate_rows(model, [bos], 3, [{}, {"temperature": 1.0, "seed": 0}]))
        >>> len(steps), len(steps[0])
        (3, 2)
    """
    for r in rows:
        _check_args(model, prompt_ids, max_new_tokens, r.get("temperature", 0.0), r.get("top_k"), r.get("top_p"),
                    r.get("seed"))
    eos = _eos_ids(model, eos_id)
    device = model.embed_tokens.weight.device
    gens = [None if r.get("seed") is None else torch.Generator(device=device).manual_seed(int(r["seed"]))
            for r in rows]
    B, P, ctx = len(rows), len(prompt_ids), model.config.max_seq_len
    n_total = min(P + max_new_tokens, ctx)  # positions this request can ever fill
    ids = torch.zeros(B, n_total, dtype=torch.long, device=device)  # (B, n_total) prompt, then each new token
    ids[:, :P] = torch.tensor(list(prompt_ids), dtype=torch.long)
    positions = torch.arange(n_total, device=device)  # (n_total,) sliced per step, not rebuilt
    cache = model.new_cache(B, n_total) if use_cache else None
    step_fn = decode_step or (lambda x, p, c: model(x, p, cache=c, logits_to_keep=1).logits[:, -1])
    live = [True] * B
    pos = 0  # first position not yet in the cache
    for step in range(max_new_tokens):
        T = P + step  # tokens in the context before this step's prediction
        if T >= ctx:
            return  # the context is full
        if use_cache:  # the prompt on the first step (the prefill), then only the newest token
            logits = step_fn(ids[:, pos:T], positions[pos:T], cache)  # (B, V)
            pos = T
        else:  # recompute every position every step
            logits = model(ids[:, :T], logits_to_keep=1).logits[:, -1]  # (B, V)
        toks: list[int | None] = []
        for b, r in enumerate(rows):
            if not live[b]:
                toks.append(None)
                continue
            tok = sample_next(logits[b], r.get("temperature", 0.0), r.get("top_k"), r.get("top_p"), gens[b])
            live[b] = tok not in eos
            toks.append(tok)
        yield toks
        if not any(live):
            return
        if T < n_total:  # a stopped row is fed its last token again; its output is never read
            ids[:, T] = torch.tensor([ids[b, T - 1] if t is None else t for b, t in enumerate(toks)], device=device)
