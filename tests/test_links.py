"""A shared link never fails (issue 24): every parameter of every page, read from a link with every kind of bad
value (huge, negative, NaN, infinite, text, values for ranges without ends), is clamped or replaced with a notice
while the rest of the link still applies; the server answers the browser's link step with 200, never a 500.
And, on the same built app: no slider runs server code on every move of a drag (app/controls.py)."""

import json
import math
import urllib.request

import pytest

import lessons
from app import share

PAGES = [lesson.slug for lesson in lessons.LESSONS if lesson.ready]
HOSTILE = ["1e400", "-1e400", "inf", "-Infinity", "nan", "NaN", "abc", "", " ", "9" * 400, "-" + "9" * 30, "1.5",
           "-1", "0x10", "1e308", "<script>alert(1)</script>", "\ufffd\u202e", "2.5e-320", "true"]


@pytest.fixture(scope="module")
def demo():
    """The app as app.main.build makes it, in this process (no server)."""
    from app import main

    return main.build()


@pytest.fixture(scope="module")
def linked(demo):
    """Each page's link fields as the app builds them."""
    return dict(share.LINKED)


def test_no_slider_on_any_page_runs_server_code_on_every_move(demo):
    from app import controls

    assert controls.heavy_slider_events(demo) == []
    # and every event a slider runs keeps the last value of a burst of moves (no press lost while one runs)
    for dep in demo.fns.values():
        if dep.fn is not None and len(controls._slider_targets(demo, dep)) == len(dep.targets):
            assert dep.trigger_mode == "always_last", dep.name


def good_value(f: share.Field) -> tuple[str, object]:
    """A valid link value for a field (not its default where it has another), and what it reads as."""
    if f.kind == "text":
        return "To be, or not", "To be, or not"
    if f.kind == "bool":
        return ("0", False) if f.default else ("1", True)
    if f.kind == "choice":
        c = f.choices[-1]
        return str(c), c
    lo = f.lo if math.isfinite(f.lo) else 0
    return (str(int(lo)), int(lo)) if f.kind == "whole" else (repr(float(lo)), float(lo))


def within(f: share.Field, v) -> bool:
    if f.kind == "text":
        return isinstance(v, str) and 0 < len(v) <= f.limit
    if f.kind == "bool":
        return isinstance(v, bool)
    if f.kind == "choice":
        return v in f.choices
    ok = isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= share.BIGGEST and f.lo <= v <= f.hi
    return ok and (f.kind == "number" or float(v).is_integer())


def taken_as_is(f: share.Field, raw: str, v) -> bool:
    if f.kind == "text":
        return v == raw
    if f.kind == "bool":
        return raw.strip().lower() in share.TRUE + share.FALSE
    if f.kind == "choice":
        return str(v) == raw
    try:
        return float(raw) == v
    except ValueError:
        return False


@pytest.mark.parametrize("page", PAGES)
def test_every_link_field_of_every_page_takes_every_bad_value_and_the_rest_still_applies(linked, page):
    fields = linked[page]
    assert fields, f"/{page} has no link fields"
    good = {f.name: good_value(f) for f in fields}
    for f in fields:
        for raw in HOSTILE:
            params = {name: text for name, (text, _) in good.items()}
            params[f.name] = raw
            values, notice = share.read_link(params, fields)  # never raises
            json.dumps(values, allow_nan=False)  # what goes to the browser is plain JSON: no inf, no NaN
            for other in fields:
                if other.name != f.name:  # the rest of the link still applies
                    assert values[other.name] == good[other.name][1], (page, f.name, raw, other.name)
            if f.name in values:
                assert within(f, values[f.name]), (page, f.name, raw, values[f.name])
            else:  # left out only when nothing sensible exists (empty text), and said
                assert f.kind == "text" and "empty" in notice, (page, f.name, raw, notice)
            if not taken_as_is(f, raw, values.get(f.name)):  # changed or left out: the page says so
                assert notice.startswith("From the link: "), (page, f.name, raw, values.get(f.name))


def test_a_texts_cap_is_its_pages_cap_for_typed_text(linked):
    from lessons.tokenization import compute as T

    text = {f.name: f for f in linked["tokenization"]}["text"]
    assert text.limit == T.MAX_TEXT_CHARS  # the tokenizer's training text: 100,000 characters, as typed
    values, notice = share.read_link({"text": "ab" * 30_000}, [text])
    assert len(values["text"]) == 60_000 and notice == ""
    values, notice = share.read_link({"text": "x" * (T.MAX_TEXT_CHARS + 1)}, [text])
    assert len(values["text"]) == T.MAX_TEXT_CHARS and "limit" in notice


# ----------------------------------------------------------------------------- the browser's link step over HTTP


def _config(app_url) -> dict:
    with urllib.request.urlopen(app_url + "config", timeout=60) as r:
        return json.loads(r.read())


def _post(app_url, query: str, fn: int, data: list, session: str):
    body = json.dumps({"fn_index": fn, "data": data, "session_hash": session})
    req = urllib.request.Request(f"{app_url}gradio_api/run/predict?{query}", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())["data"]
    except urllib.error.HTTPError as e:
        return e.code, []


def link_step(app_url, config, linked, page: str, query: str) -> tuple[int, dict, str]:
    """What the browser does on opening /page?query: the page's load step (widgets.model_key reads the address's
    query once, into a State), its link step (share.link's `apply`) and the step that shows its notice (`_say`), in
    one session: (status, {link field name: value set}, notice shown). The fields are named as the page's link
    names them (share.LINKED), in the order `apply` writes its controls."""
    deps = {d["id"]: d for d in config["dependencies"]}
    mine = config["page"][page]["dependencies"]
    apply = next(i for i in mine if deps[i]["api_name"].startswith("apply"))
    say = next(i for i in mine if deps[i]["api_name"].startswith("_say"))
    query_state = deps[apply]["inputs"][2]  # apply(key, bounds, query)
    load = next(i for i in sorted(deps, key=lambda i: i not in mine) if query_state in deps[i]["outputs"]
                and i != apply)
    session = f"links-{page}-{abs(hash(query))}"
    status, _ = _post(app_url, query, load, [None] * len(deps[load]["inputs"]), session)
    if status != 200:
        return status, {}, ""
    status, out = _post(app_url, query, apply, [None] * len(deps[apply]["inputs"]), session)
    if status != 200:
        return status, {}, ""
    names = [f.name for f in linked[page]]
    assert len(names) == len(out) - 3, (names, deps[apply]["outputs"])
    set_ = {name: u["value"] for name, u in zip(names, out[3:]) if isinstance(u, dict) and "value" in u}
    status, said = _post(app_url, query, say, ["", None], session)
    return status, set_, said[0] if status == 200 and isinstance(said[0], str) else ""


@pytest.mark.parametrize("page, query, want, said", [
    ("sampling", "seed=1234&temperature=1.3", {"seed": 1234, "temperature": 1.3}, ""),
    ("sampling", "seed=1e400&temperature=1.3&top_k=-5", {"temperature": 1.3}, "seed"),
    ("sampling", "seed=nan&temperature=NaN&top_p=0.5", {"top_p": 0.5}, "nan is not a number"),
    ("attention", "layer=1e999&head=1&text=To%20be", {"text": "To be"}, "Layer"),
    ("rope", "layer=abc&text=To%20be", {"text": "To be"}, "'abc' is not one of"),
])
def test_a_link_with_bad_values_answers_200_and_applies_the_rest(app_url, linked, page, query, want, said):
    status, set_, notice = link_step(app_url, _config(app_url), linked, page, query)
    assert status == 200
    for name, v in want.items():
        assert set_.get(name) == v, (name, set_)
    assert said in notice


def test_a_model_the_host_does_not_offer_is_said_on_the_page(app_url, linked):
    status, set_, notice = link_step(app_url, _config(app_url), linked, "sampling", "model=llama-70b&temperature=1.3")
    assert status == 200 and set_["temperature"] == 1.3
    assert "llama-70b" in notice and "not offered" in notice


def pack(text: str) -> str:
    """A value as the browser's WRITE_URL packs it into the fragment: UTF-8, raw deflate, base64url unpadded."""
    import base64
    import zlib

    z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return base64.urlsafe_b64encode(z.compress(text.encode()) + z.flush()).decode().rstrip("=")


def test_a_long_value_travels_whole_in_the_fragment_and_a_broken_one_is_said():
    text = "Première ligne 😀\n" + "To be, or not to be: that is the question. " * 2000  # ~86,000 characters
    values, notice = share.fragment_params(f"#deeper-merges&text={pack(text)}", limit=100_000)
    assert values == {"text": text} and notice == ""  # whole, with its anchor left to the page
    cut = pack(text)[:-40]  # a link cut short in a mail
    values, notice = share.fragment_params(f"#text={cut}", limit=100_000)
    assert values == {} and "text" in notice and "could not be read" in notice
    values, notice = share.fragment_params("#text=%%%&vocab=" + pack("300"), limit=100_000)
    assert values == {"vocab": "300"} and "could not be read" in notice  # the rest still applies
    bomb = pack("a" * 5_000_000)  # a few kB that unpack to 5 MB: only 4 bytes per character of the cap are read
    values, _ = share.fragment_params(f"#text={bomb}", limit=1000)
    assert len(values["text"]) == 4000
    field = share.Field("text", "text", "Training text", limit=1000)
    got, notice = share.read_link(values, [field])  # then capped like typed text, with its notice
    assert len(got["text"]) == 1000 and "limit is 1,000" in notice
