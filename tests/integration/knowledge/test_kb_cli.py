"""`iqts kb` as a user runs it (argv through ``ui.cli.main.main``, settings from the environment), on the real
database. In process (``tests.support.cli``): a subprocess per command spent about 3 s importing the app and
loading MiniLM, 35 s for this module; the command's code path is the same."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from engine.settings import Settings
from tests.support.cli import CliResult, run_iqts, settings_env


def _iqts(settings: Settings, *args: str) -> CliResult:
    env = settings_env(settings) | {"IQTS_KB_ALLOWED_ROOTS": json.dumps(["~", ".", tempfile.gettempdir()])}
    return run_iqts(*args, env=env)


def test_add_search_list_remove(settings: Settings, db: object, tmp_path: Path, unique: str) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    doc = folder / f"grid-{unique}.md"
    doc.write_text(
        f"# Grid bot {unique}\n\n## Spacing\n\nPlace grid{unique} orders every 0.5% between 60k and 70k.\n",
        encoding="utf-8",
    )
    added = _iqts(settings, "kb", "add", str(folder), "--json")
    assert added.returncode == 0, added.stderr
    report = json.loads(added.stdout)
    assert (report["added"], report["documents"][0]["kind"]) == (1, "strategy")

    found = _iqts(settings, "kb", "search", f"grid{unique} spacing", "-k", "2", "--kind", "strategy", "--json")
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    top = result["hits"][0]
    assert (top["source"], top["section"], top["untrusted"]) == (str(doc), f"Grid bot {unique} > Spacing", True)
    assert top["citation"] == f"Grid bot {unique} § Grid bot {unique} > Spacing ({doc})"

    text = _iqts(settings, "kb", "search", f"grid{unique} spacing", "-k", "1")
    assert text.returncode == 0 and f"1. Grid bot {unique}" in text.stdout and "score" in text.stdout

    removed = _iqts(settings, "kb", "remove", str(doc))
    assert removed.returncode == 0 and f"removed Grid bot {unique}" in removed.stdout
    listed = _iqts(settings, "kb", "list", "--kind", "strategy", "--json")
    assert listed.returncode == 0, listed.stderr
    assert str(doc) not in {d["source"] for d in json.loads(listed.stdout)}


def test_errors_are_one_clear_line(settings: Settings, db: object, tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    cases = [  # one of each path to the user (not found, bad input, validation); the rest is tested in process
        (["kb", "remove", "note://missing/xyz"], "no document with source"),
        (["kb", "add", str(tmp_path / "image.png")], "unsupported file type"),
        (["kb", "search", "   "], "invalid SearchQuery"),
        (["kb", "search", "x" * 3000], "at most 2000 characters"),
        (["kb", "add", str(tmp_path / "missing.md")], "no such file or folder"),
        (["kb", "add", "/etc/hostname"], "outside the folders the knowledge base may read"),
    ]
    for args, expected in cases:
        result = _iqts(settings, *args)
        assert result.returncode != 0, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
