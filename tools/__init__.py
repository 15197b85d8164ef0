"""IQTS tools layer."""

from engine.imports import defer_slow_imports

defer_slow_imports()  # before the MCP SDK imports jsonschema (see engine.imports)
