"""Lesson 2: attention. `compute.py` holds the pure functions (no Gradio); `lesson.md` the text."""
