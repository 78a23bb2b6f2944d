"""Reading and writing checkpoints in the Hugging Face Llama layout.

A checkpoint is a directory with `config.json` (a transformers `LlamaConfig`)
and `model.safetensors` (or shards named by `model.safetensors.index.json`).
Our module names are transformers' names, so the only conversion is the
"model." prefix every tensor but `lm_head` carries there:

    model.layers.0.self_attn.q_proj.weight  <->  layers.0.self_attn.q_proj.weight

and the RoPE pair layout needs no permutation (see `model.apply_rope`). All name
and config conversions live here and nowhere else. Weights are only ever read
with safetensors: nothing is unpickled.

A model that uses a teaching switch (LayerNorm, learned positions, ...) is
saved the same way, with the switches under "inside_llama" in config.json and
architecture "InsideLlamaForCausalLM", so transformers refuses it instead of
silently running a different network.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import LlamaConfig
from .model import Llama

HF_ARCH = "LlamaForCausalLM"
OWN_ARCH = "InsideLlamaForCausalLM"  # a Llama with a teaching switch changed
TEACHING_FIELDS = ("norm", "position", "ffn", "norm_placement")
# Not needed to compute (intermediate_size is stored) but kept so lessons can show how it was derived.
RECIPE_FIELDS = ("multiple_of", "ffn_dim_multiplier")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message says which file or tensor is wrong."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------- config


def config_from_hf(d: dict) -> LlamaConfig:
    """transformers' config.json -> LlamaConfig, refusing what this implementation does not compute."""
    if not isinstance(d, dict):
        raise CheckpointError("config.json must hold a JSON object")
    archs = d.get("architectures") or [HF_ARCH]
    if d.get("model_type", "llama") != "llama" or not set(archs) <= {HF_ARCH, OWN_ARCH}:
        raise CheckpointError(f"unsupported architecture {archs} / model_type {d.get('model_type')!r}: "
                              f"only Llama ({HF_ARCH}) checkpoints can be loaded")
    unsupported = []
    if d.get("hidden_act", "silu") != "silu":
        unsupported.append(f"hidden_act={d['hidden_act']!r}")
    if d.get("attention_bias") or d.get("mlp_bias"):
        unsupported.append("attention or MLP biases")
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        unsupported.append(f"RoPE scaling {rope.get('rope_type', rope.get('type'))!r}")
    try:
        n_heads = int(d["num_attention_heads"])
        dim = int(d["hidden_size"])
        if d.get("head_dim") not in (None, dim // n_heads):
            unsupported.append(f"head_dim={d['head_dim']} different from hidden_size / num_attention_heads")
        if unsupported:
            raise CheckpointError("unsupported Llama variant: " + ", ".join(unsupported))
        extra = d.get("inside_llama", {})
        return LlamaConfig(
            dim=dim,
            n_layers=int(d["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(d.get("num_key_value_heads") or n_heads),
            vocab_size=int(d["vocab_size"]),
            hidden_dim=int(d["intermediate_size"]),
            norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope.get("rope_theta", d.get("rope_theta", 10000.0))),
            max_seq_len=int(d.get("max_position_embeddings", 2048)),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
            bos_token_id=d.get("bos_token_id"),
            eos_token_id=_first(d.get("eos_token_id")),
            pad_token_id=d.get("pad_token_id"),
            **{k: extra[k] for k in TEACHING_FIELDS + RECIPE_FIELDS if k in extra},
        )
    except KeyError as e:
        raise CheckpointError(f"config.json is missing the field {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"config.json has an invalid value: {e}") from None


def _first(x):
    return x[0] if isinstance(x, list) and x else x  # Llama 3 lists several EOS ids; we stop at the first


def config_to_hf(cfg: LlamaConfig, dtype: torch.dtype = torch.float32) -> dict:
    d = {
        "architectures": [HF_ARCH if cfg.is_standard_llama else OWN_ARCH],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.hidden_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_theta": cfg.rope_theta, "rope_type": "default"},
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "dtype": str(dtype).removeprefix("torch."),
    }
    # transformers ignores this block; the architecture name above is what stops it running a variant.
    d["inside_llama"] = {k: getattr(cfg, k) for k in TEACHING_FIELDS + RECIPE_FIELDS}
    return d


# ----------------------------------------------------------------------------- weights


def _hf_name(name: str) -> str:
    return name if name.startswith("lm_head.") else "model." + name


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path.name} is missing from {path.parent}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def _read_tensors(root: Path) -> dict[str, torch.Tensor]:
    single, index = root / "model.safetensors", root / "model.safetensors.index.json"
    if single.exists():
        files = [single]
    elif index.exists():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index} has no 'weight_map'")
        files = [root / f for f in sorted(set(weight_map.values()))]
    else:
        found = sorted(p.name for p in root.iterdir())
        hint = " (pickled .bin/.pt weights are never loaded: convert them to safetensors)" if any(
            n.endswith((".bin", ".pt", ".pth")) for n in found) else ""
        raise CheckpointError(f"no model.safetensors or model.safetensors.index.json in {root}{hint}")
    tensors = {}
    for f in files:
        if not f.exists():
            raise CheckpointError(f"weight file {f.name} is missing from {root}")
        try:
            tensors.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{f.name} is not a readable safetensors file: {e}") from None
    return tensors


def resolve_path(path: str | Path) -> Path:
    """A local directory, or a Hugging Face Hub id ("org/name") already in the local Hub cache."""
    p = Path(path)
    if p.is_dir():
        return p
    if isinstance(path, str) and path.count("/") == 1 and not p.exists():
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(path, allow_patterns=["*.json", "*.safetensors", "*.model"]))
        except Exception as e:  # offline, unknown repo, ...: say so plainly
            raise CheckpointError(f"{path!r} is not a local directory and could not be fetched from the Hub: {e}") from None
    raise CheckpointError(f"checkpoint directory {str(path)!r} does not exist")


def load_pretrained(path: str | Path, device: str | torch.device | None = None,
                    dtype: torch.dtype = torch.float32) -> Llama:
    """Load a Hugging Face Llama checkpoint (or one saved by `save_pretrained`) in eval mode.

    The weights may be stored in fp16/bf16; they are converted to `dtype` (fp32 by default).
    Raises CheckpointError naming what is wrong with a malformed directory.
    """
    root = resolve_path(path)
    cfg = config_from_hf(_read_json(root / "config.json"))
    tensors = _read_tensors(root)
    tensors = {k: v for k, v in tensors.items() if not k.endswith("rotary_emb.inv_freq")}  # old files store this table
    with torch.device("meta"):
        model = Llama(cfg)  # shapes only; real storage comes from the file
    expected = {_hf_name(k): v for k, v in model.state_dict().items()}
    if cfg.tie_embeddings:
        expected.pop("lm_head.weight")
        tensors.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"weights do not match the config in config.json: missing {missing[:5]}"
                              f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{' ...' if len(unexpected) > 5 else ''}")
    for name, ref in expected.items():
        if tuple(tensors[name].shape) != tuple(ref.shape):
            raise CheckpointError(f"tensor {name} has shape {tuple(tensors[name].shape)}, "
                                  f"the config needs {tuple(ref.shape)}")
    device = torch.device(device) if device is not None else default_device()
    model = Llama(cfg)  # real (CPU) storage; buffers such as the RoPE tables are computed here
    state = {k: tensors[_hf_name(k)] for k in model.state_dict() if not (cfg.tie_embeddings and k == "lm_head.weight")}
    model.load_state_dict(state, strict=False)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    return model.to(device=device, dtype=dtype).eval()


def save_pretrained(model: Llama, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write config.json and model.safetensors so transformers' LlamaForCausalLM (and `load_pretrained`) read them.

    `dtype` (e.g. torch.float16) sets the storage precision; default: the model's own.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    dtype = dtype or model.embed_tokens.weight.dtype
    state = {}
    for k, v in model.state_dict().items():
        if cfg.tie_embeddings and k == "lm_head.weight":
            continue  # stored once, as the embedding
        state[_hf_name(k)] = v.detach().to("cpu", dtype).contiguous()
    (root / "config.json").write_text(json.dumps(config_to_hf(cfg, dtype), indent=2) + "\n")
    save_file(state, str(root / "model.safetensors"), metadata={"format": "pt"})
    return root


def load_model_config(path: str | Path) -> LlamaConfig:
    return config_from_hf(_read_json(resolve_path(path) / "config.json"))


__all__ = ["CheckpointError", "load_pretrained", "save_pretrained", "config_from_hf", "config_to_hf",
           "load_model_config", "default_device"]
