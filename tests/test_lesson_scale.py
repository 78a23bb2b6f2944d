"""Lesson 'Smaller models on more data': tokens per parameter and the compute-optimal model computed from the
published configs; the two-size experiment's verdict follows the seed noise."""

import json

import pytest

from lessons.inputs import LessonError
from lessons.scale import compute as C


def test_tokens_are_read_as_the_sources_write_them():
    assert C.tokens_of("1.0T") == 1e12 and C.tokens_of("15T+") == 15e12 and C.tokens_of("~15T") == 15e12
    assert C.tokens_of("up to 9T") == 9e12 and C.tokens_of("200B") == 2e11
    with pytest.raises(ValueError):
        C.tokens_of("a lot")


def test_llama_trained_far_past_chinchillas_point():
    rows = {r.name: r for r in C.preset_rows()}
    assert round(rows["LLaMA 7B"].tokens_per_parameter) == 148  # 1.0T over 6,738,415,616 counted parameters
    assert rows["Llama 3 8B"].tokens_per_parameter > 1800
    assert all(r.tokens_per_parameter > C.CHINCHILLA_TOKENS_PER_PARAMETER for r in rows.values())
    s, notice = C.same_budget("LLaMA 7B")
    assert notice == "" and 18e9 < s.n_opt < 19e9 and abs(s.d_opt - 20 * s.n_opt) < 1
    assert abs(6 * s.n_opt * s.d_opt - rows["LLaMA 7B"].training_flops) / rows["LLaMA 7B"].training_flops < 1e-9
    assert C.optimal_answer(s) == C.OPTIMAL_CHOICES[2]
    md, fig = C.reveal_optimal(C.OPTIMAL_CHOICES[0])
    assert md.startswith("❌") and "18.4B parameters" in md and fig.data


def test_an_unknown_model_name_is_a_notice():
    s, notice = C.same_budget("GPT-9")
    assert notice and s.row.name == C.preset_choices()[0]


def _study(tmp_path, large, small):
    study = {"seeds": [0, 1, 2], "tokens_per_step": 1024, "final_text": "the test text",
             "sizes": [{"name": "large", "parameters": 4, "tokens": 10, "runs": [
                 {"seed": i, "final_per_char": v, "val_loss": [[1, 3.0], [2, 2.5]]} for i, v in enumerate(large)]},
                       {"name": "small", "parameters": 1, "tokens": 40, "runs": [
                 {"seed": i, "final_per_char": v, "val_loss": [[4, 3.0], [8, 2.4]]} for i, v in enumerate(small)]}]}
    path = tmp_path / "scale.json"
    path.write_text(json.dumps(study))
    return C.load_study(path)


def test_a_difference_within_twice_the_seed_spread_is_a_tie(tmp_path):
    tie = C.results(_study(tmp_path, [2.00, 2.02, 2.01], [2.03, 2.01, 2.02]))
    assert isinstance(C.verdict(tie)[0], tuple)
    clear = C.results(_study(tmp_path, [2.00, 2.01, 2.00], [2.30, 2.31, 2.30]))
    assert C.verdict(clear)[0] == "large"


def test_the_shipped_study_reads_and_plots():
    study = C.load_study()
    rs = C.results(study)
    assert [r.name for r in rs] == ["large", "small"] and rs[0].parameters > 3 * rs[1].parameters
    # the same compute: 6 N D equal within one step's tokens
    compute = [6 * r.parameters * r.tokens for r in rs]
    assert abs(compute[0] - compute[1]) / compute[0] < 0.01
    assert len(study["seeds"]) >= 3
    assert C.curves_figure(study, "compute").data
    md = C.reveal_sizes(C.SIZE_CHOICES[2])
    assert "seed range" in md and ("✅" in md or "❌" in md)


def test_a_missing_study_is_a_message(tmp_path):
    with pytest.raises(LessonError, match="llama.scale"):
        C.load_study(tmp_path / "nope.json")
