"""Lesson 1: BPE tokenization. Text in `lesson.md`, pure functions in `compute.py`, page in
app/pages/tokenization.py."""
