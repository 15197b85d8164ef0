"""The conventional engine: data, research, risk, execution, portfolio, store, bus, settings.

``engine`` imports none of the packages above it (agent, tools, knowledge, approvals, ui, evals).
"""

from engine.offline import apply_offline_defaults

__version__ = "0.1.0"

apply_offline_defaults()
