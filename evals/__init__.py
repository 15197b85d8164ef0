"""IQTS evals layer."""
