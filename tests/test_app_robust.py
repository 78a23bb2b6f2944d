"""Hostile input through the HTTP API at every event of every page the app serves, then the server's own log.

Each named endpoint (read from /gradio_api/info, so new pages are covered without editing this file) gets:
- every number parameter set to NaN, +-inf, 1e20, 1.7e308, -5, 4.5 and "abc" (JSON allows NaN/Infinity literals,
  which gradio_client refuses to send);
- every text, radio and dropdown parameter set to a 100,000-character value, and separately to text with lone
  surrogates.
The issue-11 promise: every call completes (no "event: error", which the browser shows as a red toast), no
response echoes the long value back past the text limit, and the server log gains no traceback and no copy of it.
"""

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor


import raw_api


BAD_NUMBERS = [float("nan"), float("inf"), -float("inf"), 1e20, -5, 4.5, "abc"]  # 1.8e308: each page's API tests
NUMBER_KINDS = {"Slider", "Number", "Seedbox"}
TEXT_KINDS = {"Textbox", "Radio", "Dropdown"}
# Markers in the middle, where no cut text can reach (a page keeps the first or the last MAX_TEXT_CHARS): seeing
# one anywhere means the long value was sent back or logged whole.
# Markers the byte-level BPE cannot learn as one token (the split pattern cuts them at '#' and the digits), so a
# merge the tokenization lesson learns from the long text is never mistaken for an echo of it.
MARKS = ["QX#30000#QX", "QX#70000#QX"]
LONG = ("To be, or not to be. " * 1500)[:30_000] + MARKS[0] + ("Sir, " * 8000)[:40_000] + MARKS[1] + \
    ("O Romeo! " * 3400)[:29_973]
# A multi-second measurement (its queue allows one at a time) gets one hostile value of each kind, not all of them.
MEASUREMENTS = ("_timing", "_train")  # "_train": the training lab trains for its time budget
SMALL = 4
SURROGATES = "ab\ud800c \udfff to be"


def endpoints(app_url: str) -> dict:
    with urllib.request.urlopen(f"{app_url}gradio_api/info", timeout=30) as r:
        return json.loads(r.read())["named_endpoints"]


def call(app_url: str, api: str, data: list) -> str:
    """POST one event through Gradio's HTTP API and return the whole event stream as text."""
    return raw_api.stream(app_url, api.lstrip("/"), json.dumps(data))  # NaN/Infinity literals, \\ud800 escapes


def battery(info: dict) -> list[tuple[str, str, list]]:
    """(label, api, data) for every hostile call."""
    calls = []
    for api, ep in sorted(info.items()):
        params = ep["parameters"]
        kinds = [p["component"] for p in params]
        slow = api.endswith(MEASUREMENTS)
        # A measurement's other numbers (steps to time) get a small valid value: the hostile value is the test.
        default = [SMALL if slow and k in NUMBER_KINDS else p.get("parameter_default") for p, k in zip(params, kinds)]
        if any(k in NUMBER_KINDS for k in kinds):
            for bad in (BAD_NUMBERS[:1] if slow else BAD_NUMBERS):
                calls.append((f"{api} numbers={bad!r}", api,
                              [bad if k in NUMBER_KINDS else d for k, d in zip(kinds, default)]))
        if any(k in TEXT_KINDS for k in kinds):
            for label, value in (("100,000 characters", LONG), ("lone surrogates", SURROGATES))[:1 if slow else 2]:
                calls.append((f"{api} text={label}", api,
                              [value if k in TEXT_KINDS else d for k, d in zip(kinds, default)]))
    return calls


def test_hostile_api_calls_complete_without_tracebacks_or_echo(app_url):
    info = endpoints(app_url)
    calls = battery(info)
    assert len(calls) > 20, sorted(info)  # the battery reached the pages
    log_start = app_url.log.stat().st_size
    with ThreadPoolExecutor(4) as pool:
        streams = list(pool.map(lambda c: call(app_url, c[1], c[2]), calls))
    problems = {}  # endpoint -> what went wrong, by hostile value
    for (label, api, _), stream in zip(calls, streams):
        what = label.split(" ", 1)[1]
        if "event: complete" not in stream:
            problems.setdefault(api, []).append(f"error event at {what}")
        if any(m in stream for m in MARKS):
            problems.setdefault(api, []).append(f"echoes the long value at {what}")
    with open(app_url.log, encoding="utf-8", errors="replace") as f:
        f.seek(log_start)
        log = f.read()
    report = "\n".join(f"{api}: {'; '.join(p)}" for api, p in sorted(problems.items()))
    assert not problems, f"{len(problems)} of {len(info)} endpoints fail hostile input:\n{report}"
    assert "Traceback" not in log, f"{log.count('Traceback')} tracebacks logged; the first:\n{log[:4000]}"
    assert not any(m in log for m in MARKS), "the server log holds the 100,000-character value"
    assert len(log) < 20_000, f"{len(log):,} characters logged for {len(calls)} rejected inputs:\n{log[:3000]}"
