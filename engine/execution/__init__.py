"""Execution: the order vocabulary and state machine (``models``); the OMS, router and broker adapters."""
