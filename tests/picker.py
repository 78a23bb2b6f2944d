"""What tests/test_app_picker_every_action*.py check on every lesson page with stories260K picked on the course map,
in a real browser: the page shows that model (its 5 layers, 8 query heads of size 8 with 4 K/V heads, 512-token
context and vocabulary, Hugging Face tokenizer, no held-out text of its own), then every slider is moved one step
from the keyboard and every button pressed. Each
action must finish without a red toast, a JavaScript error or a traceback in the server's log, and the main
results must be stories260K's."""

import lessons
from conftest import STORIES
from llama.tokenizer.interface import load_tokenizer
from shape import open_deeper, reveal
from ui import idle, no_errors, press, svg_text, text_of, wait_svg, wait_text

PAGES = [lesson.slug for lesson in lessons.LESSONS if lesson.ready]
NO_SLIDER = {"meta_code", "scale"}  # pages whose controls are a text box, a dropdown and buttons only

# Visible range inputs and buttons of the page, in page order (the nav bar's links are not buttons).
CONTROLS = """() => {
  const shown = e => e.offsetParent !== null && e.getBoundingClientRect().width > 0;
  const sliders = [...document.querySelectorAll('input[type=range]')].filter(shown)
    .map(e => e.getAttribute('aria-label'));
  const labels = new Set(window.gradio_config.components.filter(c => c.type === 'button').map(c => c.props.value));
  // (a figure's PNG/SVG/CSV buttons only save it: tests/test_share.py presses them)
  const buttons = [...document.querySelectorAll('button')]
    .filter(b => shown(b) && labels.has(b.textContent.trim()) && !b.closest('.figure-tools'))
    .map(b => b.textContent.trim());
  return {sliders, buttons};
}"""


# Every "Go deeper" section opened (Gradio renders a closed accordion's contents only when opened) and every answer
# that waits for its Reveal shown, so that every control of the page is on screen (issue 21's course shape).
OPEN_EVERYTHING = """() => {
  document.querySelectorAll('.go-deeper').forEach(acc => {
    const b = acc.querySelector('.label-wrap');
    if (b && !b.classList.contains('open')) b.click();
  });
  document.querySelectorAll('.predict-question[id^="question-"]').forEach(
    q => window.insideLlama && window.insideLlama.reveal(q.id.replace(/^question-/, '')));
}"""


def number_max(page, label: str) -> str:
    return page.locator(f'input[aria-label^="number input for {label}"]').get_attribute("max")


# ----------------------------------------------------------------------------- what each page shows before

def shows_tokenization(page):
    open_deeper(page)  # the five tokenizers and the embedding map sit in Go deeper sections
    facts = wait_text(page, "#model-tokenizer-facts", "not our BPE")
    assert "512 tokens" in facts and "no merge list or split regex" in facts
    assert "512 × 64" in page.locator("body").text_content()  # the embedding table's facts
    wait_svg(page, "embedding-map", "All 512 token embeddings")
    assert page.locator('input[aria-label^="number input for vocabulary size"]').input_value() == "512"


def shows_attention(page):
    wait_text(page, "#attention-grid", "head 7 · KV 3")  # 8 query heads, 4 KV heads: refilled for the model
    assert number_max(page, "Layer") == "4" and page.get_by_text("Layer (0 to 4)").count() == 1
    assert page.get_by_text("5 layers, each with 8 query heads of size d = 8", exact=False).count() == 1
    assert "√d = 2.83" in text_of(page.locator("#attention-steps .gtitle"))
    # stories260K's tokenizer cuts the text: BOS + n tokens, so the last query position is n
    text = page.locator("#attention-text textarea").input_value()
    assert number_max(page, "Query position") == str(len(load_tokenizer(STORIES).encode(text)))


def shows_rope(page):
    open_deeper(page)
    spectrum = wait_text(page, "#rope-spectrum-readout", "512-token context")
    assert "of 4 pairs" in spectrum  # head size 8
    assert page.locator("#rope-m input[type=range]").get_attribute("max") == "511"
    assert page.locator("#rope-pair input[type=range]").get_attribute("max") == "3"


def shows_rmsnorm(page):
    wait_text(page, "#rmsnorm-site-readout", "layer 2 · attention norm")  # the middle of 5 layers
    reveal(page, "rmsnorm-shift")  # the invariance figure and its sliders: hidden until this Reveal
    reveal(page, "rmsnorm-length")  # the overview answers the length question: hidden until its Reveal
    wait_text(page, "#rmsnorm-reveal-rms", "√64")  # stories260K's width
    overview = wait_text(page, "#rmsnorm-overview", "the model's 11 RMSNorms")  # 2 per layer + the final one
    assert "L4 ffn" in overview and "L5" not in overview


def shows_swiglu(page):
    wait_text(page, "#swiglu-gates-readout", "(of 172)")  # 172 hidden units
    assert page.locator("#swiglu-gates-readout tbody tr").count() == 5  # one row per layer
    assert "172" in page.locator("#swiglu-hidden-table").text_content()
    assert "but not multiple_of" in page.locator("#swiglu-hidden-note").text_content()


def shows_gqa(page):
    wait_text(page, "#gqa-heads", "8 query heads and 4 K/V heads")
    wait_svg(page, "gqa-diagram", "share 4 K/V head")
    assert number_max(page, "layer (model.layers[i])") == "4"
    assert page.get_by_label("number input for K/V heads after conversion").input_value() == "4"
    wait_text(page, "#gqa-pool-question", "4 K/V heads into 1")


def shows_kv_cache(page):
    wait_text(page, "#kv-allocated", "655,360 bytes")  # 2 x 5 layers x 4 K/V heads x 8 x 512 positions x 4 bytes
    grid = svg_text(page, "kv-grid")
    assert "layer 4" in grid and "layer 5" not in grid
    assert page.get_by_label("range slider for steps to time (used when you press Measure)").get_attribute("max") \
        == "510"
    # the question itself (the page's "check yourself" list repeats its text at the bottom)
    asked = page.locator(".predict-question[id^=question-]", has_text="With 511 tokens already in the context")
    assert asked.count() == 1


def shows_sampling(page):
    wait_svg(page, "sampling-dist", "of 512 tokens")  # stories260K's vocabulary (the course model's is 1,024)
    assert page.get_by_text("At most 256 tokens with BOS (half the 512-token context)").count() == 1


def shows_assembled(page):
    facts = wait_text(page, "#assembled-facts", "5 blocks, width C = 64")
    assert "8 query heads share 4 K/V heads" in facts and "lm_head's weight is embed_tokens.weight" in facts
    T = 1 + len(load_tokenizer(STORIES).encode(page.locator("#assembled-text textarea").input_value()))
    wait_svg(page, "assembled-diagram", "× 5 layers")
    diagram = svg_text(page, "assembled-diagram")
    assert f"(1, {T}, 64)" in diagram and f"(1, {T}, 512)" in diagram  # the stream and the logits
    assert number_max(page, "block (model.layers[i])") == "4" and number_max(page, "query head") == "7"
    assert "V = 512" in text_of(page.locator("#assembled-readout"))
    params = text_of(page.locator("#assembled-params"))
    assert "260,032" in params and "they agree" in params


def shows_next_token(page):
    wait_text(page, "#next-token-chips", "uniform guess over 512 tokens")  # stories260K's vocabulary
    open_deeper(page)
    reveal(page, "next-token-best")  # the comparison and the lens answer questions: hidden until their Reveal
    reveal(page, "next-token-embedding-readout")
    table = wait_text(page, "#next-token-compare-table", "stories260K/ ships no training text")
    assert "262,144 possible" in table  # 512 x 512 token pairs
    wait_svg(page, "next-token-lens", "layer 4")  # the heatmap is drawn after the chips (Plotly renders late)
    lens = svg_text(page, "next-token-lens")
    assert "layer 4" in lens and "layer 5" not in lens
    assert "of 512" in svg_text(page, "next-token-top")


def shows_training(page):
    wait_text(page, "#training-tokenizer", "512 tokens")  # the lab trains with stories260K's tokenizer
    assert "stories260K" in text_of(page.locator("#training-tokenizer"))
    wait_svg(page, "training-curve", "ln 512")  # the uniform guess over its vocabulary


def shows_relative(page):
    params = wait_text(page, "#relative-params", "512 × 64 = 32,768")  # a learned table: context × width
    assert "2 × (2k+1) × 8 × 5 layers = 720" in params  # Shaw's tables: head size 8, 5 layers, k = 4
    wait_svg(page, "relative-scores", "One token (on) at every position")  # the last of stories260K's tokens
    assert "Beyond k = 4" in text_of(page.locator("#relative-readout"))
    wait_svg(page, "relative-architecture", "(hidden 172)")  # Llama's column is the loaded model
    assert "× 5 layers" in svg_text(page, "relative-architecture")


def shows_meta_code(page):
    names = wait_text(page, "#meta-names", "tok_embeddings.weight")
    assert "512 × 64" in names and "32 × 64" in names and "172 × 64" in names  # 4 K/V heads of 8, hidden 172
    T = 1 + len(load_tokenizer(STORIES).encode(page.locator("#meta-text textarea").input_value()))
    readout = wait_text(page, "#meta-readout", f"On {T} tokens (BOS included)")
    assert "agrees at 100%" in readout
    wait_svg(page, "meta-pairs", "hd = 8")


def shows_scale(page):
    # Nothing here depends on the model: the published configs and the shipped two-size study.
    assert "148 tokens per parameter" in wait_text(page, "#scale-budget-readout", "LLaMA 7B")
    wait_svg(page, "scale-ratio", "Tokens per parameter")
    wait_svg(page, "scale-budget", "Same training compute: 4.04e22 FLOPs")


# ----------------------------------------------------------------------------- what the actions gave

def gave_tokenization(page):
    wait_text(page, "#reveal-count", "no split regex")  # counted by stories260K's tokenizer


def gave_attention(page):
    wait_text(page, "#attention-answer-dot", "√32")
    wait_text(page, "#attention-answer-scaling", "re-running the model")
    open_deeper(page)
    wait_svg(page, "attention-summary", "L4")
    assert "L5" not in svg_text(page, "attention-summary")


def shows_efficient_attention(page):
    page.wait_for_function("() => document.querySelector('input[aria-label^=\"number input for Layer\"]').max "
                           "=== '4'", timeout=60_000)  # refilled for stories260K's 5 layers
    assert number_max(page, "Query head") == "7"


def gave_efficient_attention(page):
    wait_svg(page, "attention-memory", "8 query heads, 4 K/V heads")  # measured for stories260K
    open_deeper(page)
    assert "At T = 512, in score tensors" in text_of(page.locator("#attention-memory-readout"))  # to its context
    wait_text(page, "#attention-online", "of at most 5")  # the keys-per-block slider, one step from 4


def gave_rope(page):
    loss = wait_text(page, "#rope-reveal-2", "nats/token")
    assert "stories260K/ ships no held-out text" in loss and "TinyShakespeare" in loss


def gave_rmsnorm(page):
    wait_text(page, "#rmsnorm-reveal-shift", "only RMSNorm's")  # measured on stories260K's stream
    wait_text(page, "#rmsnorm-invariance-readout", "b = 0.1")  # the shift slider, one step


def gave_swiglu(page):
    wait_text(page, "#swiglu-gates-readout", "0.055")  # the threshold slider, one step
    assert "(of 172)" in page.locator("#swiglu-gates-readout").text_content()


def gave_gqa(page):
    wait_text(page, "#gqa-convert-readout", "TinyShakespeare")  # the held-out text is not this model's own
    assert "layer 5" not in svg_text(page, "gqa-maps")


def gave_kv_cache(page):
    assert "layer 5" not in svg_text(page, "kv-grid")
    page.get_by_text("x 5 layers").filter(visible=True).first.wait_for(timeout=30_000)


def gave_sampling(page):
    wait_text(page, "#sampling-status", "stopped")
    assert len(page.locator("#sampling-sampled textarea").input_value()) > 0


def gave_assembled(page):
    wait_text(page, "#assembled-readout", "block 1 of 5")  # the block slider, one step
    assert "H = 172" in text_of(page.locator("#assembled-readout"))
    wait_text(page, "#assembled-reveal-parts", "165,120")  # stories260K's feed-forward: 5 x 3 x 64 x 172
    wait_text(page, "#assembled-reveal-growth", "+1,308,622,848")


def gave_next_token(page):
    answer = wait_text(page, "#next-token-reveal", "Mean loss on your text")
    assert "ln 512" in answer  # graded on stories260K's measurement
    assert "of 512" in svg_text(page, "next-token-top")
    open_deeper(page)
    assert "layer 5" not in svg_text(page, "next-token-lens-position")


def gave_training(page):
    wait_text(page, "#training-ablation-answer", "The measurement says")
    wait_text(page, "#training-snapshot-readout", "Step 25 of")  # the snapshot slider, one step
    # The Stop press above may have cancelled the first run (idle() returns once the stream has started): one
    # whole run, then the model it trained generates.
    budget = page.get_by_label("number input for time budget (seconds)")
    budget.fill("2")  # the shortest run: what is checked is the model it trained, not its length
    budget.press("Enter")
    idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    wait_text(page, "#training-status", "Done", timeout=120_000)
    assert "ln 512" in svg_text(page, "training-curve")  # trained on stories260K's tokens
    page.get_by_role("button", name="Generate with my model", exact=True).click()
    idle(page)
    assert page.locator("#training-generated textarea").input_value().startswith("JULIET:")


def gave_relative(page):
    wait_text(page, "#relative-readout", "Beyond k = 5")  # the clipping slider, one step
    assert "2 × (2k+1) × 8 × 5 layers = 880" in text_of(page.locator("#relative-params"))
    answer = wait_text(page, "#relative-answer", "The measurement says")
    assert "2 × (2k+1) × 8 × 5 layers = 720" in answer  # graded on stories260K's config
    wait_text(page, "#relative-drift-readout", "internal covariate shift")


def gave_meta_code(page):
    answer = wait_text(page, "#meta-answer", "The measurement says")
    assert "without the permutation the largest logit difference" in answer
    assert "agrees at 100%" in text_of(page.locator("#meta-readout"))  # Run both codes, on stories260K
    assert "At top-p = 0.9" in text_of(page.locator("#meta-top-p"))


def gave_scale(page):
    assert "more parameters than LLaMA 7B" in wait_text(page, "#scale-answer-optimal", "The measurement says")
    assert "nats per character" in wait_text(page, "#scale-answer-sizes", "The measurement says")


def every_control_works(page, app_url, slug: str) -> None:
    """Open /slug with stories260K picked, check what it shows, press every control, check what they gave."""
    page.goto(app_url + slug)
    page.locator("h1").first.wait_for(timeout=60_000)
    idle(page)  # the page refreshes itself for the picked model
    page.evaluate(OPEN_EVERYTHING)
    page.wait_for_timeout(500)
    globals()[f"shows_{slug}"](page)
    # no link, so no notice about one (the page writes the picked model's values into the address bar: not a link)
    assert "From the link" not in page.locator("body").inner_text()
    log_start = app_url.log.stat().st_size
    controls = page.evaluate(CONTROLS)
    assert bool(controls["sliders"]) == (slug not in NO_SLIDER) and controls["buttons"], controls
    for label in controls["sliders"]:
        press(page, page.get_by_label(label, exact=True))
        idle(page)
    seen = {}
    for label in controls["buttons"]:  # a label can repeat ("Reveal"): press each one in turn
        nth = seen.get(label, 0)
        seen[label] = nth + 1
        page.get_by_role("button", name=label, exact=True).nth(nth).click()
        idle(page)
    globals()[f"gave_{slug}"](page)
    no_errors(page)
    with open(app_url.log, encoding="utf-8", errors="replace") as log:
        log.seek(log_start)
        new = log.read()
    assert "Traceback" not in new and "Error" not in new, new[-3000:]
