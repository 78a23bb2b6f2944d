"""Links that keep the state: every lesson page reads its inputs from the URL query and writes them back.

A page names its inputs once, at the end of its listeners:

    share.link(key, {"text": text, "layer": layer, "head": head}, runs=[analyze_event])

- On page load the query (`/attention?text=To%20be&layer=2&head=1`) is read (gr.Request.query_params), every value
  passes the same checks as a typed one (`read_link`: lessons.inputs clamps with a notice, text is capped), the
  inputs are set, and the page's own events in `runs` (its main analysis, the same handlers the buttons call) run
  once with them, so the figures show the linked state. `model=<name>` picks the model (widgets.model_key reads it).
- As the learner changes an input, a browser-only callback writes every named input into the URL
  (history.replaceState: no reload, back/forward keep each page's state) and into the page's "Link to this view"
  box (lesson_header places it; its copy button copies the link).
- A value too long for the query (a pasted page of training text) travels whole, compressed, in the URL's fragment
  (`#text=<deflate, base64url>`, written by `WRITE_URL`): the browser never sends a fragment to the server, so no request
  grows with it. On load the page reads the fragment it was opened with (`HEAD_JS` keeps it before anything
  rewrites the address) and `fragment_params` unpacks it beside the query. A "Go deeper" anchor (`#deeper-<id>`)
  shares the fragment: parts are joined with "&".

Names are short and stable (they are what teachers paste into mail): the text box is `text`; a slider, radio,
checkbox or dropdown gets the name the page gives it.
"""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json
import math
import zlib
from dataclasses import dataclass

import gradio as gr

from lessons.inputs import MAX_TEXT_CHARS, LessonError, choice, clean_text, echo, join, number, whole

MODEL_PARAM = "model"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# A number box without a range (a seed) still gets one from a link: the largest whole number a browser's number
# holds exactly, so that 1e400, inf or 10**30 become a value the box can show (and JSON can carry) with a notice.
BIGGEST = 2**53 - 1


@dataclass(frozen=True)
class Field:
    """What a link may set: one named input and the checks its value passes (the same as a typed value's)."""
    name: str
    kind: str  # "text" | "whole" | "number" | "choice" | "bool"
    label: str = ""
    lo: float = -math.inf
    hi: float = math.inf
    choices: tuple = ()
    default: object = None
    limit: int = MAX_TEXT_CHARS  # a text's cap (characters): the page's own for typed text


def read_link(params: dict, fields: list[Field]) -> tuple[dict, str]:
    """The values a link sets, checked like typed values: returns ({name: value}, notice). Only the names in
    `fields` are read; a missing name is left out (the page keeps its default). A number out of range is
    clamped (a range without ends to +-BIGGEST), a fraction rounded for a whole-number input, NaN, a non-number or
    an unknown choice becomes the default, text is capped at the field's limit (the page's cap for typed text);
    the notice says each change, prefixed 'From the link: '. Nothing a link carries raises: a value that cannot be
    read is left out with its notice, and the others still apply.

        >>> read_link({"layer": "9", "text": "hi"}, [Field("text", "text"), Field("layer", "whole", "Layer", 0, 5)])
        ({'text': 'hi', 'layer': 5}, 'From the link: Layer 9 is out of range (0 to 5): using 5.')
    """
    values, notices = {}, []
    for f in fields:
        if f.name not in params:
            continue
        raw = params[f.name]
        name = f.label or f.name
        lo = max(float(f.lo), -BIGGEST) if f.lo is not None and not math.isnan(f.lo) else -BIGGEST
        hi = min(float(f.hi), BIGGEST) if f.hi is not None and not math.isnan(f.hi) else BIGGEST
        default = f.default if isinstance(f.default, (int, float)) and not isinstance(f.default, bool) \
            and lo <= f.default <= hi else min(max(0, lo), hi)
        try:
            if f.kind == "text":
                v, n = clean_text(raw, limit=f.limit, what=f"{name} from the link")
            elif f.kind == "whole":
                v, n = whole(raw, name, math.ceil(lo), math.floor(hi), default=round(default))
            elif f.kind == "number":
                v, n = number(raw, name, lo, hi, default=default)
            elif f.kind == "bool":
                s = str(raw).strip().lower()
                v, n = (True, "") if s in TRUE else (False, "") if s in FALSE else (
                    bool(f.default), f"{name}: {echo(raw)!r} is not on or off (1 or 0): using "
                                     f"{'on' if f.default else 'off'}.")
            else:  # a link carries text: "2" picks the option 2
                by_text = {str(o): o for o in f.choices}
                v, n = (by_text[raw], "") if isinstance(raw, str) and raw in by_text else choice(
                    raw, name, f.choices, default=f.default)
        except LessonError as e:  # empty text, or a choice with no default: the page keeps its value
            notices.append(str(e))
            continue
        values[f.name] = v
        notices.append(n)
    notice = join(*notices)
    return values, f"From the link: {notice}" if notice else ""


def fragment_params(fragment, limit: int = MAX_TEXT_CHARS, names=None) -> tuple[dict, str]:
    """The values a link carries in its fragment: ({name: text}, notice). The fragment is "#" and "&"-joined parts;
    a part `name=<base64url>` is a value as WRITE_URL packs it (UTF-8, raw deflate, base64url without padding);
    a part without "=" is an anchor (a "Go deeper" section) and is left to the page, as is a part whose name is not
    in `names` (when given: the page's link names). At most 4 * `limit` bytes are
    unpacked (a value longer than the cap is cut there, and read_link then says so); a part that cannot be read is
    left out with a notice, and the others still apply.

        >>> fragment_params("#deeper-merges&text=y0jNyckHAA")
        ({'text': 'hello'}, '')
    """
    values, notices = {}, []
    if not isinstance(fragment, str):
        return values, ""
    for part in fragment.lstrip("#").split("&"):
        name, eq, packed = part.partition("=")
        if not eq or not name or (names is not None and name not in names):
            continue
        try:
            data = base64.b64decode(packed.replace("-", "+").replace("_", "/") + "=" * (-len(packed) % 4),
                                    validate=True)
            inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            raw = inflate.decompress(data, 4 * limit)
            if not inflate.eof and not inflate.unconsumed_tail:  # the stream stops short: the link was cut
                raise ValueError("cut")
            values[name] = raw.decode("utf-8", errors="ignore" if inflate.unconsumed_tail else "strict")
        except (ValueError, zlib.error):  # binascii.Error and UnicodeDecodeError are ValueErrors
            notices.append(f"The {echo(name)!r} value after '#' in the link could not be read (was the link cut "
                           "short?), so it is left out.")
    return values, join(*notices)


def field(name: str, comp) -> Field:
    """The Field for a Gradio input: its kind, label and range or choices as the page built it."""
    label = (comp.label or name).split(" (")[0]
    if isinstance(comp, gr.Textbox):
        return Field(name, "text", label)
    if isinstance(comp, gr.Checkbox):
        return Field(name, "bool", label, default=bool(comp.value))
    if isinstance(comp, gr.Slider):
        step = comp.step or 1
        kind = "whole" if float(step).is_integer() and float(comp.minimum).is_integer() else "number"
        return Field(name, kind, label, comp.minimum, comp.maximum, default=comp.value)
    if isinstance(comp, gr.Number):
        lo = comp.minimum if comp.minimum is not None else -math.inf
        hi = comp.maximum if comp.maximum is not None else math.inf
        return Field(name, "whole" if comp.precision == 0 else "number", label, lo, hi, default=comp.value)
    if isinstance(comp, (gr.Radio, gr.Dropdown)):
        values = tuple(c[1] if isinstance(c, (tuple, list)) else c for c in comp.choices)
        return Field(name, "choice", label, choices=values, default=comp.value if comp.value in values else None)
    raise TypeError(f"share.link: no link field for {type(comp).__name__} {name!r}")


def with_bounds(f: Field, bounds: dict, comp) -> Field:
    """The field with a slider's range, or a radio's or dropdown's choices, as the chosen model set them
    (widgets.on_model records them), if it did."""
    got = bounds.get(str(comp._id)) if bounds else None
    if f.kind == "choice":
        choices = tuple(got) if isinstance(got, list) else f.choices
        return dataclasses.replace(f, choices=choices, default=f.default if f.default in choices else None)
    lo, hi = got if got is not None else (f.lo, f.hi)
    return dataclasses.replace(f, lo=lo, hi=hi)


def widgets_note(text: str) -> str:
    from app.widgets import note  # late: widgets imports this module

    return note(text)


def model_name(key: str) -> str:
    """The short name of a model key for a link ('' for the course model): 'stories260K', not its full path."""
    from app.context import registry  # late: context loads the model

    for o in registry().options():
        if o.key == key and key:
            return o.label
    return ""


def model_from_link(value) -> tuple[str | None, str]:
    """(key, notice) for a link's `model=` value: a model's short name or key as offered by this host; an unknown
    one is the course model, with a notice. None when the link names no model."""
    from app.context import registry  # late: context loads the model

    if value is None:
        return None, ""
    for o in registry().options():
        if value in (o.label, o.key) or (not o.key and value in ("", "course")):
            return o.key, ""
    return "", f"From the link: the model {echo(value)!r} is not offered here; the course model is used."


# The browser side: every named input that differs from the page's default into the URL and the link box, without
# a reload. A value longer than LONG characters once encoded (a pasted page of text) goes into the fragment instead,
# compressed (CompressionStream "deflate-raw", base64url): Gradio sends the page's query with every request, and a
# long query makes them fail; the fragment stays in the browser. Anchor parts of the fragment (#deeper-<id>) stay.
LONG = 1500
WRITE_URL = """async (...values) => {
  const names = %s, defaults = %s;
  const url = new URL(window.location.href);
  const pack = async (s) => {
    const z = new Blob([s]).stream().pipeThrough(new CompressionStream("deflate-raw"));
    const bytes = new Uint8Array(await new Response(z).arrayBuffer());
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(bin).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  };
  const hash = url.hash.slice(1).split("&").filter((p) => p && !p.includes("="));
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    let v = values[i];
    if (typeof v === "boolean") v = v ? "1" : "0";
    const d = defaults[i] === null || defaults[i] === undefined ? "" : String(defaults[i]);
    url.searchParams.delete(name);
    if (v === null || v === undefined || v === "" || String(v) === d) continue;
    if (encodeURIComponent(String(v)).length <= %d) url.searchParams.set(name, String(v));
    else if (typeof CompressionStream === "function") hash.push(name + "=" + await pack(String(v)));
  }
  url.hash = hash.length ? "#" + hash.join("&") : "";
  window.history.replaceState(window.history.state, "", url);
  return url.href;
}"""
# In the page head: the fragment the page was opened with, kept before the page's own WRITE_URL rewrites it (a
# picked model's values are written into the address before the link is applied).
HEAD_JS = "window.insideLlamaOpened = {hash: window.location.hash};\n"
READ_FRAGMENT = "() => (window.insideLlamaOpened || {}).hash || ''"


def _when_linked(fn, n_outputs: int):
    """fn, run only when the page was opened with a link that set something (else every output is skipped)."""
    skip = gr.skip() if n_outputs == 1 else tuple(gr.skip() for _ in range(n_outputs))
    if inspect.isgeneratorfunction(fn):
        def run(linked, *args):
            if not linked:
                yield skip
                return
            yield from fn(*args)
    else:
        def run(linked, *args):
            return fn(*args) if linked else skip
    return run


_pending_box: list = []  # the link box lesson_header placed on the page being built, for link() to fill
_pending_fields: list = []  # the fields link() wired on the page being built
LINKED: dict[str, list[Field]] = {}  # page slug -> the fields its links read (as built, course model's ranges)


def link_box() -> gr.Textbox:
    """The "Link to this view" box (read-only, with a copy button), placed by widgets.lesson_header."""
    box = gr.Textbox(label="Link to this view (copy to share)",
                     interactive=False, buttons=["copy"], elem_classes=["share-link"], max_lines=1)
    _pending_box[:] = [box]
    return box


def check_linked(page: str) -> None:
    """After a lesson page is built (app/main.py): its link box was wired by `link`. A page that forgot would show
    an empty box and never keep its state in the URL."""
    LINKED[page] = list(_pending_fields)
    _pending_fields.clear()
    if _pending_box:
        _pending_box.clear()
        raise RuntimeError(f"page {page!r}: call app.share.link(key, {{name: input, ...}}, runs=[...]) at the end "
                           "of its listeners, so that its URL keeps its state")


def link(key: gr.State, controls: dict, runs: list = (), msg=None, ranges: dict | None = None,
         caps: dict | None = None) -> None:
    """Wire the page's named inputs to its URL: read on load (then run `runs`, the page's own events, once with
    them), written back on every change. `controls` maps short names to input components (the text box as
    "text"); `runs` are event dependencies the page already wired (their handlers, inputs and outputs are reused);
    `msg` is where the notice about clamped link values goes (default: the first run's message output); `ranges`
    widens a slider whose range the page's handler sets from the input itself (the query position follows the
    text): {name: (lo, hi)}, which that handler then checks again; `caps` gives a text the page's own cap for typed
    text where it is not lessons.inputs.MAX_TEXT_CHARS: {name: characters}."""
    root = gr.context.Context.root_block
    box = _pending_box.pop() if _pending_box else link_box()
    names = list(controls)
    comps = [controls[n] for n in names]
    fields = [field(n, c) for n, c in controls.items()]
    fields = [dataclasses.replace(f, lo=ranges[f.name][0], hi=ranges[f.name][1]) if f.name in (ranges or {})
              else f for f in fields]
    fields = [dataclasses.replace(f, limit=caps[f.name]) if f.name in (caps or {}) else f for f in fields]
    _pending_fields.extend(fields)
    blocks = [root.fns[dep["id"]] for dep in runs]
    if msg is None and blocks:  # the first run's message slot (widgets.handler records where it is)
        msg = blocks[0].outputs[getattr(blocks[0].fn, "msg_at", 0)]
    shown_model = gr.Textbox(visible="hidden", elem_classes=["share-model"])  # the model's name, for the URL
    linked = gr.State({})  # the link's values after the checks, {name: value}; empty when it set nothing
    bounds = getattr(key, "bounds", None)  # slider ranges of the chosen model (widgets.on_model)

    def checked(b, params, fragment):
        params = params if isinstance(params, dict) else {}
        _, model_notice = model_from_link(params.get(MODEL_PARAM))
        packed, fragment_notice = fragment_params(fragment, max((f.limit for f in fields), default=MAX_TEXT_CHARS),
                                                  names=set(names))
        values, notice = read_link({**params, **packed}, [with_bounds(f, b, c) for f, c in zip(fields, comps)])
        return values, join(model_notice, notice, f"From the link: {fragment_notice}" if fragment_notice else "")

    said = gr.State("")  # the notice about the link's values, shown once the runs have written their own

    # The link is the address the page was opened with (widgets.model_key read it on load): by now the page may
    # have written a picked model's values into the address bar, and those are no link.
    query = getattr(key, "query", None)

    def apply(k, b, params, fragment, request: gr.Request):
        if query is None:  # a key made without widgets.model_key: the address as this request carries it
            params = dict(request.query_params) if request is not None else {}
        values, notice = checked(b, params, fragment)
        return (values, notice, model_name(k), *(gr.update(value=values[n]) if n in values else gr.skip()
                                                  for n in names))

    after = getattr(key, "refreshed", None) or key.loaded
    outs = [linked, said, shown_model, *comps]
    fragment = gr.Textbox(visible="hidden", elem_classes=["share-fragment"])  # the opening address's "#..."
    ins = [key, bounds if bounds is not None else gr.State(None), query if query is not None else gr.State(None),
           fragment]
    chain = after.then(None, None, fragment, js=READ_FRAGMENT)
    chain = chain.then(apply, ins, outs, api_visibility="private", queue=False)
    for i, b in enumerate(blocks):
        if i:  # inputs the previous run set but does not read (a range it resets): the link's values again
            prev = blocks[i - 1]
            again = [n for n, c in zip(names, comps) if c in prev.outputs and c not in prev.inputs]
            if again:
                chain = chain.then(_reapply(again), linked, [controls[n] for n in again], api_visibility="private",
                                   queue=False)
        # Outside the queue: a page opened without a link (most loads) passes each step in one short request;
        # a linked page runs its handlers once here (their progress bars and concurrency limits are the events').
        chain = chain.then(_when_linked(b.fn, len(b.outputs)), [linked, *b.inputs], b.outputs,
                           api_visibility="private", show_progress="minimal", queue=False)
    if msg is not None:
        chain = chain.then(_say, [msg, said], msg, api_visibility="private", queue=False)
    defaults = [c.value if not callable(c.value) else None for c in comps] + [""]
    defaults = [int(v) if isinstance(v, float) and v.is_integer() else v for v in defaults]  # as the browser has them
    write = WRITE_URL % (json.dumps(names + [MODEL_PARAM]), json.dumps(defaults), LONG)
    chain.then(None, [*comps, shown_model], box, js=write)
    gr.on([c.change for c in comps] + [shown_model.change], None, [*comps, shown_model], box, js=write)


def _say(shown, notice):
    """The link's notice after what the page's own handlers said (both stay)."""
    if not notice:
        return gr.skip()
    return join(shown or "", widgets_note(notice))


def _reapply(names: list[str]):
    def again(values):
        out = tuple(gr.update(value=values[n]) if values and n in values else gr.skip() for n in names)
        return out[0] if len(out) == 1 else out
    return again
