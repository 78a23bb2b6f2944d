"""Hosting: the repository can be pushed to a Hugging Face Space, and its front matter and requirements are ones the
Space's hardware (CPU, ZeroGPU) supports. No app server here: these read the tree (git) and app/gpu.py."""

import re
import subprocess
import sys
import types


from conftest import ROOT


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def is_binary(path) -> bool:
    """git's own test: a NUL byte in the first 8000 bytes."""
    with open(path, "rb") as f:
        return b"\0" in f.read(8000)


def test_every_tracked_binary_goes_through_lfs():
    """A Space refuses binary files stored as plain git blobs: .gitattributes routes each through LFS/Xet."""
    binaries = [p for p in tracked() if is_binary(ROOT / p)]
    assert any(p.endswith(".safetensors") for p in binaries)  # the course model is among them
    out = subprocess.run(["git", "check-attr", "filter", "--", *binaries], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    missing = [line.split(":")[0] for line in out.splitlines() if not line.endswith(": filter: lfs")]
    assert not missing, f"binary files not tracked through LFS by .gitattributes: {missing}"


def test_no_wheel_or_archive_in_the_tree():
    stray = [p for p in tracked() if re.search(r"\.(whl|tar\.gz|zip|egg)$", p)]
    assert not stray, f"packages belong in requirements*.txt, not in the tree: {stray}"


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("---")[1]
    return {k.strip(): v.strip().strip('"') for k, v in (line.split(":", 1) for line in block.strip().splitlines())}


def test_front_matter_and_torch_are_what_zerogpu_supports():
    """ZeroGPU runs Python 3.10 or 3.12 and torch 2.1 or later except 2.3.x; the Space installs requirements.txt
    without our constraints file, so its torch line must admit such a version, while `make` pins this machine's."""
    fm = front_matter()
    assert fm["sdk"] == "gradio" and fm["app_file"] == "app/main.py"
    assert fm["python_version"] in ("3.10", "3.12")
    from packaging.requirements import Requirement

    torch_req = next(Requirement(line.split("#")[0]) for line in (ROOT / "requirements.txt").read_text().splitlines()
                     if re.match(r"torch\b", line))
    # 2.8.0: the newest on ZeroGPU's published list; 2.3.x: refused there (a PyTorch bug); 2.13.0: this machine's.
    assert torch_req.specifier.contains("2.8.0") and not torch_req.specifier.contains("2.3.1")
    assert torch_req.specifier.contains("2.13.0")
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.M), "make must still install this machine's torch wheel"
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile


def test_gpu_decorator_is_spaces_gpu_where_present_and_identity_elsewhere(monkeypatch):
    from app import gpu

    def f(x):
        return x + 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces fails: absent
    monkeypatch.setattr(gpu, "has_spaces", lambda: False)
    assert gpu.gpu(30)(f) is f and not gpu.on_zerogpu()

    calls = []
    fake = types.ModuleType("spaces")

    def GPU(duration=60):
        def deco(fn):
            calls.append((fn, duration))
            return lambda *a, **k: fn(*a, **k)
        return deco

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(gpu, "has_spaces", lambda: True)
    g = gpu.gpu(45)(f)
    assert g is not f and g(1) == 2 and calls == [(f, 45)]
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert gpu.on_zerogpu()
    assert str(gpu.serving_device()) == "cpu"  # CUDA may claim to be there: the course model stays on the CPU


def test_prefetch_fetches_hub_ids_in_the_background_and_skips_local_directories(monkeypatch, tmp_path):
    import llama.checkpoint
    from app import context

    fetched = []
    monkeypatch.setattr(llama.checkpoint, "resolve_path", lambda s: fetched.append(s) or tmp_path)
    assert context.prefetch([str(tmp_path)]) is None  # a local directory: nothing to fetch
    thread = context.prefetch([str(tmp_path), "meta-llama/Llama-3.2-1B"])
    thread.join(5)
    assert fetched == ["meta-llama/Llama-3.2-1B"]
