"""Run the chat: Chainlit's server with the IQTS app, rooted in ``<state dir>/chat/`` and kept offline.

``iqts chat`` runs :func:`run` in the foreground; ``iqts up`` starts ``python -m ui.chat.serve`` beside the API
(:func:`spawn`) and stops it with the rest. What ``chainlit run`` would do is done here by hand, so that the app
root is set before Chainlit is imported, the browser is never opened, no integration (Discord, Slack, Literal AI)
is started from a stray environment variable, and the page links no CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from engine.settings import Settings, load_settings
from ui.chat.config import ChatSettings, chat_url, listen_host
from ui.chat.workdir import prepare

# integrations Chainlit starts when it finds these in the environment: the chat starts none of them
_OUTSIDE = (
    "LITERAL_API_KEY",
    "LITERAL_API_URL",
    "LITERAL_SERVER",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_WEBSOCKET_TOKEN",
    "SLACK_SIGNING_SECRET",
    "TEAMS_APP_ID",
    "DATABASE_URL",
    "BUCKET_NAME",
    "CHAINLIT_URL",
    "CHAINLIT_CUSTOM_AUTH",
)
_CDN_LINK = re.compile(r"<link[^>]+href=\"https?://[^\"]+\"[^>]*/?>", re.DOTALL)


def chainlit_env(settings: Settings, chat: ChatSettings) -> dict[str, str]:
    """Prepare the app root; the environment Chainlit must see before it is imported."""
    root = prepare(settings, chat)
    return {
        "CHAINLIT_APP_ROOT": str(root.path),
        "CHAINLIT_AUTH_SECRET": root.auth_secret,
        "CHAINLIT_AUTH_COOKIE_NAME": "iqts_chat",
        "CHAINLIT_HOST": listen_host(settings, chat),
        "CHAINLIT_PORT": str(chat.port),
    }


def _offline_html(original: object) -> object:
    def template(root_path: str) -> str:
        html = original(root_path)  # type: ignore[operator]
        assert isinstance(html, str)
        return _CDN_LINK.sub("", html)  # the KaTeX stylesheet (LaTeX is off) and any other outside link

    return template


async def _serve(host: str, port: int) -> None:
    import chainlit.server as chainlit_server
    import uvicorn
    from chainlit.auth import ensure_jwt_secret
    from chainlit.config import config

    config.run.host = host
    config.run.port = port
    config.run.headless = True
    chainlit_server.get_html_template = _offline_html(chainlit_server.get_html_template)  # type: ignore[assignment]

    import ui.chat.app  # noqa: F401  (registers the callbacks on Chainlit's config)

    ensure_jwt_secret()  # type: ignore[no-untyped-call]
    config_ = uvicorn.Config(
        chainlit_server.app, host=host, port=port, log_config=None, access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config_)
    await server.serve()


def run(settings: Settings | None = None, chat: ChatSettings | None = None) -> None:
    """Serve the chat in this process until interrupted (Chainlit ends the process when it stops)."""
    settings = settings or load_settings()
    chat = chat or settings.chat
    for name in _OUTSIDE:
        os.environ.pop(name, None)
    os.environ.update(chainlit_env(settings, chat))
    asyncio.run(_serve(listen_host(settings, chat), chat.port))


@dataclass
class ChatChild:
    """The chat running as a child process of ``iqts up``."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path


def spawn(
    settings: Settings,
    chat: ChatSettings | None = None,
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> ChatChild:
    """Start ``python -m ui.chat.serve`` as a child with this process's IQTS environment (and working directory,
    so the same ``.env`` applies; Chainlit's own files go to its app root). Output goes to ``log_path`` (default
    ``<state dir>/logs/chat.log``)."""
    chat = chat or settings.chat
    log_path = log_path or settings.state_dir / "logs" / "chat.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(env or {})}
    child_env["IQTS_STATE_DIR"] = str(settings.state_dir)
    child_env["IQTS_CHAT_PORT"] = str(chat.port)
    if chat.host:
        child_env["IQTS_CHAT_HOST"] = chat.host
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ui.chat.serve"],
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to `iqts up`, which stops the chat itself
        )
    return ChatChild(process=process, url=chat_url(settings, chat), log_path=log_path)


def wait_until_up(url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 60.0) -> bool:
    """Poll ``/health`` until the chat answers; False if it exited or the time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):  # not listening yet: poll again
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return True
        time.sleep(0.2)
    return False


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int | None:
    """Stop the chat child (SIGTERM: its sessions end and their tokens are revoked; SIGKILL after ``timeout_s``)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)
    return process.returncode


if __name__ == "__main__":
    run()
