"""Lesson 4 computations (no UI): invariances of both norms, the traced norms of the course model,
timing, and pre- against post-norm gradients."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lessons.inputs import LessonError
from lessons.rmsnorm import compute as C

TEXT = "To be, or not to be, that is the question."


@pytest.fixture(scope="module")
def res(cm):
    return C.load_text(cm, TEXT)


def _plotted(fig, name):
    return np.asarray(next(t.y for t in fig.data if t.name == name), dtype=float)


def test_layernorm_ignores_shift_and_scale_rmsnorm_only_scale(cm, res):
    # a pure scale: both outputs stay put, up to eps (which does not scale with a, so small a shows it)
    for scale, tol in ((0.5, 1e-2), (2.0, 1e-3), (5.0, 1e-3)):
        inv = C.invariance(cm, res, token=4, shift=0.0, scale=scale)
        assert inv.ln_change < tol and inv.rms_change < tol
        x, xm, one, zero = (torch.from_numpy(inv.x), torch.from_numpy(inv.x_mod), torch.tensor(1.0),
                            torch.tensor(0.0))
        # without eps the written formulas are exactly invariant (float rounding aside)
        assert (C.layernorm_formula(xm, one, zero, 0.0) - C.layernorm_formula(x, one, zero, 0.0)).abs().max() < 1e-5
        assert (C.rmsnorm_formula(xm, one, 0.0) - C.rmsnorm_formula(x, one, 0.0)).abs().max() < 1e-5
    # shift and scale together: LayerNorm still ignores both, RMSNorm moves
    inv = C.invariance(cm, res, token=4, shift=1.5, scale=2.0)
    assert np.allclose(inv.x_mod, 2.0 * inv.x + 1.5, atol=1e-5)
    fig = C.invariance_figure(inv)
    ln, ln_ref = _plotted(fig, "LayerNorm(a·x + b)"), _plotted(fig, "LayerNorm(x)")
    rms, rms_ref = _plotted(fig, "RMSNorm(a·x + b)"), _plotted(fig, "RMSNorm(x)")
    assert np.abs(ln - ln_ref).max() < 1e-3  # the curves the learner sees, not just the summary numbers
    assert np.abs(rms - rms_ref).max() > 0.1
    assert math.isclose(np.abs(rms - rms_ref).max(), inv.rms_change, rel_tol=1e-6)
    # with g = 1 both outputs have unit RMS, and LayerNorm's has zero mean
    assert abs(np.sqrt((rms ** 2).mean()) - 1) < 1e-3 and abs(ln.mean()) < 1e-4
    md = C.describe_invariance(inv)
    assert "LayerNorm" in md and "RMSNorm" in md and f"{inv.rms_change:.3g}" in md


def test_invariance_vector_is_the_traced_residual_stream(cm, res):
    inv = C.invariance(cm, res, token=2, shift=0.0, scale=1.0)
    with torch.no_grad():
        tr = cm.model(torch.tensor([res.ids]), trace=True).trace
    layer = cm.config.n_layers // 2
    assert np.allclose(inv.x, tr.layers[layer].attn_in[0, 2].numpy(), atol=1e-6)
    assert inv.ln_change == 0 and inv.rms_change == 0


def test_invariance_bad_input(cm, res):
    inv = C.invariance(cm, res, token=1, shift=0.0, scale=0.0)
    assert inv.scale == C.SCALE_MIN and "must be positive" in inv.notice
    inv = C.invariance(cm, res, token=1, shift=float("nan"), scale=1.0)
    assert inv.shift == 0.0 and "not a number" in inv.notice
    inv = C.invariance(cm, res, token=10_000, shift=0.0, scale=1.0)
    assert "out of range" in inv.notice and inv.token == len(res.ids) - 1 and f"token {inv.token}" in inv.label
    with pytest.raises(LessonError, match="empty"):
        C.load_text(cm, "   \n ")
    with pytest.raises(LessonError, match="empty"):
        C.load_text(cm, None)
    assert "U+FFFD" in C.load_text(cm, "ab\ud800c to be").notice


HOSTILE = [float("nan"), float("inf"), -float("inf"), 1e20, 1.8e308, -5, 4.5, "abc", None, 2**70]


@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_hostile_numbers_are_clamped_with_a_notice(cm, res, bad):
    inv = C.invariance(cm, res, bad, bad, bad)
    assert 0 <= inv.token < len(res.ids) and -C.SHIFT_LIMIT <= inv.shift <= C.SHIFT_LIMIT
    assert C.SCALE_MIN <= inv.scale <= C.SCALE_LIMIT and inv.notice
    assert np.isfinite(inv.rms).all() and np.isfinite(inv.ln).all()
    i, notice = C.check_site(res, bad)
    assert 0 <= i < len(res.sites) and notice
    n, g, notice = C.check_depth_gain(bad, bad)
    assert 1 <= n <= C.MAX_DEPTH and C.MIN_GAIN <= g <= C.MAX_GAIN and notice


def test_norm_outputs_reproduce_traced_values(cm, res):
    cfg = cm.config
    assert len(res.sites) == 2 * cfg.n_layers + 1
    assert [s.module for s in res.sites[:2]] == ["layers.0.input_layernorm", "layers.0.post_attention_layernorm"]
    for s in res.sites:
        module = cm.model.get_submodule(s.module)
        with torch.no_grad():
            assert torch.allclose(module(s.x_in), s.x_out, atol=1e-6)  # the model's own module
        assert C.reproduce_error(cm, s) < 1e-5  # the lesson's written formula
        assert torch.equal(s.gain, module.weight.float())
    rin, rout = C.residual_rms(res)
    assert rin.shape == rout.shape == (len(res.sites), len(res.ids))
    st = C.site_stats(cm, res, 3)
    assert st.error < 1e-5 and st.gain_min <= st.gain_mean <= st.gain_max


def test_residual_figures(cm, res):
    fig = C.residual_overview_figure(res)
    boxes = [t for t in fig.data if t.type == "box"]
    assert len(boxes) == 2 and list(boxes[0].x) == [s.short for s in res.sites]
    rin, _ = C.residual_rms(res)
    assert np.allclose(boxes[0].median, np.median(rin[:, 1:], axis=1))
    fig = C.site_figure(cm, res, 0)
    hist = [t for t in fig.data if t.type == "scatter"]
    assert all(abs(sum(t.y) - 1) < 1e-6 for t in hist)  # fractions of all values
    i, notice = C.check_site(res, len(res.sites))
    assert i == len(res.sites) - 1 and "out of range" in notice


def expected_largest_rms(cm, ids) -> str:
    """Where the residual stream is largest, from a forward pass run here (not the lesson's trace or ranking)."""
    with torch.no_grad():
        tr = cm.model(torch.tensor([ids]), trace=True).trace
    streams = [lt.attn_in[0, 1:] for lt in tr.layers] + [tr.final_norm_in[0, 1:]]  # (T-1, C) each, BOS left out
    sizes = [float(x.pow(2).mean(-1).sqrt().mean()) for x in streams]
    names = [f"entering layer {i}" for i in range(len(tr.layers))] + ["after the last layer"]
    return names[int(np.argmax(sizes))]


def expected_shift_answer(cm, res, shift: float = 1.0) -> str:
    """Which norm's output moves when `shift` is added to the last token's vector, with torch's own layer_norm."""
    x = res.sites[C.invariance_site(cm)].x_in[-1].double()  # (C,)
    eps = cm.config.norm_eps
    ln = lambda v: F.layer_norm(v, v.shape, eps=eps)  # noqa: E731
    rn = lambda v: v / torch.sqrt(v.pow(2).mean() + eps)  # noqa: E731
    ln_moved = float((ln(x + shift) - ln(x)).abs().max()) > 1e-3
    rms_moved = float((rn(x + shift) - rn(x)).abs().max()) > 1e-3
    return {(True, True): "both", (True, False): "only LayerNorm's", (False, True): "only RMSNorm's",
            (False, False): "neither"}[(ln_moved, rms_moved)]


def test_reveals_grade_against_independent_measurements(cm, res):
    choices = C.rms_question_choices(cm.config)
    best = expected_largest_rms(cm, list(res.ids))
    assert C.reveal_largest_rms(cm, res, best).startswith("✅") and f"**{best}**" in C.reveal_largest_rms(cm, res, None)
    for wrong in set(choices) - {best}:
        assert C.reveal_largest_rms(cm, res, wrong).startswith("❌")
    none = C.reveal_largest_rms(cm, res, None)
    assert none.startswith("You did not pick a prediction.") and "mean per-token RMS" in none

    answer = expected_shift_answer(cm, res)
    assert answer == "only RMSNorm's"  # the lesson's claim, checked with torch's layer_norm, not the lesson's code
    assert C.reveal_shift(cm, res, answer).startswith("✅")
    for wrong in set(C.SHIFT_CHOICES) - {answer}:
        assert C.reveal_shift(cm, res, wrong).startswith("❌")
    assert C.reveal_shift(cm, res, None).startswith("You did not pick a prediction.")
    with pytest.raises(LessonError, match="not one of"):  # only an API call can send it; the page shows the notice
        C.reveal_shift(cm, res, "banana")


def test_timing_and_operation_counts():
    timings = C.time_norms("cpu", [64, 256], rows=32, max_repeats=3, min_repeats=3, inner=2)
    assert [(t.kind, t.dim) for t in timings] == [("RMSNorm", 64), ("LayerNorm", 64), ("RMSNorm", 256),
                                                 ("LayerNorm", 256)]
    assert all(len(t.times_ms) == 3 and t.mean > 0 and t.std >= 0 for t in timings)
    table = C.timing_table(timings)
    assert "32 × 256" in table and "×" in table.splitlines()[-1]
    assert C.op_counts() == (7, 4)
    assert "**7**" in C.operation_table() and "**4**" in C.operation_table()


def test_pre_and_post_norm_at_xavier_init_as_xiong_et_al():
    """Xiong et al. (2020), Theorem 1, at their initialisation (Xavier, gain 1): the last layer's W2 gradient does not
    shrink with depth in post-norm and shrinks like 1/sqrt(L) in pre-norm, so near the output post-norm's gradients
    are the larger. Checked against the models' own parameters and gradients, not the lesson's summary."""
    grad_mode = torch.is_grad_enabled()
    r = C.compare_placements(8, 1.0)
    assert torch.is_grad_enabled() == grad_mode
    assert r.notice == "" and r.gain == 1.0 and r.n_layers == 8
    for prof in (r.pre, r.post):
        assert len(prof.layer_grad) == len(prof.block_grad) == 8
        assert all(math.isfinite(g) and g > 0 for g in prof.layer_grad + prof.block_grad)
        assert all(w2 < blk for w2, blk in zip(prof.layer_grad, prof.block_grad))  # W2 is part of the block
    assert r.post.layer_grad[-1] > 1.5 * r.pre.layer_grad[-1]  # near the output, post-norm's gradient is larger
    assert all(b > a for a, b in zip(r.pre.layer_grad, r.post.layer_grad))  # at every layer
    last = [b / a for a, b in zip(r.pre.layer_grad, r.post.layer_grad)]
    assert last[-1] > last[0]  # and the ratio is larger at the output end than at the embeddings
    sw = r.sweep
    assert sw.depths == [1, 2, 4, 8, 16]
    assert 0.8 < sw.post[-1] / sw.post[0] < 1.25  # post-norm: level with depth
    assert sw.pre[-1] / sw.pre[0] < 0.5  # pre-norm: falls (1/sqrt(16) = 0.25)
    assert sw.pre[3] == pytest.approx(r.pre.layer_grad[-1]) and sw.post[3] == pytest.approx(r.post.layer_grad[-1])

    # the initialisation really is Xavier-uniform with the chosen gain: bound a = gain * sqrt(6 / (fan_in + fan_out))
    model = C.Llama(C.placement_config("post", 2))
    C.xavier_init_(model, 1.5, torch.Generator().manual_seed(0))
    w = model.layers[0].mlp.down_proj.weight.detach()  # (dim, hidden)
    a = 1.5 * math.sqrt(6 / sum(w.shape))
    assert w.abs().max() <= a and w.abs().max() > 0.95 * a and float(w.std()) == pytest.approx(a / math.sqrt(3), rel=0.05)

    again = C.compare_placements(8, 1.0)
    assert again.pre.layer_grad == r.pre.layer_grad  # same seed, same weights, same numbers
    small = C.compare_placements(6, 0.3)  # small weights: the sub-layers add little and the two models agree
    assert all(abs(b / a - 1) < 0.1 for a, b in zip(small.pre.layer_grad, small.post.layer_grad))
    clamped = C.compare_placements(0, float("nan"))
    assert clamped.n_layers == 1 and clamped.gain == 1.0 and "not a number" in clamped.notice
    fig = C.placement_figure(r)
    assert "post-norm" in fig.layout.title.text and len(fig.data) == 5
    table = C.describe_placements(r)
    assert f"| {r.post.layer_grad[-1] / r.pre.layer_grad[-1]:.2f} |" in table


def test_every_view_on_stories260k(stories_cm):
    """A real pretrained Llama of another shape (5 layers, width 64, its own tokenizer): every function of the page
    runs on it, with the norm sites, questions and widths taken from its config."""
    cm = stories_cm
    res = C.load_text(cm, TEXT)
    assert len(res.sites) == 2 * 5 + 1 and res.ids[0] == cm.tokenizer.bos_id
    assert all(s.x_in.shape == (len(res.ids), 64) and s.gain.shape == (64,) for s in res.sites)
    inv = C.invariance(cm, res, token=len(res.ids) - 1, shift=1.0, scale=2.0)
    assert inv.ln_change < 1e-3 < inv.rms_change and inv.x.shape == (64,)
    for i in range(len(res.sites)):
        assert C.site_stats(cm, res, i).error < 1e-4  # the written formula reproduces each of its norms
    C.site_figure(cm, res, C.invariance_site(cm))
    assert len(C.residual_overview_figure(res).data) > 0
    choices = C.rms_question_choices(cm.config)
    assert choices == [f"entering layer {l}" for l in range(5)] + ["after the last layer"]
    best = expected_largest_rms(cm, list(res.ids))
    assert C.reveal_largest_rms(cm, res, best).startswith("✅")
    answer = expected_shift_answer(cm, res)
    assert C.reveal_shift(cm, res, answer).startswith("✅")
    assert 64 in C.timing_dims(cm.config)


def test_the_toy_vector_and_the_length_question(cm, res):
    """Issue 21: one short vector through both norms (the model's formulas); RMSNorm's output has length sqrt(d),
    measured on the real stream; issue 22 items 12 and 22: the placement table says how far the pre-norm line ends
    above 1/sqrt(L), and the site readout counts the channels whose gain is above 1."""
    t = C.toy_norms("1, 2, 6, -1")
    x = torch.tensor([1.0, 2, 6, -1], dtype=torch.float64)
    assert np.allclose(t.rms, (x / x.pow(2).mean().add(C.TOY_EPS).sqrt()).numpy())
    assert np.allclose(t.layer, torch.nn.functional.layer_norm(x, (4,), eps=C.TOY_EPS).numpy())
    assert abs(np.linalg.norm(t.rms) - 2) < 1e-5 and abs(t.layer.mean()) < 1e-9
    assert "not a number" in C.toy_norms("1 x 3").notice and len(C.toy_norms("1 " * 20).x) == C.TOY_MAX
    assert C.reveal_length(cm, res, "√d").startswith("✅") and C.reveal_length(cm, res, "1: a unit vector").startswith("❌")
    assert "1/√L" in C.describe_placements(C.compare_placements(4, 1.0))
    st = C.site_stats(cm, res, C.invariance_site(cm))
    assert f"{st.above_one} of {st.channels} channels have g > 1" in C.describe_site(st)


def test_large_ratios_in_the_placement_table_are_grouped_not_raw():
    """Issue 22, item 23: the gradient table showed an unformatted 1938144.99."""
    assert C._ratio(1938144.99) == "1,938,145" and C._ratio(1.4142) == "1.41"
