"""Deterministic guards around the model: intake, untrusted data, trade intent, arguments, answers."""
