"""The chat in a real browser: Debian's chromium driven by Playwright against the real chat process (Chainlit,
started as `iqts up` starts it) and the real API (inbox and MCP), with the scripted test model.

A trader signs in to the chat, asks for a price (a tool step, then the answer with the tool's figure), asks to buy,
sees the approval card with the inbox link; an approver approves it in the inbox in a second page; an execution
worker fills it on a paper venue; the card's status turns to executed and the chat reports the fill. The
conversation is then reopened from the sidebar with its history. Screenshots go to ``<state dir>/screenshots/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from approvals.users import Role, create_user
from engine.bus import InProcessBus
from engine.execution.paper import ManualPriceFeed, PaperBroker, PaperBrokerConfig, PriceBar
from engine.execution.router import Router
from engine.execution.worker import ExecutionWorker, build_order_manager
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from tests.integration.inbox.helpers import PASSWORD, ServerThread
from tests.support.live_server import free_port
from ui.api.app import create_app
from ui.chat.config import ChatSettings
from ui.chat.serve import ChatChild, spawn, stop, wait_until_up

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONTROL_KEYS = ("kill_switch", "breakers", "risk_policy_active")
FILL_PRICE = Decimal(8700)  # near the last stored BTC/USD close, which the risk checks use
CHAINLIT_FILES = (".chainlit", ".files", "chainlit.md", "public")


class LateApp:
    """An ASGI app set after the server's port is known (the API's links must name that port)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass
class ChatStack:
    runtime: Runtime
    api: ServerThread
    chat: ChatChild
    trader: str
    approver: str
    shots: Path
    workdir: Path
    env: dict[str, str]
    settings: Settings

    def spawn_chat(self, name: str, **env: str) -> ChatChild:
        """Another chat process on a free port against the same API (``env`` on top of the stack's)."""
        child = spawn(
            self.settings,
            ChatSettings(port=free_port(), host="127.0.0.1"),
            env={**self.env, **env},
            log_path=self.settings.state_dir / "logs" / f"chat-e2e-{name}.log",
            cwd=self.workdir,
        )
        if not wait_until_up(child.url, child.process, timeout_s=90):
            stop(child.process)
            pytest.fail(f"the chat did not start:\n{child.log_path.read_text(errors='replace')[-3000:]}")
        return child

    @property
    def chat_url(self) -> str:
        return self.chat.url


@pytest.fixture(scope="module")
def chat_stack(
    settings: Settings, db: Database, sample_loaded: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatStack]:
    """The API (inbox and MCP) with an execution worker on a paper venue, and the chat as `iqts up` starts it."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: run `scripts/bootstrap.sh browser`")
    unique = uuid.uuid4().hex[:8]
    with db.connection() as conn:
        saved = conn.execute(
            "SELECT key, value FROM system_state WHERE key = ANY(%s)", (list(CONTROL_KEYS),)
        ).fetchall()
        conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(CONTROL_KEYS),))
    trader = create_user(db, f"tina{unique}", PASSWORD, Role.TRADER).username
    approver = create_user(db, f"carl{unique}", PASSWORD, Role.APPROVER).username
    shots = settings.state_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)

    proxy = LateApp()
    api = ServerThread(proxy)
    runtime = Runtime(settings=settings.model_copy(update={"api_port": api.port}), db=db, bus=InProcessBus())
    proxy.app = create_app(runtime)

    # the execution worker, on the API's loop (whose in-process bus carries the approvals), with a paper venue
    feed = ManualPriceFeed()
    feed.push(
        "BTC/USD", PriceBar(int(time.time() * 1000), FILL_PRICE, FILL_PRICE, FILL_PRICE, FILL_PRICE, Decimal(1000))
    )
    broker = PaperBroker(PaperBrokerConfig(name="paper", initial_balances={"USD": Decimal(100_000)}), feed)
    worker = ExecutionWorker(runtime, build_order_manager(runtime, Router({"paper": broker})), name="chat-e2e")
    workdir = tmp_path_factory.mktemp("cwd")
    chat_settings = ChatSettings(port=free_port(), host="127.0.0.1")
    env = {
        "IQTS_DATABASE_URL": db.url,
        "IQTS_API_HOST": "127.0.0.1",
        "IQTS_API_PORT": str(api.port),
        "IQTS_CHAT_MODEL_FACTORY": "tests.integration.chat.script:scripted_model",
        "IQTS_CHAT_APPROVAL_POLL_S": "0.5",
        "IQTS_AGENT_APPROVAL_WAIT_S": "15",
        "IQTS_LOG_FORMAT": "json",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    log_path = settings.state_dir / "logs" / f"chat-e2e-{unique}.log"
    try:
        with api:
            stop_worker = asyncio.Event()
            running: Future[None] = asyncio.run_coroutine_threadsafe(worker.run(stop_worker), api.loop)
            chat = spawn(settings, chat_settings, env=env, log_path=log_path, cwd=workdir)
            try:
                if not wait_until_up(chat.url, chat.process, timeout_s=90):
                    pytest.fail(f"the chat did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
                yield ChatStack(runtime, api, chat, trader, approver, shots, workdir, env, settings)
            finally:
                stop(chat.process)
                api.loop.call_soon_threadsafe(stop_worker.set)
                running.result(timeout=15)
    finally:
        with db.connection() as conn:
            conn.execute("DELETE FROM system_state WHERE key = ANY(%s)", (list(CONTROL_KEYS),))
            for key, value in saved:
                conn.execute("INSERT INTO system_state (key, value) VALUES (%s, %s::jsonb)", (key, json.dumps(value)))
    # nothing of Chainlit's in the working directory: its files are in the app root under the state dir
    assert [p.name for p in workdir.iterdir() if p.name in CHAINLIT_FILES] == []


class Browser:
    """Chromium with the pages of one test, recording any request that leaves the local servers."""

    def __init__(self, playwright: Any, stack: ChatStack) -> None:
        from playwright.sync_api import expect

        expect.set_options(timeout=30_000)
        self.stack = stack
        self.local = [stack.chat.url, stack.api.url]
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False)
        self.outside: list[str] = []
        self.errors: list[str] = []

    def page(self, width: int = 1400, height: int = 1000) -> Any:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.on("request", lambda r: self._record(r.url))
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def _record(self, url: str) -> None:
        if not url.startswith((*self.local, "data:", "blob:")):
            self.outside.append(url)

    def close(self) -> None:
        self.browser.close()
        assert self.outside == []  # no CDN, font or script from anywhere else
        assert self.errors == []


@pytest.fixture
def chromium(chat_stack: ChatStack) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = Browser(playwright, chat_stack)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, stack: ChatStack, username: str | None = None, chat_url: str | None = None) -> None:
    from playwright.sync_api import expect

    page.goto(chat_url or stack.chat_url)
    page.locator("#email").fill(username or stack.trader)
    page.locator("#password").fill(PASSWORD)
    page.locator("button[type=submit]").click()
    expect(page.locator(ASSISTANT).filter(has_text="Answering:")).to_be_visible()


def ask(page: Any, text: str) -> None:
    page.locator("#chat-input").fill(text)
    page.locator("#chat-input").press("Enter")


ASSISTANT = '[data-step-type="assistant_message"]'


def _tokens_of(db: Database, username: str) -> list[tuple[str, bool]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT t.name, t.revoked_at IS NOT NULL FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE u.username = %s ORDER BY t.id",
            (username,),
        ).fetchall()
    return [(str(r[0]), bool(r[1])) for r in rows]


def test_sign_in_ask_a_price_and_see_the_tool_step(chat_stack: ChatStack, chromium: Browser) -> None:
    from playwright.sync_api import expect

    stack = chat_stack
    page = chromium.page()
    # the IQTS password, checked by IQTS: a wrong one is refused
    page.goto(stack.chat_url)
    page.locator("#email").fill(stack.trader)
    page.locator("#password").fill("not the password!")
    page.locator("button[type=submit]").click()
    expect(page.get_by_role("alert")).to_have_text("Could not sign in: check your username and password.")
    expect(page.get_by_text("Sign in to IQTS")).to_be_visible()
    expect(page.locator(ASSISTANT)).to_have_count(0)
    page.screenshot(path=str(stack.shots / "chat-login.png"))
    sign_in(page, stack)

    # the greeting says plainly which model answers, and who is signed in
    greeting = page.locator(ASSISTANT).filter(has_text="Answering:")
    expect(greeting).to_contain_text("Answering: scripted chat test model")
    expect(greeting).to_contain_text(f"Signed in as {stack.trader} (trader)")
    page.screenshot(path=str(stack.shots / "chat-signed-in.png"))

    # a price: the tool step (its input and result), then the answer quoting the tool's figure
    ask(page, "What is the last BTC/USD price?")
    answer = page.locator(ASSISTANT).filter(has_text="The last BTC/USD price is")
    expect(answer).to_contain_text("Answered by scripted chat test model")
    price = re.search(r"price is ([0-9]+(?:\.[0-9]+)?)", answer.inner_text())
    assert price is not None
    step = page.locator("#step-get_ticker")
    expect(step).to_have_text(re.compile("Used get_ticker"))
    step.click()
    expect(page.get_by_text("symbol: BTC/USD").first).to_be_visible()
    shown = f"{Decimal(price.group(1)):,.2f}"  # the card renders the figure as the answer would
    expect(page.get_by_text(f"last: {shown} USD").first).to_be_visible()
    page.screenshot(path=str(stack.shots / "chat-price.png"))


def test_a_backtest_answer_comes_with_its_equity_chart(chat_stack: ChatStack, chromium: Browser) -> None:
    from playwright.sync_api import expect

    page = chromium.page()
    sign_in(page, chat_stack)
    ask(page, "Backtest sma_cross on BTC/USD")
    done = page.locator(ASSISTANT).filter(has_text="total return")
    expect(done).to_be_visible(timeout=60_000)
    expect(page.locator("#step-run_backtest")).to_be_visible(timeout=30_000)
    chart = done.locator(".js-plotly-plot").first
    expect(chart).to_contain_text("Equity: sma_cross · BTC/USD", timeout=30_000)  # attached after the text
    expect(done).to_contain_text(re.compile(r"Backtest \S+ done"), timeout=30_000)  # the message may still stream
    run_id = re.search(r"Backtest (\S+) done", done.inner_text())
    assert run_id is not None
    expect(chart).to_contain_text(f"run {run_id.group(1)}")  # the caption quotes the run's metrics and id
    page.screenshot(path=str(chat_stack.shots / "chat-backtest.png"))

    # reopened later, the conversation still has its chart (kept in the database, served as a data: URL)
    thread_url = page.url
    page.goto(chat_stack.chat_url)
    expect(page.locator(ASSISTANT).filter(has_text="Answering:")).to_be_visible()
    page.goto(thread_url)
    again = page.locator(ASSISTANT).filter(has_text="total return")
    expect(again.locator(".js-plotly-plot").first).to_contain_text("Equity: sma_cross · BTC/USD", timeout=30_000)


def test_an_order_is_followed_from_the_proposal_to_the_fill(
    chat_stack: ChatStack, chromium: Browser, db: Database
) -> None:
    from playwright.sync_api import expect

    stack = chat_stack
    page = chromium.page()
    sign_in(page, stack)
    ask(page, "Buy 0.01 BTC/USD")
    card = page.locator(ASSISTANT).filter(has_text="Order proposed")
    expect(card).to_contain_text("buy 0.01 BTC/USD market on paper")
    expect(card).to_contain_text("Status: pending")
    expect(card).to_contain_text("Pre-trade risk check: all risk rules pass")
    link = card.locator(f'a[href^="{stack.api.url}/inbox/"]')
    expect(link).to_have_text("Open it in the inbox")
    href = link.get_attribute("href")
    assert href is not None
    approval_id = href.rsplit("/", 1)[1]
    expect(page.locator("#step-propose_order")).to_be_visible()
    page.screenshot(path=str(stack.shots / "chat-approval-card.png"))

    # the tab is closed and the conversation reopened: the card is still there, and still live
    thread_url = page.url
    assert "/thread/" in thread_url, thread_url
    page.close()
    page = chromium.page()
    sign_in(page, stack)
    page.goto(thread_url)
    expect(page.locator(ASSISTANT).filter(has_text="Conversation reopened")).to_be_visible()
    card = page.locator(ASSISTANT).filter(has_text="Order proposed")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Status: pending")

    # the approver decides in the inbox, in a browser session of their own
    inbox = chromium.page(1280, 900)
    inbox.goto(href)
    inbox.fill("input[name=username]", stack.approver)
    inbox.fill("input[name=password]", PASSWORD)
    inbox.click("button[type=submit]")
    expect(inbox).to_have_url(href)
    expect(inbox.locator("#status")).to_have_text("pending")
    inbox.click("#approve")
    expect(inbox.locator("#status")).to_have_text(re.compile("approved|executed"))

    # the card follows it to the fill; the conversation says the outcome, read back from the tools
    expect(card).to_contain_text("Status: executed", timeout=45_000)
    expect(card).to_contain_text(f"executed by {stack.approver}: filled 0.01 at")
    outcome = page.locator(ASSISTANT).filter(
        has_text=f"approval {approval_id}) was approved by {stack.approver} and executed"
    )
    expect(outcome).to_contain_text("0.01 BTC/USD at an average price of")
    fill = re.search(r"average price of ([0-9]+(?:\.[0-9]+)?)", outcome.inner_text())
    assert fill is not None and abs(Decimal(fill.group(1)) - FILL_PRICE) < 50  # the paper fill, with its slippage
    expect(card).to_contain_text(f"at {fill.group(1)}")
    page.screenshot(path=str(stack.shots / "chat-executed.png"))
    inbox.screenshot(path=str(stack.shots / "chat-inbox-approved.png"), full_page=True)

    # the conversation is kept: it is in the sidebar of a new chat, and reopens with its messages
    page.goto(stack.chat_url)
    expect(page.locator(ASSISTANT).filter(has_text="Answering:")).to_be_visible()
    expect(page.locator(ASSISTANT).filter(has_text="Order proposed")).to_have_count(0)
    thread_id = thread_url.rsplit("/", 1)[1]
    page.locator(f'a[href$="/thread/{thread_id}"]').first.click()
    expect(page.locator('[data-step-type="user_message"]').filter(has_text="Buy 0.01 BTC/USD")).to_be_visible()
    expect(page.locator(ASSISTANT).filter(has_text="Order proposed")).to_contain_text("Status: executed")
    expect(page.locator(ASSISTANT).filter(has_text="and executed")).to_be_visible()
    page.screenshot(path=str(stack.shots / "chat-history.png"))

    # every chat session had an MCP token of its own, revoked when the session ended
    for p in (page, inbox):
        p.context.close()
    deadline = time.monotonic() + 90  # the chat hears of a closed page when its socket times out (tens of s)
    while time.monotonic() < deadline and not all(revoked for _, revoked in _tokens_of(db, stack.trader)):
        time.sleep(0.2)
    tokens = _tokens_of(db, stack.trader)
    assert len(tokens) >= 3 and all(name.startswith("chat-") for name, _ in tokens), tokens
    assert all(revoked for _, revoked in tokens), tokens


@pytest.mark.slow
def test_the_local_model_answers_a_price_with_the_tools_figure(chat_stack: ChatStack, chromium: Browser) -> None:
    """The embedded default model (no key, no server) in the real chat: prompt, tool call over MCP, the figure."""
    from playwright.sync_api import expect

    local = chat_stack.spawn_chat("local-model", IQTS_LLM="local", IQTS_CHAT_MODEL_FACTORY="")
    try:
        chromium.local.append(local.url)
        page = chromium.page()
        sign_in(page, chat_stack, chat_url=local.url)
        greeting = page.locator(ASSISTANT).filter(has_text="Answering:")
        expect(greeting).to_contain_text("(local, in-process)")
        ask(page, "What is the last BTC/USD price?")
        answer = page.locator(ASSISTANT).filter(has_text="Answered by")
        expect(answer).to_be_visible(timeout=600_000)  # the first call pays the prompt's prefill on a busy CPU
        page.locator("#step-get_ticker").click()
        last = re.search(r"last: ([0-9,]+(?:\.[0-9]+)?) USD", page.locator("body").inner_text())
        assert last is not None
        figure = Decimal(last.group(1).replace(",", ""))
        text = answer.inner_text()
        assert str(figure) in text or f"{figure:,}" in text, text
        page.screenshot(path=str(chat_stack.shots / "chat-local-model.png"))
    finally:
        stop(local.process)
