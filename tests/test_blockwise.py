"""llama.blockwise: attention tile by tile with an online softmax gives the manual path's numbers within 1e-5
(prefill, KV cache, MHA/GQA/MQA, any block size), as a function and as the model's "blockwise" backend, and it
never holds a (T, S) tensor: only the n(n+1)/2 tiles on or below the diagonal of a causal prefill are computed."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from llama import Llama, LlamaConfig, blockwise_attention, generate, repeat_kv

TOL = dict(atol=1e-5, rtol=1e-5)


def manual_attention(q, k, v, q_pos):
    """The model's manual path (Attention.forward with Llama.forward's mask): the whole (T, S) matrix at once."""
    k, v = repeat_kv(k, q.shape[1] // k.shape[1]), repeat_kv(v, q.shape[1] // v.shape[1])  # (B, nh, S, hs)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, nh, T, S)
    mask = torch.arange(k.shape[2])[None, :] <= q_pos[:, None]  # (T, S) True = may attend
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v


def qkv(T, S, nh, nkv, B=2, hs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, nh, T, hs, generator=g), torch.randn(B, nkv, S, hs, generator=g),
            torch.randn(B, nkv, S, hs, generator=g))


HEADS = {"MHA": (4, 4), "GQA": (4, 2), "MQA": (4, 1)}
# Block size 1 on 257 positions is 33,153 tiles of one score each: seconds, so it runs on short lengths only.
CASES = [(T, b) for T in (1, 7, 64, 100, 257) for b in (16, 64, 128)] + [(T, 1) for T in (1, 7, 33)]


@pytest.mark.parametrize("heads", HEADS)
@pytest.mark.parametrize("T,block", CASES)
def test_a_prefill_equals_the_manual_path(T, block, heads):
    q, k, v = qkv(T, T, *HEADS[heads])
    want = manual_attention(q, k, v, torch.arange(T))
    torch.testing.assert_close(blockwise_attention(q, k, v, block_size=block), want, **TOL)


# (cached P, new T, block): block size 1 only where P + T is small (one-score tiles are slow in Python loops).
CACHED = [(P, T, b) for P, T in [(1, 1), (9, 1), (63, 1), (64, 1), (200, 1), (5, 7), (30, 64), (64, 100), (100, 37)]
          for b in (1, 16, 64) if b > 1 or P + T <= 40]


@pytest.mark.parametrize("heads", HEADS)
@pytest.mark.parametrize("P,T,block", CACHED)
def test_queries_after_a_cached_prefix_equal_the_manual_path(P, T, block, heads):
    """P cached positions, then T new queries at positions P .. P+T-1 that see all P+T keys up to their own."""
    q, k, v = qkv(T, P + T, *HEADS[heads])
    q_pos = torch.arange(P, P + T)
    want = manual_attention(q, k, v, q_pos)
    torch.testing.assert_close(blockwise_attention(q, k, v, block_size=block), want, **TOL)  # default: last T
    torch.testing.assert_close(blockwise_attention(q, k, v, q_pos, block_size=block), want, **TOL)


def test_half_precision_stays_close_and_keeps_its_dtype():
    q, k, v = qkv(100, 100, 4, 2)
    want = manual_attention(q, k, v, torch.arange(100))
    got = blockwise_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), block_size=16)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=3e-2, rtol=3e-2)


def test_a_block_size_below_one_is_refused():
    with pytest.raises(ValueError, match="block_size must be a positive"):
        blockwise_attention(*qkv(4, 4, 2, 2), block_size=0)


# ----------------------------------------------------------------------------- what is computed, what is held


class Ops(TorchDispatchMode):
    """Records the shape of every tensor that every PyTorch operation returns inside the `with` block."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.shapes.append((func, tuple(t.shape)))
        return out

    def tiles(self, bq, bk):
        """The score tiles computed: matrix products whose result ends in (bq, bk)."""
        return sum(1 for f, s in self.shapes if f in (torch.ops.aten.bmm.default, torch.ops.aten.mm.default)
                   and s[-2:] == (bq, bk))


@pytest.mark.parametrize("heads", ["GQA", "MQA"])  # the query heads sharing a K/V head must not copy it
def test_no_tensor_grows_with_t_times_s(heads):
    T, block = 257, 16
    q, k, v = qkv(T, T, *HEADS[heads])
    with Ops() as ops:
        blockwise_attention(q, k, v, block_size=block)
    B, nh, _, hs = q.shape
    largest = max(math.prod(s) for _, s in ops.shapes)
    # The biggest things held are the inputs and the output (B, nh, T, hs); one score tile is B nh 16 x 16.
    assert largest <= max(q.numel(), k.numel(), B * nh * block * block)
    assert largest < B * nh * T * T / 10  # the manual path's (B, nh, T, S) scores, for scale
    assert not any(s[-2:] == (T, T) for _, s in ops.shapes)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_a_causal_prefill_of_n_blocks_computes_n_n_plus_1_over_2_tiles(n):
    block = 16  # != hs, so p @ v (bq, hs) is not counted as a score tile
    q, k, v = qkv(n * block, n * block, 4, 2)
    with Ops() as ops:
        blockwise_attention(q, k, v, block_size=block)
    assert ops.tiles(block, block) == n * (n + 1) // 2  # on or below the diagonal; the n(n-1)/2 above are skipped


def test_a_decode_step_computes_one_row_of_tiles():
    """One new query after 100 cached keys sees all of them: ceil(101 / 16) = 7 tiles of 1 x (up to) 16."""
    q, k, v = qkv(1, 101, 4, 2)
    with Ops() as ops:
        blockwise_attention(q, k, v, block_size=16)
    assert ops.tiles(1, 16) == 6 and ops.tiles(1, 5) == 1


# ----------------------------------------------------------------------------- the model's "blockwise" backend


def tiny(**kw):
    torch.manual_seed(0)
    return Llama(LlamaConfig(**{**dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=97, max_seq_len=300,
                                       multiple_of=16), **kw})).eval()


def cached_logits(model, ids, splits):
    """Logits of ids fed through a KV cache in pieces ending at `splits` (a prefill, decode steps, a new prompt)."""
    cache, out, start = model.new_cache(ids.shape[0]), [], 0
    for end in splits:
        out.append(model(ids[:, start:end], torch.arange(start, end), cache=cache).logits)
        start = end
    return torch.cat(out, dim=1)


def assert_backends_agree(model, ids, block_size):
    assert model.attn_backend == "manual"
    want = model(ids).logits
    T = ids.shape[1]
    splits = [T // 2, T // 2 + 1, T // 2 + 2, T]  # prefill half, two decode steps, a prompt continuing the prefix
    model.attn_backend, model.attn_block_size = "blockwise", block_size
    try:
        torch.testing.assert_close(model(ids).logits, want, **TOL)
        torch.testing.assert_close(cached_logits(model, ids, splits), want, **TOL)
    finally:
        model.attn_backend, model.attn_block_size = "manual", 64


@torch.inference_mode()
@pytest.mark.parametrize("block", [16, 64])
def test_the_course_model_gives_the_same_logits(cm, block):
    ids = torch.randint(3, cm.model.config.vocab_size, (2, 200), generator=torch.Generator().manual_seed(0))
    assert_backends_agree(cm.model, ids, block)


@torch.inference_mode()
@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("block", [1, 16, 64])
def test_a_random_model_gives_the_same_logits(n_kv_heads, block):
    model = tiny(n_kv_heads=n_kv_heads)
    ids = torch.randint(0, 97, (2, 40 if block == 1 else 150), generator=torch.Generator().manual_seed(1))
    assert_backends_agree(model, ids, block)


@torch.inference_mode()
def test_generation_gives_the_same_tokens():
    model = tiny()
    want = generate(model, [3, 14, 15, 92, 65], 30, eos_id=None)
    model.attn_backend, model.attn_block_size = "blockwise", 8
    assert generate(model, [3, 14, 15, 92, 65], 30, eos_id=None) == want
    assert generate(model, [3, 14, 15, 92, 65], 30, eos_id=None, use_cache=False) == want


@torch.inference_mode()
def test_the_model_builds_no_t_by_s_mask_or_scores():
    model = tiny()
    model.attn_backend, model.attn_block_size = "blockwise", 16
    T = 256  # no other size of the tiny model is 256, so a (T, T) shape can only be a mask or scores
    with Ops() as ops:
        model(torch.randint(0, 97, (1, T)))
    assert not any(s[-2:] == (T, T) for _, s in ops.shapes)


@torch.inference_mode()
def test_a_traced_call_records_attention_and_changes_nothing():
    """Tracing records probabilities, which only the manual path has: a traced call takes it, as with sdpa."""
    model = tiny()
    ids = torch.randint(0, 97, (1, 30))
    model.attn_backend = "blockwise"
    out = model(ids, trace=True)
    assert out.trace.layers[0].attn.shape == (1, 4, 30, 30)
    torch.testing.assert_close(out.logits, model(ids).logits, **TOL)


def test_an_unknown_backend_is_refused():
    model = tiny()
    model.attn_backend = "flash"
    with pytest.raises(ValueError, match="attn_backend must be one of manual, sdpa, blockwise, not 'flash'"):
        model(torch.tensor([[1, 2, 3]]))
