"""The library under misuse: a reused KV cache, top_p = 0, tokenizer.json options our BPE does not
compute, many threads on one tokenizer, and a loss evaluation on a shared model."""

import json
import threading

import pytest
import torch

from llama import Llama, LlamaConfig, filter_top_p, next_token_distribution, sample_next
from llama.tokenizer import BPETokenizer
from llama.train import evaluate, loss_per_char

TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 20


def tiny(**kw):
    torch.manual_seed(0)
    return Llama(LlamaConfig(**{**dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=97, max_seq_len=32,
                                       multiple_of=16), **kw})).eval()


# ----------------------------------------------------------------------------- KV cache


@pytest.mark.parametrize("backend", ["manual", "sdpa"])
def test_a_reused_kv_cache_raises_a_clear_error_naming_it(backend):
    model = tiny()
    model.attn_backend = backend
    ids = torch.randint(0, 97, (1, 10))
    cache = model.new_cache(1)
    model(ids, cache=cache)  # a 10-token run
    with pytest.raises(ValueError, match=r"KV cache of layer 0: it holds positions 0\.\.9.*reset\(\)"):
        model(ids[:, :4], cache=cache)  # a new 4-token prompt from position 0 on the same cache
    with pytest.raises(ValueError, match="KV cache of layer 0.*gap"):
        model(ids[:, :1], torch.tensor([12]), cache=cache)
    with pytest.raises(ValueError, match="KV cache of layer 0.*batch size 1"):
        model(torch.randint(0, 97, (2, 1)), torch.tensor([10]), cache=cache)
    with pytest.raises(ValueError, match="KV cache of layer 0.*not 2 consecutive"):
        model(ids[:, :2], torch.tensor([10, 12]), cache=cache)
    with pytest.raises(ValueError, match="KV cache has 1 layers, the model 2.*new_cache"):
        model(ids[:, :1], torch.tensor([10]), cache=cache[:1])
    small = model.new_cache(1, 4)
    with pytest.raises(ValueError, match="KV cache of layer 0: room for 4 positions"):
        model(ids[:, :5], cache=small)


@pytest.mark.parametrize("backend", ["manual", "sdpa"])
def test_a_kv_cache_can_be_reset_and_rewound(backend):
    model = tiny()
    model.attn_backend = backend
    ids = torch.randint(0, 97, (1, 10))
    fresh = model(ids[:, :4]).logits
    cache = model.new_cache(1)
    model(ids, cache=cache)
    for c in cache:
        c.reset()
    torch.testing.assert_close(model(ids[:, :4], cache=cache).logits, fresh, atol=1e-5, rtol=1e-5)
    # Rewind to position 2 and continue with other tokens: the same as running them from scratch.
    other = torch.tensor([[5, 6, 7]])
    for c in cache:
        c.rewind(2)
    got = model(other, torch.arange(2, 5), cache=cache).logits
    want = model(torch.cat([ids[:, :2], other], dim=1)).logits[:, 2:]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cannot rewind to 9"):
        cache[0].rewind(9)


# ----------------------------------------------------------------------------- top_p = 0


def test_top_p_zero_keeps_the_most_likely_token():
    logits = torch.tensor([0.1, 2.0, -1.0, 1.5])
    kept = filter_top_p(logits, 0.0)
    assert torch.isfinite(kept).tolist() == [False, True, False, False]
    probs = next_token_distribution(logits, temperature=1.0, top_p=0.0)
    assert not torch.isnan(probs).any() and probs.tolist() == [0.0, 1.0, 0.0, 0.0]
    g = torch.Generator().manual_seed(0)
    assert {sample_next(logits, temperature=1.0, top_p=0.0, generator=g) for _ in range(20)} == {1}
    batch = torch.randn(3, 50)  # also per row of a batch
    assert (torch.isfinite(filter_top_p(batch, 0.0)).sum(-1) == 1).all()


# ----------------------------------------------------------------------------- tokenizer.json


@pytest.fixture(scope="module")
def trained():
    return BPETokenizer.train(TEXT, vocab_size=300)


def test_an_added_token_marked_not_special_decodes_like_hugging_face(trained, tmp_path):
    from tokenizers import Tokenizer

    d = trained.to_json_dict()
    d["added_tokens"].append({"id": 300, "content": "<|note|>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": False})
    d["model"]["vocab"]["<|note|>"] = 300
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(d, ensure_ascii=False))
    ours, ref = BPETokenizer.load(path), Tokenizer.from_file(str(path))
    text = "to be<|note|> or not<s>"
    ids = ours.encode(text)
    assert ids == ref.encode(text, add_special_tokens=False).ids
    for skip in (False, True):
        assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
    assert "<|note|>" in ours.decode(ids, skip_special_tokens=True)
    again = BPETokenizer.from_json_dict(ours.to_json_dict())  # and it survives a save
    assert again.decode(ids, skip_special_tokens=True) == ours.decode(ids, skip_special_tokens=True)


def _edit(d, key, value):
    d = json.loads(json.dumps(d))
    target = d
    *path, last = key.split(".")
    for k in path:
        target = target[k] if not k.isdigit() else target[int(k)]
    target[last] = value
    return d


@pytest.mark.parametrize("key,value,message", [
    ("normalizer", {"type": "NFC"}, "unsupported normalizer 'NFC'"),
    ("truncation", {"max_length": 8}, "unsupported tokenizer.json option truncation"),
    ("padding", {"length": 8}, "unsupported tokenizer.json option padding"),
    ("post_processor", {"type": "TemplateProcessing"}, "unsupported post-processor 'TemplateProcessing'"),
    ("decoder", {"type": "Metaspace"}, "unsupported decoder 'Metaspace'"),
    ("pre_tokenizer.pretokenizers.1.add_prefix_space", True, "unsupported pre-tokenizer.*add_prefix_space"),
    ("pre_tokenizer.pretokenizers.0.behavior", "Removed", "unsupported pre-tokenizer.*Removed"),
    ("model.dropout", 0.1, "unsupported BPE option dropout"),
    ("model.continuing_subword_prefix", "##", "continuing_subword_prefix"),
    ("model.byte_fallback", True, "byte_fallback"),
    ("model.some_new_option", True, r"unsupported BPE model options \['some_new_option'\]"),
    ("added_tokens.0.lstrip", True, "unsupported added token option lstrip=true on '<s>'"),
])
def test_every_option_the_loader_does_not_reproduce_is_refused_by_name(trained, key, value, message):
    with pytest.raises(ValueError, match=message):
        BPETokenizer.from_json_dict(_edit(trained.to_json_dict(), key, value))


def test_many_threads_encoding_with_one_tokenizer_get_the_serial_ids():
    tok = BPETokenizer.train(TEXT, vocab_size=300)
    texts = [TEXT[i:i + 200] + f" word{i} {i * 7919}" for i in range(0, 1200, 37)]
    want = [BPETokenizer.from_json_dict(tok.to_json_dict()).encode(t) for t in texts]  # a fresh cache, one thread
    got, errors = {}, []
    barrier = threading.Barrier(8)

    def work(k):
        try:
            barrier.wait()
            for _ in range(5):
                for i, t in enumerate(texts):
                    ids = tok.encode(t)
                    if got.setdefault((k, i), ids) != ids:
                        errors.append((k, i))
        except Exception as e:  # noqa: BLE001 (a worker's failure must reach the assertion below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(got[k, i] == want[i] for k in range(8) for i in range(len(texts)))
    tok.encode("x")[:0] = [1]  # a caller changing its result cannot change the cache
    assert tok.encode(texts[0]) == want[0]
    copy = __import__("copy").deepcopy(tok)  # a gr.State deep-copies its value: the lock must not stop it
    assert copy.encode(texts[0]) == want[0] and copy._cache_lock is not tok._cache_lock


# ----------------------------------------------------------------------------- shared model


def test_loss_evaluation_never_switches_a_shared_model_between_train_and_eval(trained, monkeypatch):
    model = tiny(vocab_size=trained.vocab_size, max_seq_len=16)
    switches = []
    monkeypatch.setattr(model, "train", lambda mode=True: switches.append(mode))
    monkeypatch.setattr(model, "eval", lambda: switches.append(False))
    ids = torch.tensor(trained.encode(TEXT[:400]))
    loss = evaluate(model, ids, 16, trained.bos_id)
    out = loss_per_char(model, trained, TEXT[:400], 16)
    assert switches == [] and loss > 0 and out["per_token"] == pytest.approx(loss, rel=1e-6)
