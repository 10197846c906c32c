"""Batched fitting: simulation, parametric bootstrap and many responses on one design."""
