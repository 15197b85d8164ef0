"""The audit log: append-only, hash-chained; every tool call, verdict, decision and order event lands here."""

from engine.audit.log import AuditEntry, AuditVerification, append, entries, verify

__all__ = ["AuditEntry", "AuditVerification", "append", "entries", "verify"]
