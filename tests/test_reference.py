"""Our Llama against transformers' LlamaForCausalLM: same logits, same greedy tokens, both directions."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig as HFConfig
from transformers import LlamaForCausalLM

from conftest import STORIES
from llama import CheckpointError, Llama, LlamaConfig, generate, load_pretrained, save_pretrained

CASES = [(nkv, tied, theta) for nkv in (4, 2, 1) for tied in (True, False) for theta in (10000.0, 500000.0)]


def hf_greedy(model, prompt, n):
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                         pad_token_id=0, min_new_tokens=n)
    return out[0, len(prompt):].tolist()


def hf_model(nkv, tied, theta):
    torch.manual_seed(nkv * 7 + tied)
    cfg = HFConfig(hidden_size=32, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=nkv, vocab_size=120, max_position_embeddings=64, rms_norm_eps=1e-6,
                   rope_theta=theta, tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2,
                   attn_implementation="eager")
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random norm gains, so a mix-up of norm weights would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("nkv,tied,theta", CASES)
def test_transformers_checkpoint_loads_with_same_logits(tmp_path, nkv, tied, theta):
    ref = hf_model(nkv, tied, theta)
    ref.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path, device="cpu")
    assert ours.config.n_kv_heads == nkv and ours.config.rope_theta == theta and ours.config.tie_embeddings == tied
    idx = torch.randint(0, 120, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx).logits, ref(idx).logits, atol=1e-4, rtol=1e-4)
    prompt = [1, 17, 42, 99]
    assert generate(ours, prompt, 20, eos_id=None) == hf_greedy(ref, prompt, 20)


@pytest.mark.parametrize("nkv,tied,theta", CASES)
def test_our_checkpoint_loads_in_transformers_with_same_logits(tmp_path, nkv, tied, theta):
    torch.manual_seed(nkv + 10 * tied)
    ours = Llama(LlamaConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=nkv, vocab_size=120, hidden_dim=80,
                             max_seq_len=64, rope_theta=theta, tie_embeddings=tied)).eval()
    save_pretrained(ours, tmp_path)
    ref = LlamaForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    idx = torch.randint(0, 120, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(ref(idx).logits, ours(idx).logits, atol=1e-4, rtol=1e-4)
    prompt = [1, 5, 6]
    assert hf_greedy(ref, prompt, 20) == generate(ours, prompt, 20, eos_id=None)
    again = load_pretrained(tmp_path, device="cpu")
    assert torch.equal(again(idx).logits, ours(idx).logits)


def test_real_pretrained_checkpoint_generates_like_transformers():
    ours = load_pretrained(STORIES, device="cpu")
    ref = LlamaForCausalLM.from_pretrained(STORIES).eval()
    prompt = [1, 403, 407, 261, 378]  # <s> Once upon a time
    want = hf_greedy(ref, prompt, 200)
    got = generate(ours, prompt, 200, eos_id=None)
    assert len(got) == 200 and got == want
    idx = torch.tensor([prompt + want[:100]])
    with torch.no_grad():
        torch.testing.assert_close(ours(idx).logits, ref(idx).logits, atol=1e-4, rtol=1e-4)


def test_sharded_and_half_precision_checkpoints(tmp_path):
    ref = hf_model(2, False, 10000.0)
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    ours = load_pretrained(tmp_path / "sharded", device="cpu")
    idx = torch.randint(0, 120, (1, 16))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx).logits, ref(idx).logits, atol=1e-4, rtol=1e-4)
    save_pretrained(ours, tmp_path / "half", dtype=torch.float16)
    half = load_pretrained(tmp_path / "half", device="cpu")
    assert half.embed_tokens.weight.dtype == torch.float32  # stored in fp16, computed in fp32
    save_pretrained(ours, tmp_path / "full")
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size  # noqa: E731
    assert size("half") < 0.55 * size("full")
    torch.testing.assert_close(half(idx).logits, ours(idx).logits, atol=5e-2, rtol=5e-2)
    bf16 = load_pretrained(tmp_path / "half", device="cpu", dtype=torch.bfloat16)
    assert bf16(idx).logits.dtype == torch.bfloat16


def test_teaching_variants_round_trip_but_are_not_labelled_llama(tmp_path):
    model = Llama(LlamaConfig(dim=32, n_layers=1, n_heads=4, vocab_size=50, norm="layernorm", position="learned",
                              ffn="gelu", hidden_dim=128)).eval()
    save_pretrained(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["InsideLlamaForCausalLM"]
    again = load_pretrained(tmp_path, device="cpu")
    assert (again.config.norm, again.config.position, again.config.ffn) == ("layernorm", "learned", "gelu")
    assert again.config.multiple_of == model.config.multiple_of
    idx = torch.randint(0, 50, (1, 10))
    assert torch.equal(again(idx).logits, model(idx).logits)


def _good_dir(tmp_path):
    model = Llama(LlamaConfig.from_name("test"))
    return save_pretrained(model, tmp_path / "ok"), model


@pytest.mark.parametrize("breakage,message", [
    ("no_config", "config.json is missing"),
    ("bad_json", "not valid JSON"),
    ("no_weights", "no model.safetensors"),
    ("pickle_only", "never loaded"),
    ("garbage_weights", "not a readable safetensors"),
    ("wrong_shape", "has shape"),
    ("missing_tensor", "missing"),
    ("wrong_arch", "unsupported architecture"),
    ("rope_scaling", "unsupported Llama variant: RoPE scaling 'yarn'"),
    ("rope_incomplete", "rope_scaling 'llama3' needs"),
    ("missing_field", "missing the field"),
    ("missing_dir", "does not exist"),
])
def test_malformed_checkpoints_raise_one_clear_error(tmp_path, breakage, message):
    root, model = _good_dir(tmp_path)
    cfg_path, w = root / "config.json", root / "model.safetensors"
    cfg = json.loads(cfg_path.read_text())
    state = {("lm_head.weight" if k == "lm_head.weight" else "model." + k): v.contiguous()
             for k, v in model.state_dict().items()}
    if breakage == "no_config":
        cfg_path.unlink()
    elif breakage == "bad_json":
        cfg_path.write_text("{not json")
    elif breakage == "no_weights":
        w.unlink()
    elif breakage == "pickle_only":
        w.unlink()
        (root / "pytorch_model.bin").write_bytes(b"x")
    elif breakage == "garbage_weights":
        w.write_bytes(b"\x00" * 100)
    elif breakage == "wrong_shape":
        state["model.norm.weight"] = torch.ones(7)
        save_file(state, str(w))
    elif breakage == "missing_tensor":
        del state["model.layers.1.mlp.up_proj.weight"]
        save_file(state, str(w))
    elif breakage == "wrong_arch":
        cfg.update(architectures=["MistralForCausalLM"], model_type="mistral")
    elif breakage == "rope_scaling":
        cfg["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 500000.0, "factor": 8.0}
    elif breakage == "rope_incomplete":
        cfg["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}
    elif breakage == "missing_field":
        del cfg["hidden_size"]
    elif breakage == "missing_dir":
        root = tmp_path / "nowhere"
    if breakage in ("wrong_arch", "rope_scaling", "rope_incomplete", "missing_field"):
        cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message):
        load_pretrained(root, device="cpu")
