"""Fusion: several recordings or copies of one scene become one video that keeps the best of each."""
