"""Lesson 4 computations (no UI): invariances of both norms, the traced norms of the course model,
timing, and pre- against post-norm gradients."""

import math

import numpy as np
import pytest
import torch

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
    with pytest.raises(ValueError, match="positive"):
        C.invariance(cm, res, token=1, shift=0.0, scale=0.0)
    with pytest.raises(ValueError, match="finite"):
        C.invariance(cm, res, token=1, shift=float("nan"), scale=1.0)
    inv = C.invariance(cm, res, token=10_000, shift=0.0, scale=1.0)
    assert "does not exist" in inv.notice and f"token {len(res.ids) - 1}" in inv.label
    with pytest.raises(ValueError, match="empty"):
        C.load_text(cm, "   \n ")


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
    with pytest.raises(ValueError, match="norms"):
        C.site_figure(cm, res, len(res.sites))


def test_reveals_compute_the_answer(cm, res):
    ranked = C.stream_rms_by_depth(res)
    assert [n for n, _ in ranked] == C.rms_question_choices(cm.config)
    best = max(ranked, key=lambda r: r[1])[0]
    md = C.reveal_largest_rms(res, best)
    assert "right." in md and f"**{best}**" in md
    md = C.reveal_shift(cm, res, "only RMSNorm's")
    assert "right." in md and "**only RMSNorm's**" in md


def test_timing_and_operation_counts():
    timings = C.time_norms("cpu", [64, 256], rows=32, max_repeats=3, min_repeats=3, inner=2)
    assert [(t.kind, t.dim) for t in timings] == [("RMSNorm", 64), ("LayerNorm", 64), ("RMSNorm", 256),
                                                 ("LayerNorm", 256)]
    assert all(len(t.times_ms) == 3 and t.mean > 0 and t.std >= 0 for t in timings)
    table = C.timing_table(timings)
    assert "32 × 256" in table and "×" in table.splitlines()[-1]
    assert C.op_counts() == (7, 4)
    assert "**7**" in C.operation_table() and "**4**" in C.operation_table()


def test_post_norm_gradients_differ_from_pre_norm_and_are_finite():
    grad_mode = torch.is_grad_enabled()
    pre, post = C.compare_placements(6, 2.0)
    assert torch.is_grad_enabled() == grad_mode
    for prof in (pre, post):
        assert len(prof.layer_grad) == len(prof.resid_grad) == 6
        assert all(math.isfinite(g) and g > 0 for g in prof.layer_grad + prof.resid_grad)
    assert not np.allclose(pre.layer_grad, post.layer_grad, rtol=0.05)
    assert post.spread > pre.spread  # post-norm's gradients compound across layers
    again, _ = C.compare_placements(6, 2.0)
    assert again.layer_grad == pre.layer_grad  # same seed, same weights, same numbers
    small_pre, small_post = C.compare_placements(6, C.course_init_gain())
    assert small_pre.spread < 1.5 and small_post.spread < 1.5  # tiny weights: both tame
    with pytest.raises(ValueError):
        C.compare_placements(0, 1.0)
    fig = C.placement_figure(pre, post, 2.0)
    assert "post-norm" in fig.layout.title.text and len(fig.data) == 4
