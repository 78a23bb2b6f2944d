"""The Llama family as it is published: tiny random checkpoints written by transformers' own classes
(Llama 3.2 and Llama 2 shapes, RoPE scaling, explicit head_dim, biases, EOS lists, an untied lm_head
under tie_word_embeddings) load with transformers' logits and greedy tokens, in seconds on a CPU."""

import json
import shutil

import pytest
import torch
from transformers import LlamaConfig as HFConfig
from transformers import LlamaForCausalLM

from conftest import STORIES
from llama import CheckpointError, generate, load_pretrained
from llama.checkpoint import config_from_hf
from llama.tokenizer import SentencePieceTokenizer, load_tokenizer

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 32}


def hf_checkpoint(path, seed=0, **kw):
    """A random transformers LlamaForCausalLM saved to `path` (norm gains and biases randomised too)."""
    torch.manual_seed(seed)
    args = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
                num_key_value_heads=2, vocab_size=300, max_position_embeddings=256, rms_norm_eps=1e-5,
                bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    model = LlamaForCausalLM(HFConfig(**{**args, **kw})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
    model.save_pretrained(path)
    return model


def reload_hf(path):
    return LlamaForCausalLM.from_pretrained(path, attn_implementation="eager").eval()


def hf_greedy(model, prompt, n, **kw):
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, pad_token_id=0, **kw)
    return out[0, len(prompt):].tolist()


def assert_same_logits(ours, ref, vocab, T=100):
    idx = torch.randint(0, vocab, (2, T))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx).logits, ref(idx).logits, atol=1e-4, rtol=1e-4)


def set_eos(path, eos):
    for name in ("config.json", "generation_config.json"):
        d = json.loads((path / name).read_text())
        d["eos_token_id"] = eos
        (path / name).write_text(json.dumps(d))


def test_llama32_shape_logits_greedy_and_second_eos(tmp_path):
    """Tied embeddings, theta 500000, llama3 RoPE scaling, GQA 4:1, two EOS ids (as Llama 3.2 1B)."""
    hf_checkpoint(tmp_path, rope_parameters={"rope_theta": 500000.0, **LLAMA3_ROPE}, tie_word_embeddings=True,
                  eos_token_id=[298, 299], initializer_range=0.3)  # wide weights: a varied greedy run
    ours = load_pretrained(tmp_path, device="cpu")
    c = ours.config
    assert (c.tie_embeddings, c.rope_theta, c.n_heads // c.n_kv_heads, c.eos_ids) == (True, 500000.0, 4, (298, 299))
    assert c.rope_scaling == LLAMA3_ROPE
    ref = reload_hf(tmp_path)
    assert_same_logits(ours, ref, 300)  # 100 positions: past original_max_position_embeddings (32)

    # Make the second EOS id a token that greedy decoding reaches at step k: both must stop right there.
    prompt = [1, 17, 42, 99]
    free = hf_greedy(ref, prompt, 40, eos_token_id=None, min_new_tokens=40)
    assert generate(ours, prompt, 40, eos_id=None) == free
    k = max(i for i in range(40) if free[i] not in free[:i])  # the last token that is new when it appears
    assert k >= 1, free
    never = next(t for t in range(3, 300) if t not in free)
    set_eos(tmp_path, [never, free[k]])
    ours, ref = load_pretrained(tmp_path, device="cpu"), reload_hf(tmp_path)
    want = hf_greedy(ref, prompt, 40)
    assert want == free[:k + 1]
    assert generate(ours, prompt, 40) == want


def test_llama2_shape_with_the_stories260k_sentencepiece_tokenizer(tmp_path):
    hf_checkpoint(tmp_path, seed=1, vocab_size=512, num_key_value_heads=8, tie_word_embeddings=False,
                  max_position_embeddings=128)
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(STORIES / name, tmp_path / name)
    tok = load_tokenizer(tmp_path)  # only tokenizer.model here
    assert isinstance(tok, SentencePieceTokenizer)
    ours, ref = load_pretrained(tmp_path, device="cpu"), reload_hf(tmp_path)
    assert_same_logits(ours, ref, 512)
    prompt = tok.encode("Once upon a time, a little girl", add_bos=True)
    assert prompt[0] == 1 and prompt[1:] == load_tokenizer(STORIES).encode("Once upon a time, a little girl")
    new = generate(ours, prompt, 30, eos_id=None)
    assert new == hf_greedy(ref, prompt, 30, eos_token_id=None, min_new_tokens=30)
    assert isinstance(tok.decode(new), str)


@pytest.mark.parametrize("form", ["rope_parameters", "rope_scaling type", "rope_scaling rope_type"])
def test_linear_rope_scaling_in_every_spelling_equals_transformers(tmp_path, form):
    hf_checkpoint(tmp_path, rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0})
    cfg_path = tmp_path / "config.json"
    d = json.loads(cfg_path.read_text())
    if form != "rope_parameters":
        del d["rope_parameters"]
        d["rope_theta"] = 10000.0
        d["rope_scaling"] = {("type" if form.endswith(" type") else "rope_type"): "linear", "factor": 4.0}
        cfg_path.write_text(json.dumps(d))
    ours = load_pretrained(tmp_path, device="cpu")
    assert ours.config.rope_scaling == {"rope_type": "linear", "factor": 4.0}
    assert_same_logits(ours, reload_hf(tmp_path), 300)


def test_llama3_scaling_in_the_old_rope_scaling_key(tmp_path):
    hf_checkpoint(tmp_path, rope_parameters={"rope_theta": 500000.0, **LLAMA3_ROPE})
    cfg_path = tmp_path / "config.json"
    d = json.loads(cfg_path.read_text())
    del d["rope_parameters"]
    d.update(rope_theta=500000.0, rope_scaling=LLAMA3_ROPE)
    cfg_path.write_text(json.dumps(d))
    ours = load_pretrained(tmp_path, device="cpu")
    assert ours.config.rope_scaling == LLAMA3_ROPE and ours.config.rope_theta == 500000.0
    assert_same_logits(ours, reload_hf(tmp_path), 300)


def test_other_rope_types_are_refused_by_name():
    base = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=8, vocab_size=10, intermediate_size=8)
    for kind in ("yarn", "dynamic", "longrope"):
        with pytest.raises(CheckpointError, match=f"RoPE scaling '{kind}'"):
            config_from_hf({**base, "rope_scaling": {"rope_type": kind, "factor": 2.0}})


def test_explicit_head_dim_and_biases(tmp_path):
    hf_checkpoint(tmp_path, head_dim=16, attention_bias=True, mlp_bias=True)  # 8 heads x 16 != hidden 64
    ours = load_pretrained(tmp_path, device="cpu")
    c = ours.config
    assert (c.head_dim, c.attention_bias, c.mlp_bias) == (16, True, True)
    assert ours.layers[0].self_attn.q_proj.weight.shape == (128, 64) and ours.layers[0].mlp.up_proj.bias is not None
    ref = reload_hf(tmp_path)
    assert_same_logits(ours, ref, 300)
    assert generate(ours, [1, 5], 20, eos_id=None) == hf_greedy(ref, [1, 5], 20, eos_token_id=None, min_new_tokens=20)


def test_tied_config_with_a_different_stored_lm_head_does_what_transformers_does(tmp_path):
    # Saved untied (two different matrices), then config.json says tied: transformers keeps them apart.
    hf_checkpoint(tmp_path, tie_word_embeddings=False)
    d = json.loads((tmp_path / "config.json").read_text())
    d["tie_word_embeddings"] = True
    (tmp_path / "config.json").write_text(json.dumps(d))
    with pytest.warns(UserWarning, match="kept apart"):
        ours = load_pretrained(tmp_path, device="cpu")
    ref = reload_hf(tmp_path)
    assert ref.lm_head.weight.data_ptr() != ref.model.embed_tokens.weight.data_ptr()  # transformers 5's choice
    assert ours.config.tie_embeddings is False
    assert not torch.equal(ours.lm_head.weight, ours.embed_tokens.weight)
    assert_same_logits(ours, ref, 300)


def test_loading_runs_no_random_initialisation(tmp_path, monkeypatch):
    hf_checkpoint(tmp_path)
    calls = []  # random fills of real memory (on "meta" they cost nothing: no storage)
    for name in ("normal_", "kaiming_uniform_", "uniform_"):
        real = getattr(torch.nn.init, name)

        def spy(tensor, *a, _real=real, _name=name, **k):
            if tensor.device.type != "meta":
                calls.append(_name)
            return _real(tensor, *a, **k)

        monkeypatch.setattr(torch.nn.init, name, spy)
    model = load_pretrained(tmp_path, device="cpu")
    assert calls == []
    assert all(p.device.type == "cpu" for p in model.parameters()) and model.rope_cos.device.type == "cpu"


def test_generation_allocates_the_cache_for_the_request_not_the_context(tmp_path):
    hf_checkpoint(tmp_path, max_position_embeddings=1_048_576, num_hidden_layers=1)
    model = load_pretrained(tmp_path, device="cpu")
    made = []
    new_cache = model.new_cache
    model.new_cache = lambda *a, **k: made.append(new_cache(*a, **k)) or made[-1]
    out = generate(model, [1, 2, 3], 5, eos_id=None)
    assert len(out) == 5
    (cache,) = made
    c = model.config
    assert sum(layer.nbytes for layer in cache) == 2 * c.n_layers * c.n_kv_heads * c.head_dim * (3 + 5) * 4


def test_our_checkpoint_with_every_new_field_loads_in_transformers(tmp_path):
    from llama import Llama, LlamaConfig, save_pretrained

    torch.manual_seed(3)
    cfg = LlamaConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=24, vocab_size=200, hidden_dim=96,
                      max_seq_len=128, rope_theta=500000.0, rope_scaling=LLAMA3_ROPE, attention_bias=True,
                      mlp_bias=True, tie_embeddings=True, eos_token_id=[198, 199])
    ours = Llama(cfg).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    save_pretrained(ours, tmp_path)
    ref = reload_hf(tmp_path)
    assert ref.config.eos_token_id == [198, 199] and ref.config.head_dim == 24
    assert_same_logits(ours, ref, 200)
    again = load_pretrained(tmp_path, device="cpu")
    assert again.config.to_dict() == cfg.to_dict()
