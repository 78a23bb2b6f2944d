"""Call an app event over Gradio's plain HTTP API with JSON that gradio_client refuses to send: the one raw caller
of the tests.

gradio_client encodes with allow_nan=False and UTF-8, so it cannot send NaN, Infinity or a lone surrogate; a
browser (JSON.stringify writes '\\ud800' escapes) or any HTTP client can. `call` sends Python's json defaults
(NaN and Infinity literals, surrogates as \\u escapes), as such a client would; `stream` takes a JSON text as is.
"""

import json
import urllib.request


def stream(app_url: str, api_name: str, data_json: str, timeout: float = 300) -> str:
    """POST /gradio_api/call/<api_name> with the body {"data": <data_json>} and return the event stream as text."""
    req = urllib.request.Request(f"{app_url}gradio_api/call/{api_name}", data=f'{{"data": {data_json}}}'.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        event_id = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{app_url}gradio_api/call/{api_name}/{event_id}", timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


def outputs(text: str, what: str = "") -> list:
    """The outputs of an event stream's "complete" event. AssertionError when it answered "error" (the red
    toast a browser would show) or never completed."""
    event = None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            assert event == "complete", f"{what} answered an error: {line[5:].strip()[:300]}"
            return json.loads(line[5:])
    raise AssertionError(f"{what}: no result in {text[:300]!r}")


def call(app_url: str, api_name: str, *data, timeout: float = 300) -> list:
    """An event's outputs for Python values `data` (NaN, inf and lone surrogates allowed).

        call(url, "kv_step", "To be", 8, float("nan"))  ->  [figure, readout, message]
    """
    data_json = json.dumps(list(data))  # ensure_ascii escapes surrogates; NaN stays NaN
    return outputs(stream(app_url, api_name, data_json, timeout), f"{api_name}{data_json[:200]}")


def call_json(app_url: str, api_name: str, data_json: str, timeout: float = 300) -> list:
    """An event's outputs for a hand-written JSON list: call_json(url, "swiglu_curves", "[NaN]")."""
    return outputs(stream(app_url, api_name, data_json, timeout), f"{api_name}({data_json[:200]})")
