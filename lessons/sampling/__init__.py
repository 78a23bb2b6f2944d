"""Lesson 8: generation and sampling (temperature, top-k, top-p, greedy against sampled)."""
