"""Every page takes every text, from empty to its cap (issue 24, "Every text length works").

Each lesson function that a page calls with the learner's text is called with an empty text, a blank one, one
character, one token, two tokens, a text of exactly the character cap and one character over it, for the course
model and stories260K. Each either returns or refuses with a LessonError (the page's notice): never another
exception, which the page would show as a red "Error" toast. A slider whose range follows the text never gets
an empty range, and a text too short to show something says so.
"""

import pytest

from lessons.inputs import MAX_TEXT_CHARS, LessonError

import lessons.assembled.compute as AS  # noqa: E402
import lessons.attention.compute as A  # noqa: E402
import lessons.gqa.compute as G  # noqa: E402
import lessons.kv_cache.compute as K  # noqa: E402
import lessons.next_token.compute as N  # noqa: E402
import lessons.rmsnorm.compute as RM  # noqa: E402
import lessons.rope.compute as R  # noqa: E402
import lessons.sampling.compute as SA  # noqa: E402
import lessons.swiglu.compute as S  # noqa: E402
import lessons.tokenization.compute as T  # noqa: E402

LONG = "To be, or not to be, that is the question. " * 200
KINDS = ("empty", "blank", "one character", "one token", "two tokens", "at the cap", "over the cap")


def text_of(cm, kind: str) -> str:
    tok = cm.tokenizer
    if kind == "one token":
        text = tok.decode(tok.encode("The")[:1])
        assert len(tok.encode(text)) == 1
        return text
    if kind == "two tokens":
        ids = tok.encode(" the the the")
        text = tok.decode(ids[:2])
        assert len(tok.encode(text)) == 2
        return text
    return {"empty": "", "blank": " \n\t ", "one character": "x", "at the cap": LONG[:MAX_TEXT_CHARS],
            "over the cap": LONG[:MAX_TEXT_CHARS + 1]}[kind]


def _sampling_generate(cm, t):
    prep = SA.prepare_prompt(cm, t)
    *_, last = SA.stream_side_by_side(cm, prep.ids, 2, SA.read_settings(0.8, 0, 0.9), 0, interval=0)
    return SA.next_token_view(cm, prep.ids, SA.read_settings(0.8, 0, 0.9)), last


# What each page's events call with the learner's text (other inputs at typical values).
from lessons.efficient_attention import compute as EA  # noqa: E402
from lessons.meta_code import compute as MC  # noqa: E402
from lessons.relative import compute as REL  # noqa: E402

CALLS = {
    "attention.view": lambda cm, t: A.view(cm, t, 0, 0, 3, 1.0),
    "attention.analyze_view": lambda cm, t: A.analyze_view(cm, t, 0, 0, 3, 1.0),
    "attention.summary_view": lambda cm, t: A.summary_view(cm, t),
    "attention.scale_view": lambda cm, t: A.scale_view(cm, t, 0, 0, 3, 1.0),
    "efficient_attention.online_view": lambda cm, t: EA.online_view(cm, t, 0, 0, 3, 4),
    "efficient_attention.reveal_running": lambda cm, t: EA.reveal_running(cm, t, 0, 0, 3, 4, None),
    "attention.reveal_previous_token": lambda cm, t: A.reveal_previous_token(cm, t, None),
    "attention.reveal_scaling": lambda cm, t: A.reveal_scaling(cm, t, None),
    "rope.shuffle_scores": lambda cm, t: R.shuffle_scores(cm, t),
    "rope.schemes": lambda cm, t: R.schemes(cm, t, 16, 4),
    "rope.token_choices": lambda cm, t: R.token_choices(cm, t),
    "rope.rotate": lambda cm, t: R.rotate(cm, t),
    "rope.relative_shift": lambda cm, t: R.relative_shift(cm, t),
    "rope.compare_attention": lambda cm, t: R.compare_attention(cm, t),
    "rmsnorm.invariance": lambda cm, t: RM.invariance(cm, RM.load_text(cm, t), 1, 0.5, 2.0),
    "swiglu.gates_view": lambda cm, t: S.gates_view(cm, t, 0.1),
    "swiglu.reveal_floor_view": lambda cm, t: S.reveal_floor_view(cm, t, None),
    "swiglu.reveal_negative_view": lambda cm, t: S.reveal_negative_view(cm, t, None),
    "gqa.maps_view": lambda cm, t: G.maps_view(cm, t, 0),
    "kv_cache.step_view": lambda cm, t: K.step_view(cm, t, 3, 1),
    "kv_cache.reveal_same": lambda cm, t: K.reveal_same(cm, t, None, 3),
    "sampling.generate": _sampling_generate,
    "assembled.pass_view": lambda cm, t: AS.pass_view(cm, t, "softmax", 0, 0),
    "next_token.text_view": lambda cm, t: N.text_view(cm, t),
    "next_token.position_view": lambda cm, t: N.position_view(cm, t, 2),
    "next_token.reveal": lambda cm, t: N.reveal(cm, t, None),
    "next_token.reveal_lens": lambda cm, t: N.reveal_lens(cm, t, 1, None),
    "next_token.reveal_untrained": lambda cm, t: N.reveal_untrained(cm, t, None),
    "next_token.reveal_embedding_readout": lambda cm, t: N.reveal_embedding_readout(cm, t, None),
    "tokenization.replay": lambda cm, t: T.replay(T.first_training(cm).trained, 5, t),
    "tokenization.embedding": lambda cm, t: (T.embedding_heatmap(cm, t), T.embedding_map(cm, t)),
    "tokenization.reveal_count": lambda cm, t: T.reveal_count(cm, None, t),
    "relative.position_scores": lambda cm, t: REL.position_scores(cm, t, 4),
    "relative.reveal_tables": lambda cm, t: REL.reveal_tables(cm, t, None),
    "meta_code.compare": lambda cm, t: MC.compare(cm, t),
    "meta_code.reveal_permutation": lambda cm, t: MC.reveal_permutation(cm, t, None),
    "meta_code.top_p_agreement": lambda cm, t: MC.top_p_agreement(cm, t),
}


@pytest.fixture(scope="module", params=["course", "stories260K"])
def model(request, cm, stories_cm):
    return cm if request.param == "course" else stories_cm


@pytest.mark.parametrize("kind", KINDS)
def test_every_lesson_function_takes_the_text_or_refuses_with_a_notice(model, kind):
    text = text_of(model, kind)
    failures = []
    for name, call in CALLS.items():
        try:
            call(model, text)
        except LessonError as e:
            if not str(e).strip():
                failures.append(f"{name}: a LessonError without a message")
            elif kind not in ("empty", "blank", "one character", "one token", "two tokens"):
                failures.append(f"{name}: refuses a text of {len(text):,} characters: {e}")
        except Exception as e:  # noqa: BLE001 - any other exception is a red "Error" toast on the page
            failures.append(f"{name}: {type(e).__name__}: {e}")
        else:
            if kind in ("empty", "blank"):
                failures.append(f"{name}: drew something for an empty text instead of saying it is empty")
    assert not failures, "\n".join(failures)


def test_a_one_token_text_gets_a_notice_and_sliders_keep_a_range(model):
    text = text_of(model, "one token")
    v = N.text_view(model, text)
    assert v.n == 1 and v.position == 1
    assert "single token" in v.notice  # says why the position slider cannot move
    assert "single token" not in N.text_view(model, text_of(model, "two tokens")).notice
    # the other ranges the pages build from the text are never empty: attention's query slider 0..n-1 and
    # rmsnorm's token slider 0..len-1 (BOS and the token)
    assert A.trace_text(model, text).n_tokens == 2
    assert len(RM.load_text(model, text).ids) == 2


def test_the_slider_widget_turns_an_empty_range_into_a_disabled_one():
    import gradio as gr

    from app import widgets

    with gr.Blocks():
        s = widgets.Slider(1, 1, 1, step=1, label="predicted token", elem_id="one")
        t = widgets.Slider(0, 5, 2, step=1, label="fine", elem_id="two", info="a hint")
    assert (s.minimum, s.maximum, s.interactive) == (1, 2, False)
    assert (t.minimum, t.maximum) == (0, 5) and t.interactive is not False
    config = t.get_config()  # every gr.Slider property reaches the browser
    assert (config["elem_id"], config["label"], config["info"], config["maximum"], config["step"]) == (
        "two", "fine", "a hint", 5, 1)
    assert s.get_config()["interactive"] is False
    again = widgets.Slider(**{**s.constructor_args, "maximum": 0, "render": False})  # how Gradio applies an update
    assert again.maximum == 2 and again.interactive is False


def test_the_next_token_page_takes_a_one_character_text_with_a_notice_and_no_error(client):
    out = client.predict("x", api_name="/next_token_score")  # gradio_client raises on a server error (the red toast)
    msg, chips = out[0], out[1]
    assert "single token" in msg and "Error" not in msg
    assert "x" in chips
    again = client.predict("To be, or not to be", api_name="/next_token_score")  # and a longer text moves again
    assert "single token" not in again[0]
