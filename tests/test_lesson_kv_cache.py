"""Lesson 7 (the KV cache): memory formula, cached against uncached generation, the step grid, live timing."""

import numpy as np
import pytest

from lessons.kv_cache import compute as C
from llama.config import LlamaConfig
from llama.generate import generate


def test_memory_formula():
    for L, kv, hd, T, B, nb in [(4, 2, 32, 256, 1, 4), (80, 8, 128, 8192, 16, 2), (1, 1, 2, 3, 5, 1)]:
        assert C.kv_cache_bytes(L, kv, hd, T, B, nb) == 2 * L * kv * hd * T * B * nb
    c7 = LlamaConfig.from_name("llama2-7b")
    assert C.config_cache_bytes(c7, 4096, 1, 2) == 2 * 32 * 32 * 128 * 4096 * 2 == 2 * 2**30  # 2 GiB
    c70 = LlamaConfig.from_name("llama2-70b")  # GQA with 8 of 64 heads: 8x less than MHA
    assert C.config_cache_bytes(c70, 4096, 1, 2, n_kv_heads=64) == 8 * C.config_cache_bytes(c70, 4096, 1, 2)
    assert C.fmt_bytes(2 * 2**30) == "2.00 GiB" and C.fmt_bytes(512) == "512 B"


def test_formula_equals_the_bytes_really_allocated(cm):
    real, formula = C.allocated_cache_bytes(cm)
    assert real == formula > 0
    real4, formula4 = C.allocated_cache_bytes(cm, batch=4)
    assert real4 == formula4 == 4 * real


def test_memory_table_with_and_without_gqa(cm):
    table, fig = C.cache_memory(cm, 4096, 1, "fp16 / bf16")
    assert "| Llama 2 7B | 32 of 32 | 2.00 GiB | 2.00 GiB | 1x |" in table
    assert "| Llama 3 8B | 8 of 32 | 512.00 MiB | 2.00 GiB | 4x |" in table
    assert len(fig.data) == 2 and list(fig.data[0].x)[0] == C.COURSE
    with pytest.raises(ValueError, match="Unknown number format"):
        C.cache_memory(cm, 4096, 1, "fp8")


def test_cached_and_uncached_generation_give_the_same_tokens(cm):
    run = C.run_cached_vs_uncached(cm, "JULIET:\nO Romeo, Romeo!", 12)
    assert run.same_tokens and len(run.new_tokens) == 12
    assert run.max_logit_diff < 1e-4
    prompt = list(run.ids[:run.prompt_len])
    assert list(run.new_tokens) == generate(cm.model, prompt, 12, use_cache=True, eos_id=None)
    assert list(run.new_tokens) == generate(cm.model, prompt, 12, use_cache=False, eos_id=None)
    # every position fed to the model entered the cache: the prompt and all new tokens but the last
    assert run.k_norms.shape == (cm.config.n_layers, run.prompt_len + 11) and np.all(run.k_norms > 0)


def test_step_status_prefill_then_one_new_position_per_step():
    cached, uncached = C.step_status(3, 0, 6)  # prefill of a 3-token prompt
    assert list(cached) == [C.WRITTEN] * 3 + [C.EMPTY] * 3 and list(uncached) == [C.RECOMPUTED] * 3 + [C.EMPTY] * 3
    cached, uncached = C.step_status(3, 2, 6)
    assert list(cached) == [C.READ] * 4 + [C.WRITTEN, C.EMPTY]
    assert list(uncached) == [C.RECOMPUTED] * 5 + [C.EMPTY]


def test_step_view_readout_and_clamping(cm):
    fig, readout, proof, n, notice = C.step_view(cm, "JULIET:\nO Romeo, Romeo!", 8, 3)
    L = cm.config.n_layers
    assert n == 8 and notice == "" and "Step 3" in fig.layout.title.text
    assert f"**1** position(s) x {L} layers" in readout and "same tokens" in proof
    *_, notice = C.step_view(cm, "JULIET:\nO Romeo, Romeo!", 8, 50)
    assert "does not exist" in notice
    *_, n, notice = C.step_view(cm, "JULIET:", 999, 0)
    assert n == C.MAX_NEW_TOKENS and "not possible" in notice
    with pytest.raises(ValueError, match="empty"):
        C.step_view(cm, "", 8, 0)


def test_timing_returns_positive_numbers(cm):
    seen = []
    t = C.time_per_token(cm, [cm.tokenizer.bos_id] + cm.tokenizer.encode("To be"), 12, lambda f, d: seen.append(d))
    assert len(t["cached_ms"]) == len(t["uncached_ms"]) == len(t["lengths"]) == 12
    assert all(x > 0 for x in t["cached_ms"] + t["uncached_ms"]) and t["speedup"] > 0 and seen
    assert t["lengths"] == sorted(t["lengths"])
    fig, md = C.timing_figure(t)
    assert "speed-up" in md and len(fig.data) == 4
    r = C.one_step_ratio(cm, length=64, repeats=2)
    assert r["cached_ms"] > 0 and r["uncached_ms"] > 0
    assert C.rolling_median([1, 9, 1, 1, 1], 3) == [5.0, 1.0, 1.0, 1.0, 1.0]


def test_reveal_same_tokens_is_graded_by_the_run(cm):
    md = C.reveal_same(cm, "JULIET:\nO Romeo, Romeo!", C.SAME_CHOICES[0], n_new=8)
    assert md.startswith("✅") and "Largest |logit difference|" in md
    assert C.reveal_same(cm, "JULIET:", C.SAME_CHOICES[2], n_new=8).startswith("❌")
