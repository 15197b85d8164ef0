"""The audit log: append-only, hash-chained; every tool call, verdict, decision and order event lands here."""

from engine.audit.anchor import AuditAnchor, Checkpoint, anchor_for, checkpoint, verify_anchored
from engine.audit.log import AuditEntry, AuditVerification, append, entries, verify

__all__ = [
    "AuditAnchor",
    "AuditEntry",
    "AuditVerification",
    "Checkpoint",
    "anchor_for",
    "append",
    "checkpoint",
    "entries",
    "verify",
    "verify_anchored",
]
