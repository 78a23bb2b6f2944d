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
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import save_file

from .config import LlamaConfig
from .model import Llama

HF_ARCH = "LlamaForCausalLM"
OWN_ARCH = "InsideLlamaForCausalLM"  # a Llama with a teaching switch changed
TEACHING_FIELDS = ("norm", "position", "ffn", "norm_placement")
# Not needed to compute (intermediate_size is stored) but kept so lessons can show how it was derived.
RECIPE_FIELDS = ("multiple_of", "ffn_dim_multiplier")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message says which file or tensor is wrong."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------- config

ROPE_TYPES = ("default", "linear", "llama3")  # what config_from_hf accepts; model.rope_frequencies computes them


def _rope_scaling(d: dict) -> tuple[float, dict | None]:
    """(rope_theta, rope_scaling or None) from the three ways a config.json writes them:

        transformers 5  "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, ...}
        transformers 4  "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 32.0, ...}
        older           "rope_scaling": {"type": "linear", "factor": 2.0}
    """
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise CheckpointError(f"config.json: rope_parameters / rope_scaling must be an object, got {rope!r}")
    theta = float(rope.get("rope_theta", d.get("rope_theta", 10000.0)))
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise CheckpointError(f"unsupported Llama variant: RoPE scaling {kind!r} (supported: {', '.join(ROPE_TYPES)})")
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise CheckpointError(f"unsupported Llama variant: partial_rotary_factor={rope['partial_rotary_factor']}")
    if kind == "default":
        return theta, None
    scaling = {k: v for k, v in rope.items() if k not in ("type", "rope_theta")}
    scaling["rope_type"] = kind
    if kind == "llama3":  # transformers falls back to max_position_embeddings when this is absent
        scaling.setdefault("original_max_position_embeddings", d.get("max_position_embeddings"))
    return theta, scaling


def config_from_hf(d: dict, generation: dict | None = None) -> LlamaConfig:
    """transformers' config.json (and generation_config.json, if given) -> LlamaConfig, refusing what this
    implementation does not compute.

    The end-of-sequence ids come from generation_config.json when it names them (that is what
    transformers' `generate` stops at), else from config.json; a list is kept whole."""
    if not isinstance(d, dict):
        raise CheckpointError("config.json must hold a JSON object")
    archs = d.get("architectures") or [HF_ARCH]
    if d.get("model_type", "llama") != "llama" or not set(archs) <= {HF_ARCH, OWN_ARCH}:
        raise CheckpointError(f"unsupported architecture {archs} / model_type {d.get('model_type')!r}: "
                              f"only Llama ({HF_ARCH}) checkpoints can be loaded")
    if d.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"unsupported Llama variant: hidden_act={d['hidden_act']!r}")
    theta, scaling = _rope_scaling(d)
    eos = d.get("eos_token_id")
    if isinstance(generation, dict) and generation.get("eos_token_id") is not None:
        eos = generation["eos_token_id"]
    if isinstance(eos, list) and len(eos) == 1:
        eos = eos[0]
    try:
        n_heads = int(d["num_attention_heads"])
        dim = int(d["hidden_size"])
        extra = d.get("inside_llama", {})
        return LlamaConfig(
            dim=dim,
            n_layers=int(d["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(d.get("num_key_value_heads") or n_heads),
            vocab_size=int(d["vocab_size"]),
            hidden_dim=int(d["intermediate_size"]),
            norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=scaling,
            max_seq_len=int(d.get("max_position_embeddings", 2048)),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
            head_dim=int(d["head_dim"]) if d.get("head_dim") is not None else None,
            attention_bias=bool(d.get("attention_bias", False)),
            mlp_bias=bool(d.get("mlp_bias", False)),
            bos_token_id=d.get("bos_token_id"),
            eos_token_id=eos,
            pad_token_id=d.get("pad_token_id"),
            **{k: extra[k] for k in TEACHING_FIELDS + RECIPE_FIELDS if k in extra},
        )
    except KeyError as e:
        raise CheckpointError(f"config.json is missing the field {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"config.json has an invalid value: {e}") from None


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
        "rope_parameters": {"rope_theta": cfg.rope_theta, **(cfg.rope_scaling or {"rope_type": "default"})},
        "hidden_act": "silu",
        "attention_bias": cfg.attention_bias,
        "mlp_bias": cfg.mlp_bias,
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


def _unreadable(path: Path, e: OSError) -> CheckpointError:
    """The CheckpointError for a file the OS would not let us read, in the OS's words ("permission denied")."""
    if isinstance(e, FileNotFoundError):
        return CheckpointError(f"{path.name} is missing from {path.parent}")
    why = (e.strerror or str(e)).lower()
    hint = " (the server's user needs read access to it)" if isinstance(e, PermissionError) else ""
    return CheckpointError(f"{path} cannot be read: {why}{hint}")


def _check_readable(path: Path) -> None:
    """Open the file once ourselves: safetensors reports any failure to open as "No such file or directory",
    even for a file that exists but is not readable (chmod 000, another owner)."""
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise _unreadable(path, e) from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise _unreadable(path, e) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def _weight_files(root: Path) -> list[Path]:
    single, index = root / "model.safetensors", root / "model.safetensors.index.json"
    if single.exists():
        return [single]
    if index.exists():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index} has no 'weight_map'")
        files = [root / f for f in sorted(set(weight_map.values()))]
        for f in files:
            if not f.exists():
                raise CheckpointError(f"weight file {f.name} is missing from {root}")
        return files
    try:
        found = sorted(p.name for p in root.iterdir())
    except OSError as e:
        raise _unreadable(root, e) from None
    hint = " (pickled .bin/.pt weights are never loaded: convert them to safetensors)" if any(
        n.endswith((".bin", ".pt", ".pth")) for n in found) else ""
    raise CheckpointError(f"no model.safetensors or model.safetensors.index.json in {root}{hint}")


class _Tensors:
    """The tensors of a checkpoint, read one at a time from memory-mapped safetensors files:
    `shapes` costs nothing (the headers only), `get(name)` reads one tensor."""

    def __init__(self, root: Path):
        self.handles, self.where, self.shapes, self.dtypes = [], {}, {}, {}
        for f in _weight_files(root):
            _check_readable(f)
            try:
                h = safe_open(str(f), framework="pt")
                for name in h.keys():
                    self.where[name] = h
                    sl = h.get_slice(name)
                    self.shapes[name] = tuple(sl.get_shape())
                    self.dtypes[name] = sl.get_dtype()  # "BF16", "F32", ...
            except (SafetensorError, OSError, ValueError, RuntimeError) as e:
                raise CheckpointError(f"{f.name} is not a readable safetensors file: {e}") from None
            self.handles.append(h)

    def get(self, name: str) -> torch.Tensor:
        return self.where[name].get_tensor(name)


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
                    dtype: torch.dtype | str = torch.float32) -> Llama:
    """Load a Hugging Face Llama checkpoint (or one saved by `save_pretrained`) in eval mode.

    The weights may be stored in fp16/bf16; they are converted to `dtype` (fp32 by default;
    "auto" keeps the stored precision: config.json's `dtype`, else that of most weights, one precision for
    every tensor as in transformers, so a bf16 checkpoint with fp32 norms loads as bf16 and runs). The model is built on the "meta" device (shapes, no
    memory, no random initialisation) and the file's tensors are assigned to it one by one,
    so loading costs about one copy of the weights.

    `tie_word_embeddings: true` with a *different* `lm_head.weight` in the file: like transformers 5,
    the two matrices are kept apart (config.tie_embeddings becomes False) and a warning says so.
    Raises CheckpointError naming what is wrong with a malformed directory.
    """
    root = resolve_path(path)
    generation = _read_json(root / "generation_config.json") if (root / "generation_config.json").exists() else None
    cfg = config_from_hf(_read_json(root / "config.json"), generation)
    files = _Tensors(root)
    shapes = {k: v for k, v in files.shapes.items() if not k.endswith("rotary_emb.inv_freq")}  # old files store this
    if cfg.tie_embeddings and "lm_head.weight" in shapes:
        if _differ(files, "lm_head.weight", "model.embed_tokens.weight"):
            warnings.warn(f"{root}: config.json says tie_word_embeddings=true but the file also stores a different "
                          "lm_head.weight; like transformers, the two are kept apart and the stored lm_head is used "
                          "(set tie_word_embeddings=false to silence this)", stacklevel=2)
            cfg = cfg.replace(tie_embeddings=False)
        else:
            shapes.pop("lm_head.weight")
    with torch.device("meta"):
        model = Llama(cfg)  # shapes only: no memory, no random init; real storage comes from the file
    expected = {_hf_name(k): tuple(v.shape) for k, v in model.state_dict().items()}
    if cfg.tie_embeddings:
        expected.pop("lm_head.weight")
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"weights do not match the config in config.json: missing {missing[:5]}"
                              f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{' ...' if len(unexpected) > 5 else ''}")
    for name, shape in expected.items():
        if shapes[name] != shape:
            raise CheckpointError(f"tensor {name} has shape {shapes[name]}, the config needs {shape}")
    device = torch.device(device) if device is not None else default_device()
    if isinstance(dtype, str):
        dtype = _auto_dtype(root, files, expected) if dtype == "auto" else _DTYPES.get(dtype, dtype)
    if dtype not in _DTYPES.values():
        raise ValueError(f"dtype must be torch.float32, torch.float16, torch.bfloat16 or 'auto', not {dtype!r}")
    state = {}
    for k in model.state_dict():
        if cfg.tie_embeddings and k == "lm_head.weight":
            continue
        t = files.get(_hf_name(k))
        state[k] = t.to(device=device, dtype=dtype)
    del files  # closes the memory maps
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    with torch.device(device):
        model.init_tables()  # the RoPE tables, computed on the device (they were "meta" until now)
    return model.eval()


def _auto_dtype(root: Path, files: _Tensors, names) -> torch.dtype:
    """The one precision dtype="auto" loads in: config.json's `dtype` (transformers 5; `torch_dtype` before),
    else the stored precision of most of the weights. Every tensor is cast to it, as transformers' dtype="auto"
    does, so a checkpoint that stores a bf16 model with fp32 norms (several published ones do) runs in bf16
    instead of failing at the first product of an fp32 norm's output with a bf16 matrix."""
    d = _read_json(root / "config.json")
    named = d.get("dtype") or d.get("torch_dtype")
    if isinstance(named, str) and named.removeprefix("torch.") in _DTYPES:
        return _DTYPES[named.removeprefix("torch.")]
    counts: dict[torch.dtype, int] = {}
    for name in names:
        kind = _SAFETENSORS_DTYPES.get(files.dtypes.get(name, ""))
        if kind is not None:
            n = 1
            for size in files.shapes[name]:
                n *= size
            counts[kind] = counts.get(kind, 0) + n
    kind = max(counts, key=counts.get) if counts else torch.float32
    return torch.float32 if kind == torch.float64 else kind


def _differ(files: _Tensors, a: str, b: str) -> bool:
    return files.shapes[a] != files.shapes[b] or not torch.equal(files.get(a), files.get(b))


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
    root = resolve_path(path)
    generation = _read_json(root / "generation_config.json") if (root / "generation_config.json").exists() else None
    return config_from_hf(_read_json(root / "config.json"), generation)


# ----------------------------------------------------------------------------- Meta's layout

# Our (Hugging Face) name -> Meta's name in its reference llama/model.py and consolidated.*.pth checkpoints.
# "{i}" is the layer index. The model's structure is the same; only the names and the RoPE pair order differ.
META_NAMES = {
    "embed_tokens.weight": "tok_embeddings.weight",
    "layers.{i}.input_layernorm.weight": "layers.{i}.attention_norm.weight",
    "layers.{i}.self_attn.q_proj.weight": "layers.{i}.attention.wq.weight",
    "layers.{i}.self_attn.k_proj.weight": "layers.{i}.attention.wk.weight",
    "layers.{i}.self_attn.v_proj.weight": "layers.{i}.attention.wv.weight",
    "layers.{i}.self_attn.o_proj.weight": "layers.{i}.attention.wo.weight",
    "layers.{i}.post_attention_layernorm.weight": "layers.{i}.ffn_norm.weight",
    "layers.{i}.mlp.gate_proj.weight": "layers.{i}.feed_forward.w1.weight",
    "layers.{i}.mlp.down_proj.weight": "layers.{i}.feed_forward.w2.weight",
    "layers.{i}.mlp.up_proj.weight": "layers.{i}.feed_forward.w3.weight",
    "norm.weight": "norm.weight",
    "lm_head.weight": "output.weight",
}


def rope_rows_to_meta(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder the rows of q_proj or k_proj (n_heads * hs, C) from the rotate-half layout (pair i = dims i and
    i + hs/2 of each head, as Hugging Face and `model.apply_rope` pair them) to Meta's interleaved layout (pair i =
    dims 2i and 2i+1, as Meta's `apply_rotary_emb` pairs them through `torch.view_as_complex`).

        head rows [a0, a1, b0, b1] (pairs (a0, b0), (a1, b1))  ->  [a0, b0, a1, b1]

    The inverse of the `permute` in transformers' convert_llama_weights_to_hf.py (`rope_rows_from_meta`). Without
    it, Meta's code would rotate the wrong pairs of dimensions and every attention score would change."""
    rows, cols = w.shape
    return w.reshape(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def rope_rows_from_meta(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Meta's interleaved q/k rows -> the rotate-half layout (transformers' convert_llama_weights_to_hf `permute`):
    [a0, b0, a1, b1] -> [a0, a1, b0, b1]."""
    rows, cols = w.shape
    return w.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def to_meta_state_dict(model: Llama, permute: bool = True) -> dict[str, torch.Tensor]:
    """The model's weights named and laid out as Meta's reference code reads them (META_NAMES; q/k rows reordered
    by `rope_rows_to_meta` unless permute=False, which the lesson on Meta's code uses to show what goes wrong).
    Tensors are views or new tensors; the model is not changed. Raises ValueError for a model Meta's code does not
    describe (a teaching switch changed, or biases)."""
    cfg = model.config
    if not cfg.is_standard_llama or cfg.attention_bias or cfg.mlp_bias:
        raise ValueError("Meta's reference code describes a standard Llama (RMSNorm, RoPE, SwiGLU, pre-norm, no "
                         "biases); this model differs")
    names = {}
    for ours, meta in META_NAMES.items():
        if "{i}" in ours:
            names.update({ours.format(i=i): meta.format(i=i) for i in range(cfg.n_layers)})
        else:
            names[ours] = meta
    out = {}
    for name, w in model.state_dict().items():
        w = w.detach()
        if permute and name.endswith("self_attn.q_proj.weight"):
            w = rope_rows_to_meta(w, cfg.n_heads)
        elif permute and name.endswith("self_attn.k_proj.weight"):
            w = rope_rows_to_meta(w, cfg.n_kv_heads)
        out[names[name]] = w
    return out


__all__ = ["CheckpointError", "load_pretrained", "save_pretrained", "config_from_hf", "config_to_hf",
           "load_model_config", "default_device", "META_NAMES", "rope_rows_to_meta", "rope_rows_from_meta",
           "to_meta_state_dict"]
