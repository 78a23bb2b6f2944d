"""Lesson 10: next-token prediction (compute.py holds the pure functions; lesson.md the text)."""
