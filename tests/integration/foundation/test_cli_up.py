"""The `iqts` command as a user runs it: clear one-line errors, and `iqts up` from start to Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from engine.store.embedded import EmbeddedPostgres

IQTS = [sys.executable, "-m", "ui.cli.main"]


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IQTS_")} | env
    return subprocess.run([*IQTS, *args], env=full_env, capture_output=True, text=True, timeout=120, check=False)


def test_malformed_setting_is_one_clear_line() -> None:
    result = _run(["up"], IQTS_API_PORT="not-a-port")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "IQTS_API_PORT" in lines[0]


def test_unreachable_database_is_one_clear_line_without_password() -> None:
    result = _run(["db", "upgrade"], IQTS_DATABASE_URL="postgresql://me:topsecretpw@127.0.0.1:1/iqts")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot connect to the database at 127.0.0.1:1/iqts" in result.stderr
    assert "topsecretpw" not in result.stderr + result.stdout


def test_malformed_database_url_is_a_config_error() -> None:
    result = _run(["db", "upgrade"], IQTS_DATABASE_URL="postgresql://host:notaport/x")
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    assert "database" in result.stderr.lower()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_up_becomes_ready_and_ctrl_c_stops_everything(state_dir: Path) -> None:
    """`iqts up` with no configuration: /readyz 200; SIGINT stops the API and its embedded PostgreSQL."""
    own_state = state_dir / "test-up"
    server = EmbeddedPostgres(own_state)
    server.stop()  # a clean slate: `iqts up` must start it itself
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IQTS_")}
    chat_port = _free_port()
    env |= {"IQTS_STATE_DIR": str(own_state), "IQTS_API_PORT": str(port), "IQTS_CHAT_PORT": str(chat_port)}
    proc = subprocess.Popen([*IQTS, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert ready is not None, proc.stderr.read() if proc.stderr else ""
        assert ready.status_code == 200
        assert server.is_running()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err  # 130: the conventional exit status after Ctrl-C
    assert "IQTS is up" in out and f"http://127.0.0.1:{port}" in out
    assert f"chat       http://127.0.0.1:{chat_port}" in out
    assert "IQTS stopped." in out
    assert not server.is_running()
