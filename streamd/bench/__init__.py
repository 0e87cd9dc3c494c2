"""``streamd bench``: simulated cameras through the real pipeline, measured like a user would."""
