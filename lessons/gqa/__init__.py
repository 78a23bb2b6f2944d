"""Lesson 6: MQA and GQA (compute.py holds the pure functions; lesson.md the text)."""
