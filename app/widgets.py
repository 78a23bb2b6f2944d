"""Shared page pieces: the lesson header with previous/next links, lesson text sections, error notes."""

from __future__ import annotations

import html

import gradio as gr

import lessons
from lessons import LessonInfo


# In a multi-line Gradio textbox Enter starts a new line and Shift+Enter submits: say so in every label.
RUN_HINT = "Shift+Enter or the button runs it"


def link(href: str, text: str) -> str:
    """A same-tab link. (Gradio's Markdown opens every link in a new tab; course navigation should not.)"""
    return f'<a href="{html.escape(href)}" target="_self">{html.escape(text)}</a>'


def nav_links(lesson: LessonInfo) -> str:
    prev, nxt = lessons.neighbours(lesson.slug)
    parts = [link("/", "Course map")]
    if prev:
        parts.insert(0, link(prev.path, f"← {prev.title}"))
    if nxt:
        parts.append(link(nxt.path, f"{nxt.title} →"))
    return '<nav class="lesson-nav">' + " &nbsp;·&nbsp; ".join(parts) + "</nav>"


def lesson_header(lesson: LessonInfo) -> None:
    gr.HTML(nav_links(lesson))
    gr.Markdown(f"# {lesson.title}")


def lesson_footer(lesson: LessonInfo) -> None:
    gr.HTML(nav_links(lesson))


def sections(lesson: LessonInfo) -> list[str]:
    """lesson.md split at '<!-- figure -->' markers, so text and live figures can alternate on the page."""
    return [s.strip() for s in lesson.text().split("<!-- figure -->")]


def prose(md: str) -> gr.Markdown:
    """Lesson text with $...$ and $$...$$ rendered as LaTeX."""
    return gr.Markdown(md, latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                             {"left": "$", "right": "$", "display": False}])


def predict_reveal(question: str, choices: list, button: str = "Reveal", elem_id: str | None = None):
    """A predict-then-reveal question: the learner commits to an answer, then the button asks the live model.
    Returns (radio, button, answer) for the page to wire."""
    gr.Markdown(f"**Predict:** {question}")
    guess = gr.Radio(choices, label="Your prediction")
    btn = gr.Button(button)
    out = gr.Markdown(elem_id=elem_id)
    return guess, btn, out


def message(text: str = "", elem_id: str | None = None) -> gr.Markdown:
    """A slot for notices and input errors, shown on the page instead of a traceback."""
    return gr.Markdown(text, elem_classes=["lesson-message"], elem_id=elem_id)


def note(text: str) -> str:
    return f"⚠️ {text}" if text else ""
