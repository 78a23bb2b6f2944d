"""Class mode: a teacher starts a class, students join by code or link, their predictions and visits aggregate live
on the teacher's dashboard (/class?code=CODE with the teacher key).

- store.py: the database (SQLAlchemy Core; SQLite by default, PostgreSQL by $INSIDE_LLAMA_DB), migrations, the
  writer thread, the reads;
- api.py: the JSON API, the dashboard page, the QR code (FastAPI routes in front of Gradio's);
- questions.py: the course's questions as registered by app.widgets.predict_reveal, and how a reveal is read;
- static/: the browser side (class.js on every page, the dashboard's page and script, one stylesheet).

The pages need no change: app.widgets.predict_reveal calls `record_answers`, app/main.py adds `head()` to every page
and `api.routes()` to the server, the course map calls `teach_block()`.
"""

from __future__ import annotations

import json
import re

from app.classroom import questions  # no gradio at import: the API alone (tests, bench) starts fast

VERSION = "1"  # bump to make browsers fetch the static files again


def head() -> str:
    """What every page's <head> gets: class mode's stylesheet and script."""
    return (f'<link rel="stylesheet" href="/classroom/static/class.css?v={VERSION}">'
            f'<script src="/classroom/static/class.js?v={VERSION}" defer></script>')


def record_answers(question: str, choices, guess, out, qid: str | None = None) -> None:
    """Record a predict-then-reveal question's answers for the student's class, if they are in one: when the
    verdict appears in `out`, the browser (class.js) posts the question id, the pick and the verdict's first line.
    Nothing runs on the server for a learner who is not in a class."""
    values = [c[1] if isinstance(c, (tuple, list)) else c for c in (choices or [])]
    q = questions.add(question, values, qid)
    out.elem_classes = list(out.elem_classes or []) + ["class-q", "class-q-" + re.sub(r"[^A-Za-z0-9_-]", "-", q.qid)]
    out.change(None, [guess, out], None, js="(g, v) => { if (window.insideLlamaClass) "
               f"window.insideLlamaClass.answer({json.dumps(q.qid)}, g, v); }}", queue=False, api_visibility="private")


TEACH = """
<div class="class-teach">
  <section class="class-col" aria-labelledby="class-start-title">
    <h3 id="class-start-title">Start a class</h3>
    <p>Students join with a short code or a link (nothing to install, no account). While they work through the
    lessons, your dashboard shows how many joined, which lessons they reached and how the class predicted each
    question against the measured answer, live.</p>
    <label>Class name (optional)<br><input id="class-name" maxlength="60" autocomplete="off"></label>
    <p><button type="button" id="class-start" class="class-button">Start a class</button></p>
    <div id="class-started" hidden aria-live="polite"></div>
  </section>
  <section class="class-col" aria-labelledby="class-join-title">
    <h3 id="class-join-title">Join a class</h3>
    <label>Class code<br><input id="class-join-code" placeholder="K7QM-2MHX" maxlength="20" autocomplete="off"
      autocapitalize="characters"></label>
    <label>Nickname (optional, at most 24 characters)<br><input id="class-join-nick" maxlength="24"
      autocomplete="off"></label>
    <p><button type="button" id="class-join" class="class-button">Join</button></p>
    <p id="class-join-msg" role="status"></p>
    <p class="class-privacy">Your predictions and the lessons you open are recorded for the class under a random id
    and the nickname, if you give one; nothing else about you. Classes are deleted after 30 days.</p>
  </section>
</div>
"""


def teach_block() -> None:
    """The course map's "Teach with this course" block (start or join a class), run by class.js."""
    import gradio as gr

    with gr.Accordion("Teach with this course: start or join a class", open=False, elem_id="class-teach"):
        gr.HTML(TEACH)
