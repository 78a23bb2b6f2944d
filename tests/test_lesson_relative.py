"""Lesson 'Relative positions and the first Transformer': Shaw et al.'s attention (keys and values, clipped) against
plain attention, what each scheme's scores depend on, and internal covariate shift measured on the snapshots."""

import torch

from lessons.relative import compute as C
from llama.model import manual_attention


def test_shaw_attention_without_relative_vectors_is_plain_causal_attention():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 7, 8).unbind(0)
    zero = torch.zeros(2 * 3 + 1, 8)
    z, alpha, value_term = C.shaw_attention(q, k, v, zero, zero, 3)
    mask = torch.tril(torch.ones(7, 7, dtype=torch.bool))
    want, att = manual_attention(q[None, None], k[None, None], v[None, None], mask)
    torch.testing.assert_close(z, want[0, 0])
    torch.testing.assert_close(alpha, att[0, 0])
    assert value_term.abs().max() == 0


def test_shaw_adds_the_clipped_vector_to_keys_and_values():
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 6, 4).unbind(0)
    a_k, a_v = torch.randn(2, 5, 4).unbind(0)  # k = 2: distances -2..2
    z, alpha, value_term = C.shaw_attention(q, k, v, a_k, a_v, 2)
    i = 5  # the last query: keys at distance 5, 4, 3 all clip to -2 (index 0)
    scores = torch.stack([(q[i] @ (k[j] + a_k[max(-2, min(2, j - i)) + 2])) / 2.0 for j in range(6)])
    torch.testing.assert_close(alpha[i], torch.softmax(scores, 0))
    want = sum(alpha[i, j] * (v[j] + a_v[max(-2, min(2, j - i)) + 2]) for j in range(6))
    torch.testing.assert_close(z[i], want)


def test_relative_and_rotary_scores_depend_on_distance_only(cm, stories_cm):
    for m in (cm, stories_cm):
        r = C.position_scores(m, "Once upon a time, in a kingdom", 4)
        assert r.diagonal_spread["rotary"] < 1e-4 and r.diagonal_spread["relative"] < 1e-5
        assert r.diagonal_spread["absolute"] > 1e-2
        assert r.far_equal < 1e-5  # two distances beyond k score the same
        assert 0 < r.value_share
    md = C.reveal_tables(cm, "To be, or not to be", C.TABLE_CHOICES[0])
    assert md.startswith("❌") and "2k+1 = **9**" in md and "-4 to 0" in md


def test_a_clipping_distance_out_of_range_is_clamped_with_a_notice(cm):
    r = C.position_scores(cm, "To be", float("nan"))
    assert r.clip_k == 4 and r.notice
    r = C.position_scores(cm, "To be", 1e9)
    assert r.clip_k == C.MAX_CLIP and "16" in r.notice


def test_block_inputs_drift_during_training_and_the_norm_holds_them():
    d = C.covariate_drift()
    assert d.steps[0] == 0 and len(d.steps) >= 5
    drift_in = max(max(r) / min(r) for r in d.rms_in)
    drift_out = max(max(r) / min(r) for r in d.rms_out)
    assert drift_in > 2 and drift_out < drift_in
    assert "internal covariate shift" in C.drift_readout(d)
