"""Training: one trainer for every in-house model (data, losses, checkpoints, distributed)."""
