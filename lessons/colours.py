"""Colour-vision checks for the course's figures: what a figure's colours look like to a learner with a colour-vision
deficiency, and whether they stay distinguishable.

- `simulate(rgb, kind)`: the colour as seen with full protanopia, deuteranopia or tritanopia, by the matrices of
  Machado, Oliveira & Fernandes (2009), "A Physiologically-based Model for Simulation of Color Vision Deficiency",
  IEEE TVCG 15(6), Table 1 at severity 1.0, applied to linear RGB.
- `lab(rgb)`: CIELAB (D65), so that lightness L* and differences ΔE (CIE76: Euclidean distance in L*a*b*; about
  2.3 is a just-noticeable difference, and marks on a plot need several times that) are perceptual.
- `figure_colours(fig)`: the colour scales and the trace colours a Plotly figure draws with.

A sequential scale passes when its lightness is monotone (so order reads without hue), a diverging one when it is
monotone on each side of its middle, for normal vision and for each simulated deficiency; a figure's distinct
trace colours pass when every pair stays ΔE apart under each of them.

    >>> round(lab("#ffffff")[0])
    100
    >>> [round(v) for v in simulate("#ff0000", "deutan")]  # pure red, seen without M cones: a dull olive
    [163, 144, 0]
"""

from __future__ import annotations

import numpy as np

# Machado et al. 2009, Table 1, severity 1.0 (dichromacy); rows map linear (R, G, B) to the simulated linear RGB.
MACHADO = {
    "protan": np.array([[0.152286, 1.052583, -0.204868],
                        [0.114503, 0.786281, 0.099216],
                        [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968],
                        [0.280085, 0.672501, 0.047413],
                        [-0.011820, 0.042940, 0.968881]]),
    "tritan": np.array([[1.255528, -0.076749, -0.178779],
                        [-0.078411, 0.930809, 0.147602],
                        [0.004733, 0.691367, 0.303900]]),
}
VISIONS = ("normal", *MACHADO)


def rgb(colour) -> np.ndarray:
    """A CSS colour as Plotly writes it ('#2563eb', '#abc', 'rgb(1, 2, 3)', 'rgba(1, 2, 3, 0.5)') -> (3,) 0..255."""
    c = str(colour).strip().lower()
    if c.startswith("#"):
        h = c[1:]
        if len(h) in (3, 4):
            h = "".join(ch * 2 for ch in h[:3])
        return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], dtype=float)
    if c.startswith("rgb"):
        parts = c[c.index("(") + 1:c.index(")")].split(",")
        return np.array([float(p) for p in parts[:3]], dtype=float)
    if c in NAMED:
        return rgb(NAMED[c])
    raise ValueError(f"colour {colour!r}: not a hex, rgb() or known CSS name")


NAMED = {"black": "#000000", "white": "#ffffff", "grey": "#808080", "gray": "#808080", "lightgrey": "#d3d3d3",
         "lightgray": "#d3d3d3", "red": "#ff0000", "green": "#008000", "blue": "#0000ff", "orange": "#ffa500",
         "purple": "#800080", "crimson": "#dc143c", "steelblue": "#4682b4", "darkorange": "#ff8c00",
         "royalblue": "#4169e1", "seagreen": "#2e8b57", "firebrick": "#b22222", "transparent": "#ffffff"}


def _linear(c: np.ndarray) -> np.ndarray:
    s = np.clip(c / 255.0, 0, 1)
    return np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)


def _srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0, 1)
    return 255.0 * np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def simulate(colour, kind: str) -> np.ndarray:
    """The colour as seen with the deficiency `kind` ('protan', 'deutan', 'tritan'; 'normal' returns it), 0..255."""
    c = rgb(colour) if not isinstance(colour, np.ndarray) else colour
    if kind == "normal":
        return c
    return _srgb(MACHADO[kind] @ _linear(c))


def lab(colour) -> np.ndarray:
    """CIELAB (L*, a*, b*) of an sRGB colour (D65 white)."""
    c = rgb(colour) if not isinstance(colour, np.ndarray) else colour
    lin = _linear(c)
    xyz = np.array([[0.4124564, 0.3575761, 0.1804375],
                    [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]]) @ lin
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def delta_e(a, b, kind: str = "normal") -> float:
    """CIE76 colour difference of two colours as seen with `kind` of vision."""
    return float(np.linalg.norm(lab(simulate(a, kind)) - lab(simulate(b, kind))))


def scale_colours(scale, n: int = 11) -> list[str]:
    """n colours evenly along a Plotly colour scale (a name such as 'Viridis' or 'RdBu_r', or [[0, c], ..., [1, c]])."""
    from plotly.colors import get_colorscale, sample_colorscale

    if isinstance(scale, str):
        scale = get_colorscale(scale)
    return sample_colorscale([[float(p), c] for p, c in scale], list(np.linspace(0, 1, n)), colortype="rgb")


def lightness_shape(colours: list, kind: str = "normal", tol: float = 0.5) -> str:
    """'monotone' when L* only rises or only falls along the colours, 'diverging' when it rises then falls (or
    falls then rises) with the turn in the middle third, else 'mixed'. Steps smaller than `tol` count as flat."""
    L = np.array([lab(simulate(c, kind))[0] for c in colours])
    d = np.diff(L)
    if np.all(d >= -tol) or np.all(d <= tol):
        return "monotone"
    turn = int(np.argmax(L)) if L[len(L) // 2] > (L[0] + L[-1]) / 2 else int(np.argmin(L))
    n = len(L)
    left, right = np.diff(L[:turn + 1]), np.diff(L[turn:])
    if n // 3 <= turn <= n - 1 - n // 3 and (
            (np.all(left >= -tol) and np.all(right <= tol)) or (np.all(left <= tol) and np.all(right >= -tol))):
        return "diverging"
    return "mixed"


def _stepped(scale) -> bool:
    """A scale made of flat steps ([[0, a], [0.25, a], [0.25, b], ...]): a set of categories, not a gradient."""
    if isinstance(scale, str) or len(scale) < 4:
        return False
    colours = [c for _, c in scale]
    return all(colours[i] == colours[i + 1] for i in range(0, len(colours) - 1, 2))


def figure_colours(fig) -> tuple[list, list[str]]:
    """(colour scales, distinct categorical colours) of a Plotly figure (go.Figure, dict or JSON text): the scales
    of its traces and colour axes, and the single colours of its traces (marker, line, or a list of bar colours;
    the steps of a stepped scale count as categories). Colours given as numbers (mapped through a scale) are not
    categorical colours."""
    import json

    if isinstance(fig, str):
        fig = json.loads(fig)
    if hasattr(fig, "to_plotly_json"):
        fig = fig.to_plotly_json()
    scales, cats = [], []

    def add(c):
        if isinstance(c, str) and c and c not in cats:
            cats.append(c)

    for t in fig.get("data") or []:
        for holder in (t, t.get("marker") or {}):
            s = holder.get("colorscale")
            if s is not None:
                if _stepped(s):
                    for _, c in s:
                        add(c)
                else:
                    scales.append(s)
        for part in (t.get("marker") or {}, t.get("line") or {}):
            c = part.get("color")
            if isinstance(c, str):
                add(c)
            elif isinstance(c, list) and all(isinstance(x, str) for x in c):
                for x in c:
                    add(x)
    for k, v in (fig.get("layout") or {}).items():
        if k.startswith("coloraxis") and isinstance(v, dict) and v.get("colorscale") is not None:
            scales.append(v["colorscale"])
    return scales, cats


def closest_pair(colours: list[str], kind: str) -> tuple[float, str, str]:
    """The smallest ΔE between two of the colours as seen with `kind`, and that pair."""
    best = (float("inf"), "", "")
    for i in range(len(colours)):
        for j in range(i + 1, len(colours)):
            d = delta_e(colours[i], colours[j], kind)
            if d < best[0]:
                best = (d, colours[i], colours[j])
    return best
