"""Predict, then reveal: one judge for every lesson's questions.

A reveal always shows the measurement. What differs is the first line: right, wrong, or no prediction. Every
page builds that line here, so "Reveal" with nothing picked behaves the same everywhere: the measurement is
shown and the line says "You did not pick a prediction".

    >>> g = grade("layer 2", "layer 2", ["layer 0", "layer 1", "layer 2"])
    >>> g.correct, g.verdict()
    (True, '✅ Right: you predicted *layer 2*, and so it measures.')
    >>> grade(None, "layer 2", ["layer 0", "layer 2"]).verdict()
    'You did not pick a prediction. The measurement says *layer 2*.'

The answer is computed by the caller from the live measurement, never stored: `grade` only compares.
"""

from __future__ import annotations

from dataclasses import dataclass

from lessons.inputs import choice as _choice

NO_PICK = "You did not pick a prediction."


@dataclass(frozen=True)
class Grade:
    picked: str | None  # the learner's choice, or None when nothing was picked
    answer: str  # the choice the measurement supports (the first of them when the measurement is a tie)
    correct: bool | None  # None when nothing was picked
    ties: tuple[str, ...] = ()  # every choice the measurement cannot tell apart (a tie within the noise), or ()

    def verdict(self, show=str) -> str:
        """One Markdown line that opens the reveal. `show` turns a choice into Markdown (escape token text)."""
        said = (" and ".join(f"*{show(t)}*" for t in self.ties) + " (a tie: the measurement cannot tell them "
                "apart)") if self.ties else f"*{show(self.answer)}*"
        if self.correct is None:
            return f"{NO_PICK} The measurement says {said}."
        if self.correct:
            if self.ties:
                return f"✅ Right: you predicted *{show(self.picked)}*, and the measurement says {said}."
            return f"✅ Right: you predicted *{show(self.picked)}*, and so it measures."
        return f"❌ Not this time: you predicted *{show(self.picked)}*; the measurement says {said}."


def grade(picked, answer, options, what: str = "Your prediction") -> Grade:
    """Compare the learner's pick with the measured answer.

    `answer` is one choice, or a tuple/list of choices when the measurement is a tie (within the seed or timing
    noise): every one of them is graded right.

        >>> grade("a", ("a", "b"), ["a", "b", "c"]).correct
        True

    `picked` None or '' means no prediction (a reveal still shows the measurement). A value that is not one of
    `options` (only an API client can send one) raises LessonError naming the options (lessons.inputs.choice).
    """
    ties = tuple(answer) if isinstance(answer, (tuple, list)) else ()
    if ties and len(ties) == 1:
        answer, ties = ties[0], ()
    first = ties[0] if ties else answer
    if picked is None or picked == "":
        return Grade(None, first, None, ties)
    picked, _ = _choice(picked, what, list(options))
    return Grade(picked, first, picked in ties if ties else picked == answer, ties)


@dataclass(frozen=True)
class Question:
    """A predict-then-reveal question: what it asks, its choices, and the misconception it probes.

        >>> Q = Question("attention.scale", "Without ÷√d, attention gets", ("sharper", "flatter"),
        ...              misconception="that scaling the scores by a constant cannot change the softmax")

    `qid` is stable (class mode and the learner's "check yourself" list key on it). The reveal names the
    misconception (`Question.reveal`), so the learner reads which wrong idea the measurement just tested.
    """
    qid: str
    text: str
    choices: tuple[str, ...]
    misconception: str

    def reveal(self, picked, answer, body: str, show=str) -> str:
        """The whole reveal: the verdict line, the measurement (`body`, Markdown), and the misconception probed."""
        g = grade(picked, answer, self.choices)
        return f"{g.verdict(show)}\n\n{body}\n\n*The wrong idea this question tests:* {self.misconception}"
