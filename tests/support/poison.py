"""The malformed approved-orders stream entries of issue 11's finding, as raw stream fields: each once wedged
execution; the worker must dead-letter it and carry on."""

from __future__ import annotations

import json
from typing import Final

POISON: Final[dict[str, dict[str, str]]] = {
    "null payload": {"p": "null"},
    "a JSON list": {"p": "[1, 2]"},
    "a JSON number": {"p": "42"},
    "not JSON": {"p": "{approval_id: apr_x"},
    "approval_id null": {"p": json.dumps({"approval_id": None})},
    "approval_id of 10 kB": {"p": json.dumps({"approval_id": "apr_" + "x" * 10_000})},
    "approval_id a list": {"p": json.dumps({"approval_id": ["apr_1"]})},
    "no payload field": {"other": "1"},
}
