"""Terminal output for the CLI (rich): results to stdout, messages and errors to stderr."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def emit_json(value: Any) -> None:
    """Machine-readable output: pydantic models, lists of them, or plain JSON values."""
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
        text = json.dumps([v.model_dump(mode="json") for v in value], indent=2)
    else:
        text = json.dumps(value, indent=2, default=str)
    out.print_json(text) if out.is_terminal else out.out(text, highlight=False)
