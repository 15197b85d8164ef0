"""IQTS ui layer."""
