"""The chaos suite's fault injection (engine/chaos.py): off by default, only named points, never in live mode, and
a process armed for a point really dies by SIGKILL there (a real child process)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from engine import chaos
from engine.errors import ConfigError
from engine.settings import load_settings


def test_off_by_default_and_refused_in_live_mode() -> None:
    assert load_settings().chaos_kill_at is None
    assert load_settings(chaos_kill_at="").chaos_kill_at is None
    assert load_settings(chaos_kill_at="order.recorded").chaos_kill_at == "order.recorded"
    with pytest.raises(ConfigError, match="live mode"):
        load_settings(chaos_kill_at="order.recorded", mode="live")
    with pytest.raises(ConfigError, match="must be one of"):
        load_settings(chaos_kill_at="somewhere")
    with pytest.raises(ConfigError, match="live mode"):
        chaos.arm("order.recorded", "live")


def test_an_armed_process_dies_at_its_point_and_only_there() -> None:
    code = (
        "from engine import chaos\n"
        "chaos.arm('order.venue_answered', 'sandbox')\n"
        "chaos.reach('order.recorded_new')\n"
        "print('passed the other point', flush=True)\n"
        "chaos.reach('order.venue_answered')\n"
        "print('survived', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "passed the other point" in proc.stdout and "survived" not in proc.stdout


def test_disarmed_reach_does_nothing() -> None:
    chaos.arm(None, "live")
    for point in chaos.POINTS:
        chaos.reach(point)  # type: ignore[arg-type]
