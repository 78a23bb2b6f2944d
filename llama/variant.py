"""A variant of a loaded model that shares its weights: the lessons' "same weights, one switch changed".

A page that asks "what if RoPE were off?", "what if rope_theta were 500,000?" or "what if the K/V heads were
mean-pooled?" needs a second model that differs from the loaded one in its config or in a few tensors. Copying
the whole model for that (a fresh `Llama(cfg)` filled by `load_state_dict`, or `copy.deepcopy`) costs the model's
size again per variant: 4.4 GB for a 1.1B-parameter model in fp32. `shared_variant` builds the variant's modules
on the "meta" device (no memory, no random init) and hands them the base model's own tensors, so a variant costs
only what changes: the tensors given in `replace` and the tables its config derives (the RoPE cos/sin).

The base model is never changed: the variant holds new Parameter objects over the same storage, its own
`training` flags and its own buffers. Nothing may write into a variant's shared tensors in place (the app never
does: models are read-only, gradients off).

    >>> off = shared_variant(model, model.config.replace(position="none"))
    >>> off.layers[0].mlp.up_proj.weight.data_ptr() == model.layers[0].mlp.up_proj.weight.data_ptr()
    True
"""

from __future__ import annotations

import torch

from .config import LlamaConfig
from .model import Llama


def shared_variant(model: Llama, cfg: LlamaConfig | None = None, replace: dict[str, torch.Tensor] | None = None) -> Llama:
    """A Llama for `cfg` (default: the model's own) whose tensors are `model`'s, shared, except those named in
    `replace` ({state-dict name: tensor}, e.g. pooled `layers.0.self_attn.k_proj.weight`). Tables the config
    derives (RoPE cos/sin, sinusoidal positions) are the base's when the config keeps them, else computed for `cfg`
    on the model's device. Eval mode, no gradients; the base's attention backend. Raises what load_state_dict
    raises for a tensor of the wrong shape."""
    cfg = cfg or model.config
    w = model.embed_tokens.weight
    with torch.device("meta"):
        twin = Llama(cfg)  # shapes only: every tensor is assigned below
    state = dict(model.state_dict())  # detached tensors over the base's storage (no copy)
    state.update(replace or {})
    twin.load_state_dict(state, assign=True)
    if cfg.tie_embeddings:
        twin.lm_head.weight = twin.embed_tokens.weight
    base = model.config
    same_tables = (cfg.position, cfg.rope_theta, cfg.rope_scaling, cfg.max_seq_len, cfg.head_dim, cfg.dim) == \
        (base.position, base.rope_theta, base.rope_scaling, base.max_seq_len, base.head_dim, base.dim)
    if same_tables:
        for name, buf in model.named_buffers():  # the RoPE tables (not in the state dict): shared too
            twin.register_buffer(name, buf, persistent=False)
    else:
        with torch.device(w.device):
            twin.init_tables()
        for name, buf in list(twin.named_buffers()):  # the tables in the base's precision, as a loaded model has them
            base_buf = getattr(model, name, None)
            if base_buf is not None:
                twin.register_buffer(name, buf.to(base_buf.dtype), persistent=False)
    twin.attn_backend, twin.attn_block_size = model.attn_backend, model.attn_block_size
    return twin.eval().requires_grad_(False)
