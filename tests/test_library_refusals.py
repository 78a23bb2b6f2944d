"""The library gives the reference's numbers or refuses with an error naming the option (issue 24, 25).

Each test here failed on the code before its fix: positions without a cache attended to later tokens,
grad_clip=0 zeroed every gradient, generated text lost its joining space, mixed-dtype checkpoints
failed at the first product, a padded vocabulary raised in decode, an unreadable file said "missing".
"""

import math

import pytest
import torch
from transformers import LlamaConfig as HFConfig
from transformers import LlamaForCausalLM

from llama import ATTN_BACKENDS, load_pretrained


def tiny_hf(seed=0, vocab=120, **kw):
    torch.manual_seed(seed)
    cfg = HFConfig(hidden_size=32, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=64, rms_norm_eps=1e-6,
                   bos_token_id=1, eos_token_id=2, attn_implementation="eager", **kw)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    ref = tiny_hf()
    ref.save_pretrained(path)
    return ref, path


# ----------------------------------------------------------------------------- 1. positions without a cache


@pytest.mark.parametrize("backend", ATTN_BACKENDS)
@pytest.mark.parametrize("positions", [list(range(7, 17)), [0, 1, 2, 5, 6, 9, 10, 11, 20, 30]])
def test_positions_without_cache_attend_causally_like_transformers(tiny, backend, positions):
    ref, path = tiny
    ours = load_pretrained(path, device="cpu")
    ours.attn_backend, ours.attn_block_size = backend, 4  # several tiles for the blockwise path
    idx = torch.randint(3, 120, (2, len(positions)), generator=torch.Generator().manual_seed(1))
    pos = torch.tensor(positions)
    with torch.no_grad():
        want = ref(idx, position_ids=pos[None].expand(2, -1)).logits
        got = ours(idx, input_pos=pos).logits
        traced = ours(idx, input_pos=pos, trace=True)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(traced.logits, want, atol=1e-4, rtol=1e-4)
    att = traced.trace.layers[0].attn  # (B, nh, T, T): nothing above the diagonal
    assert float(att.triu(1).abs().max()) == 0.0


# ----------------------------------------------------------------------------- 2. training options


def _train(recipe_kw, steps=2):
    from llama import Llama, LlamaConfig
    from llama.train import Recipe, training_steps

    torch.manual_seed(0)
    model = Llama(LlamaConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=120, hidden_dim=64,
                              max_seq_len=16))
    ids = torch.randint(3, 120, (600,), generator=torch.Generator().manual_seed(0))
    recipe = Recipe(**{"steps": steps, "batch_size": 2, "warmup": 0, "eval_every": 100, "eval_windows": 1,
                       "lr": 1e-2, **recipe_kw})
    reports = list(training_steps(model, ids[:500], ids[500:], 1, recipe))
    return model, reports


def test_grad_clip_zero_means_no_clipping_as_in_nanogpt():
    unclipped, _ = _train({"grad_clip": 1e9})
    zero, _ = _train({"grad_clip": 0.0})
    for (name, a), b in zip(unclipped.named_parameters(), zero.parameters()):
        torch.testing.assert_close(a, b, msg=f"{name}: grad_clip=0 must train as if unclipped")
    # and it did learn: the norm gains (no weight decay) moved from 1
    assert float((zero.norm.weight.detach() - 1).abs().max()) > 1e-3


@pytest.mark.parametrize("option,value", [
    ("grad_clip", -1.0), ("grad_clip", math.nan), ("lr", 0.0), ("lr", -1e-3), ("lr", math.inf), ("warmup", -1),
    ("steps", 0), ("steps", 2.5), ("batch_size", 0), ("weight_decay", -0.1), ("beta1", 1.0), ("beta2", -0.5),
    ("eps", 0.0), ("eval_every", 0), ("eval_windows", 0), ("min_lr_ratio", 1.5), ("seed", "x"),
])
def test_training_options_outside_their_meaning_are_refused_by_name(option, value):
    with pytest.raises(ValueError, match=option):
        _train({option: value})


def test_training_steps_checks_its_own_arguments_and_a_recipe_changed_after_it_was_made():
    from llama import Llama, LlamaConfig
    from llama.train import Recipe, training_steps

    model = Llama(LlamaConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=120, hidden_dim=64,
                              max_seq_len=16))
    ids = torch.randint(3, 120, (600,))
    recipe = Recipe(steps=2, batch_size=2)
    recipe.grad_clip = -1.0
    with pytest.raises(ValueError, match="grad_clip"):
        next(training_steps(model, ids[:500], ids[500:], 1, recipe))
    for kw, name in [({"budget_s": 0.0}, "budget_s"), ({"stop_at": -3}, "stop_at"), ({"start_step": -1}, "start_step")]:
        with pytest.raises(ValueError, match=name):
            next(training_steps(model, ids[:500], ids[500:], 1, Recipe(steps=2, batch_size=2), **kw))


@pytest.mark.parametrize("flag,value", [("--grad-clip", "-1"), ("--lr", "nan"), ("--batch-size", "0"),
                                        ("--steps", "-5"), ("--warmup", "-1"), ("--weight-decay", "-0.1"),
                                        ("--eval-every", "0"), ("--seq-len", "0"), ("--beta2", "1"),
                                        ("--eps", "0"), ("--min-lr-ratio", "2"), ("--budget-s", "-1")])
def test_the_training_cli_refuses_by_option_name(capsys, flag, value):
    from llama.train import parse_args

    with pytest.raises(SystemExit):
        parse_args([flag, value])
    assert f"argument {flag}: must be" in capsys.readouterr().err


def test_the_training_cli_takes_grad_clip_zero_as_no_clipping():
    from llama.train import parse_args

    assert parse_args(["--grad-clip", "0"]).grad_clip == 0.0


# ----------------------------------------------------------------------------- 3. generated text with its prompt

PROMPT = "Once upon a time,"


@pytest.fixture(scope="module")
def stories():
    from conftest import STORIES
    from lessons.course import load_course_model

    return load_course_model(STORIES, device="cpu")


def _joined(tok, prompt_ids, new_ids):
    """What the continuation must read: the whole sequence decoded at once, less the prompt's text."""
    full = tok.decode(list(prompt_ids) + list(new_ids), skip_special_tokens=True)
    head = tok.decode(list(prompt_ids), skip_special_tokens=True)
    assert full.startswith(head)
    return full[len(head):]


def test_decode_continuation_keeps_the_joining_space_of_a_sentencepiece_tokenizer(stories):
    from llama.tokenizer import decode_continuation

    tok = stories.tokenizer
    prompt, new = tok.encode(PROMPT, add_bos=True), tok.encode(" there was")
    assert tok.decode(new) == "there was"  # the piece '▁there' alone loses its space: why the helper exists
    assert decode_continuation(tok, prompt, new) == " there was"
    assert PROMPT + decode_continuation(tok, prompt, new, skip_special_tokens=True) == "Once upon a time, there was"


def test_every_generation_output_keeps_the_joining_space(stories):
    from lessons.kv_cache import compute as K
    from lessons.sampling import compute as S
    from lessons.training import compute as TR

    tok = stories.tokenizer
    prep = S.prepare_prompt(stories, PROMPT)
    *_, last = S.stream_side_by_side(stories, prep.ids, 8, S.read_settings(0.8, 0, 1.0), seed=3, interval=0)
    assert last.greedy_text.startswith(" ")  # stories260K continues "time," with a word, '▁...'
    assert last.greedy_text == _joined(tok, prep.ids, last.greedy_ids)
    assert last.sampled_text == _joined(tok, prep.ids, last.sampled_ids)
    head = S.prompt_text(stories, prep)
    assert head + last.greedy_text == tok.decode(prep.ids + last.greedy_ids, skip_special_tokens=True)

    reveal = [x for x in S.reveal_seeds(stories, prep.ids, n_tokens=6) if not isinstance(x, str)][0]
    assert reveal.greedy_text.startswith(" ")
    assert reveal.texts == tuple(_joined(tok, prep.ids, ids) for ids in reveal.ids)

    run = K.run_cached_vs_uncached(stories, PROMPT, 6)
    assert run.text == _joined(tok, run.ids[:run.prompt_len], run.new_tokens) and run.text.startswith(" ")

    settings, _ = TR.lab_settings(**TR.DEFAULTS)
    lab = TR.LabModel(stories.model, tok, settings)
    text = TR.sample(lab, PROMPT, 6, temperature=0.0)
    assert text.startswith(PROMPT + " ")


# ----------------------------------------------------------------------------- 4. mixed dtypes in one checkpoint


@pytest.mark.parametrize("config_names_dtype", [True, False])
def test_a_bf16_checkpoint_with_fp32_norms_loads_with_auto_and_runs_like_transformers(tmp_path, config_names_dtype):
    import json

    from safetensors import safe_open

    ref = tiny_hf(seed=3).to(torch.bfloat16)
    for name, p in ref.named_parameters():
        if "norm" in name:
            p.data = p.data.float()  # as several published bf16 checkpoints store their norms
    ref.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for key in ("dtype", "torch_dtype"):
        cfg.pop(key, None)
    if config_names_dtype:
        cfg["dtype"] = "bfloat16"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        stored = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert stored == {"BF16", "F32"}  # the file really is mixed

    ours = load_pretrained(tmp_path, device="cpu", dtype="auto")
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    want = LlamaForCausalLM.from_pretrained(tmp_path, dtype="auto", attn_implementation="eager").eval()
    idx = torch.randint(3, 120, (1, 12))
    with torch.no_grad():
        got = ours(idx).logits
        ref_logits = want(idx).logits
    assert got.dtype == ref_logits.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), ref_logits.float(), atol=0.05, rtol=0.05)
    # fp32 on request, from the same mixed file
    assert {p.dtype for p in load_pretrained(tmp_path, device="cpu").parameters()} == {torch.float32}


def test_load_pretrained_refuses_a_dtype_it_cannot_compute_in(tiny):
    _, path = tiny
    with pytest.raises(ValueError, match="dtype"):
        load_pretrained(path, device="cpu", dtype=torch.int8)
    assert next(load_pretrained(path, device="cpu", dtype="float16").parameters()).dtype == torch.float16


# ----------------------------------------------------------------------------- 7. an unreadable weights file


def _deny(monkeypatch, path):
    """Make `path` unreadable. chmod 000 where that denies reading; as root (it does not), simulate what the OS
    and safetensors then do: open() raises PermissionError, and safetensors' safe_open reports the failure as
    "No such file or directory" (what it really answers for a chmod 000 file, checked as an unprivileged user)."""
    import builtins
    import os
    import pathlib

    import llama.checkpoint as ckpt

    path.chmod(0)
    if not os.access(path, os.R_OK):
        return
    real_open, real_read_text, real_safe_open = builtins.open, pathlib.Path.read_text, ckpt.safe_open
    target = str(path)

    def denied():
        return PermissionError(13, "Permission denied", target)

    def fake_open(file, *a, **kw):
        if str(file) == target:
            raise denied()
        return real_open(file, *a, **kw)

    def fake_read_text(self, *a, **kw):
        if str(self) == target:
            raise denied()
        return real_read_text(self, *a, **kw)

    def fake_safe_open(file, *a, **kw):
        if str(file) == target:
            raise FileNotFoundError(f"No such file or directory: {target}")
        return real_safe_open(file, *a, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(pathlib.Path, "read_text", fake_read_text)
    monkeypatch.setattr(ckpt, "safe_open", fake_safe_open)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_an_unreadable_checkpoint_file_says_permission_denied_naming_it(tmp_path, monkeypatch, tiny, name):
    import shutil

    from llama import CheckpointError

    _, path = tiny
    shutil.copytree(path, tmp_path / "ckpt")
    _deny(monkeypatch, tmp_path / "ckpt" / name)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(tmp_path / "ckpt", device="cpu")
    msg = str(err.value)
    assert "permission denied" in msg and name in msg and "No such file" not in msg
    (tmp_path / "ckpt" / name).chmod(0o644)


# ----------------------------------------------------------------------------- 6. a padded vocabulary


def test_a_padded_vocabulary_decodes_labels_and_generates_without_raising(tmp_path):
    import shutil

    from conftest import STORIES
    from lessons.course import token_label
    from llama import generate
    from llama.tokenizer import PaddedTokenizer, decode_continuation, for_model, load_tokenizer

    ref = tiny_hf(seed=5, vocab=576)  # stories260K's 512 tokens, the table padded to a multiple of 64
    with torch.no_grad():
        ref.lm_head.weight[530] = ref.model.norm.weight * 3.0  # make a padded row the likeliest next token
    ref.save_pretrained(tmp_path)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(STORIES / f, tmp_path / f)
    model = load_pretrained(tmp_path, device="cpu")
    plain = load_tokenizer(tmp_path)
    assert plain.vocab_size == 512 and model.config.vocab_size == 576
    with pytest.raises(ValueError, match="not in the vocabulary"):
        plain.pieces([530])  # the bare tokenizer cannot spell it: what the pages met

    tok = for_model(plain, model.config.vocab_size)
    assert isinstance(tok, PaddedTokenizer) and tok.vocab_size == 512 and tok.model_vocab_size == 576
    assert for_model(plain, 512) is plain  # nothing to wrap when the sizes agree
    prompt = tok.encode("Once upon a time", add_bos=True)
    new = generate(model, prompt, 4, eos_id=None)
    assert 530 in new  # the model does produce a padded id: the reference's numbers, not masked
    text = decode_continuation(tok, prompt, new)
    assert "<unused530>" in text
    assert tok.decode([403, 530, 407]) == "Once<unused530> upon"  # the space after the placeholder is kept
    assert tok.decode([403, 530, 407], skip_special_tokens=True) == "Once upon"
    assert tok.pieces([403, 575]) == [" Once", "<unused575>"] and tok.id_to_token(512) == "<unused512>"
    assert tok.token_bytes(530) == b"<unused530>" and tok.decode([403, 407]) == plain.decode([403, 407])
    assert token_label(tok, 530) == "<unused530>"  # lessons' labels work once lessons use for_model
    with pytest.raises(ValueError, match="model's vocabulary"):
        tok.decode([576])
    import copy
    import pickle

    for again in (pickle.loads(pickle.dumps(tok)), copy.deepcopy(tok)):  # a session's state is pickled/copied
        assert again.decode([403, 530]) == tok.decode([403, 530])


# ----------------------------------------------------------------------------- 5. every public entry point


@pytest.fixture(scope="module")
def small_model():
    from llama import Llama, LlamaConfig

    torch.manual_seed(0)
    return Llama(LlamaConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=50, hidden_dim=64,
                             max_seq_len=16)).eval()


@pytest.mark.parametrize("kw,name", [
    ({"temperature": -0.5}, "temperature"), ({"temperature": math.nan}, "temperature"),
    ({"temperature": math.inf}, "temperature"), ({"top_k": -1}, "top_k"), ({"top_k": 2.5}, "top_k"),
    ({"top_p": 1.5}, "top_p"), ({"top_p": -0.1}, "top_p"), ({"top_p": math.nan}, "top_p"),
    ({"max_new_tokens": -1}, "max_new_tokens"), ({"max_new_tokens": 2.5}, "max_new_tokens"),
    ({"prompt_ids": [1, 50]}, "prompt_ids"), ({"prompt_ids": [-1]}, "prompt_ids"), ({"prompt_ids": [1.5]}, "prompt_ids"),
    ({"prompt_ids": []}, "prompt is empty"), ({"seed": "x"}, "seed"),
])
def test_generate_and_stream_generate_refuse_by_name(small_model, kw, name):
    from llama import generate, stream_generate

    args = {"prompt_ids": [1, 2], "max_new_tokens": 3, "temperature": 0.8, **kw}
    with pytest.raises(ValueError, match=name):
        generate(small_model, **args)
    with pytest.raises(ValueError, match=name):
        next(stream_generate(small_model, **args))


def test_top_k_zero_means_no_limit_as_in_transformers(small_model):
    from llama import filter_top_k, generate

    logits = torch.tensor([1.0, 3.0, 2.0])
    assert torch.equal(filter_top_k(logits, 0), logits)
    same = dict(temperature=1.0, seed=7, eos_id=None)
    assert generate(small_model, [1, 2], 8, top_k=0, **same) == generate(small_model, [1, 2], 8, top_k=None, **same)


def test_the_model_refuses_ids_outside_its_vocabulary_and_empty_input(small_model):
    for bad in (50, -1):
        with pytest.raises(ValueError, match=f"token id {bad} is outside the model's vocabulary"):
            small_model(torch.tensor([[1, bad]]))
    with pytest.raises(ValueError, match="at least one token"):
        small_model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="negative"):
        small_model(torch.tensor([[1, 2]]), input_pos=torch.tensor([-1, 0]))


@pytest.mark.parametrize("kind", ["hf", "sentencepiece", "ours"])
def test_every_tokenizer_refuses_ids_outside_its_vocabulary_in_decode(kind):
    from conftest import ROOT, STORIES
    from llama.tokenizer import SentencePieceTokenizer, load_tokenizer

    tok = {"hf": lambda: load_tokenizer(STORIES), "sentencepiece": lambda: SentencePieceTokenizer(STORIES / "tokenizer.model"),
           "ours": lambda: load_tokenizer(ROOT / "assets" / "model")}[kind]()
    for bad in (tok.vocab_size, -1):
        for call in (tok.decode, tok.pieces):
            with pytest.raises(ValueError, match=f"token id {bad} is not in the vocabulary"):
                call([5, bad])
        with pytest.raises(ValueError, match="not in the vocabulary"):
            tok.id_to_token(bad)
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(None)


def test_the_training_cli_names_a_data_file_it_cannot_read(tmp_path):
    from llama.train import main

    with pytest.raises(SystemExit, match="--data .*cannot be read"):
        main(["--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "run"), "--quiet"])
