"""llama.fast.DecodeStep computes the same decode steps as the model's own forward pass: the same greedy
tokens, and logits within 1e-5 plus 1e-5 of their size (fp32 sums in another order), on the course model and on a real pretrained Llama (stories260K)."""

import dataclasses

import pytest
import torch

from llama import Llama, LlamaConfig, generate
from llama.fast import DecodeStep
from llama.generate import stream_generate_rows


@pytest.fixture(scope="module", params=["course", "stories260K"])
def model(request, cm, stories_cm):
    return (cm if request.param == "course" else stories_cm).model


@torch.inference_mode()
def test_each_step_gives_the_forward_pass_logits_and_cache(model):
    torch.manual_seed(0)
    B, P, N = 2, 7, 40
    ids = torch.randint(3, model.config.vocab_size, (B, P + N))
    step = DecodeStep(model)
    plain_cache, fast_cache = model.new_cache(B, P + N), model.new_cache(B, P + N)
    for c in (plain_cache, fast_cache):
        model(ids[:, :P], cache=c)  # the same prefill
    for t in range(P, P + N):
        pos = torch.tensor([t])
        want = model(ids[:, t:t + 1], pos, cache=plain_cache).logits[:, -1]  # (B, V)
        got = step(ids[:, t:t + 1], pos, fast_cache)
        # Float rounding only: the step sums in another order (fused products, the residual inside a product), so
        # logits differ by about 1e-6 of the largest one (1.7e-5 of 15.3 for the course model); a wrong sign or a
        # missing gain differs by tenths.
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
        assert [c.length for c in fast_cache] == [t + 1] * model.config.n_layers
    for a, b in zip(plain_cache, fast_cache):
        torch.testing.assert_close(b.k, a.k, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.v, a.v, rtol=1e-5, atol=1e-5)


def test_generation_gives_the_same_tokens(model):
    step = DecodeStep(model)
    prompt = [model.config.bos_token_id or 0, 12, 40, 7]
    want = generate(model, prompt, 80, eos_id=None)
    assert generate(model, prompt, 80, eos_id=None, decode_step=step) == want
    # several rows in one batch, greedy and sampled with a seed, as the sampling lesson runs them
    rows = [{}, {"temperature": 1.0, "top_k": 20, "seed": 3}]
    plain = list(stream_generate_rows(model, prompt, 40, rows, eos_id=None))
    assert list(stream_generate_rows(model, prompt, 40, rows, eos_id=None, decode_step=step)) == plain


@torch.inference_mode()
def test_a_call_it_does_not_cover_gets_the_forward_pass_checks(cm):
    model, step = cm.model, DecodeStep(cm.model)
    cache = model.new_cache(1, 8)
    step(torch.tensor([[0, 5, 9]]), torch.arange(3), cache)  # the prefill: the model's forward
    with pytest.raises(ValueError, match="next call must start at position 3"):
        step(torch.tensor([[4]]), torch.tensor([5]), cache)  # a gap
    for t in range(3, 8):
        step(torch.tensor([[4]]), torch.tensor([t]), cache)
    with pytest.raises(ValueError, match="room for 8 positions"):
        step(torch.tensor([[4]]), torch.tensor([8]), cache)


def test_other_architectures_are_refused_with_a_message():
    cfg = dataclasses.replace(LlamaConfig.from_name("test"), norm="layernorm")
    with pytest.raises(ValueError, match="norm=layernorm"):
        DecodeStep(Llama(cfg))


def test_the_loader_knob_gives_the_sampling_page_the_same_continuations(cm):
    from lessons.course import load_course_model
    from lessons.sampling.compute import Settings, stream_side_by_side

    fast = load_course_model(device="cpu", fast_decode=True)
    assert isinstance(fast.decode_step, DecodeStep) and cm.decode_step is None  # the default stays plain
    ids = cm.tokenizer.encode("ROMEO:\n")
    want = list(stream_side_by_side(cm, ids, 30, Settings(0.9, 40, 0.95), seed=1, interval=0))
    got = list(stream_side_by_side(fast, ids, 30, Settings(0.9, 40, 0.95), seed=1, interval=0))
    assert got == want and len(want[-1].greedy_ids) == 30


def test_the_compiled_step_gives_the_same_tokens(stories_cm):
    """The compile=True knob (bench/bench_model.py's fastest column) traces the same step: the same greedy tokens."""
    model = stories_cm.model
    prompt = [model.config.bos_token_id or 0, 12, 40, 7]
    want = generate(model, prompt, 20, eos_id=None)
    assert generate(model, prompt, 20, eos_id=None, decode_step=DecodeStep(model, compile=True)) == want
