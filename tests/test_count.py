"""llama.count against the published totals and against the real model's parameters, on CPU, in seconds."""

import doctest

import pytest
import torch

import llama.count
from llama import Llama, LlamaConfig
from llama.config import PRESET_FACTS, PRESETS
from llama.count import flops_per_token, layer_shapes, matmul_weights, parameter_counts, top_shapes, weight_bytes

# Totals published with the weights (the checkpoints' safetensors metadata, as Hugging Face shows them).
PUBLISHED_TOTALS = {
    "llama2-7b": 6_738_415_616,
    "llama2-70b": 68_976_648_192,
    "llama3-8b": 8_030_261_248,
    "llama3.1-405b": 405_853_388_800,
    "llama3.2-1b": 1_235_814_400,  # tied: the 128256 x 2048 matrix is stored once
}

# Published intermediate_size of each preset (config.json).
PUBLISHED_HIDDEN = {
    "llama1-7b": 11008, "llama1-13b": 13824, "llama1-33b": 17920, "llama1-65b": 22016,
    "llama2-7b": 11008, "llama2-13b": 13824, "llama2-70b": 28672,
    "llama3-8b": 14336, "llama3-70b": 28672,
    "llama3.1-8b": 14336, "llama3.1-70b": 28672, "llama3.1-405b": 53248,
    "llama3.2-1b": 8192, "llama3.2-3b": 8192,
}

# Small configs that exercise every branch of the counting: GQA, tied and untied, biases, explicit head_dim,
# LayerNorm (with its bias), learned positions, a classic two-matrix MLP.
SMALL = {
    "test": LlamaConfig.from_name("test"),
    "baby": LlamaConfig.from_name("baby"),
    "gqa-untied-bias": LlamaConfig.from_name("test", n_heads=8, n_kv_heads=2, attention_bias=True, mlp_bias=True),
    "tied-head_dim": LlamaConfig.from_name("test", head_dim=6, tie_embeddings=True),
    "layernorm-learned-gelu": LlamaConfig.from_name("test", norm="layernorm", position="learned", ffn="gelu",
                                                    attention_bias=True),
}


@pytest.mark.parametrize("name", PUBLISHED_TOTALS)
def test_totals_equal_the_published_ones(name):
    assert parameter_counts(LlamaConfig.from_name(name)).total == PUBLISHED_TOTALS[name]


def test_hidden_sizes_are_the_published_intermediate_sizes():
    published = {name for name in PRESETS if name.startswith("llama")}
    assert published == set(PUBLISHED_HIDDEN) == set(PRESET_FACTS)
    assert {name: LlamaConfig.from_name(name).hidden_dim for name in published} == PUBLISHED_HIDDEN


def test_published_presets_follow_their_family():
    c1, c3 = LlamaConfig.from_name("llama1-65b"), LlamaConfig.from_name("llama3.1-405b")
    assert (c1.norm_eps, c1.max_seq_len, c1.vocab_size, c1.n_kv_heads) == (1e-6, 2048, 32000, 64)
    assert (c3.max_seq_len, c3.rope_theta, c3.rope_scaling["factor"], c3.tie_embeddings) == (131072, 5e5, 8.0, False)
    small = LlamaConfig.from_name("llama3.2-1b")
    assert (small.tie_embeddings, small.rope_scaling["factor"], small.head_dim) == (True, 32.0, 64)
    assert PRESET_FACTS["llama1-33b"].train_tokens == "1.4T" and "SentencePiece" in PRESET_FACTS["llama2-7b"].tokenizer


@pytest.mark.parametrize("name", SMALL)
def test_counts_equal_the_real_model_parameter_by_parameter(name):
    cfg = SMALL[name]
    model = Llama(cfg)
    top = {n: tuple(p.shape) for n, p in model.named_parameters() if not n.startswith("layers.")}
    assert top == top_shapes(cfg)
    for block in model.layers:
        assert {n: tuple(p.shape) for n, p in block.named_parameters()} == layer_shapes(cfg)

    counts = parameter_counts(cfg)
    numel = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    block = model.layers[0]
    assert counts.layer == {n: numel(block.get_submodule(n)) for n in counts.layer}
    assert counts.attention == numel(block.self_attn) and counts.mlp == numel(block.mlp)
    assert counts.embed_tokens == numel(model.embed_tokens) and counts.norm == numel(model.norm)
    assert counts.lm_head == (0 if cfg.tie_embeddings else numel(model.lm_head))
    assert counts.embed_positions == (numel(model.embed_positions) if cfg.position == "learned" else 0)
    assert counts.total == model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert weight_bytes(cfg, "fp32") == sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.mark.parametrize("name", ["llama3-8b", "llama3.2-1b"])
def test_counts_equal_a_full_size_skeleton(name):
    """The real shapes on the meta device (no memory): the tied lm_head of Llama 3.2 is counted once."""
    cfg = LlamaConfig.from_name(name)
    with torch.device("meta"):
        model = Llama(cfg)
    assert parameter_counts(cfg).total == model.num_parameters()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_flops_per_token_is_twice_the_multiplied_weights_at_short_context(name):
    cfg = LlamaConfig.from_name(name)
    counts = parameter_counts(cfg)
    # Every weight but the embedding lookup is multiplied once per token (lm_head too when it is tied);
    # the presets have no biases, so the norm gains are all that is not a matmul weight.
    multiplied = counts.non_embedding + (cfg.vocab_size * cfg.dim if cfg.tie_embeddings else 0)
    assert multiplied - matmul_weights(cfg) == counts.norms
    assert flops_per_token(cfg, context=0) == 2 * matmul_weights(cfg)
    assert flops_per_token(cfg, context=1) == pytest.approx(2 * multiplied, rel=1e-3)
    # The attention term grows linearly with context: q.k and p.v, nh * hs multiply-adds each per key.
    step = flops_per_token(cfg, context=101) - flops_per_token(cfg, context=100)
    assert step == 4 * cfg.n_layers * cfg.n_heads * cfg.head_dim


def test_weight_bytes_per_dtype():
    cfg = LlamaConfig.from_name("llama2-7b")
    total = PUBLISHED_TOTALS["llama2-7b"]
    assert [weight_bytes(cfg, d) for d in ("fp32", "bf16", "int8")] == [4 * total, 2 * total, total]
    with pytest.raises(ValueError, match="fp32"):
        weight_bytes(cfg, "fp8")


def test_docstring_examples():
    assert doctest.testmod(llama.count, extraglobs={"LlamaConfig": LlamaConfig}).failed == 0
