"""Lesson 5: SwiGLU (activation curves, the gate surface, the 2/3 hidden size, real gate activations)."""
