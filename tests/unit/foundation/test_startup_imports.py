"""Start-up stays cheap: what a fresh process imports, checked in a subprocess (a module list, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("ccxt", "vectorbt", "numba", "pandas", "xllamacpp", "llama_cpp", "mcp", "jsonschema", "psycopg", "torch")


def _imported(code: str, names: tuple[str, ...]) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps([n for n in {list(names)!r} if n in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_the_cli_imports_no_heavy_library_eagerly() -> None:
    assert _imported("import ui.cli.main", HEAVY) == []


def test_the_mcp_server_module_leaves_the_tool_services_for_later() -> None:
    code = "import tools.server\nfrom engine.imports import DeferredModule\nimport sys\n"
    code += "assert isinstance(sys.modules['rfc3987_syntax'], DeferredModule)  # the grammar is not compiled"
    assert _imported(code, ("pandas", "numba", "vectorbt", "ccxt", "psycopg", "lark")) == []


def test_the_rfc3987_grammar_waits_for_its_first_use() -> None:
    code = (
        "from engine.imports import DeferredModule, defer_slow_imports\n"
        "defer_slow_imports()\n"
        "import sys, jsonschema\n"
        "deferred_before = isinstance(sys.modules['rfc3987_syntax'], DeferredModule)\n"
        "checker = jsonschema.Draft202012Validator.FORMAT_CHECKER\n"
        "v = jsonschema.Draft202012Validator({'format': 'iri'}, format_checker=checker)\n"
        "errors = [list(v.iter_errors('http://example.com/ä')), len(list(v.iter_errors('not an iri ::')))]\n"
        "print(json.dumps([deferred_before, isinstance(sys.modules['rfc3987_syntax'], DeferredModule), errors]))\n"
    )
    probe = f"import json\n{code}"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    deferred_before, deferred_after, (good, bad) = json.loads(done.stdout.strip().splitlines()[-1])
    assert deferred_before and not deferred_after
    assert good == [] and bad == 1  # jsonschema still checks the format, with the real module
