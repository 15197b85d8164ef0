"""Market data: models, timeframes, the canonical bar frame, sample data, bar building, quality, live feeds.

Import the submodules directly (``engine.data.models``, ``engine.data.quality`` ...); this package
imports nothing at load time so that ``import engine.data`` stays cheap.
"""
