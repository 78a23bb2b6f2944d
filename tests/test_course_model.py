"""The shipped course model (assets/model): a true Llama, loadable by transformers with the same logits,
with a golden greedy output and the validation loss its card states."""

import json

import pytest
import torch
from transformers import LlamaForCausalLM

from conftest import ROOT, SHAKESPEARE
from llama import generate, load_pretrained
from llama.tokenizer import BPETokenizer
from llama.train import TEST_SLICE_CHARS, loss_per_char, split_text

ASSETS = ROOT / "assets" / "model"
GOLDEN_PROMPT = "ROMEO:\n"
# The shipped model's greedy continuation (40 tokens), recorded when it was trained: any change to the
# weights, the tokenizer or the forward pass shows up here.
GOLDEN = "I would I were a chool-doly believe thee,\nAnd I am a buried to thy body.\n\nROMEO:\nI'll tell thee what"


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained(ASSETS, device="cpu"), BPETokenizer.load(ASSETS / "tokenizer.json")


def test_shipped_files_are_complete_and_small():
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_log.json", "MODEL_CARD.md",
                 "summary.json", "val_excerpt.txt"):
        assert (ASSETS / name).is_file(), name
    assert (ASSETS / "model.safetensors").stat().st_size <= 10_000_000
    log = json.loads((ASSETS / "train_log.json").read_text())
    assert {"step", "train_loss", "val_loss", "lr", "tokens", "elapsed"} <= set(log[-1])
    card = (ASSETS / "MODEL_CARD.md").read_text()
    for needle in ("python -m llama.train", "nats per token", "nats per character", "parameters", "Greedy"):
        assert needle in card


def test_it_is_a_true_llama(shipped):
    cfg = shipped[0].config
    assert (cfg.norm, cfg.position, cfg.ffn, cfg.norm_placement) == ("rmsnorm", "rope", "swiglu", "pre")
    assert cfg.n_heads >= 4 and cfg.n_kv_heads <= cfg.n_heads // 2 and cfg.n_layers >= 4 and cfg.max_seq_len >= 256


def test_transformers_gives_the_same_logits(shipped):
    ours, tok = shipped
    ref = LlamaForCausalLM.from_pretrained(ASSETS, dtype=torch.float32).eval()
    ids = torch.tensor([tok.encode("First Citizen:\nBefore we proceed any further, hear me speak.", add_bos=True)])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ref(ids).logits, atol=1e-4, rtol=1e-4)


def test_golden_greedy_continuation(shipped):
    model, tok = shipped
    out = tok.decode(generate(model, tok.encode(GOLDEN_PROMPT, add_bos=True), 40))
    assert out == GOLDEN


def test_validation_loss_matches_the_card(shipped):
    model, tok = shipped
    summary = json.loads((ASSETS / "summary.json").read_text())
    val_text = split_text(SHAKESPEARE.read_text(encoding="utf-8"))[1]
    got = loss_per_char(model, tok, val_text[:TEST_SLICE_CHARS])["per_char"]
    assert got == pytest.approx(summary["test_slice_loss_per_char"], abs=1e-3)
    assert summary["val_loss_per_char"] <= 1.65
    assert f"{summary['val_loss_per_char']:.4f} nats per character" in (ASSETS / "MODEL_CARD.md").read_text()
    excerpt = (ASSETS / "val_excerpt.txt").read_text(encoding="utf-8")
    assert val_text.startswith(excerpt) and len(excerpt) >= 4000
