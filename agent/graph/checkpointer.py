"""Conversation state in PostgreSQL (langgraph-checkpoint-postgres), in a schema of its own.

The caller passes the connection string (the chat passes its runtime's database URL): the agent does not open
IQTS's own store. Tables live in the ``agent_checkpoints`` schema so they never mix with IQTS's migrations; setup is
serialised with an advisory lock so several chat processes can start at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

SCHEMA = "agent_checkpoints"
_SETUP_LOCK = 0x1A9E7C4B  # advisory lock key for the one-time setup


@asynccontextmanager
async def open_checkpointer(conninfo: str | None, *, pool_size: int = 4) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """A Postgres saver on ``conninfo``; an in-memory one when it is None (conversations then die with the process)."""
    if conninfo is None:
        yield InMemorySaver()
        return
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, object]]] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=pool_size,
        open=False,
        kwargs={
            "autocommit": True,
            "prepare_threshold": 0,
            "row_factory": dict_row,
            "options": f"-c search_path={SCHEMA}",
        },
        name="iqts-agent-checkpoints",
    )
    await pool.open(wait=True)
    try:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
            try:
                await saver.setup()
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        yield saver
    finally:
        await pool.close()
