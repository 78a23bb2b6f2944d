"""Pages that arrive fast (issue 24), without starting the app: a page's HTML goes out in Brotli (compressed once
per version, ETag and 304 kept), Gradio's large front-end files are packed once at Brotli's best quality and served
from then on with a year's caching, and a lesson page asks for Plotly's chunk as it starts."""

import gzip
import time

import brotli
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from app import startup

PAGE = "<!doctype html><html><head><title>t</title></head><body>" + "<p>the cat sat on the mat</p>" * 4000


def page_app():
    return Starlette(routes=[Route("/attention", lambda r: HTMLResponse(PAGE)),
                             Route("/assets/{name:path}", lambda r: Response(b"from gradio", media_type="text/javascript"))])


def test_a_page_goes_out_in_brotli_once_per_version_with_its_etag():
    from starlette.middleware.gzip import GZipMiddleware

    client = TestClient(GZipMiddleware(startup.PageHTML(page_app()), minimum_size=500))
    r = client.get("/attention", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert r.headers["content-encoding"] == "br" and "Accept-Encoding" in r.headers["vary"]
    assert int(r.headers["content-length"]) < len(gzip.compress(r.content, 6))  # smaller than gzip's
    assert "the cat sat" in r.text and "__inside_llama" in r.text  # (httpx decodes br) the storage shim first
    tag = r.headers["etag"]
    assert tag in startup._PAGES_BR  # compressed once for this version
    again = client.get("/attention", headers={"Accept-Encoding": "br", "If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    old = client.get("/attention", headers={"Accept-Encoding": "gzip"})  # a browser without Brotli: gzip
    assert old.headers["content-encoding"] == "gzip" and "the cat sat" in old.text


@pytest.fixture()
def assets(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIDE_LLAMA_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "assets"
    root.mkdir()
    (root / "Big-abc123.js").write_text("const plot = (x) => x * 2; // figures\n" * 3000)
    (root / "small-1.js").write_text("x")
    return startup.PackedAssets(page_app(), root=root), root


def test_a_large_asset_is_packed_once_and_then_served_packed_and_immutable(assets):
    packed, root = assets
    client = TestClient(packed)
    first = client.get("/assets/Big-abc123.js", headers={"Accept-Encoding": "gzip, br"})
    assert first.content == b"from gradio"  # the first request: Gradio answers, the file is queued
    deadline = time.time() + 30
    while "Big-abc123.js" not in packed.packed and time.time() < deadline:
        time.sleep(0.05)
    r = client.get("/assets/Big-abc123.js", headers={"Accept-Encoding": "gzip, br"})
    assert r.headers["content-encoding"] == "br" and "immutable" in r.headers["cache-control"]
    assert r.content == (root / "Big-abc123.js").read_bytes()  # httpx undid the Brotli: the file, whole
    assert (root.parent / "cache" / "assets" / "Big-abc123.js.br").is_file()  # kept on disk for the next start
    assert brotli.decompress((root.parent / "cache" / "assets" / "Big-abc123.js.br").read_bytes()) == r.content
    again = client.get("/assets/Big-abc123.js", headers={"Accept-Encoding": "br", "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    # no Brotli in the request, a small file, a path outside the folder: Gradio's own answer, nothing queued
    assert client.get("/assets/Big-abc123.js", headers={"Accept-Encoding": "gzip"}).content == b"from gradio"
    for name in ("small-1.js", "..%2Fcache%2Fx.js", "missing.js"):
        assert client.get(f"/assets/{name}", headers={"Accept-Encoding": "br"}).content == b"from gradio"
    assert packed.queued == {"Big-abc123.js"}


def test_a_lesson_page_asks_for_plotlys_chunk_as_it_starts():
    js = startup.preload_js()
    assert 'rel = "modulepreload"' in js and "PlotlyPlot-" in js


def test_files_packed_by_an_earlier_start_are_served_packed_from_the_first_request(assets):
    first, root = assets
    client = TestClient(first)
    client.get("/assets/Big-abc123.js", headers={"Accept-Encoding": "br"})
    deadline = time.time() + 30
    while "Big-abc123.js" not in first.packed and time.time() < deadline:
        time.sleep(0.05)
    again = startup.PackedAssets(page_app(), root=root)  # the server started again: the disk cache is read back
    deadline = time.time() + 30
    while "Big-abc123.js" not in again.packed and time.time() < deadline:
        time.sleep(0.05)
    r = TestClient(again).get("/assets/Big-abc123.js", headers={"Accept-Encoding": "br"})
    assert r.headers["content-encoding"] == "br" and r.content == (root / "Big-abc123.js").read_bytes()


def test_plotlys_chunk_goes_out_with_the_cartesian_bundle_in_place_of_the_full_one(tmp_path, monkeypatch):
    """Gradio's PlotlyPlot chunk (its full Plotly, 4.6 MB) is served with Plotly's cartesian bundle spliced in its
    place: the same imports and the same Svelte component around it, a third of the bytes."""
    from gradio.route_utils import BUILD_PATH_LIB

    monkeypatch.setenv("INSIDE_LLAMA_CACHE", str(tmp_path / "cache"))
    chunk = next(iter(sorted((startup.Path(BUILD_PATH_LIB)).glob("PlotlyPlot-*.js"))))
    full = chunk.read_bytes()
    swapped = startup.cartesian_plotly(full)
    assert swapped is not None, "Gradio's PlotlyPlot chunk is no longer laid out as app/startup.py expects"
    assert b"plotly.js (cartesian - minified) v3.4.0" in swapped and len(swapped) < len(full) / 3
    head, tail = full.split(b"=>{(function(", 1)[0], full.rsplit(b"return window.Plotly=", 1)[1]
    assert swapped.startswith(head) and swapped.endswith(tail.split(b"})", 1)[1])  # the component, untouched
    assert startup.cartesian_plotly(b"export default 1;") is None  # another layout: Gradio's own chunk, as it is

    packed = startup.PackedAssets(page_app(), root=chunk.parent)  # EAGER: packed at start-up
    deadline = time.time() + 120
    while chunk.name not in packed.packed and time.time() < deadline:
        time.sleep(0.1)
    r = TestClient(packed).get(f"/assets/{chunk.name}", headers={"Accept-Encoding": "br"})
    assert r.headers["content-encoding"] == "br" and r.content == swapped
    assert int(r.headers["content-length"]) < 450_000  # Brotli: 389 kB (the full bundle: 965 kB)


# ----------------------------------------------------------------------------- the start-up's own work


def test_gradio_imported_after_the_app_package_writes_no_type_stub_beside_a_component(tmp_path):
    """app/__init__.py: Gradio's import skips writing a .pyi stub for each component class (a third of its import
    time); a component class defined afterwards, as app/widgets.py defines them, gets none either."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "mywidget.py").write_text("import gradio as gr\n\n\nclass Wide(gr.Textbox):\n    EVENTS = ['change']\n")
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "import app, gradio, gradio.component_meta as cm, mywidget\n"
            "print(cm.create_or_modify_pyi.__module__)")
    out = subprocess.run([sys.executable, "-c", code, str(root), str(tmp_path)], capture_output=True, text=True,
                         timeout=120, env={"GRADIO_ANALYTICS_ENABLED": "False", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "app"  # the stub writer is ours, from the first component class on
    assert not (tmp_path / "mywidget.pyi").exists()


def test_no_config_or_web_app_is_built_before_launch_and_launch_builds_both():
    """app/startup.py app_built_at_launch: a block's end and queue() build neither (launch builds them once); the
    methods come back as they were at the block's end."""
    import gradio as gr
    from gradio.routes import App

    built = []
    create_app = App.create_app
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(App, "create_app", staticmethod(lambda *a, **k: built.append("app") or create_app(*a, **k)))
        with startup.app_built_at_launch():
            with gr.Blocks() as demo:
                gr.Textbox(label="one")
            with demo.route("Two", "/two"):
                gr.Textbox(label="two")
            demo.queue()
        assert built == [] and demo.config is None and demo.app is None
        config = demo.get_config_file()  # as launch() builds it, after the block
        assert {c["props"].get("label") for c in config["components"]} >= {"one", "two"}
        assert App.create_app(demo) is not None and built == ["app"]
