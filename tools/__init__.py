"""IQTS tools layer."""
