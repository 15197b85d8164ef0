"""The chat's app root, ``<state dir>/chat/``: Chainlit's config, readme, theme and signing secret live there, so
nothing Chainlit writes lands in the working directory, and nothing in it points the browser elsewhere."""

from __future__ import annotations

import importlib.util
import json
import secrets
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from engine.settings import Settings
from ui.chat.config import ChatSettings, chat_url

README = """# IQTS copilot

Ask about prices, run backtests, compare strategies, search your notes, or ask it to buy or sell.

- Every tool the copilot calls is shown as a step with its inputs and result.
- Backtests come with their equity chart.
- An order is only ever **proposed**: it waits for a person with the approver role in the inbox, and the card in
  the chat follows it until it is executed, rejected or expired.

The copilot acts through the same MCP tools as an IDE assistant, with your role.
"""

CONFIG = """\
# Written by IQTS at every start (ui/chat/workdir.py): edit that file, not this one.
[project]
user_env = []
session_timeout = {session_timeout}
user_session_timeout = 43200
cache = false
persist_user_env = false
mask_user_env = false
allow_origins = {origins}

[features]
unsafe_allow_html = false
latex = false
user_message_markdown = true
user_message_autoscroll = true
assistant_message_autoscroll = true
auto_tag_thread = true
edit_message = false
allow_thread_sharing = false
favorites = false

[features.slack]
reaction_on_message_received = false

[features.spontaneous_file_upload]
    enabled = false

[features.audio]
    enabled = false
    sample_rate = 24000

[features.mcp]
    enabled = false

    [features.mcp.user_servers]
        enabled = false
        allowed_urls = []

[UI]
name = "IQTS"
description = "Crypto research and trading copilot: every order waits for a human approval."
cot = "full"
default_theme = "light"
layout = "wide"
default_sidebar_state = "open"
confirm_new_chat = false
alert_style = "classic"
language = "en-US"
custom_meta_url = "{url}"
custom_meta_image_url = "{url}/favicon"

[meta]
generated_by = "{chainlit_version}"
"""


LOGO = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 32" role="img" aria-label="IQTS">\
<rect width="32" height="32" rx="6" fill="#141b2d"/>\
<path d="M9 22V10M9 16h6M15 10v12M22 8v16" stroke="#8fb0ff" stroke-width="3" stroke-linecap="round"/>\
<text x="40" y="23" font-family="system-ui, sans-serif" font-size="20" font-weight="700" fill="{color}">\
IQTS</text></svg>
"""

# the sign-in form asks for an IQTS username (Chainlit's default words are about e-mail addresses)
SIGN_IN_WORDS: dict[str, Any] = {
    "title": "Sign in to IQTS",
    "form": {
        "email": {
            "label": "Username",
            "placeholder": "your IQTS username",
            "required": "the username is required",
        },
    },
    "errors": {
        "default": "Could not sign in: check your username and password.",
        "credentialsSignin": "Wrong username or password.",
    },
}


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def _translation(root: Path) -> None:
    """Chainlit's English words with the sign-in form's changed (written before Chainlit would copy its own)."""
    spec = importlib.util.find_spec("chainlit")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return
    source = Path(next(iter(spec.submodule_search_locations))) / "translations" / "en-US.json"
    words = json.loads(source.read_text(encoding="utf-8"))
    words["auth"]["login"] = _merge(words["auth"]["login"], SIGN_IN_WORDS)
    target = root / ".chainlit" / "translations" / "en-US.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(words, indent=2, ensure_ascii=False), encoding="utf-8")


@dataclass(frozen=True)
class AppRoot:
    path: Path
    auth_secret: str


def _auth_secret(path: Path) -> str:
    """The key that signs the chat's session tokens: made once, kept (0600) so sign-ins survive a restart."""
    if path.exists():
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret) >= 32:
            return secret
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(secret + "\n", encoding="utf-8")
    return secret


def prepare(settings: Settings, chat: ChatSettings) -> AppRoot:
    """Write the app root's files (config, words, readme, theme without web fonts, logo, favicon) and return it."""
    root = settings.state_dir / "chat"
    (root / ".chainlit").mkdir(parents=True, exist_ok=True)
    (root / "public").mkdir(exist_ok=True)
    url = chat_url(settings, chat)
    origins = sorted({url, url.replace("127.0.0.1", "localhost")})
    (root / ".chainlit" / "config.toml").write_text(
        CONFIG.format(
            session_timeout=chat.session_timeout_s,
            origins=json.dumps(origins),
            url=url,
            chainlit_version=version("chainlit"),
        ),
        encoding="utf-8",
    )
    _translation(root)
    for name in ("chainlit.md", "chainlit_en-US.md"):
        (root / name).write_text(README, encoding="utf-8")
    (root / "public" / "logo_light.svg").write_text(LOGO.format(color="#141b2d"), encoding="utf-8")
    (root / "public" / "logo_dark.svg").write_text(LOGO.format(color="#f1f5ff"), encoding="utf-8")
    # no Google Fonts: the system's fonts (the theme's font list replaces the stylesheet link)
    (root / "public" / "theme.json").write_text(json.dumps({"custom_fonts": []}), encoding="utf-8")
    favicon = Path(__file__).resolve().parent.parent / "static" / "favicon.svg"
    if favicon.is_file():
        (root / "public" / "favicon.svg").write_bytes(favicon.read_bytes())
    return AppRoot(path=root, auth_secret=_auth_secret(root / "auth-secret"))
