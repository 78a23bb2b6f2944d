"""Lesson 5 computations (no UI): activation curves, the hidden-size recipe, the course model's gates."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lessons.swiglu import compute as C
from llama.config import LlamaConfig

TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?"


@pytest.fixture(scope="module")
def gates(cm):
    return C.load_gates(cm, TEXT)


def test_hidden_size_steps_llama2_7b_and_course_model(cm):
    s = C.preset_steps("llama2-7b")
    assert (s.dim, s.four_d, s.two_thirds, s.hidden) == (4096, 16384, 10922, 11008)
    assert s.hidden == LlamaConfig.from_name("llama2-7b").hidden_dim == s.stored
    assert s.relu_params == 8 * 4096 ** 2 and s.swiglu_params == 3 * 4096 * 11008
    course, note = C.course_steps(cm)
    assert course.hidden == cm.config.hidden_dim and course.dim == cm.config.dim
    assert str(course.multiple_of) in note
    assert C.preset_steps("llama3-8b").hidden == 14336  # with ffn_dim_multiplier 1.3
    table, _ = C.hidden_overview(cm, 512, 64)
    assert "11,008" in table and "your choice" in table and f"**{cm.config.hidden_dim:,}**" in table
    for bad in ((0, 256), (4096, -1), ("abc", 8), (10.5, 8)):
        with pytest.raises(ValueError):
            C.hidden_overview(cm, *bad)


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
    with pytest.raises(ValueError):
        C.activation_curves(-1)
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
    thresholds = [0.005, 0.02, 0.05, 0.1, 0.3, 1.0]
    fracs = np.array([C.near_zero_fractions(gates, t) for t in thresholds])  # (thresholds, L)
    assert ((fracs >= 0) & (fracs <= 1)).all()
    assert (np.diff(fracs, axis=0) >= 0).all()
    assert fracs[-1].min() > fracs[0].max() or fracs[-1].mean() > fracs[0].mean()
    silent = np.array([C.silent_units(gates, t) for t in thresholds])
    assert (np.diff(silent, axis=0) >= 0).all() and (silent <= gates.layers[0].shape[1]).all()
    neg = C.negative_fractions(gates)
    assert ((neg > 0) & (neg < 1)).all()
    assert min(a.min() for a in gates.text) >= -0.2785  # SiLU's floor
    with pytest.raises(ValueError):
        C.near_zero_fractions(gates, 0)
    fig = C.gates_figure(gates, 0.1)
    bars = next(t for t in fig.data if t.type == "bar")
    assert np.allclose(bars.y, C.near_zero_fractions(gates, 0.1))


def test_reveals_compute_the_answer(gates):
    frac = C.near_zero_fractions(gates, 0.05)
    best = f"layer {int(frac.argmax())}"
    assert "right." in C.reveal_sparsest(gates, 0.05, best)
    overall = float(np.mean(np.concatenate([(a < 0).ravel() for a in gates.text])))
    md = C.reveal_negative(gates, C.negative_bucket(overall))
    assert "right." in md and f"{overall:.1%}" in md
