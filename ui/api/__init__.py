"""The FastAPI process: REST, the approval inbox, MCP over HTTP and /metrics."""
