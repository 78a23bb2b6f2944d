"""The course's predict-then-reveal questions as class mode knows them, and how a reveal is read.

Every question is made by app.widgets.predict_reveal, which registers it here while the pages are built (`add`):
its id, text and choices. A student's browser then sends only the question id, the choice and the verdict line the
page showed; the server checks the choice against the registered ones and reads the verdict with `judge`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from app.classroom.store import ClassError


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    choices: tuple[str, ...]


QUESTIONS: dict[str, Question] = {}  # filled while the pages are built, read-only afterwards


def question_id(text: str, choices) -> str:
    """A stable id for a question without one: a hash of its text and choices.

        >>> question_id("Which layer?", ["0", "1"])
        'q-...'
    """
    h = hashlib.sha256((text + "\x1f" + "\x1f".join(map(str, choices))).encode()).hexdigest()[:12]
    return f"q-{h}"


def add(text: str, choices, qid: str | None = None) -> Question:
    q = Question(qid or question_id(text, choices), str(text)[:600], tuple(str(c)[:200] for c in choices))
    QUESTIONS[q.qid] = q
    return q


_SAYS = re.compile(r"measurement says \*(.+?)\*(?:\.|,| and | \(|$)")  # a tie names its first choice first


def _unescape(md: str) -> str:
    return re.sub(r"\\(.)", r"\1", md)


def judge(q: Question, choice, verdict) -> tuple[str | None, bool | None, str | None]:
    """(choice, correct, measured answer) from what the page showed, checked against the question's choices.

    The verdict's first line comes from lessons.grading.Grade.verdict: '✅ ...' right (the measured answer is the
    pick), '❌ ... the measurement says *X*.' wrong, 'You did not pick ... The measurement says *X*.' no pick.
    A measured answer that matches no choice is kept as None (the dashboard then shows none).

        >>> q = Question("q", "?", ("a", "b"))
        >>> judge(q, "b", "❌ Not this time: you predicted *b*; the measurement says *a*.")
        ('b', False, 'a')
    """
    if not isinstance(verdict, str) or not verdict.strip():
        raise ClassError("No answer to record.", 422)
    line = verdict.strip().splitlines()[0][:2000]
    if line.startswith("✅"):
        correct = True
    elif line.startswith("❌"):
        correct = False
    elif line.startswith("You did not pick"):
        correct = None
    else:
        raise ClassError("Not a revealed answer.", 422)
    if correct is None:
        choice = None
    elif not isinstance(choice, str) or choice not in q.choices:
        raise ClassError("That choice is not one of the question's options.", 422)
    if correct:
        return choice, True, choice
    m = _SAYS.search(line)
    said = _unescape(m.group(1)) if m else None
    measured = said if said in q.choices else next((c for c in q.choices if m and c == m.group(1)), None)
    return choice, correct, measured
