"""The one settings tree of IQTS: every knob is an ``IQTS_``-prefixed environment variable.

Values come from the environment, then a ``.env`` file in the working directory, then the defaults
below, which are the embedded defaults: no keys, no servers to start by hand. The root holds what every
process shares; its branches (``agent``, ``chat``, ``kb``, ``notify``, ``eval``) hold what one layer reads, under
their own variable names (``IQTS_LLM_THREADS``, ``IQTS_CHAT_PORT``, ``IQTS_KB_EMBEDDER``, ``IQTS_WEBHOOK_URL``,
``IQTS_EVAL_TURN_TIMEOUT_S``).

``load_settings`` refuses an ``IQTS_*`` variable that no setting reads (naming the closest valid one), and
registers every secret of the tree with the log redactor, so no secret can be added and forgotten.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.errors import ConfigError
from engine.settings.agent import AgentSettings
from engine.settings.chat import ChatSettings
from engine.settings.evals import EvalSettings
from engine.settings.knowledge import KnowledgeSettings
from engine.settings.notify import NotifySettings
from engine.settings.unknown import check_unknown_keys, env_names

TradingMode = Literal["dry-run", "sandbox", "live"]
LogFormat = Literal["auto", "console", "json"]


class AccountSettings(BaseModel):
    """One trading account and the venue that carries out its orders."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    venue: Literal["paper", "ccxt"] = "paper"
    valuation_currency: str = "USD"
    initial_cash: dict[str, Decimal] = Field(default_factory=lambda: {"USD": Decimal(100_000)})
    exchange: str | None = Field(None, description="ccxt exchange id (venue ccxt)")
    sandbox: bool = True
    receive_window_ms: int | None = Field(
        None, gt=0, le=60_000, description="the venue's receive window for signed requests (ccxt recvWindow)"
    )


def _default_accounts() -> list[AccountSettings]:
    return [AccountSettings(name="paper", initial_cash={"USD": Decimal(100_000), "USDT": Decimal(100_000)})]


class Settings(BaseSettings):
    """IQTS settings. See the README's configuration table for each field."""

    model_config = SettingsConfigDict(
        env_prefix="IQTS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # where IQTS keeps everything it owns (embedded PostgreSQL, Redis, caches, reports)
    state_dir: Path = Path(".iqts")

    # storage: unset means "start and own a local PostgreSQL + pgvector in the state dir"
    database_url: SecretStr | None = None
    db_name: str = "iqts"
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)
    db_connect_timeout_s: float = Field(5.0, gt=0)
    embedded_pg_start_timeout_s: float = Field(60.0, gt=0)

    # event bus: unset means the in-process bus
    redis_url: SecretStr | None = None
    bus_block_ms: int = Field(1000, ge=1)
    bus_reclaim_idle_ms: int = Field(30_000, ge=1)
    # retention: each topic keeps (at least) its last N messages; older ones are trimmed (Redis XADD MAXLEN ~ N, a
    # ring on the in-process bus). Orders never depend on it: the database is the outbox and workers sweep it.
    bus_maxlen: int = Field(10_000, ge=10, description="messages kept per topic")
    bus_maxlen_topics: dict[str, int] = Field(
        default_factory=dict, description='per-topic retention, JSON {"market.trades": 100000}'
    )

    # the process plan (ui/process/plan.py): singleton duties are leader-elected through PostgreSQL advisory locks
    leader_retry_s: float = Field(
        5.0, gt=0, description="how often a follower tries to take a singleton duty, and the leader checks its lock"
    )
    risk_monitor_s: float = Field(5.0, gt=0, description="how often the risk monitor evaluates the breakers")

    # API / inbox / MCP over HTTP
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = None
    mcp_warm: bool = Field(
        True, description="an MCP server over stdio loads the knowledge base and backtest kernels in the background"
    )

    # the audit chain's anchor: an HMAC key the database never holds (unset: a key file made in the state dir)
    audit_key: SecretStr | None = None
    audit_checkpoint_s: float = Field(5.0, gt=0, description="how often the chain's head is checkpointed")

    # logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat = "auto"

    # trading
    mode: TradingMode = "dry-run"
    accounts: list[AccountSettings] = Field(default_factory=_default_accounts)
    fx_rates: dict[str, Decimal] = Field(
        default_factory=lambda: {"USD/USDT": Decimal(1), "USDT/USD": Decimal(1)},
        description="explicit conversion rates used to value positions quoted in another currency",
    )
    approval_ttl_s: int = Field(900, ge=10, description="how long an approval request stays decidable")
    four_eyes: bool = Field(False, description="the requester of an order may not approve it")
    execution_poll_s: float = Field(2.0, gt=0, description="how often the worker follows open orders")
    execution_lease_s: float = Field(
        30.0,
        gt=0,
        description="a submission's lease on its order: no other worker resends it before this, and it must "
        "outlast every venue's receive window (checked at start)",
    )
    execution_sweep_s: float = Field(
        5.0, gt=0, description="how often the worker sweeps approved orders from the database and relays the outbox"
    )
    # the chaos suite's fault injection (engine/chaos.py): SIGKILL this process at a named step; never in live mode
    chaos_kill_at: str | None = Field(
        None, description="test only: a step of the order path at which the process kills itself (engine.chaos)"
    )

    # model for the agent: local | ollama:MODEL | openai:MODEL | anthropic:MODEL | openai-compatible:URL#MODEL
    llm: str = "local"
    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None

    # exchange credentials (ccxt); only needed for sandbox and live modes
    exchange_api_key: SecretStr | None = None
    exchange_api_secret: SecretStr | None = None
    # route an exchange's REST API elsewhere (a proxy, the loopback exchange): JSON {"binance": "http://..."}
    exchange_urls: dict[str, str] = Field(default_factory=dict)

    # the branches: each reads its own variables (see their modules)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    kb: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("database_url", "redis_url", "chaos_kill_at", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("bus_maxlen_topics")
    @classmethod
    def _positive_retention(cls, value: dict[str, int]) -> dict[str, int]:
        small = {topic: n for topic, n in value.items() if n < 10}
        if small:
            raise ValueError(f"a topic keeps at least 10 messages: {small}")
        return value

    @model_validator(mode="after")
    def _no_chaos_when_live(self) -> Settings:
        from engine.chaos import POINTS

        if self.chaos_kill_at is not None:
            if self.mode == "live":
                raise ValueError("chaos_kill_at is a test setting and is refused in live mode")
            if self.chaos_kill_at not in POINTS:
                raise ValueError(f"chaos_kill_at must be one of {', '.join(POINTS)}")
        return self

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    def secret_values(self) -> list[str]:
        """Every configured secret's plain value in the whole tree, so log redaction can scrub it anywhere."""
        return [value for value in _secrets(self) if len(value) >= 6]


BRANCHES: dict[str, type[BaseSettings]] = {
    "agent": AgentSettings,
    "chat": ChatSettings,
    "kb": KnowledgeSettings,
    "notify": NotifySettings,
    "eval": EvalSettings,
}


def _secrets(model: BaseModel) -> list[str]:
    values: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            values.extend(_secrets(value))
    return values


def describe_validation_error(error: ValidationError, prefix: str = "IQTS_") -> str:
    """One line naming each bad setting by its environment variable."""
    parts = []
    for item in error.errors():
        name = prefix + "_".join(str(loc) for loc in item["loc"]).upper()
        parts.append(f"{name}: {item['msg']}")
    return "invalid configuration: " + "; ".join(parts)


def known_env_names() -> set[str]:
    """Every variable some setting of the tree reads."""
    names = env_names(Settings, skip=set(BRANCHES))
    for branch in BRANCHES.values():
        names |= env_names(branch)
    return names


def load_settings(**overrides: object) -> Settings:
    """Build the tree from the environment, raising ConfigError with a one-line reason.

    A branch given in ``overrides`` (``agent=AgentSettings(...)`` or a dict of its fields) replaces the one read
    from the environment. Every secret found is registered with the log redactor.
    """
    from engine.telemetry import register_secrets

    check_unknown_keys(known_env_names())
    values = dict(overrides)
    for name, branch in BRANCHES.items():
        given = values.get(name)
        if isinstance(given, BaseModel):
            continue
        try:
            values[name] = branch(**(given if isinstance(given, dict) else {}))
        except ValidationError as error:
            prefix = str(branch.model_config.get("env_prefix", "IQTS_"))
            raise ConfigError(describe_validation_error(error, prefix)) from None
    try:
        settings = Settings(**values)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    register_secrets(settings.secret_values())
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own with ``load_settings``)."""
    return load_settings()


__all__ = [
    "AccountSettings",
    "AgentSettings",
    "ChatSettings",
    "EvalSettings",
    "KnowledgeSettings",
    "LogFormat",
    "NotifySettings",
    "Settings",
    "TradingMode",
    "get_settings",
    "load_settings",
]
