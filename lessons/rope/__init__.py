"""Lesson 3: positional encoding and RoPE (lesson.md for the text, compute.py for the figures and numbers)."""
