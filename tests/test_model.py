"""The from-scratch model's pieces behave as the math says, on tiny configs, on CPU."""

import math

import pytest
import torch

from llama import (KVCache, Llama, LlamaConfig, RMSNorm, LayerNorm, apply_rope, generate, llama_hidden_dim,
                   precompute_rope, repeat_kv)

torch.manual_seed(0)


def tiny(**kw):
    base = dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=97, max_seq_len=64, multiple_of=16)
    return Llama(LlamaConfig(**{**base, **kw})).eval()


def test_rmsnorm_is_invariant_to_scale_but_not_shift():
    norm = RMSNorm(16)
    norm.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(3, 16)
    torch.testing.assert_close(norm(x * 7.5), norm(x), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(norm(x + 3.0), norm(x), atol=1e-3)
    ln = LayerNorm(16)
    torch.testing.assert_close(ln(x * 7.5 + 3.0), ln(x), atol=1e-4, rtol=1e-4)


def test_rope_preserves_norms_and_depends_only_on_distance():
    hs = 16
    cos, sin = precompute_rope(hs, 128, 10000.0)
    q, k = torch.randn(hs), torch.randn(hs)

    def rot(x, m):
        return apply_rope(x[None], cos[m:m + 1], sin[m:m + 1])[0]

    for m in (0, 5, 77):
        torch.testing.assert_close(rot(q, m).norm(), q.norm())
    dots = [torch.dot(rot(q, m + 10), rot(k, m)) for m in (0, 3, 50, 100)]
    for d in dots[1:]:
        torch.testing.assert_close(d, dots[0], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(torch.dot(rot(q, 20), rot(k, 0)), dots[0], atol=1e-3)


def test_repeat_kv_is_repeat_interleave():
    x = torch.randn(2, 3, 5, 4)
    assert torch.equal(repeat_kv(x, 4), torch.repeat_interleave(x, 4, dim=1))


def test_gqa_with_all_kv_heads_is_plain_multi_head_attention():
    model = tiny(n_kv_heads=4)
    attn, x = model.layers[0].self_attn, torch.randn(1, 7, 32)
    cos, sin = model.rope_cos[:7], model.rope_sin[:7]
    mask = torch.ones(7, 7, dtype=torch.bool).tril()
    got = attn(x, (cos, sin), torch.arange(7), mask)
    # Plain MHA, one head at a time, written independently of the model's code.
    outs = []
    for h in range(4):
        sl = slice(8 * h, 8 * h + 8)
        q = apply_rope(x[0] @ attn.q_proj.weight[sl].T, cos, sin)
        k = apply_rope(x[0] @ attn.k_proj.weight[sl].T, cos, sin)
        v = x[0] @ attn.v_proj.weight[sl].T
        s = (q @ k.T / math.sqrt(8)).masked_fill(~mask, -math.inf)
        outs.append(torch.softmax(s, -1) @ v)
    want = torch.cat(outs, -1) @ attn.o_proj.weight.T
    torch.testing.assert_close(got[0], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", [{}, dict(n_kv_heads=1), dict(norm="layernorm"), dict(position="learned"),
                                dict(position="sinusoidal"), dict(position="none"), dict(ffn="relu"),
                                dict(ffn="gelu"), dict(norm_placement="post")])
def test_later_tokens_never_change_earlier_logits(kw):
    model = tiny(**kw)
    a = torch.randint(0, 97, (1, 12))
    b = a.clone()
    b[0, 8:] = torch.randint(0, 97, (4,))
    la, lb = model(a).logits, model(b).logits
    torch.testing.assert_close(la[:, :8], lb[:, :8])
    assert not torch.allclose(la[:, 8:], lb[:, 8:])


def test_tracing_never_changes_the_numbers_and_records_everything():
    model = tiny()
    idx = torch.randint(0, 97, (2, 9))
    plain = model(idx)
    traced = model(idx, trace=True)
    assert plain.trace is None
    assert torch.equal(plain.logits, traced.logits)
    tr = traced.trace
    assert len(tr.layers) == 2
    lt = tr.layers[1]
    assert lt.attn.shape == (2, 4, 9, 9)
    torch.testing.assert_close(lt.attn.sum(-1), torch.ones(2, 4, 9))
    assert torch.all(lt.attn.triu(1) == 0)  # causal: nothing above the diagonal
    assert lt.q.shape == lt.q_rot.shape == (2, 4, 9, 8) and lt.k.shape == (2, 2, 9, 8)
    torch.testing.assert_close(lt.q[:, :, 0], lt.q_rot[:, :, 0])  # position 0 is not rotated
    assert lt.gate.shape == (2, 9, model.config.hidden_dim)
    torch.testing.assert_close(model.layers[1].input_layernorm(lt.attn_in), lt.attn_norm_out)
    torch.testing.assert_close(model.norm(tr.final_norm_in), tr.final_norm_out)


def test_sdpa_backend_equals_manual_attention():
    model = tiny()
    idx = torch.randint(0, 97, (2, 20))
    manual = model(idx).logits
    model.attn_backend = "sdpa"
    torch.testing.assert_close(model(idx).logits, manual, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["manual", "sdpa"])
def test_cached_decoding_equals_uncached(backend):
    model = tiny()
    model.attn_backend = backend
    prompt = [3, 14, 15, 92, 65]
    a = generate(model, prompt, 30, use_cache=True, eos_id=None)
    b = generate(model, prompt, 30, use_cache=False, eos_id=None)
    assert a == b and len(a) == 30
    # and logits, position by position
    ids = torch.tensor([prompt + a])
    full = model(ids).logits[0]
    cache = model.new_cache(1)
    step = [model(ids[:, :5], torch.arange(5), cache=cache).logits[0]]
    for p in range(5, ids.shape[1]):
        step.append(model(ids[:, p:p + 1], torch.tensor([p]), cache=cache).logits[0])
    torch.testing.assert_close(torch.cat(step), full, atol=1e-5, rtol=1e-5)
    s1 = generate(model, prompt, 20, temperature=0.9, top_k=20, top_p=0.9, seed=3, eos_id=None)
    s2 = generate(model, prompt, 20, temperature=0.9, top_k=20, top_p=0.9, seed=3, eos_id=None, use_cache=False)
    assert s1 == s2


def test_kv_cache_update_and_memory():
    c = KVCache(1, 2, 16, 4)
    k = torch.randn(1, 2, 3, 4)
    ks, vs = c.update(torch.arange(3), k, k * 2)
    assert ks.shape == (1, 2, 3, 4) and torch.equal(ks, k) and c.length == 3
    ks, _ = c.update(torch.tensor([3]), k[:, :, :1], k[:, :, :1])
    assert ks.shape == (1, 2, 4, 4)
    assert c.nbytes == 2 * 1 * 2 * 16 * 4 * 4


def test_generation_stops_at_eos_and_streams():
    model = tiny()
    first = generate(model, [1, 2, 3], 1)[0]
    model.config.eos_token_id = first
    assert generate(model, [1, 2, 3], 10) == [first]
    seen = []
    out = generate(model, [1, 2, 3], 5, eos_id=None, on_token=seen.append)
    assert seen == out and len(out) == 5


def test_generation_stops_when_context_is_full_and_rejects_bad_input():
    model = tiny(max_seq_len=16)
    assert len(generate(model, list(range(10)), 50, eos_id=None)) == 6
    with pytest.raises(ValueError, match="empty"):
        generate(model, [], 5)
    with pytest.raises(ValueError, match="context"):
        generate(model, list(range(17)), 5)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="top_p"):
            generate(model, [1], 5, temperature=1.0, top_p=bad)


def test_config_derives_llama_sizes_and_validates():
    assert llama_hidden_dim(4096) == 11008
    assert LlamaConfig.from_name("llama3-8b").hidden_dim == 14336
    assert LlamaConfig.from_name("llama2-70b").hidden_dim == 28672
    cfg = LlamaConfig(dim=64, n_heads=8, n_kv_heads=2, vocab_size=10)
    assert (cfg.head_dim, cfg.n_rep) == (8, 4)
    for bad in (dict(n_kv_heads=3), dict(norm="batchnorm"), dict(position="alibi"), dict(dim=60)):
        with pytest.raises(ValueError):
            LlamaConfig(**{**dict(dim=64, n_heads=8, vocab_size=10), **bad})
