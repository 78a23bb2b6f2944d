"""Plotly helpers shared by the lessons: figures built in one step, a message figure for bad input, and
plain-dict panel layouts (Plotly's make_subplots and update_layout re-validate the whole figure on every call,
a large part of a slider's 50 ms budget on a small CPU)."""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go


def grid(titles: list[str], cols: int, gap_x: float = 0.03, gap_y: float = 0.07) -> dict:
    """A Plotly layout of len(titles) equal panels in rows of `cols` (left to right, then top to bottom), each
    with its title above it, as a plain dict; panel i (1-based) is drawn with `panel_axes(i)`. Tick labels are
    off (small multiples share the axes of the first): set them on the panels that need them.

        >>> grid(["a", "b", "c"], cols=2)["xaxis3"]["domain"]
        [0.015, 0.485]
    """
    rows = -(-len(titles) // cols)
    layout, notes = {}, []
    for i, title in enumerate(titles):
        r, c = divmod(i, cols)
        sx = "" if i == 0 else str(i + 1)
        x0, x1 = round(c / cols + gap_x / 2, 6), round((c + 1) / cols - gap_x / 2, 6)
        y1, y0 = round(1 - r / rows - gap_y, 6), round(1 - (r + 1) / rows + gap_y / 3, 6)
        layout[f"xaxis{sx}"] = dict(domain=[x0, x1], anchor=f"y{sx}", showticklabels=False, showgrid=False)
        layout[f"yaxis{sx}"] = dict(domain=[y0, y1], anchor=f"x{sx}", showticklabels=False, showgrid=False)
        notes.append(dict(text=title, x=(x0 + x1) / 2, y=y1, xref="paper", yref="paper", showarrow=False,
                          yanchor="bottom", xanchor="center"))
    layout["annotations"] = notes
    return layout


def panels(titles: list[str], stacked: bool = True, gap: float = 0.1, sizes: list[float] | None = None) -> dict:
    """A Plotly layout of len(titles) panels, stacked top to bottom (sharing x) or side by side, as a plain dict.

    Plotly's make_subplots builds and validates a much larger object (about 20 ms a figure on the course's
    CPU, half of a slider's latency budget); this writes only the axes and titles needed. Panel i (1-based)
    is drawn with `panel_axes(i)`:

        >>> panels(["a", "b"])["yaxis2"]["domain"]
        [0.0, 0.45]
    """
    n = len(titles)
    sizes = sizes or [1.0 / n] * n
    room, pos, layout, notes = 1.0 - gap * (n - 1), 0.0, {}, []
    for i, (title, size) in enumerate(zip(titles, sizes), start=1):
        lo, hi = pos, pos + size * room
        pos = hi + gap
        sx = "" if i == 1 else str(i)
        if stacked:  # panel 1 on top; every x axis follows the first; tick labels only on the bottom one
            lo, hi = round(1.0 - hi, 6), round(1.0 - lo, 6)
            layout[f"xaxis{sx}"] = dict(anchor=f"y{sx}", domain=[0.0, 1.0], showticklabels=i == n,
                                        **({"matches": "x"} if i > 1 else {}))
            layout[f"yaxis{sx}"] = dict(anchor=f"x{sx}", domain=[lo, hi])
            notes.append(dict(text=title, x=0.5, y=hi, xanchor="center"))
        else:
            lo, hi = round(lo, 6), round(hi, 6)
            layout[f"xaxis{sx}"] = dict(anchor=f"y{sx}", domain=[lo, hi])
            layout[f"yaxis{sx}"] = dict(anchor=f"x{sx}", domain=[0.0, 1.0])
            notes.append(dict(text=title, x=(lo + hi) / 2, y=1.0, xanchor="center"))
    layout["annotations"] = [dict(n, xref="paper", yref="paper", yanchor="bottom", showarrow=False,
                                  font=dict(size=13)) for n in notes]
    return layout


def message_figure(text: str, height: int = 320) -> go.Figure:
    """A figure that says why there is nothing to draw (bad input, nothing measured yet), so a page never
    shows a blank plot. The text is escaped: Plotly reads '<s>' as a strikethrough tag."""
    # Wrapped at 40 characters (a phone's width at this size); Plotly breaks lines only at <br>, not at "\n".
    text = wrap(html.escape(text, quote=False).replace("\n", " "), 40)
    return figure([], None, height=height, xaxis=dict(visible=False), yaxis=dict(visible=False),
                  margin=dict(l=20, r=20, t=20, b=20),
                  annotations=[dict(text=text, x=0.5, y=0.5, xref="paper", yref="paper",
                                    showarrow=False, font=dict(size=15, color="#b45309"))])


def figure(data: list, layout: dict | None = None, **more) -> go.Figure:
    """go.Figure(data, layout + more) in one step. Plotly's update_layout deep-copies and re-validates the
    whole layout on every call (several ms each on the course's CPU), so figures here are built once."""
    return go.Figure(data=data, layout={**(layout or {}), **more})


def panel_axes(i: int) -> dict:
    """The axis references of panel i (1-based) for a trace: {'xaxis': 'x2', 'yaxis': 'y2'}."""
    sx = "" if i == 1 else str(i)
    return dict(xaxis=f"x{sx}", yaxis=f"y{sx}")


def sparse_labels(x, y, labels, order, most: int = 6, apart: float = 0.08) -> list[str]:
    """Text for a scatter's points that never piles up: the points in `order` (the ones that matter first) get
    their label while they lie at least `apart` of the plot's span (the larger of the x and y ranges) from every
    point labelled before, at most `most` of them; the others get '' (their hover still names them).

        >>> sparse_labels([0, 0.01, 1], [0, 0, 1], ["a", "b", "c"], order=[0, 1, 2])
        ['a', '', 'c']
    """
    xs, ys = [float(v) for v in x], [float(v) for v in y]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-12) if xs else 1.0
    out, kept = [""] * len(xs), []
    for i in order:
        if len(kept) >= most:
            break
        if all(math.hypot(xs[i] - xs[j], ys[i] - ys[j]) >= apart * span for j in kept):
            out[i] = labels[i]
            kept.append(i)
    return out


TITLE_CHARS = 40  # a title line longer than this is wrapped: about what a 390 px phone shows at 14 px
TITLE_LINE = 19  # pixels of one more line of a 14 px title
PANEL_CHARS = 42  # the same for a panel title at 12 px across the whole width; divided among panels side by side


def wrap(text: str, width: int = TITLE_CHARS) -> str:
    """Break a Plotly title at spaces into lines of at most `width` characters (Plotly never wraps by itself).
    Existing <br> breaks are kept; tags such as <b> are counted as text, which only wraps a little early.

        >>> wrap("cache memory against context length (your choice)", 30)
        'cache memory against context<br>length (your choice)'
    """
    lines = []
    for part in text.split("<br>"):
        line = ""
        for word in part.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return "<br>".join(lines)


def responsive(fig: dict) -> dict:
    """Make a lesson figure read well from a 390 px phone to a 1366 px laptop; `fig` is the figure as plain
    JSON (`go.Figure.to_plotly_json()`, keys "data" and "layout"), changed in place and returned.

    Titles and panel titles are wrapped (Plotly cuts a long title at the plot's edge) and sized 14/12 px, the
    title gets room above the plot (automargin), legends placed below the plot go to the bottom of the figure in
    a row, under the x-axis title (beside the plot they take half a phone's width and sit over a long title), and
    margins shrink to what the axis labels need. Applied to
    every figure a page shows by app.widgets.Plot; idempotent. It works on the plain dict because Plotly's
    update_layout re-validates the figure on every call (about 40 ms a figure on the course's CPU)."""
    layout, data = fig.setdefault("layout", {}), fig.get("data", [])
    title = layout.get("title")
    title = {"text": title} if isinstance(title, str) else dict(title or {})
    notes = layout.get("annotations") or []
    titles = [a for a in notes if a.get("yanchor") == "bottom" and a.get("text") and not a.get("showarrow")]
    top = [0]  # lines of each panel title in the top row
    top_y = max((a.get("y", 0) for a in titles), default=None)
    # Panels side by side share the width: the fullest row sets every panel's share (a grid's last row has fewer
    # panels, each as narrow as the others).
    beside = max((sum(1 for b in titles if b.get("y") == a.get("y")) for a in titles), default=1)
    for i, a in enumerate(notes):
        if any(a is t for t in titles):  # a panel title (panels)
            notes[i] = {**a, "text": wrap(a["text"], max(PANEL_CHARS // beside, 6)), "font": {"size": 12}}
            if a.get("y", 0) == top_y:
                top.append(notes[i]["text"].count("<br>") + 1)
    if title.get("text"):
        # Above the plot area and above the top row's panel titles (Plotly's automargin makes the room; a title
        # placed from the top of the container instead loses its first line when it wraps).
        # The unwrapped title rides along in meta.title: the page wraps it again to the figure's real width
        # (app/static/figures.js); wrap() here is what a phone shows before that. Plotly draws the lines of a title
        # anchored at its bottom downwards from the first: each line after the first needs TITLE_LINE more pad.
        meta = layout.get("meta") if isinstance(layout.get("meta"), dict) else {}
        raw = meta.get("title") or title["text"]
        pad = 8 + 15 * max(top)
        text = wrap(raw)
        layout["meta"] = {**meta, "title": raw, "title_pad": pad}
        layout["title"] = {**title, "text": text, "font": {**title.get("font", {}), "size": 14},
                           "x": 0.02, "xanchor": "left", "automargin": True, "yref": "paper", "y": 1,
                           "yanchor": "bottom", "pad": {"b": pad + TITLE_LINE * text.count("<br>")}}
    show_legend = layout.get("showlegend") is not False and sum(t.get("showlegend") is not False for t in data) > 1
    legend = layout.get("legend") or {}
    if show_legend and (legend.get("orientation") != "h" or legend.get("y", -1) < 0 or legend.get("y", -1) >= 1):
        # At the bottom of the figure, measured from the container: a legend placed a fraction of the plot's
        # height below it sat on the x-axis title (whose height in pixels does not scale with the plot). Plotly's
        # automargin makes the room, below the axis title, at every width.
        layout["legend"] = {**legend, "orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0,
                            "yanchor": "bottom"}
    margin = layout.get("margin") or {}
    t = max(margin.get("t", 40), 40 if title.get("text") else 20)
    if title.get("text"):  # room above the plot for every line of the title (its pad holds the later lines),
        # added to the figure's height, so that the plot keeps its own (the page re-wraps: figures.js)
        meta = layout["meta"]
        meta.setdefault("title_top", t)
        if layout.get("height"):
            meta.setdefault("base_height", layout["height"])
        t = max(meta["title_top"], layout["title"]["pad"]["b"] + TITLE_LINE + 6)
        if meta.get("base_height"):
            layout["height"] = meta["base_height"] + t - meta["title_top"]
    layout["margin"] = {**margin, "l": min(margin.get("l", 50), 50), "r": min(margin.get("r", 20), 20),
                        "t": t, "b": min(margin.get("b", 40), 60)}
    for axis in ("xaxis", "yaxis"):
        layout.setdefault(axis, {})
        for name in layout:
            if name.startswith(axis) and name[len(axis):].isdigit() or name == axis:
                layout[name] = {**layout[name], "automargin": True}
    return fig


# ----------------------------------------------------------------------------- what a figure holds, as data and text


def _array(v):
    """A trace's array as a list: a plain list, or Plotly's binary form {'dtype', 'bdata', 'shape'} (numpy
    arrays in a figure's JSON)."""
    import base64

    import numpy as np

    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        if "shape" in v:
            a = a.reshape([int(x) for x in str(v["shape"]).split(",")])
        return a.tolist()
    if hasattr(v, "tolist"):
        return v.tolist()
    return list(v) if isinstance(v, (list, tuple)) else v


def _xyz(trace: dict) -> tuple:
    """A trace's x, y and z as lists (None where the trace has none)."""
    return tuple(None if trace.get(k) is None else _array(trace[k]) for k in ("x", "y", "z"))


def _traces(fig) -> list[dict]:
    """The traces of a figure given as a go.Figure, a dict or its JSON text, as plain dicts."""
    import json

    if isinstance(fig, str):
        fig = json.loads(fig)
    if hasattr(fig, "to_plotly_json"):
        fig = fig.to_plotly_json()
    return list(fig.get("data") or [])


def _plain(text) -> str:
    """The first line of a Plotly title as plain text: tags out, entities decoded."""
    import re

    first = re.split(r"<br\s*/?>", str(text or ""))[0]  # a subtitle after <br> is left out
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", first)).replace("\u200b", "").split())


def describe(fig) -> str:
    """A short description of a figure for screen readers, from the data it draws: its title, then per trace
    what stands out (the largest cell of a heatmap, the largest bar, the range of a line).

        >>> describe(figure([dict(type="bar", name="p", x=["a", "b"], y=[0.25, 0.75])], title="Next token"))
        'Next token. p: 2 bars, largest b = 0.75.'
    """
    import math

    layout = fig.layout.to_plotly_json() if hasattr(fig, "layout") else (fig.get("layout") or {})
    title = layout.get("title")
    title = _plain(title.get("text") if isinstance(title, dict) else title)
    parts = [title] if title else []
    for i, t in enumerate(_traces(fig)[:6]):
        name = t.get("name") or (f"panel {i + 1}" if t.get("type") == "heatmap" else f"series {i + 1}")
        x, y, z = _xyz(t)
        if isinstance(z, list) and z and isinstance(z[0], list):
            cells = [(v, r, c) for r, row in enumerate(z) for c, v in enumerate(row)
                     if isinstance(v, (int, float)) and not math.isnan(v)]
            if cells:
                v, r, c = max(cells)
                col = x[c] if isinstance(x, list) and c < len(x) else c
                row = y[r] if isinstance(y, list) and r < len(y) else r
                parts.append(f"{name}: {len(z)} by {len(z[0])} heatmap, largest {v:.3g} at {_plain(row)}, "
                             f"{_plain(col)}")
        elif t.get("type") == "bar" and isinstance(y, list) and isinstance(x, list) and x and y:
            horizontal = t.get("orientation") == "h"
            vals, labels = (x, y) if horizontal else (y, x)
            pairs = [(v, lab) for v, lab in zip(vals, labels) if isinstance(v, (int, float)) and not math.isnan(v)]
            if pairs:
                v, lab = max(pairs, key=lambda p: p[0])
                parts.append(f"{name}: {len(pairs)} bars, largest {_plain(lab)} = {v:.3g}")
        elif isinstance(y, list) and y:
            vals = [v for v in y if isinstance(v, (int, float)) and not math.isnan(v)]
            if vals:
                parts.append(f"{name}: {len(vals)} points from {min(vals):.3g} to {max(vals):.3g}")
    if not parts:
        notes = [_plain(a.get("text")) for a in layout.get("annotations") or () if a.get("text")]
        parts = notes[:1] or ["An empty figure"]
    return ". ".join(parts) + "."


def described(fig: dict) -> dict:
    """fig (plain JSON, as `responsive` takes it) with its screen-reader description in layout.meta.description
    (the page sets it as the figure's aria-label); a description the compute function already put there is kept.
    In place; returns fig."""
    layout = fig.setdefault("layout", {})
    meta = layout.get("meta")
    if isinstance(meta, dict) and meta.get("description"):
        return fig
    layout["meta"] = {**(meta if isinstance(meta, dict) else {}), "description": describe(fig)}
    return fig
