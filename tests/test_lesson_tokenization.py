"""The tokenization lesson's compute functions, without a browser: the figures hold the right data,
and bad input gives messages, not exceptions."""

import html
import json
import re

import pytest
import torch

from lessons.course import prepare_text
from lessons.grading import NO_PICK
from lessons.inputs import LessonError
from lessons.tokenization import compute as C
from llama.tokenizer import pretokenize

SUB_ID = re.compile(r"<sub[^>]*>(\d+)</sub>")
CHIP = re.compile(r"<span class='chip'")


def chip_ids(chips: str) -> list[int]:
    return [int(i) for i in SUB_ID.findall(chips)]


@pytest.fixture(scope="module")
def lesson_text():
    return C.default_text()


@pytest.fixture(scope="module")
def training(cm, lesson_text):
    return C.train_lesson(lesson_text, cm.tokenizer.vocab_size, cm.tokenizer)


@pytest.fixture(scope="module")
def small(cm):
    return C.train_lesson("low lower lowest " * 50, 262, cm.tokenizer)


# ----------------------------------------------------------------------------- text in


def test_default_text_is_the_course_lessons(lesson_text):
    assert "Byte-pair encoding" in lesson_text  # this lesson's own text
    assert "<!-- figure -->" not in lesson_text
    assert 1_000 < len(lesson_text) <= C.MAX_TEXT_CHARS


def test_text_in_goes_through_lessons_inputs_with_the_lessons_larger_limit(cm):
    long = "ab cd\n" * 21_667  # 130,002 characters in short lines (sentencepiece trains on lines: fast)
    t = C.train_lesson(long, 400, cm.tokenizer)
    assert "130,002 characters" in t.notice and f"{C.MAX_TEXT_CHARS:,}" in t.notice and t.cut
    assert t.trained.n_chars == C.MAX_TEXT_CHARS > 5_000  # the lesson's own limit, not the default one
    assert t.text == long[:C.MAX_TEXT_CHARS]  # cut visibly: the text box shows what was used
    t = C.train_lesson("ab\ud800c the cat", 300, cm.tokenizer)
    assert "not valid Unicode" in t.notice and "\ufffd" in t.text
    for empty in ("", "  \n\t", None):
        with pytest.raises(LessonError, match="empty"):
            C.train_lesson(empty, 300, cm.tokenizer)


def test_visible_and_escaped():
    assert C.visible(" the\n") == "␣the⏎"
    assert C.visible("a\u202eb") == "a<U+202E>b"  # a right-to-left override would flip the chips after it
    assert C.visible("") == "∅"
    chips = C.chips_html(["<b>x</b>", " &"], [5, 6])
    assert "<b>x</b>" not in chips and "&lt;b&gt;x&lt;/b&gt;" in chips and "␣&amp;" in chips
    assert chip_ids(chips) == [5, 6] and len(CHIP.findall(chips)) == 2


# ----------------------------------------------------------------------------- training and the curve


def test_small_training_docstring_example(small):
    t = small.trained
    assert [m.token for m in t.tok.merges] == ["lo", "low", "Ġlow"]
    assert t.n_tokens == [850, 700, 550, 401]


def test_token_counts_match_encode_as_of(training, lesson_text):
    t, text = training.trained, training.text
    assert text == lesson_text
    n = t.n_merges
    assert n > 100 and len(t.n_tokens) == n + 1
    for k in (0, 1, 2, 17, n // 2, n):
        assert t.n_tokens[k] == len(t.tok.encode_as_of(text, k)), k
    # No merges: one token per byte, except that special tokens written in the text ('<s>' in this
    # lesson's prose) are one token each.
    n_specials = sum(text.count(s) for s in ("</s>", "<pad>")) + text.count("<s>")
    special_bytes = sum(len(s) * text.count(s) for s in ("<s>", "</s>", "<pad>"))
    assert t.n_tokens[0] == len(text.encode("utf-8")) - special_bytes + n_specials
    assert all(a > b for a, b in zip(t.n_tokens, t.n_tokens[1:]))  # every merge removes tokens


def test_token_counts_with_special_tokens_in_text(cm):
    text = "<s>the cat</s> the hat <s>"
    t = C.train_lesson(text, 270, cm.tokenizer).trained
    for k in range(t.n_merges + 1):
        assert t.n_tokens[k] == len(t.tok.encode_as_of(text, k))


def test_progress_is_reported_in_order(cm, lesson_text):
    seen = []
    C.train_lesson(lesson_text[:20_000], 600, cm.tokenizer, progress=lambda f, desc: seen.append((f, desc)))
    fractions = [f for f, _ in seen]
    assert len(seen) >= 5 and fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
    assert any("our BPE" in d for _, d in seen) and any("sentencepiece" in d for _, d in seen)


# ----------------------------------------------------------------------------- replay


def test_replay_k0_is_bytes_and_full_k_is_encode(training):
    t = training.trained
    s = "Wherefore art thou, Romeo? Naïve 😀"
    r0 = C.replay(t, 0, s)
    assert chip_ids(r0.chips) == [3 + b for b in s.encode("utf-8")]
    assert "&lt;0xF0&gt;" in r0.chips  # the emoji's first byte, shown as a byte
    rn = C.replay(t, t.n_merges, s)
    assert chip_ids(rn.chips) == t.tok.encode(s)
    assert len(chip_ids(rn.chips)) < len(chip_ids(r0.chips))
    mid = t.n_merges // 2
    assert chip_ids(C.replay(t, mid, s).chips) == t.tok.encode_as_of(s, mid)


def test_merge_markdown_names_merge_k_and_its_count(training):
    t = training.trained
    m = t.tok.merges[4]
    md = C.replay(t, 5, "the").merge_md
    assert f"**Merge 5 of {t.n_merges:,}:**" in md and f"**{m.count:,}**" in md and f"new id {m.new_id}" in md
    assert "no merges yet" in C.replay(t, 0, "the").merge_md


def test_curve_figure_holds_the_curve_and_marks_k(training):
    t = training.trained
    k = 40
    fig = C.replay(t, k, "the").figure
    line, marker, star = fig.data[0], fig.data[1], fig.data[2]
    assert line.x[0] == t.n_base and line.x[-1] == t.n_base + t.n_merges
    assert line.y[0] == pytest.approx(t.n_chars / t.n_tokens[0])
    assert line.y[-1] == pytest.approx(t.n_chars / t.n_tokens[-1])
    assert marker.x == (t.n_base + k,) and marker.y[0] == pytest.approx(t.n_chars / t.n_tokens[k])
    assert star.x[0] == t.course_point[0]
    assert fig.layout.xaxis.title.text.startswith("vocabulary size") and "characters per token" in \
        fig.layout.yaxis.title.text


@pytest.mark.parametrize("k, word", [(10**6, "out of range"), (-5, "out of range"), (2.5, "not a whole number"),
                                     (float("nan"), "not a number"), (float("inf"), "out of range"),
                                     (1e20, "out of range"), (1.8e308, "out of range"), ("abc", "not a number")])
def test_replay_clamps_and_rounds_the_merge_step_with_a_notice(training, k, word):
    t = training.trained
    r = C.replay(t, k, "the")
    assert word in r.notice and 0 <= r.k <= t.n_merges
    assert chip_ids(r.chips) == t.tok.encode_as_of("the", r.k)  # the chips show the step the notice names
    assert f"using {r.k}" in r.notice


def test_replay_bad_sentence_and_no_tokenizer(training):
    t = training.trained
    with pytest.raises(LessonError, match="empty"):
        C.replay(t, 3, "   ")
    r = C.replay(t, 3, "y" * 1000)
    assert "300" in r.notice and len(chip_ids(C.replay(t, 0, "y" * 1000).chips)) == C.MAX_SENTENCE_CHARS
    assert "not valid Unicode" in C.replay(t, 3, "a\udc00b").notice
    with pytest.raises(LessonError, match="Train a tokenizer first"):
        C.replay(None, 3, "the")


# ----------------------------------------------------------------------------- comparison


def test_comparison_rows_for_all_five(training, cm):
    rows = training.rows
    assert [r["name"] for r in rows] == [C.OURS, C.HF_BPE, C.SP_BPE, C.SP_UNIGRAM, C.COURSE]
    n_chars = len(training.text)
    for r in rows:
        assert "error" not in r and r["n_tokens"] > 0
        assert r["chars_per_token"] == pytest.approx(n_chars / r["n_tokens"])
        assert "".join(r["preview_tokens"]).replace(" ", "") != ""
    ours, hf, course = rows[0], rows[1], rows[4]
    assert ours["n_tokens"] == len(training.trained.tok.encode(training.text))
    assert abs(ours["n_tokens"] - hf["n_tokens"]) <= 0.03 * ours["n_tokens"]  # same algorithm, ties aside
    assert course["vocab_size"] == cm.tokenizer.vocab_size
    assert course["n_tokens"] == len(cm.tokenizer.encode(training.text))
    assert "".join(ours["preview_tokens"]) == training.preview
    page = C.comparison_html(training)
    assert all(html.escape(r["name"]) in page for r in rows) and f"{ours['n_tokens']:,}" in page
    fig = C.comparison_figure(training)
    assert list(fig.data[0].y) == [r["name"] for r in rows]
    assert list(fig.data[0].x) == pytest.approx([r["chars_per_token"] for r in rows])


def test_one_failing_library_does_not_sink_the_comparison(cm, monkeypatch):
    def broken(text, vocab_size, model_type="bpe"):
        raise ValueError("sentencepiece could not train on this text: too small")
    monkeypatch.setattr(C, "train_sentencepiece", broken)
    t = C.train_lesson("the cat sat on the mat", 300, cm.tokenizer)
    assert t.trained is not None
    errors = {r["name"]: r["error"] for r in t.rows if "error" in r}
    assert set(errors) == {C.SP_BPE, C.SP_UNIGRAM} and "too small" in errors[C.SP_BPE]
    assert "could not train" in C.comparison_html(t)
    fig = C.comparison_figure(t)
    assert list(fig.data[0].y) == [C.OURS, C.HF_BPE, C.COURSE]
    assert "not trained" in fig.layout.annotations[0].text

    def rust_error(text, vocab_size):
        raise Exception("a Rust panic")  # what `tokenizers` raises: not a ValueError
    monkeypatch.setattr(C, "train_hf_bpe", rust_error)
    t = C.train_lesson("the cat sat on the mat", 300, cm.tokenizer)
    assert [r["name"] for r in t.rows if "error" not in r] == [C.OURS, C.COURSE]


def test_sentencepiece_minimum_vocabulary_is_explained(cm):
    text = "".join(chr(0x4E00 + i) for i in range(60)) * 3  # 60 distinct CJK characters
    t = C.train_lesson(text, 260, cm.tokenizer)
    # 4 specials + 256 bytes + 60 characters + the space mark '▁' sentencepiece adds in front of each line
    assert "sentencepiece BPE needs at least 321" in t.notice
    assert next(r for r in t.rows if r["name"] == C.SP_BPE)["vocab_size"] >= 321


# ----------------------------------------------------------------------------- bad input to training


@pytest.mark.parametrize("text, expected", [
    ("", "empty"),
    (" \n\t ", "empty"),
    ("<s></s><s>", "nothing but special tokens"),
])
def test_training_refuses_with_a_message(cm, text, expected):
    with pytest.raises(LessonError, match=expected):
        C.train_lesson(text, 500, cm.tokenizer)


@pytest.mark.parametrize("vocab, used, word", [
    (5, C.VOCAB_MIN, "out of range"), (100, C.VOCAB_MIN, "out of range"), (99999, C.VOCAB_MAX, "out of range"),
    (-3, C.VOCAB_MIN, "out of range"), (300.5, 300, "not a whole number"), (1e20, C.VOCAB_MAX, "out of range"),
    (1.8e308, C.VOCAB_MAX, "out of range"), (float("inf"), C.VOCAB_MAX, "out of range"),
    (float("nan"), None, "not a number"), ("abc", None, "not a number"),
])
def test_training_vocab_is_clamped_or_rounded_with_a_notice(cm, vocab, used, word):
    t = C.train_lesson("hello world, hello there. " * 20, vocab, cm.tokenizer)
    default = min(max(cm.tokenizer.vocab_size, C.VOCAB_MIN), C.VOCAB_MAX)
    assert t.trained.asked_vocab == (default if used is None else used) and word in t.notice


def test_training_on_odd_text(cm):
    emoji = C.train_lesson("😀🎉😀🎉 😀😀", 1000, cm.tokenizer)
    assert "stopped at" in emoji.notice and emoji.trained.n_merges > 0
    assert "&lt;0xF0&gt;" in C.replay(emoji.trained, 0, "😀").chips
    assert chip_ids(C.replay(emoji.trained, emoji.trained.n_merges, "😀").chips) == emoji.trained.tok.encode("😀")
    odd = C.train_lesson("a\u0301\u200d\u202e b\ud800 ﷽ \x00", 400, cm.tokenizer)
    assert "not valid Unicode" in odd.notice
    assert len([r for r in odd.rows if "error" not in r]) == 5
    one = C.train_lesson("a", 400, cm.tokenizer)
    assert one.trained.n_merges == 0 and "no merges" in C.replay(one.trained, 0, "a").merge_md and not one.cut
    # (a text over the limit: test_text_in_goes_through_lessons_inputs_with_the_lessons_larger_limit)


# ----------------------------------------------------------------------------- vectors


def test_embedding_pca_is_cached_and_right(cm):
    p = C.embedding_pca(cm)
    assert C.embedding_pca(cm) is p
    V, d = cm.model.embed_tokens.weight.shape
    assert p.coords.shape == (V, 2)
    assert 1 > p.explained[0] >= p.explained[1] > 0
    E = cm.model.embed_tokens.weight.float()
    X = E - E.mean(0)
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)
    ref = X @ Vh[:2].T  # (V, 2) projection on the top two principal directions
    assert torch.allclose(p.coords.abs(), ref.abs(), atol=1e-4)
    assert p.explained[0] == pytest.approx(float(S[0] ** 2 / (S ** 2).sum()), rel=1e-5)


def test_embedding_heatmap_rows_are_the_table_rows(cm):
    s = "To be, or not to be"
    fig, notice = C.embedding_heatmap(cm, s)
    ids = prepare_text(cm, s, max_tokens=C.MAX_EMBED_TOKENS).ids
    z = torch.tensor(fig.data[0].z)
    assert z.shape == (len(ids), cm.config.dim) and notice == ""
    assert torch.allclose(z, cm.model.embed_tokens.weight[ids].float())
    # '<s>' escaped: Plotly would read it as a strikethrough tag and hide it
    assert fig.data[0].y[0].startswith("0 &lt;s&gt;") and len(set(fig.data[0].y)) == len(ids)
    assert "dimension" in fig.layout.xaxis.title.text
    long_fig, long_notice = C.embedding_heatmap(cm, "to be " * 40)
    assert len(long_fig.data[0].z) == C.MAX_EMBED_TOKENS and "only the first" in long_notice
    with pytest.raises(LessonError, match="empty"):
        C.embedding_heatmap(cm, "")


def test_embedding_map_marks_sentence_and_specials(cm):
    fig = C.embedding_map(cm, "thou art")
    V = cm.model.embed_tokens.weight.shape[0]
    *kinds, sentence, specials = fig.data
    assert sum(len(k.x) for k in kinds) == V  # every token once, coloured by its kind (issue 22 item 19)
    assert [k.name.split(" (")[0] for k in kinds] == [k for k, ids in C.token_kinds(cm).items() if ids]
    ids = cm.tokenizer.encode("thou art")
    coords = C.embedding_pca(cm).coords
    assert list(sentence.x) == pytest.approx([float(coords[i, 0]) for i in dict.fromkeys(ids)])
    assert list(specials.text) == ["BOS &lt;s&gt;", "EOS &lt;/s&gt;"]
    assert "% of variance" in fig.layout.xaxis.title.text
    with pytest.raises(LessonError, match="empty"):
        C.embedding_map(cm, " ")


def test_embedding_facts_read_from_the_model(cm, monkeypatch):
    V, d = cm.model.embed_tokens.weight.shape
    facts = C.embedding_facts(cm)
    assert f"{V:,} × {d}" in facts and "7B and up" in facts
    tied = cm.model.lm_head.weight.data_ptr() == cm.model.embed_tokens.weight.data_ptr()  # the weights themselves
    assert ("It is **tied**" in facts) == tied and ("has its own matrix" in facts) == (not tied)
    monkeypatch.setattr(cm.config, "tie_embeddings", not cm.config.tie_embeddings)
    with pytest.raises(RuntimeError, match="disagrees"):  # the prose can never contradict the weights
        C.embedding_facts(cm)


def test_special_tokens_facts_come_from_the_tokenizer(cm):
    facts = C.special_tokens_facts(cm)
    for s, i in cm.tokenizer.special_tokens.items():
        assert f"{C.md_text(s)}** = {i}" in facts
    assert f"the single id {cm.tokenizer.bos_id}" in facts


# ----------------------------------------------------------------------------- questions


def _range_of(choice: str) -> tuple[int, int]:
    """'5 to 8' -> (5, 8); '4 or fewer (...)' -> (0, 4): read from the choice's own words."""
    nums = [int(x) for x in re.findall(r"\d+", choice.split("(")[0])]
    return (0, nums[0]) if "or fewer" in choice else (nums[0], nums[1])


def test_count_reveal_grades_every_choice_from_the_tokenizers_count(cm):
    choices = C.count_question()
    assert len(choices) == 4 and choices[0].startswith("4 or fewer") and choices[-1].startswith("17 to 25")
    n = len(cm.tokenizer.encode(C.QUESTION_TEXT))  # measured here, not by the lesson
    for choice in choices:
        lo, hi = _range_of(choice)
        r = C.reveal_count(cm, choice)
        assert r.correct is (lo <= n <= hi), choice
        assert r.markdown.startswith("✅" if lo <= n <= hi else "❌") and f"**{n} tokens**" in r.markdown
    assert sum(lo <= n <= hi for lo, hi in map(_range_of, choices)) == 1  # the ranges do not overlap
    r = C.reveal_count(cm, None)
    assert r.correct is None and r.markdown.startswith(NO_PICK) and f"**{n} tokens**" in r.markdown
    assert chip_ids(r.chips) == cm.tokenizer.encode(C.QUESTION_TEXT)
    words = pretokenize(C.QUESTION_TEXT, cm.tokenizer.pattern)
    whole = sum(len(cm.tokenizer.encode(w)) == 1 for w in words)
    assert f"makes {len(words)} words of it; {whole} of them are single tokens" in r.markdown
    with pytest.raises(LessonError, match="not one of"):
        C.reveal_count(cm, "about a dozen")


def _pair_count(text: str, tok, label: str) -> int:
    """How often the pair named by a choice ("'␣' + 't'") occurs inside the words of the text, counted here from
    the bytes (specials removed, the split regex applied), independently of the trainer."""
    left, right = (p.strip()[1:-1] for p in label.split(" + "))
    unvisible = {"␣": " ", "⏎": "\n", "⇥": "\t"}
    a, b = ("".join(unvisible.get(ch, ch) for ch in x).encode("utf-8") for x in (left, right))
    body = re.sub("<s>|</s>|<pad>", "\x00", text)
    count = 0
    for part in body.split("\x00"):
        for w in pretokenize(part, tok.pattern):
            wb = w.encode("utf-8")
            count += sum(wb[i:i + len(a)] == a and wb[i + len(a):i + len(a) + len(b)] == b
                         for i in range(len(wb) - len(a) - len(b) + 1))
    return count


def test_first_merge_reveal_grades_every_choice_from_an_independent_pair_count(training):
    t = training.trained
    choices = C.merge_question(t)
    assert choices == sorted(choices) and len(choices) == 4
    counts = {c: _pair_count(training.text, t.tok, c) for c in choices}
    top = max(counts.values())
    assert list(counts.values()).count(top) == 1  # no tie among the candidates on this text
    expected = max(counts, key=counts.get)
    for choice in choices:
        r = C.reveal_first_merge(t, choice)
        assert r.correct is (choice == expected) and r.markdown.startswith("✅" if choice == expected else "❌")
        assert f"**{top:,}**" in r.markdown
    r = C.reveal_first_merge(t, None)
    assert r.correct is None and r.markdown.startswith(NO_PICK)
    with pytest.raises(LessonError, match="Train a tokenizer first"):
        C.reveal_first_merge(None, choices[0])


def test_figures_serialise(training, cm):
    """Every figure the page shows must survive Plotly's JSON (what gr.Plot sends)."""
    for fig in (C.replay(training.trained, 10, "the").figure, C.comparison_figure(training),
                C.embedding_heatmap(cm, "the")[0], C.embedding_map(cm, "the")):
        assert json.loads(fig.to_json())["data"] is not None


# ----------------------------------------------------------------------------- another model's tokenizer


def test_every_function_on_stories260K(stories_cm):
    """stories260K reads with a Hugging Face tokenizer.json converted from sentencepiece (byte fallback, 512
    tokens): not our BPETokenizer. Every function the page calls works through the Tokenizer interface alone."""
    cm, tok = stories_cm, stories_cm.tokenizer
    text = "Once upon a time, a little girl saw a llama 🦙 in the park.\n" * 20
    t = C.train_lesson(text, 300, tok)
    row = t.rows[-1]
    assert row["name"] == C.COURSE and row["vocab_size"] == 512 and row["n_tokens"] == len(tok.encode(text))
    # byte tokens counted here from the vocabulary's own spelling: '<0xF0>'..'<0xFF>' and '<0x80>'.. are bytes of
    # multi-byte characters (the llama is 4 of them per line)
    assert row["byte_fallback_count"] == sum(int(tok.id_to_token(i)[3:5], 16) >= 0x80 for i in tok.encode(text)
                                             if re.fullmatch(r"<0x[0-9A-F]{2}>", tok.id_to_token(i))) == 80
    assert t.trained.course_point == (512, pytest.approx(len(text) / row["n_tokens"]))
    assert html.escape(C.COURSE) in C.comparison_html(t) and len(C.comparison_figure(t).data[0].y) == 5
    first = C.first_training(cm)
    assert first is C.first_training(cm) and first.trained.asked_vocab == 512 and first.rows[-1]["vocab_size"] == 512
    facts = C.model_tokenizer_facts(cm)
    assert "not our BPE" in facts and "no merge list or split regex" in facts and "4 of them bytes" in facts
    assert "**\\<s\\>** = 1" in C.special_tokens_facts(cm)
    assert "512 × 64" in C.embedding_facts(cm) and "**tied**" in C.embedding_facts(cm)
    heat, _ = C.embedding_heatmap(cm, "Once upon a time")
    ids = [tok.bos_id] + tok.encode("Once upon a time")
    assert torch.equal(torch.tensor(heat.data[0].z), cm.model.embed_tokens.weight[ids])
    pca = C.embedding_map(cm, "Once upon a time")
    assert sum(len(d.x) for d in pca.data[:-2]) == 512 and len(pca.data[-2].x) == len(set(ids[1:]))
    n = len(tok.encode(C.QUESTION_TEXT))
    for choice in C.count_question():
        lo, hi = _range_of(choice)
        r = C.reveal_count(cm, choice)
        assert r.correct is (lo <= n <= hi) and f"**{n} tokens**" in r.markdown
    assert "no split regex" in r.markdown and "4 words of it; 0 of them are single tokens" in r.markdown
    assert chip_ids(r.chips) == tok.encode(C.QUESTION_TEXT)


def test_single_token_words_line_tokens_up_with_the_text(cm, stories_cm):
    text = "Once upon a time there was a girl"
    words = re.findall(r"\s*\S+", text)
    # ours: 'O' + 'nce' is two tokens; stories260K: ' Once' is one (its dummy prefix space goes with the word)
    assert C.single_token_words(cm.tokenizer, text, cm.tokenizer.encode(text), words)[0] == " upon"
    assert C.single_token_words(stories_cm.tokenizer, text, stories_cm.tokenizer.encode(text), words)[0] == "Once"
    t = stories_cm.tokenizer
    assert " or" not in C.single_token_words(t, "to be, or not", t.encode("to be, or not"),
                                             ["to", " be,", " or", " not"])  # ' ' + 'or': two tokens


def test_single_token_words_claims_nothing_when_tokens_do_not_spell_the_text(cm):
    ids = cm.tokenizer.encode("the cat")
    assert C.single_token_words(cm.tokenizer, "the dog", ids, ["the", " dog"]) is None


def test_issue_22_fixes_on_the_tokenization_page(cm):
    """Item 19: the map says what its axes separate (measured per kind of token: for the course model axis 1 puts
    the never-trained bytes of multi-byte characters apart); item 18: numbers are cut in chunks of at most three
    digits from the left, measured; merges are "no more frequent", not "rarer"; item 23: "1 time", no literal
    byte escapes in the prose."""
    kinds = C.token_kinds(cm)
    assert len(kinds[C.KIND_BYTE]) == 128 and C.token_kind(b"\n") == C.KIND_SPACE
    md = C.embedding_map_readout(cm)
    assert "furthest from the rest is **byte of a multi-byte character**" in md
    assert "`123` · `45`" in C.number_chunks(cm)
    assert C.times(1) == "1 time" and C.times(2) == "2 times"
    from pathlib import Path

    text = (Path(C.__file__).parent / "lesson.md").read_text(encoding="utf-8")
    assert "no more frequent" in text and "rarer than the one before" not in text and "<0xF0>" not in text


def test_the_embedding_map_labels_sentence_tokens_only_where_they_do_not_pile_up(cm):
    import math

    fig = C.embedding_map(cm, "the cat sat on the mat and the dog ate the hat " * 6)
    mine = next(t for t in fig.data if t.name == "your sentence's tokens")
    shown = [(x, y) for x, y, s in zip(mine.x, mine.y, mine.text) if s]
    assert 1 <= len(shown) <= 10 and len(mine.hovertext) == len(mine.x)  # the rest by hover
    xs = [x for t in fig.data if t.name not in ("your sentence's tokens", "BOS / EOS") for x in t.x]
    ys = [y for t in fig.data if t.name not in ("your sentence's tokens", "BOS / EOS") for y in t.y]
    span = max(max(xs) - min(xs), max(ys) - min(ys))
    assert all(math.hypot(a[0] - b[0], a[1] - b[1]) >= 0.06 * span * 0.999 for i, a in enumerate(shown)
               for b in shown[:i])
