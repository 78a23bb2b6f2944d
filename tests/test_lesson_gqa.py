"""Lesson 6 (MQA and GQA): the pure compute functions, on the course model and on real Llama configs."""

import numpy as np
import pytest
import torch

from lessons.gqa import compute as C
from llama.config import LlamaConfig


def test_divisors_and_head_to_group_map():
    assert C.divisors(8) == [1, 2, 4, 8] and C.divisors(6) == [1, 2, 3, 6] and C.divisors(1) == [1]
    assert C.head_groups(8, 8) == list(range(8))  # MHA: every query head its own K/V head
    assert C.head_groups(8, 2) == [0, 0, 0, 0, 1, 1, 1, 1]  # GQA: h // n_rep
    assert C.head_groups(8, 1) == [0] * 8  # MQA
    with pytest.raises(ValueError, match="cannot be shared evenly"):
        C.head_groups(8, 3)
    assert [C.attention_kind(8, k) for k in (8, 2, 1)] == ["MHA", "GQA", "MQA"]


def test_impossible_kv_heads_snap_to_a_divisor_with_a_notice():
    assert C.clamp_kv_heads(8, 4) == (4, "")
    n, notice = C.clamp_kv_heads(8, 3)
    assert n == 4 and "cannot be shared evenly" in notice and "1, 2, 4, 8" in notice
    assert C.clamp_kv_heads(8, 0)[0] == 1 and C.clamp_kv_heads(8, 99)[0] == 8


def test_sharing_diagram_draws_one_line_per_query_head(cm):
    nh = cm.config.n_heads
    for nkv in C.divisors(nh):
        fig = C.sharing_figure(nh, nkv)
        assert len(fig.layout.shapes) == nh
        assert C.attention_kind(nh, nkv) in fig.layout.title.text
        assert len(fig.data[1].x) == nkv  # the K/V heads drawn


def test_attention_parameter_count_matches_the_real_model(cm):
    attn = cm.model.layers[0].self_attn
    per_layer = sum(p.numel() for m in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj) for p in m.parameters())
    assert C.attention_parameters(cm.config) == per_layer * cm.config.n_layers
    c7 = LlamaConfig.from_name("llama2-7b")
    assert C.attention_parameters(c7) == 32 * 4 * 4096 * 4096
    assert C.attention_parameters(c7, 8) < C.attention_parameters(c7)


def test_memory_comparison_scales_real_configs_by_the_same_ratio(cm):
    nh = cm.config.n_heads
    fig, table, notice = C.memory_comparison(cm, 1, 4096, 2, "fp16 / bf16")  # MQA everywhere
    assert notice == "" and "Llama 2 70B" in table and "Llama 3 8B" in table
    c70 = LlamaConfig.from_name("llama2-70b")  # 64 query heads
    assert C.scaled_kv_heads(c70, 1 / 8) == 8 and C.scaled_kv_heads(c70, 1 / 3) == 16  # 21.3 -> nearest divisor
    k = C.scaled_kv_heads(c70, 1 / nh)
    assert 64 % k == 0 and all(abs(k - 64 / nh) <= abs(d - 64 / nh) for d in C.divisors(64))
    assert "2.00 GiB" in C.memory_comparison(cm, nh, 4096, 1, "fp16 / bf16")[1]  # Llama 2 7B, MHA, one sequence
    _, _, notice = C.memory_comparison(cm, nh + 5, 4096, 1, "fp32")
    assert "cannot be shared evenly" in notice
    with pytest.raises(ValueError, match="at least 1"):
        C.memory_comparison(cm, 1, 0, 1, "fp32")


def test_repeating_kv_heads_gives_mha_with_identical_logits(cm):
    before = {k: v.clone() for k, v in cm.model.state_dict().items()}
    mha = C.convert_kv_heads(cm.model, cm.config.n_heads)
    assert mha.config.n_kv_heads == cm.config.n_heads and mha is not cm.model
    idx = torch.tensor([cm.tokenizer.encode("To be, or not to be: that is the question.")])
    torch.testing.assert_close(mha(idx).logits, cm.model(idx).logits, atol=1e-5, rtol=0)
    r = C.repeat_check(cm, "To be, or not to be")
    assert r["max_diff"] < 1e-5 and r["k_rows_after"] == cm.config.n_heads * cm.config.head_dim
    assert all(torch.equal(v, cm.model.state_dict()[k]) for k, v in before.items())  # cm.model untouched


def test_pooling_to_the_same_count_changes_nothing_and_fewer_changes_the_loss(cm):
    nkv = cm.config.n_kv_heads
    same = C.convert_kv_heads(cm.model, nkv)
    for a, b in zip(same.state_dict().values(), cm.model.state_dict().values()):
        assert torch.equal(a, b)
    r = C.converted_loss(cm, nkv)
    assert r["delta"] == 0 and r["how"] == "unchanged" and r["tokens"] >= cm.config.max_seq_len
    pooled = C.converted_loss(cm, 1)
    assert pooled["how"] == "mean-pooled" and abs(pooled["delta"]) > 1e-3
    mq = C.convert_kv_heads(cm.model, 1)
    k = cm.model.layers[0].self_attn.k_proj.weight.view(nkv, cm.config.head_dim, -1)  # (nkv, hs, C)
    torch.testing.assert_close(mq.layers[0].self_attn.k_proj.weight, k.mean(0))  # the GQA paper's mean-pool
    with pytest.raises(ValueError):
        C.converted_loss(cm, cm.config.n_heads + 1)


def test_progress_is_reported_while_measuring(cm):
    seen = []
    C.converted_loss(cm, 1, lambda f, d: seen.append((f, d)))
    assert seen and seen[-1][0] == 1.0 and all(isinstance(d, str) for _, d in seen)
    fig = C.conversion_figure(cm, {1: 5.0, cm.config.n_kv_heads: 4.0})
    assert list(fig.data[0].x) == ["1", str(cm.config.n_kv_heads)]


def test_attention_maps_grouped_by_kv_head(cm):
    c = cm.config
    fig, md = C.grouped_attention_figure(cm, "ROMEO: But soft, what light through yonder window breaks?", 0)
    assert len(fig.data) == c.n_heads
    titles = [a.text for a in fig.layout.annotations]
    for h in range(c.n_heads):
        assert f"q head {h} → K/V head {h // c.n_rep}" in titles
    attn, _, _ = C.attention_maps(cm, "ROMEO: But soft", 0)
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-5)  # probabilities
    same, other = C.head_differences(attn, c.n_kv_heads)
    assert 0 < same <= 1 and "share a K/V head" in md  # heads sharing keys still attend differently
    with pytest.raises(ValueError, match="empty"):
        C.grouped_attention_figure(cm, "   ", 0)
    with pytest.raises(ValueError, match="does not exist"):
        C.grouped_attention_figure(cm, "hello", c.n_layers)


def test_head_differences_on_known_maps():
    a = np.eye(3)[None].repeat(4, 0)  # 4 identical heads
    a[2:] = np.roll(np.eye(3), 1, axis=1)  # heads 2 and 3 attend elsewhere
    same, other = C.head_differences(a, 2)  # groups {0,1} and {2,3}
    assert same == 0.0 and other == 1.0


def test_reveals_grade_against_live_numbers(cm):
    md = C.reveal_pooling(cm, C.POOL_CHOICES[0])
    assert "nats/token" in md and ("✅" in md or "❌" in md)
    md = C.reveal_repeat(cm, "Good morrow", C.REPEAT_CHOICES[0])
    assert md.startswith("✅")
