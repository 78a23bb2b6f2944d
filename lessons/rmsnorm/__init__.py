"""Lesson 4: RMSNorm against LayerNorm (invariances, the course model's residual stream, cost, pre- vs post-norm)."""
