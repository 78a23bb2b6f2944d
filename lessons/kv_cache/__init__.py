"""Lesson 7: the KV cache (compute.py holds the pure functions; lesson.md the text)."""
