"""Inside LLaMA's model library: a from-scratch LLaMA in PyTorch (no Gradio here).

    from llama import LlamaConfig, Llama, generate, load_pretrained, save_pretrained

    model = load_pretrained("assets/model", device="cpu")
    new_ids = generate(model, [1, 403, 407], max_new_tokens=20)  # greedy

Folders map to the architecture: config.py (one typed config), model.py (norms,
RoPE, KV cache, attention, feed-forward, block, model, leaf to root), blockwise.py (attention tile by
tile with an online softmax, the "blockwise" attention backend), memory.py (peak memory of one
attention call per backend, measured), count.py (parameters, FLOPs and
weight bytes from a config alone),
generate.py (sampling), checkpoint.py (Hugging Face layout: Llama 1/2/3.x configs with
RoPE scaling, explicit head_dim, biases, EOS lists), tokenizer/ (from-scratch byte-level BPE, and
`load_tokenizer` for real checkpoints' tokenizers behind the same interface), train.py (the course
model's training script).
"""

from .blockwise import blockwise_attention
from .checkpoint import CheckpointError, load_pretrained, save_pretrained
from .config import PRESETS, LlamaConfig, llama_hidden_dim
from .generate import filter_top_k, filter_top_p, generate, next_token_distribution, sample_next, stream_generate
from .model import (ATTN_BACKENDS, Attention, Block, FeedForward, KVCache, LayerNorm, LayerTrace, Llama, LlamaOutput,
                    RMSNorm, Trace, apply_rope, manual_attention, precompute_rope, repeat_kv, rope_frequencies,
                    sinusoidal_positions)

__all__ = [
    "LlamaConfig", "PRESETS", "llama_hidden_dim", "Llama", "LlamaOutput", "Trace", "LayerTrace", "RMSNorm", "LayerNorm",
    "Attention", "ATTN_BACKENDS", "blockwise_attention", "manual_attention", "FeedForward", "Block", "KVCache",
    "repeat_kv", "apply_rope", "precompute_rope", "rope_frequencies", "sinusoidal_positions", "generate",
    "stream_generate", "sample_next", "filter_top_k", "filter_top_p", "next_token_distribution", "load_pretrained", "save_pretrained", "CheckpointError",
]
