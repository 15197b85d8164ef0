"""Telemetry opt-outs so that nothing IQTS loads phones home (set by the project, not the user).

Applied when ``engine`` is first imported, before any of these libraries can be. Values already set in the
environment win, so an operator can still opt in.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_DEFAULTS: dict[str, str] = {
    # deepeval: PostHog events on evaluate/assert_test and its pytest plugin; and its .env loading
    "DEEPEVAL_TELEMETRY_OPT_OUT": "1",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    # litellm (pulled in by guardrails): fetches a model cost map at import
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # Hugging Face hub / transformers / sentence-transformers: never reach the hub
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # generic opt-outs honoured by several libraries (posthog users, chromadb, OpenTelemetry SDK)
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "OTEL_SDK_DISABLED": "true",
    # guardrails-ai hub/remote inferencing
    "GUARDRAILS_RUN_SYNC": "true",
}


def nltk_data_dir() -> Path | None:
    """llama-index ships NLTK's punkt tokenizer; pointing NLTK_DATA at it stops guardrails' download."""
    import importlib.util

    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or spec.origin is None:
        return None
    candidate = Path(spec.origin).parent / "_static" / "nltk_cache"
    return candidate if candidate.is_dir() else None


def apply_offline_defaults() -> None:
    """Set every opt-out that the user has not set themselves."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if "NLTK_DATA" not in os.environ:
        try:
            found = nltk_data_dir()
        except (ImportError, ValueError):
            found = None
        if found is not None:
            os.environ["NLTK_DATA"] = str(found)
