"""Lesson 13: efficient attention. `compute.py` holds the pure functions (no Gradio); `lesson.md` the text."""
