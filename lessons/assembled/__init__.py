"""Lesson 9: the Llama assembled (compute.py holds the pure functions; lesson.md the text)."""
