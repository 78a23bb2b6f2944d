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
    answer: str  # the choice the measurement supports
    correct: bool | None  # None when nothing was picked

    def verdict(self, show=str) -> str:
        """One Markdown line that opens the reveal. `show` turns a choice into Markdown (escape token text)."""
        if self.correct is None:
            return f"{NO_PICK} The measurement says *{show(self.answer)}*."
        if self.correct:
            return f"✅ Right: you predicted *{show(self.picked)}*, and so it measures."
        return f"❌ Not this time: you predicted *{show(self.picked)}*; the measurement says *{show(self.answer)}*."


def grade(picked, answer: str, options, what: str = "Your prediction") -> Grade:
    """Compare the learner's pick with the measured answer.

    `picked` None or '' means no prediction (a reveal still shows the measurement). A value that is not one of
    `options` (only an API client can send one) raises LessonError naming the options (lessons.inputs.choice).
    """
    if picked is None or picked == "":
        return Grade(None, answer, None)
    picked, _ = _choice(picked, what, list(options))
    return Grade(picked, answer, picked == answer)
