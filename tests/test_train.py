"""The training script on a slice of the corpus: loss goes down, the run directory is complete and loads,
and a resumed run is exactly the run that was never interrupted."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import SHAKESPEARE
from llama import generate, load_pretrained
from llama.tokenizer import BPETokenizer
from llama.train import get_batch, lr_at, main, split_text

ARGS = ["--data", str(SHAKESPEARE), "--preset", "test", "--vocab-size", "320", "--seq-len", "64",
        "--batch-size", "8", "--lr", "3e-3", "--warmup", "5", "--eval-every", "20", "--eval-windows", "8",
        "--max-chars", "60000", "--quiet", "--device", "cpu", "--seed", "7"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    main(ARGS + ["--out", str(root / "straight"), "--steps", "60"])
    main(ARGS + ["--out", str(root / "resumed"), "--steps", "60", "--stop-after", "30"])  # an interrupted run
    main(ARGS + ["--out", str(root / "resumed"), "--steps", "60", "--resume"])
    return root


def test_loss_goes_down_and_the_run_directory_is_complete(runs):
    run = runs / "straight"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_log.json"):
        assert (run / name).is_file(), name
    log = json.loads((run / "train_log.json").read_text())
    assert [e["step"] for e in log] == [20, 40, 60]
    assert set(log[0]) >= {"step", "train_loss", "val_loss", "lr", "tokens", "elapsed"}
    assert log[-1]["val_loss"] < log[0]["val_loss"] < math.log(320)
    assert log[-1]["tokens"] == 60 * 8 * 64
    state = json.loads((run / "train_state.json").read_text())
    assert state["summary"]["val_loss_per_char"] > 0 and state["step"] == 60


def test_run_directory_loads_back(runs):
    run = runs / "straight"
    model = load_pretrained(run, device="cpu")
    tok = BPETokenizer.load(run / "tokenizer.json")
    assert model.config.vocab_size == tok.vocab_size == 320
    assert model.config.bos_token_id == tok.bos_id
    out = generate(model, tok.encode("ROMEO:", add_bos=True), 10, eos_id=None)
    assert len(out) == 10 and all(0 <= i < 320 for i in out)


def test_resume_continues_from_the_saved_step_exactly(runs):
    straight, resumed = runs / "straight", runs / "resumed"
    log = json.loads((resumed / "train_log.json").read_text())
    assert [e["step"] for e in log] == [20, 30, 40, 60]  # 30: the checkpoint where the first sitting stopped
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)


def test_schedule_and_batches():
    assert lr_at(0, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(55, 100, 1.0, 10, 0.1) == pytest.approx(0.55)
    data = torch.arange(100, 1000)
    x, y = get_batch(data, 4, 16, bos=0, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16)
    assert torch.all(x[:, 0] == 0) and torch.equal(x[:, 1:], y[:, :-1]) and torch.all(y[:, 1:] - y[:, :-1] == 1)
    train, val = split_text("abcdefghij")
    assert (train, val) == ("abcdefghi", "j")
