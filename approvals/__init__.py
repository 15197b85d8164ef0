"""IQTS approvals layer."""
