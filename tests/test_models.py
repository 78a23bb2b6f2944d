"""The model picker's registry (lessons/models.py): lazy, once, bounded, failures become a learner message."""

import os
import threading

import pytest

from conftest import STORIES
from lessons.inputs import LessonError
from lessons.models import ModelRegistry, offered_sources


def test_offered_sources_from_the_environment_keep_order_and_drop_blanks_and_repeats():
    env = os.pathsep.join(["a/dir", "", " org/name ", "a/dir"])
    assert offered_sources(env) == ["a/dir", "org/name"]


def test_the_empty_key_is_the_course_model_and_options_list_it_first(cm):
    reg = ModelRegistry(cm, [str(STORIES)])
    assert reg.get("") is cm and reg.get(None) is cm
    opts = reg.options()
    assert [o.key for o in opts] == ["", str(STORIES)]
    assert opts[1].label == "stories260K"


def test_a_model_loads_once_even_when_many_learners_ask_at_once(cm):
    reg = ModelRegistry(cm, [str(STORIES)], device="cpu")
    got, errors = [], []

    def ask():
        try:
            got.append(reg.get(str(STORIES)))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(m) for m in got}) == 1  # one shared object: loaded once
    m = got[0]
    assert (m.config.n_layers, m.config.n_heads, m.config.n_kv_heads, m.config.dim) == (5, 8, 4, 64)
    assert m.tokenizer.vocab_size == 512 and m.tokenizer.bos_id == 1


def test_at_most_max_resident_models_stay_and_the_least_recently_used_goes_first(cm, tmp_path):
    import shutil

    copies = []
    for name in ("one", "two", "three"):
        d = tmp_path / name
        shutil.copytree(STORIES, d)
        copies.append(str(d))
    reg = ModelRegistry(cm, copies, max_resident=2, device="cpu")
    a = reg.get(copies[0])
    reg.get(copies[1])
    assert reg.get(copies[0]) is a  # a hit refreshes it
    reg.get(copies[2])
    assert reg.resident() == [copies[0], copies[2]]  # copies[1] was the least recently used
    assert reg.get("") is cm  # the course model is never evicted


def test_a_key_not_offered_or_a_broken_model_is_a_message_and_the_course_model_keeps_working(cm, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    reg = ModelRegistry(cm, [str(broken)], device="cpu")
    with pytest.raises(LessonError, match="not offered"):
        reg.get("/etc")
    with pytest.raises(LessonError, match="could not be loaded"):
        reg.get(str(broken))
    assert reg.get("") is cm
