"""The chat (Chainlit): sign-in against the IQTS users, the copilot's answers streamed, each tool call as a step,
backtests with an equity chart, proposed orders as approval cards with a live status.

Only :mod:`ui.chat.app` imports Chainlit (whose import creates files in its app root); the rest of the package
(rendering, the turn player, the per-session agent, the data layer's schema, the runner) is plain Python.
"""
