"""The API's /docs and /redoc work with no network: every asset they load is served by the API itself."""

from __future__ import annotations

import re

import httpx
import pytest

from engine.bus import InProcessBus
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from ui.api.app import create_app

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|spec-url)\s*:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_only_local_assets(settings: Settings, db: Database, page: str) -> None:
    app = create_app(Runtime(settings=settings, db=db, bus=InProcessBus()), with_mcp=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        html = (await client.get(page)).text
        assets = [a or b for a, b in ASSET.findall(html)]
        scripts = [a for a in assets if a.endswith(".js")]
        assert scripts, html  # the page does load its UI script
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset} from outside"
            assert (await client.get(asset)).status_code == 200, asset
