"""Learner input, made safe in one place for every lesson: text, whole numbers, real numbers, choices.

Everything a learner types or an API client sends passes through one of these before it reaches the model.
Bad values are repaired where a sensible value exists (clamped into range, rounded to a whole number, the
default for NaN) and the repair is said in a notice the page shows; where nothing sensible exists (empty
text, an unknown choice) a `LessonError` carries the message to the page.

`LessonError` is the project's one exception type for learner messages. Handlers catch it and nothing
broader: a real bug (a shape error, a codec error) is never dressed up as a message.

    >>> whole(4.5, "Layer", 0, 5)
    (4, 'Layer 4.5 is not a whole number: using 4.')
    >>> whole(float("nan"), "Layer", 0, 5, default=0)
    (0, 'Layer: nan is not a number: using 0.')
    >>> clean_text("ab\\ud800c")[0]
    'ab\\ufffdc'
"""

from __future__ import annotations

import math
import re

MAX_TEXT_CHARS = 5_000  # learner text longer than this is cut, with a notice
_ECHO = 40  # a bad value is quoted in a message at most this long


class LessonError(ValueError):
    """A message for the learner about their input (shown on the page, never a traceback).

    Raise it only for input a learner can fix; a bug must stay a bug. Handlers catch `LessonError` and nothing
    else (widgets.guarded); it subclasses ValueError only so that callers of the library-style lesson functions
    may treat it as the bad-value error it is."""


def echo(value) -> str:
    """A bad value as a message may quote it: at most 40 characters, so a 100,000-character value never comes
    back. echo("x" * 100) -> 'xxxx…(100 characters)'."""
    s = str(value)
    return s if len(s) <= _ECHO else f"{s[:_ECHO]}…({len(s):,} characters)"


def join(*notices: str) -> str:
    """Non-empty notices joined into one line."""
    return " ".join(n for n in notices if n)


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text, limit: int = MAX_TEXT_CHARS, what: str = "text") -> tuple[str, str]:
    """Learner text made safe to encode: returns (text, notice).

    - None becomes ""; anything else that is not a str is refused (LessonError).
    - Lone UTF-16 surrogates (half of an emoji, which a browser can send) have no UTF-8 bytes: each becomes
      U+FFFD '�', and the notice says how many.
    - Text longer than `limit` characters is cut to its first `limit`, and the notice says so.
    - Empty or whitespace-only text raises LessonError.
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise LessonError(f"The {what} must be text, not {type(text).__name__}.")
    notices = []
    text, n_bad = _SURROGATE.subn("\ufffd", text)
    if n_bad:
        notices.append(f"{n_bad} character{'s' if n_bad > 1 else ''} that {'are' if n_bad > 1 else 'is'} not "
                       "valid Unicode (half of a surrogate pair) became U+FFFD '�'.")
    if not text.strip():
        raise LessonError(f"The {what} is empty: type or paste some text (for example a line of Shakespeare).")
    if len(text) > limit:
        notices.append(f"The {what} has {len(text):,} characters; the limit is {limit:,}, so only the first "
                       f"{limit:,} are used.")
        text = text[:limit]
    return text, " ".join(notices)


def _as_float(value, name: str):
    """float(value), or None with the reason when it is not a number at all."""
    if isinstance(value, bool):
        value = int(value)
    try:
        return float(value), ""
    except (TypeError, ValueError, OverflowError):
        return None, f"{name}: {echo(value)!r} is not a number"


def number(value, name: str, lo: float, hi: float, default: float | None = None) -> tuple[float, str]:
    """A real number in [lo, hi]: returns (value, notice). Out of range is clamped, +-inf goes to the nearer end,
    NaN or a non-number becomes `default` (lo when None). The notice says what was changed, or is ''.

        >>> number(1e20, "Scale", 0.1, 10)
        (10.0, 'Scale 1e+20 is out of range (0.1 to 10): using 10.')
    """
    default = lo if default is None else default
    x, why = _as_float(value, name)
    if x is None:
        return float(default), f"{why}: using {default:g}."
    if math.isnan(x):
        return float(default), f"{name}: nan is not a number: using {default:g}."
    if x < lo or x > hi:
        y = float(min(max(x, lo), hi))
        return y, f"{name} {x:g} is out of range ({lo:g} to {hi:g}): using {y:g}."
    return x, ""


def whole(value, name: str, lo: int, hi: int, default: int | None = None) -> tuple[int, str]:
    """A whole number in [lo, hi]: returns (value, notice). Like `number`, and a fraction is rounded half to even
    (4.5 -> 4, 5.5 -> 6, as Python's round). Values beyond 64 bits (2**70, 1.8e308) are clamped like any other.

        >>> whole(-3, "Steps", 1, 64)
        (1, 'Steps -3 is out of range (1 to 64): using 1.')
    """
    default = lo if default is None else default
    if isinstance(value, int) and not isinstance(value, bool):
        x = value
        notice = ""
    else:
        f, why = _as_float(value, name)
        if f is None:
            return default, f"{why}: using {default}."
        if math.isnan(f):
            return default, f"{name}: nan is not a number: using {default}."
        if math.isinf(f):
            y = hi if f > 0 else lo
            return y, f"{name} {f:g} is out of range ({lo} to {hi}): using {y}."
        x = round(f)
        notice = f"{name} {f:g} is not a whole number: using {x}." if x != f else ""
    if x < lo or x > hi:
        y = min(max(x, lo), hi)
        return y, f"{name} {echo(value if not isinstance(value, float) else format(value, 'g'))} is out of range " \
                  f"({lo} to {hi}): using {y}."
    return x, notice


def choice(value, name: str, options, default=None):
    """One of `options`: returns (value, notice). An unknown value becomes `default` when given (with a notice),
    else raises LessonError listing the options."""
    options = list(options)
    if value in options:
        return value, ""
    listed = ", ".join(map(str, options))
    if default is not None:
        return default, f"{name}: {echo(value)!r} is not one of {listed}: using {default}."
    raise LessonError(f"{name}: {echo(value)!r} is not one of {listed}.")
