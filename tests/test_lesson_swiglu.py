"""Lesson 5 computations (no UI): activation curves, the hidden-size recipe, the course model's gates."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import STORIES
from lessons.grading import NO_PICK
from lessons.course import CourseModel
from lessons.inputs import LessonError
from lessons.swiglu import compute as C
from llama import Llama
from llama.checkpoint import config_from_hf
from llama.config import LlamaConfig

TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?"


@pytest.fixture(scope="module", params=["course model", "stories260K"])
def cm(request, cm, stories_cm):
    """Every test of this module runs on the course model and on stories260K (a real Llama 2-architecture
    checkpoint: 8 query heads / 4 K/V heads, HF tokenizer, no held-out text of its own), as the picker loads it."""
    return cm if request.param == "course model" else stories_cm


@pytest.fixture(scope="module")
def gates(cm):
    return C.load_gates(cm, TEXT)


def test_hidden_size_steps_llama2_7b_and_course_model(cm):
    s = C.preset_steps("llama2-7b")
    assert (s.dim, s.four_d, s.two_thirds, s.hidden) == (4096, 16384, 10922, 11008)  # Meta's published sizes
    assert s.hidden == LlamaConfig.from_name("llama2-7b").hidden_dim == s.stored
    assert s.relu_params == 8 * 4096 ** 2 and s.swiglu_params == 3 * 4096 * 11008
    course, note = C.course_steps(cm)
    assert course.hidden == cm.config.hidden_dim and course.dim == cm.config.dim
    assert C.preset_steps("llama3-8b").hidden == 14336  # with ffn_dim_multiplier 1.3 (published)
    table, _, notice, d, m = C.hidden_overview(cm, 512, 64)
    assert "11,008" in table and "your choice" in table and f"**{cm.config.hidden_dim:,}**" in table
    assert notice == "" and (d, m) == (512, 64)
    assert C.hidden_overview(cm)[3:] == (None, None)  # no numbers: no learner column


def test_course_model_note_is_computed_from_its_config(cm):
    """Issue 10 #1, #2: the config stores multiple_of, and the readout computes what rounding did."""
    cfg = json.loads((cm.path / "config.json").read_text())
    stored = cfg.get("inside_llama", {}).get("multiple_of")
    d, H = cm.config.dim, cm.config.hidden_dim
    _, note = C.course_steps(cm)
    base = (8 * d) // 3  # floor(2/3 * 4d), by another route
    # the powers of two that reproduce H, characterised without the recipe: H is a multiple of m, and
    # H is the first multiple of m at or above floor(2/3 * 4d)
    fits = [2 ** k for k in range(13) if H % 2 ** k == 0 and H - 2 ** k < base <= H]
    assert C.powers_that_fit(cm.config) == fits
    if stored is not None:
        assert f"stores multiple_of = {stored}" in note and "not multiple_of" not in note
    ratio = 3 * H / (8 * d)
    assert f"**{ratio:.3f}**" in note
    if H == base:
        assert "rounding adds nothing" in note and "further from 1" not in note
    else:
        assert f"adds {H - base:,} hidden units" in note


def test_hidden_size_note_for_a_checkpoint_without_multiple_of():
    """stories260K (a Hugging Face checkpoint) stores intermediate_size 172 only; llama2.c trained it with
    multiple_of = 4, the smallest power of two that gives 172 from d = 64."""
    cfg = config_from_hf(json.loads((STORIES / "config.json").read_text()))
    cm = CourseModel(Llama(cfg), None, STORIES)
    steps, note = C.course_steps(cm)
    assert steps.multiple_of == 4 and steps.hidden == 172
    assert "but not multiple_of" in note and "adds 2 hidden units" in note


@pytest.mark.parametrize("d, m, want, words", [
    (0, 256, (1, 256), "out of range"), (4096, -1, (4096, 1), "out of range"), ("abc", 8, None, "not a number"),
    (10.5, 8, (10, 8), "not a whole number"), (float("nan"), 64, None, "not a number"),
    (float("inf"), 64, (C.MAX_WIDTH, 64), "out of range"), (1e20, 64, (C.MAX_WIDTH, 64), "out of range"),
    (1.8e308, 4.5, (C.MAX_WIDTH, 4), "out of range")])
def test_hidden_overview_clamps_bad_numbers_with_a_notice(cm, d, m, want, words):
    table, note, notice, d_used, m_used = C.hidden_overview(cm, d, m)
    assert words in notice and "your choice" in table
    if want is None:  # not a number: the model's own width
        want = (cm.config.dim, m)
    assert (d_used, m_used) == want


def test_activation_curves():
    c = C.activation_curves(1.0)
    x = torch.from_numpy(c.x)
    assert np.allclose(c.silu, (x * torch.sigmoid(x)).numpy(), atol=1e-6)
    assert np.allclose(c.swish, c.silu, atol=1e-6)  # beta = 1 is SiLU
    assert np.allclose(c.gelu, F.gelu(x).numpy()) and np.allclose(c.relu, np.maximum(c.x, 0))
    assert abs(c.min_x + 1.2785) < 1e-3 and abs(c.min_y + 0.27846) < 1e-4
    assert c.swish.min() >= c.min_y - 1e-6  # no grid point below the analytic minimum
    steep = C.activation_curves(10.0)
    assert np.abs(steep.swish - steep.relu).max() < 0.03  # large beta approaches ReLU
    flat = C.activation_curves(0.0)
    assert np.allclose(flat.swish, flat.x / 2) and "straight line" in C.describe_curves(flat)
    with pytest.raises(LessonError):
        C.activation_curves(-1)
    for bad, used in ((float("nan"), 1.0), (-1, 0.0), (1e20, C.MAX_BETA), ("abc", 1.0), (float("inf"), C.MAX_BETA)):
        _, _, md, b = C.curves_view(bad)
        assert b == used and md.startswith("⚠️") and f"β = {used:g}" in md
    fig = C.curves_figure(C.activation_curves(2.0))
    assert "β = 2" in fig.layout.title.text and len(fig.data) == 5


def test_gate_surface_is_swish_times_up():
    a, b, z = C.gate_surface(1.0)
    assert z.shape == (len(b), len(a))
    assert np.allclose(z, b[:, None] * (a * (1 / (1 + np.exp(-a))))[None, :], atol=1e-5)
    assert np.allclose(z[np.argmin(np.abs(b))], 0, atol=1e-6)  # b = 0: nothing passes
    assert np.abs(z[:, 0]).max() < 0.3  # a = -4: the gate is (almost) shut


def test_gates_are_the_traced_silu_of_gate_proj(cm, gates):
    assert len(gates.layers) == cm.config.n_layers
    with torch.no_grad():
        tr = cm.model(torch.tensor([gates.ids]), trace=True).trace
        for l, lt in enumerate(tr.layers):
            recomputed = F.silu(cm.model.layers[l].mlp.gate_proj(lt.ffn_norm_out))[0]  # (T, H)
            assert np.allclose(gates.layers[l], recomputed.numpy(), atol=1e-5)
    assert gates.layers[0].shape == (len(gates.ids), cm.config.hidden_dim)


def test_near_zero_fractions_in_unit_interval_and_monotone(gates):
    thresholds = [0.005, 0.02, 0.05, 0.1, 0.3, 0.5]
    fracs = np.array([C.near_zero_fractions(gates, t) for t in thresholds])  # (thresholds, L)
    assert ((fracs >= 0) & (fracs <= 1)).all()
    assert (np.diff(fracs, axis=0) >= 0).all()
    assert fracs[-1].min() > fracs[0].max() or fracs[-1].mean() > fracs[0].mean()
    silent = np.array([C.silent_units(gates, t) for t in thresholds])
    assert (np.diff(silent, axis=0) >= 0).all() and (silent <= gates.layers[0].shape[1]).all()
    neg = C.negative_fractions(gates)
    assert ((neg > 0) & (neg < 1)).all()
    assert min(a.min() for a in gates.text) >= -0.2785  # SiLU's floor
    with pytest.raises(LessonError):
        C.near_zero_fractions(gates, 0)
    fig = C.gates_figure(gates, 0.1)
    bars = next(t for t in fig.data if t.type == "bar")
    assert np.allclose(bars.y, C.near_zero_fractions(gates, 0.1))


def test_gates_view_repairs_text_and_threshold(cm):
    msg, fig, md, t = C.gates_view(cm, "ab\ud800c", 1.8e308)
    assert "U+FFFD" in msg and "out of range" in msg and t == C.THRESHOLD_MAX and f"< {t:g}" in md
    msg, _, _, t = C.gates_view(cm, TEXT, float("nan"))
    assert "not a number" in msg and t == 0.05
    with pytest.raises(LessonError, match="empty"):
        C.gates_view(cm, "  ", 0.05)


def _independent_gates(cm, text):
    """silu(gate_proj(ffn_norm_out)) per layer, recomputed from the model's own modules (BOS row dropped)."""
    ids = C.load_gates(cm, text).ids
    with torch.no_grad():
        tr = cm.model(torch.tensor([ids]), trace=True).trace
        return [F.silu(cm.model.layers[l].mlp.gate_proj(lt.ffn_norm_out))[0, 1:].numpy()
                for l, lt in enumerate(tr.layers)]


def test_reveals_grade_against_an_independent_count(cm, gates):
    """Each grade is computed here from the recomputed gates, not from what the reveal says: changing the
    reveal's answer (a shifted floor or bucket edge) makes this fail."""
    layers = _independent_gates(cm, TEXT)
    lowest = min(float(a.min()) for a in layers)
    assert -0.2785 <= lowest < 0  # SiLU's floor: the measurement the floor question is about
    for choice in C.FLOOR_CHOICES:
        md = C.reveal_floor(gates, choice)
        assert md.startswith("✅ Right") == (choice == "between −0.28 and 0"), choice
        assert f"{lowest:.4f}" in md and C.Q_FLOOR.misconception in md
    neg = float(np.mean(np.concatenate([(a < 0).ravel() for a in layers])))
    edges = [0.1, 0.3, 0.5]  # the choices' bucket edges, as the question states them
    answer = C.NEGATIVE_CHOICES[sum(neg >= e for e in edges)]
    for choice in C.NEGATIVE_CHOICES:
        md = C.reveal_negative(gates, choice)
        assert md.startswith("✅ Right") == (choice == answer) and f"{neg:.1%}" in md
    for none in (None, ""):  # no pick: the measurement, no grade
        md = C.reveal_floor(gates, none)
        assert md.startswith(NO_PICK) and "✅" not in md and "❌" not in md and f"{lowest:.4f}" in md
    with pytest.raises(LessonError, match="not one of"):  # only an API call can send it; the page shows the notice
        C.reveal_floor(gates, "layer 99")
    md = C.reveal_negative(gates, None)
    assert md.startswith(NO_PICK) and f"{neg:.1%}" in md


def test_the_page_refills_every_model_dependent_output(cm):
    """app.pages.swiglu.refresh (what the page shows when opened with a picked model): the hidden-size table
    and gates of this model, the token limit in the text box's help."""
    from app.pages import swiglu as page

    msg, table, note, text, gates_msg, gates_fig, gates_md = page.refresh(cm)
    L, H = cm.config.n_layers, cm.config.hidden_dim
    assert msg == "" and f"**{H:,}**" in table and f"{H:,}" in note
    assert f"at most {min(C.MAX_TOKENS, cm.config.max_seq_len)} tokens" in text["info"]
    bars = next(t for t in gates_fig.data if t.type == "bar")
    assert len(bars.y) == L and f"(of {H})" in gates_md and gates_md.count("\n| ") == L
