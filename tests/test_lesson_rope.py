"""Lesson 3 (positional encoding and RoPE): the pure compute functions, on the course model's real vectors."""

import cmath
import math

import numpy as np
import pytest
import torch

from lessons.rope import compute as C
from llama import rope_frequencies
from llama.train import loss_per_char

TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer"


def test_rotation_preserves_length_and_turns_by_m_theta(cm):
    r = C.rotate(cm, TEXT, layer=1, head=1, q_token=5, k_token=3, m=37, n=20, pair=2)
    assert r.notice == "" and (r.m, r.n, r.pair) == (37, 20, 2)
    assert math.hypot(*r.q_pair) == pytest.approx(math.hypot(*r.q_pair_rot), rel=1e-5)
    assert math.hypot(*r.k_pair) == pytest.approx(math.hypot(*r.k_pair_rot), rel=1e-5)
    turned = math.atan2(r.q_pair_rot[1], r.q_pair_rot[0]) - math.atan2(r.q_pair[1], r.q_pair[0])
    expected = 37 * float(rope_frequencies(cm.config.head_dim, cm.config.rope_theta)[2])
    assert math.remainder(turned - expected, 2 * math.pi) == pytest.approx(0.0, abs=1e-4)
    assert r.angle == pytest.approx(expected, rel=1e-6)
    assert f"{r.angle:.4f} rad" in r.readout

    # the whole head vector keeps its norm at every position, rotated by the model's own tables
    v = C.pick_vectors(cm, TEXT, 2, 0, 7, 4)
    for pos in (0, 1, 100, cm.config.max_seq_len - 1):
        assert C._rotate_to(cm.model, v.q, pos).norm() == pytest.approx(float(v.q.norm()), rel=1e-5)


def test_angle_heatmap_is_m_times_theta_i(cm):
    r = C.rotate(cm, TEXT, m=3, n=1, pair=0)
    c = cm.config
    theta = rope_frequencies(c.head_dim, c.rope_theta)
    assert r.angles.shape == (c.max_seq_len, c.head_dim // 2)
    for m in (0, 1, 17, c.max_seq_len - 1):
        torch.testing.assert_close(r.angles[m], m * theta)
    # the same angles the model takes the cos and sin of
    torch.testing.assert_close(r.angles.cos(), cm.model.rope_cos.cpu(), atol=2e-4, rtol=0)
    torch.testing.assert_close(r.angles.sin(), cm.model.rope_sin.cpu(), atol=2e-4, rtol=0)
    heat = r.angles_figure.data[0]
    assert np.allclose(heat.z, np.remainder(r.angles.numpy(), 2 * math.pi), atol=1e-5)


def test_relative_property_holds_on_real_vectors(cm):
    r = C.relative_shift(cm, TEXT, layer=1, head=2, q_token=9, k_token=2, m=40, n=11, shift=150)
    assert r.notice == "" and r.shift == 150
    assert r.max_diff < 1e-4 and abs(r.shifted - r.score) < 1e-4
    assert len(r.shifts) == cm.config.max_seq_len - (40 - 11)  # every s with 0 <= n+s and m+s < L
    assert max(r.query_only) - min(r.query_only) > 100 * r.max_diff  # moving one token alone does change it
    assert f"{r.score:.7f}" in r.readout and f"{r.max_diff:.2e}" in r.readout
    # and for every layer and head, straight from apply_rope with the model's tables
    for layer in range(cm.config.n_layers):
        for head in range(cm.config.n_heads):
            rr = C.relative_shift(cm, TEXT, layer, head, 6, 3, m=20, n=5, shift=-5)
            assert rr.max_diff < 1e-4


def test_shuffle_without_positions_only_permutes_the_scores(cm):
    r = C.shuffle_scores(cm, TEXT, head=1, seed=3)
    assert r.perm[0] == 0 and sorted(r.perm) == list(range(len(r.perm))) and r.perm != sorted(r.perm)
    idx = torch.tensor(r.perm)
    torch.testing.assert_close(r.none_shuffled, r.none[idx][:, idx], atol=1e-5, rtol=0)
    assert r.diff_none < 1e-5
    assert r.diff_rope > 1e-2  # with RoPE the moved tokens get new scores
    # the same multiset of numbers, in another order
    assert np.allclose(np.sort(r.none.flatten().numpy()), np.sort(r.none_shuffled.flatten().numpy()), atol=1e-5)
    # without positions, two copies of the same token ("be", "to", ",", ...) have identical rows
    ids = C.prepared(cm, TEXT, C.SHUFFLE_TOKENS).ids
    twins = [(i, j) for i in range(1, len(ids)) for j in range(i + 1, len(ids)) if ids[i] == ids[j]]
    assert twins
    for i, j in twins:
        assert torch.allclose(r.none[i], r.none[j], atol=1e-5)
        assert not torch.allclose(r.rope[i], r.rope[j], atol=1e-3)
    assert len(r.figure.data) == 4


def test_shuffle_and_other_functions_refuse_bad_text(cm):
    for fn in (lambda t: C.shuffle_scores(cm, t), lambda t: C.rotate(cm, t), lambda t: C.compare_attention(cm, t)):
        with pytest.raises(ValueError, match="empty"):
            fn("   ")
    with pytest.raises(ValueError, match="at least two tokens"):
        C.shuffle_scores(cm, "a")
    r = C.shuffle_scores(cm, "🦙🦙", seed=1)  # emoji only: byte tokens, still a valid picture
    assert r.diff_none < 1e-5
    long = C.shuffle_scores(cm, "word " * 2000)
    assert "limit" in long.notice and long.none.shape == (C.SHUFFLE_TOKENS, C.SHUFFLE_TOKENS)


def test_impossible_slider_values_are_clamped_with_a_notice(cm):
    L, P = cm.config.max_seq_len, cm.config.head_dim // 2
    r = C.rotate(cm, TEXT, m=4, n=9, pair=P + 5)
    assert (r.m, r.n, r.pair) == (4, 4, P - 1)
    assert "causal mask" in r.notice and "Pair index" in r.notice
    rel = C.relative_shift(cm, TEXT, m=L - 10, n=L - 20, shift=50)
    assert rel.shift == 9 and "Shift s = 50 would move the query outside" in rel.notice  # m + s must stay below L
    rel = C.relative_shift(cm, TEXT, m=30, n=5, shift=-50)
    assert rel.shift == -5
    r = C.rotate(cm, TEXT, layer=99, head=-1, q_token=500, k_token=0, m=10**6, n=0, pair=0)
    assert (r.m, r.n) == (L - 1, 0) and "Layer 99" in r.notice and "Query token 500" in r.notice


def test_schemes_are_functions_of_distance_where_they_should_be(cm):
    r = C.schemes(cm, TEXT, n_positions=40, clip=5)
    assert r.rope.shape == (40, 40)
    for z in (r.sinusoidal, r.shaw, r.rope):  # constant along every diagonal: only m - n matters
        torch.testing.assert_close(z[1:, 1:], z[:-1, :-1], atol=1e-4, rtol=0)
    assert r.shaw.max() == 5 and r.shaw.min() == -5
    off = r.learned - torch.eye(40)
    assert off.abs().max() < 0.9  # random, untrained: no structure along the diagonals
    assert f"{cm.config.max_seq_len * cm.config.dim:,}" in r.table and "Shaw" in r.table
    assert len(r.figure.data) == 4


def test_decay_bound_matches_the_formula(cm):
    d = torch.tensor([0.0, 1.0, 5.0])
    b = C.decay_bound(4, 10000.0, d)
    assert b[0].item() == pytest.approx(1.5)  # S_1 = 1, S_2 = 2
    th = rope_frequencies(4, 10000.0).double()
    s1, s2 = 1.0, abs(cmath.exp(5j * th[0].item()) + cmath.exp(5j * th[1].item()))  # |S_1| = |e^{i r theta_0}| = 1
    assert b[2].item() == pytest.approx((s1 + s2) / 2)
    sp = C.spectrum(cm, 4.0)
    P, L = cm.config.head_dim // 2, cm.config.max_seq_len
    assert sp.theta == 10000.0 and sp.bound[0].item() == pytest.approx((P + 1) / 2)
    assert sp.bound[L // 2:L].mean() < 0.7 * sp.bound[0]  # it decays with distance
    slow = C.spectrum(cm, math.log10(500_000))
    assert slow.theta == 500_000.0 and slow.bound[L // 2:L].mean() > sp.bound[L // 2:L].mean()
    assert "outside 1 to 7" in C.spectrum(cm, 9).notice


def test_variants_leave_the_course_model_alone(cm):
    before = {k: v.clone() for k, v in cm.model.state_dict().items()}
    cfg_before = cm.config.to_dict()
    cos_before = cm.model.rope_cos.clone()
    off = C.variant_model(cm.model, "none")
    big = C.variant_model(cm.model, "rope", 500_000.0)
    C.compare_attention(cm, TEXT, 1, 0, "500000")
    assert off.config.position == "none" and big.config.rope_theta == 500_000.0
    assert cm.config.to_dict() == cfg_before and cm.config.position == "rope"
    assert cm.config.rope_theta == cfg_before["rope_theta"]
    for k, v in cm.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    torch.testing.assert_close(cm.model.rope_cos, cos_before, rtol=0, atol=0)
    # copies, not views: the variants own their weights, equal to the course model's
    w, w_off = cm.model.layers[0].self_attn.q_proj.weight, off.layers[0].self_attn.q_proj.weight
    assert torch.equal(w, w_off) and w.data_ptr() != w_off.data_ptr()
    assert C.variant_model(cm.model, "none") is off  # cached
    with pytest.raises(ValueError, match="Unknown comparison"):
        C.variant_of(cm, "banana")


def test_compare_attention_and_the_loss_change_are_real_and_finite(cm):
    r = C.compare_attention(cm, TEXT, 1, 1, "none")
    assert torch.allclose(r.trained.sum(-1), torch.ones(r.trained.shape[0]), atol=1e-5)
    assert torch.triu(r.variant, 1).abs().max() == 0  # causal in both
    assert r.variant_name == "RoPE switched off"
    layer, head, tv = C.most_changed_head(cm, TEXT, "none")
    assert 0 <= layer < cm.config.n_layers and 0 <= head < cm.config.n_heads and 0 < tv <= 1

    calls = []
    loss = C.loss_change(cm, "none", on_window=lambda done, total: calls.append((done, total)))
    assert all(math.isfinite(x) for x in (loss.trained, loss.variant, loss.delta, loss.trained_per_char))
    assert loss.delta == pytest.approx(loss.variant - loss.trained)
    assert loss.tokens % cm.config.max_seq_len == 0 and loss.tokens > 0
    if calls:  # not cached by an earlier test: progress went 1..2N of 2N
        assert calls[-1][0] == calls[-1][1]
    # the trained model's number is what llama.train measures on the same text
    ref = loss_per_char(cm.model, cm.tokenizer, C.validation_slice(cm))
    assert loss.trained == pytest.approx(ref["per_token"], abs=1e-4)
    assert loss.trained_per_char == pytest.approx(ref["per_char"], abs=1e-4)

    answer = C.reveal(cm, "none", "lot")
    assert ("✅" in answer) == (C.change_size(loss.delta) == "lot") and f"{loss.delta:+.3f}" in answer
    with pytest.raises(ValueError, match="prediction"):
        C.reveal(cm, "none", None)
