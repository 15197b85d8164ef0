"""``python -m evals schema``: regenerate evals/schema/scenario.schema.json from the pydantic models."""

from __future__ import annotations

import sys

from evals.scenario import SCHEMA_PATH, schema_text


def main(argv: list[str]) -> int:
    if argv[1:] != ["schema"]:
        sys.stderr.write("usage: python -m evals schema\n")
        return 2
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
