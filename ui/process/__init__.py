"""The process plan: which duty each IQTS command runs, and how the background duties are started."""
