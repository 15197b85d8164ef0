"""Line coverage per top-level package from the data `make test` collected; fails below the bars we hold.

The system design's bar is 80 % for engine/ and approvals/ (the order path and everything under it).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import coverage

BARS = {"engine": 80.0, "approvals": 80.0}


def main() -> int:
    cov = coverage.Coverage()
    cov.load()
    data = cov.get_data()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    root = Path.cwd()
    for filename in data.measured_files():
        path = Path(filename)
        if path.suffix != ".py":  # templates that a plugin traced
            continue
        try:
            package = path.relative_to(root).parts[0]
        except ValueError:
            continue
        _, statements, _, missing, _ = cov.analysis2(filename)
        totals[package][0] += len(statements)
        totals[package][1] += len(statements) - len(missing)
    failed = []
    sys.stdout.write(f"{'package':<12}{'lines':>8}{'covered':>9}{'cover':>8}\n")
    for package in sorted(totals):
        lines, covered = totals[package]
        share = 100.0 * covered / lines if lines else 100.0
        bar = BARS.get(package)
        mark = "" if bar is None else (f"  (bar {bar:.0f} %)" if share >= bar else f"  BELOW the {bar:.0f} % bar")
        sys.stdout.write(f"{package:<12}{lines:>8}{covered:>9}{share:>7.1f}%{mark}\n")
        if bar is not None and share < bar:
            failed.append(package)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
