"""Call an app event over Gradio's plain HTTP API with JSON that gradio_client refuses to send.

gradio_client encodes with allow_nan=False and UTF-8, so it cannot send NaN, Infinity or a lone surrogate; a
browser (JSON.stringify writes '\\ud800' escapes) or any HTTP client can. This sends the body with Python's json
defaults (NaN and Infinity literals, surrogates as \\u escapes), as such a client would.
"""

import json
import urllib.request


def call(app_url: str, api_name: str, *data):
    """POST /gradio_api/call/<api_name>, then read its event stream: the output list, or raises with the error."""
    body = json.dumps({"data": list(data)}).encode("ascii")  # ensure_ascii escapes surrogates; NaN stays NaN
    req = urllib.request.Request(f"{app_url}gradio_api/call/{api_name}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        event_id = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{app_url}gradio_api/call/{api_name}/{event_id}", timeout=120) as r:
        stream = r.read().decode("utf-8")
    event = None
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            payload = line.split(":", 1)[1].strip()
            if event == "error":
                raise RuntimeError(f"{api_name} failed: {payload}")
            return json.loads(payload)
    raise RuntimeError(f"{api_name}: no result in {stream[:300]!r}")
