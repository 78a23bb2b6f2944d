"""The model picker on the course map, through the app's API (the server offers stories260K and a broken dir)."""

from conftest import STORIES


def test_picking_stories260k_loads_it_remembers_it_and_describes_it(client):
    status, picker, remembered, runs_on, summary, card = client.predict(str(STORIES), "", api_name="/choose_model")
    assert status == ""
    assert picker == remembered == str(STORIES)
    assert "5 layers, width 64" in summary and "head size 8" in summary and "context 512" in summary
    assert "GQA (8 query heads share 4 key/value heads)" in summary
    assert "TinyShakespeare" not in summary  # nothing of the course model's card is claimed for it
    assert "stories260K" in runs_on and "float32" in runs_on and "CPU" in runs_on
    assert "no model card" in card


def test_a_model_that_cannot_load_is_a_message_and_the_picker_keeps_the_previous_choice(client):
    # The broken directory is the second model the test server offers (tests/conftest.py).
    status, picker, *_ = client.predict(_server_offer(client, 2), str(STORIES), api_name="/choose_model")
    assert "could not be loaded" in status and "course model keeps working" in status
    assert picker == str(STORIES)


def _server_offer(client, i):
    """The i-th choice of the picker as the server built it (0 = the course model)."""
    cfg = client.config
    for comp in cfg["components"]:
        if comp.get("props", {}).get("elem_id") == "model-picker":
            return comp["props"]["choices"][i][1]
    raise AssertionError("no model picker on the course map")


def test_a_key_the_host_does_not_offer_means_the_course_model(client):
    status, picker, remembered, *_ = client.predict("/etc", "", api_name="/choose_model")
    assert "not offered" in status and "course model is used" in status
    assert picker == remembered == ""
