"""Recipes that produce the weights vidgen ships (weights/*.safetensors): one command each. Run from the
repository root as `python -m recipes.NAME`."""
