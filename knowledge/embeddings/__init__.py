"""Embedders: the bundled MiniLM in numpy (default, offline) or an OpenAI-compatible endpoint, behind one factory."""
