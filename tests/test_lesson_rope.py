"""Lesson 3 (positional encoding and RoPE): the pure compute functions, on the course model's real vectors."""

import cmath
from pathlib import Path
import math

import numpy as np
import pytest
import torch

from conftest import ROOT
from lessons.inputs import LessonError
from lessons.rope import compute as C
from llama import Llama, rope_frequencies
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
        with pytest.raises(LessonError, match="empty"):
            fn("   ")
        with pytest.raises(LessonError, match="empty"):
            fn(None)
    # half of a surrogate pair: replaced, said, and the figure is still drawn
    r = C.shuffle_scores(cm, "ab\ud800c to be or not", seed=1)
    assert "U+FFFD" in r.notice and r.diff_none < 1e-5
    with pytest.raises(LessonError, match="at least two tokens"):
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


HOSTILE = [float("nan"), float("inf"), -float("inf"), 1e20, 1.8e308, -5, 4.5, "abc", None, 2**70]


@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_hostile_numbers_are_clamped_with_a_notice(cm, bad):
    """Every numeric input of every function: a value in range comes out, and the notice says what was replaced."""
    c = cm.config
    L, P = c.max_seq_len, c.head_dim // 2
    r = C.rotate(cm, TEXT, bad, bad, bad, bad, bad, bad, bad)
    assert 0 <= r.m < L and 0 <= r.n <= r.m and 0 <= r.pair < P and r.notice
    assert math.isfinite(r.angle) and f"{r.angle:.4f}" in r.readout
    rel = C.relative_shift(cm, TEXT, 0, 0, 3, 1, 10, 5, bad)
    assert -5 <= rel.shift <= L - 1 - 10 and (rel.notice or bad == -5)  # -5 is a valid shift here
    sch = C.schemes(cm, TEXT, bad, bad)
    assert 2 <= sch.rope.shape[0] <= L and sch.notice
    sh = C.shuffle_scores(cm, TEXT, bad, bad)
    assert 0 <= sh.seed <= C.SEED_MAX and sh.diff_none < 1e-5 and (sh.notice or bad is None)
    sp = C.spectrum(cm, bad)
    assert 10.0 <= sp.theta <= 1e7 and (sp.notice or bad in (None, 4.5))  # 4.5 is a valid log10
    seed, notice = C.next_seed(bad)
    assert 0 <= seed <= C.SEED_MAX and (notice or bad is None)
    cmp = C.compare_attention(cm, TEXT, bad, bad, bad)
    assert cmp.notice and cmp.variant_name == "RoPE switched off"  # an unknown comparison: RoPE off, said so


def test_shuffle_numbers_stay_json_safe():
    assert C.next_seed(C.SEED_MAX) == (0, "")  # wraps instead of growing past 64 bits
    s, notice = C.next_seed(2**64 + 5)
    assert s == 0 and "out of range" in notice
    assert C.next_seed(41) == (42, "")


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
    hs, L = cm.config.head_dim, cm.config.max_seq_len
    P = hs // 2
    assert sp.theta == 10000.0 and sp.bound[0].item() == pytest.approx((P + 1) / 2)
    assert sp.bound[L // 2:L].mean() < 0.7 * sp.bound[0]  # it decays with distance

    # the readout's values at the context length, against the bound summed here with complex numbers
    def direct(theta, r):
        freqs = [theta ** (-2 * i / hs) for i in range(P)]
        return sum(abs(sum(cmath.exp(1j * r * f) for f in freqs[:j])) for j in range(1, P + 1)) / P
    slow = C.spectrum(cm, math.log10(500_000))
    for th, res in ((10_000.0, sp), (500_000.0, slow)):
        assert res.bound[L].item() == pytest.approx(direct(th, L), rel=1e-5)  # float32 frequencies
        assert f"| {th:,.0f} (" in res.readout and f"{direct(th, L):.2f}" in res.readout
    assert slow.theta == 500_000.0
    # the page no longer says a larger rope_theta keeps more at long range: with this head size it need not
    if hs == 32 and L == 256:
        assert direct(500_000.0, L) < direct(10_000.0, L)  # 36% against 38% of the distance-0 value
    assert "out of range (1 to 7)" in C.spectrum(cm, 9).notice
    # the curve names come from the config: the model's own rope_theta is "this model"
    names = [t["name"] for t in sp.figure.to_dict()["data"] if t.get("showlegend") is not False]
    assert any(f"{cm.config.rope_theta:,.0f}" in n and "this model" in n for n in names)
    assert f"positions 0 to {L - 1}" in sp.readout


def test_spectrum_labels_follow_another_config(cm):
    """The same code for a model trained at rope_theta 500,000: the labels follow its config, not Llama 2's."""
    other = Llama(cm.config.replace(rope_theta=500_000.0)).eval()
    fake = C.CourseModel(other, cm.tokenizer, cm.path)
    sp = C.spectrum(fake)  # opens at the model's own value
    names = [t["name"] for t in sp.figure.to_dict()["data"] if t.get("showlegend") is not False]
    assert sp.theta == 500_000.0 and any("500,000 (this model, Llama 3" in n for n in names)
    assert not any("10,000" in n and "this model" in n for n in names)
    assert C.theta_question_variant(fake) != "500000"


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
    # views, not copies: a variant shares every weight (a 1B model would cost 4 GB per variant), and only its RoPE
    # tables are its own
    for (name, p), p_off in zip(cm.model.named_parameters(), off.parameters()):
        assert p.data_ptr() == p_off.data_ptr() and p is not p_off, name
    assert big.rope_cos.data_ptr() != cm.model.rope_cos.data_ptr()
    assert not torch.equal(big.rope_cos, cm.model.rope_cos)
    assert C.variant_model(cm.model, "none") is off  # cached
    with pytest.raises(ValueError, match="Unknown comparison"):
        C.variant_of(cm, "banana")


def independent_variant(cm, **changes) -> Llama:
    """The same weights in a model with one config switch changed, built here without the lesson's code."""
    model = Llama(cm.config.replace(**changes))
    model.load_state_dict(cm.model.state_dict())
    return model.eval()


def reference_losses(cm, **changes) -> tuple[dict, dict]:
    """llama.train's loss (its own windowing, not the lesson's) of the trained model and of the variant, on the
    slice the page names: the first LOSS_CHARS characters of val_excerpt.txt beside the model, or, for a model
    directory without one, of the course model's shipped excerpt (assets/model/val_excerpt.txt)."""
    own = cm.path / "val_excerpt.txt"
    text = (own if own.exists() else ROOT / "assets" / "model" / "val_excerpt.txt").read_text("utf-8")[:C.LOSS_CHARS]
    return (loss_per_char(cm.model, cm.tokenizer, text),
            loss_per_char(independent_variant(cm, **changes), cm.tokenizer, text))


def expected_grade(delta: float) -> str:
    """The page's bins, written out here: below 0.05 nats/token 'barely', below 0.5 'little', else 'lot'."""
    return "barely" if delta < 0.05 else "little" if delta < 0.5 else "lot"


def test_compare_attention_is_real(cm):
    r = C.compare_attention(cm, TEXT, 1, 1, "none")
    assert torch.allclose(r.trained.sum(-1), torch.ones(r.trained.shape[0]), atol=1e-5)
    assert torch.triu(r.variant, 1).abs().max() == 0  # causal in both
    assert r.variant_name == "RoPE switched off"
    layer, head, tv = C.most_changed_head(cm, TEXT, "none")
    assert 0 <= layer < cm.config.n_layers and 0 <= head < cm.config.n_heads and 0 < tv <= 1


def test_loss_change_matches_an_independent_measurement_and_leaves_the_model_alone(cm, monkeypatch):
    C.clear_caches()  # cold: the progress callback must run, whatever ran before
    # the shared model must never be switched between train() and eval() by a handler (nn.Module.eval calls train)
    monkeypatch.setattr(cm.model, "train", lambda *a: pytest.fail("the shared model's train()/eval() was called"))
    calls = []
    loss = C.loss_change(cm, "none", on_window=lambda done, total: calls.append((done, total)))
    monkeypatch.undo()
    n_win = loss.tokens // cm.config.max_seq_len
    assert n_win >= 1 and calls == [(i, 2 * n_win) for i in range(1, 2 * n_win + 1)]

    ref, ref_off = reference_losses(cm, position="none")
    assert loss.trained == pytest.approx(ref["per_token"], abs=1e-4)
    assert loss.variant == pytest.approx(ref_off["per_token"], abs=1e-4)  # RoPE off, built and scored elsewhere
    assert loss.delta == pytest.approx(ref_off["per_token"] - ref["per_token"], abs=2e-4)
    assert loss.trained_per_char == pytest.approx(ref["per_char"], abs=1e-4)
    assert loss.tokens == ref["tokens"] and loss.chars == ref["chars"]
    # the readout names the text and its size
    assert "val_excerpt.txt" in loss.readout and f"{loss.tokens:,} tokens" in loss.readout
    assert f"{C.LOSS_CHARS:,} characters" in loss.readout


@pytest.mark.parametrize("variant,changes", [("none", dict(position="none")),
                                             ("500000", dict(rope_theta=500_000.0))])
def test_reveal_grades_against_an_independent_measurement(cm, variant, changes):
    ref, ref_var = reference_losses(cm, **changes)
    delta = ref_var["per_token"] - ref["per_token"]
    right = expected_grade(delta)
    if min(abs(delta - 0.05), abs(delta - 0.5)) < 1e-3:
        pytest.fail(f"delta {delta:.4f} sits on a bin edge: the test cannot tell the grades apart")
    answer = C.reveal(cm, variant, right)
    assert answer.startswith("✅") and f"{delta:+.3f}" in answer
    for wrong in set(C.PREDICTIONS) - {right}:
        assert C.reveal(cm, variant, wrong).startswith("❌")
    # no pick: the measurement, and a plain statement that nothing was picked
    none = C.reveal(cm, variant, None)
    assert none.startswith("You did not pick a prediction.") and f"{delta:+.3f}" in none and "✅" not in none
    with pytest.raises(LessonError, match="not one of"):  # only an API call can send it; the page shows the notice
        C.reveal(cm, variant, "banana")


def test_every_figure_and_the_loss_on_stories260k(stories_cm):
    """A real pretrained Llama with another shape (head size 8, context 512, GQA 8:4, its own tokenizer, no
    held-out text of its own): every main function of the page runs on it, and its limits come from its config."""
    cm, c = stories_cm, stories_cm.config
    assert (c.head_dim, c.max_seq_len, c.n_heads, c.n_kv_heads) == (8, 512, 8, 4)
    r = C.shuffle_scores(cm, TEXT, head=7, seed=3)
    assert r.diff_none < 1e-5 < r.diff_rope  # no positions: the shuffled scores are the same numbers, moved

    sch = C.schemes(cm, TEXT, 600, 40)  # past the context and past the clip limit: clamped with a notice
    assert sch.n_positions == 512 and sch.clip == C.shaw_clip_max(cm) == 32 and "out of range" in sch.notice

    rot = C.rotate(cm, TEXT, layer=4, head=7, q_token=5, k_token=3, m=511, n=500, pair=9)
    assert (rot.m, rot.n, rot.pair) == (511, 500, 3)  # head size 8: pairs 0..3
    assert rot.angles.shape == (512, 4)
    theta = rope_frequencies(8, c.rope_theta)
    assert rot.angle == pytest.approx(511 * float(theta[3]), rel=1e-6)
    rel = C.relative_shift(cm, TEXT, 4, 7, 5, 3, 20, 10, 1000)
    assert rel.shift == 511 - 20 and "outside the context (positions 0 to 511)" in rel.notice

    sp = C.spectrum(cm, None)
    assert sp.theta == c.rope_theta and len(sp.freqs) == 4 and "512-token context" in sp.readout

    cmp_ = C.compare_attention(cm, TEXT, 4, 7, "none")
    assert torch.allclose(cmp_.trained.sum(-1), torch.ones(cmp_.trained.shape[0]), atol=1e-5)
    layer, head, tv = C.most_changed_head(cm, TEXT, "none")
    assert 0 <= layer < 5 and 0 <= head < 8 and 0 < tv <= 1

    # no val_excerpt.txt of its own: the course's shipped excerpt, and the readout says so
    loss = C.loss_change(cm, "none")
    ref, ref_off = reference_losses(cm, position="none")
    assert loss.trained == pytest.approx(ref["per_token"], abs=1e-4)
    assert loss.variant == pytest.approx(ref_off["per_token"], abs=1e-4)
    assert loss.tokens == ref["tokens"] and loss.tokens // 512 >= 1
    assert "shipped excerpt `assets/model/val_excerpt.txt`" in loss.readout and "TinyShakespeare" in loss.readout
    assert "stories260K/` ships no held-out text" in loss.readout and "another domain" in loss.readout
    right = expected_grade(ref_off["per_token"] - ref["per_token"])
    assert C.reveal(cm, "none", right).startswith("✅")


def test_the_toy_rotates_one_2d_query_and_key_and_only_the_distance_matters():
    """Issue 21's toy: q and k rotated by the model's own RoPE code (one pair, one radian per position); every
    diagonal of the score table (one distance m - n) holds one value, and lengths are kept."""
    t = C.toy_rope(1, 0, 0.5, 1, 5, 2)
    assert torch.allclose(t.q_rot, torch.tensor([math.cos(5), math.sin(5)]), atol=1e-6)
    for d in range(-C.TOY_POSITIONS + 1, C.TOY_POSITIONS):
        diag = torch.diagonal(t.scores, offset=-d)  # entries with m - n = d
        assert float(diag.max() - diag.min()) < 1e-5
    assert abs(float(t.k_rot.norm()) - math.hypot(0.5, 1)) < 1e-6
    assert "out of range" in C.toy_rope(1, 0, 0, 1, 99, 0).notice


def test_lesson_text_fixes_of_issue_22():
    """Item 11: Llama 3.1's 128K context came with long-context pre-training (Llama 3 paper, section 3.4.2), not the
    rescaling alone; item 15: Shaw et al. add a relative vector to the values too (their eq. 3); item 23: the theta
    slider's label never says the same value twice."""
    from app.pages.rope import theta_label

    md = (Path(C.__file__).parent / "lesson.md").read_text(encoding="utf-8")
    assert "section 3.4.2" in md and "eq. 3" in md
    label = theta_label(10_000.0)
    assert label.count("10,000") == 1 and "500,000" in label


def test_loss_of_a_model_whose_context_is_longer_than_the_slice(cm):
    """A real Llama's context (2,048 to 131,072 positions) is longer than the validation slice: the slice is then one
    window (a TinyLlama-shaped model failed with 'fewer than one window of 2048')."""
    from llama.variant import shared_variant

    long = shared_variant(cm.model, cm.config.replace(max_seq_len=8192))
    r = C.slice_loss(cm, long, n_chars=600)
    n = len(cm.tokenizer.encode(C.validation_slice(cm, 600)))
    assert r["windows"] == 1 and r["tokens"] == n < 8192 and 0 < r["per_token"] < 10
