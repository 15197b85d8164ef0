"""IQTS knowledge layer."""
