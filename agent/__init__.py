"""IQTS agent layer."""
