"""The chat's history: Chainlit's threads, steps and elements in PostgreSQL, in a schema of their own (``chat``).

The conversation the agent remembers lives in its checkpointer (``agent_checkpoints``); this is what the chat window
shows of it: the list of past conversations in the sidebar and, when one is reopened, its messages, tool steps and
charts. Chainlit's SQLAlchemy data layer does the work (over psycopg, the driver IQTS already uses); its tables
are created here, outside IQTS's migrations, as the agent does for its checkpoints. Charts and other elements are
kept in the same database (``chat.files``) and handed back to the browser as ``data:`` URLs: nothing is stored
anywhere else.

Only :func:`make_data_layer` imports Chainlit; :func:`ensure_schema` runs before it.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

SCHEMA = "chat"
_SETUP_LOCK = 0x1A9E7C4C  # advisory lock key for the one-time setup (the agent's is ...4B)

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.users (
    "id" uuid PRIMARY KEY,
    "identifier" text NOT NULL UNIQUE,
    "metadata" jsonb NOT NULL,
    "createdAt" text
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.threads (
    "id" uuid PRIMARY KEY,
    "createdAt" text,
    "name" text,
    "userId" uuid REFERENCES {SCHEMA}.users ("id") ON DELETE CASCADE,
    "userIdentifier" text,
    "tags" text[],
    "metadata" jsonb
);
CREATE INDEX IF NOT EXISTS threads_user_idx ON {SCHEMA}.threads ("userId");
CREATE TABLE IF NOT EXISTS {SCHEMA}.steps (
    "id" uuid PRIMARY KEY,
    "name" text NOT NULL,
    "type" text NOT NULL,
    "threadId" uuid NOT NULL REFERENCES {SCHEMA}.threads ("id") ON DELETE CASCADE,
    "parentId" uuid,
    "streaming" boolean NOT NULL,
    "waitForAnswer" boolean,
    "isError" boolean,
    "metadata" jsonb,
    "tags" text[],
    "input" text,
    "output" text,
    "createdAt" text,
    "command" text,
    "modes" jsonb,
    "start" text,
    "end" text,
    "generation" jsonb,
    "showInput" text,
    "language" text,
    "indent" int,
    "defaultOpen" boolean,
    "autoCollapse" boolean
);
CREATE INDEX IF NOT EXISTS steps_thread_idx ON {SCHEMA}.steps ("threadId");
CREATE TABLE IF NOT EXISTS {SCHEMA}.elements (
    "id" uuid PRIMARY KEY,
    "threadId" uuid REFERENCES {SCHEMA}.threads ("id") ON DELETE CASCADE,
    "type" text,
    "url" text,
    "chainlitKey" text,
    "name" text NOT NULL,
    "display" text,
    "objectKey" text,
    "size" text,
    "page" int,
    "autoPlay" boolean,
    "playerConfig" jsonb,
    "language" text,
    "forId" uuid,
    "mime" text,
    "props" jsonb
);
CREATE INDEX IF NOT EXISTS elements_thread_idx ON {SCHEMA}.elements ("threadId");
CREATE TABLE IF NOT EXISTS {SCHEMA}.feedbacks (
    "id" uuid PRIMARY KEY,
    "forId" uuid NOT NULL,
    "threadId" uuid NOT NULL REFERENCES {SCHEMA}.threads ("id") ON DELETE CASCADE,
    "value" int NOT NULL,
    "comment" text
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.files (
    "object_key" text PRIMARY KEY,
    "mime" text NOT NULL,
    "data" bytea NOT NULL,
    "created_at" timestamptz NOT NULL DEFAULT now()
);
"""


def ensure_schema(conninfo: str) -> None:
    """Create the chat's tables if they are missing (idempotent; serialised between processes)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
        try:
            conn.execute(DDL)  # type: ignore[arg-type]
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))


def sqlalchemy_url(conninfo: str) -> str:
    """The database URL with SQLAlchemy's psycopg (3) driver named, whatever driver the given URL names."""
    parts = urlsplit(conninfo)
    if parts.scheme not in ("postgresql", "postgres") and not parts.scheme.startswith("postgresql+"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://…")
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class DatabaseFiles:
    """A Chainlit storage client keeping element files in ``chat.files`` and serving them as ``data:`` URLs.

    Subclassed from Chainlit's ``BaseStorageClient`` by :func:`make_data_layer` (so this module imports no Chainlit).
    """

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    async def upload_file(
        self,
        object_key: str,
        data: bytes | str,
        mime: str = "application/octet-stream",
        overwrite: bool = True,
        content_disposition: str | None = None,
    ) -> dict[str, Any]:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        conflict = 'DO UPDATE SET "mime" = EXCLUDED."mime", "data" = EXCLUDED."data"' if overwrite else "DO NOTHING"
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            await conn.execute(
                f'INSERT INTO {SCHEMA}.files ("object_key", "mime", "data") VALUES (%s, %s, %s) '  # type: ignore[arg-type]
                f'ON CONFLICT ("object_key") {conflict}',
                (object_key, mime, raw),
            )
        return {"object_key": object_key, "url": data_url(mime, raw)}

    async def delete_file(self, object_key: str) -> bool:
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            cur = await conn.execute(f'DELETE FROM {SCHEMA}.files WHERE "object_key" = %s', (object_key,))  # type: ignore[arg-type]
            return cur.rowcount > 0

    async def get_read_url(self, object_key: str) -> str:
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            cur = await conn.execute(
                f'SELECT "mime", "data" FROM {SCHEMA}.files WHERE "object_key" = %s',  # type: ignore[arg-type]
                (object_key,),
            )
            row = await cur.fetchone()
        if row is None:
            raise KeyError(object_key)
        return data_url(str(row[0]), bytes(row[1]))

    async def close(self) -> None:
        return None


def make_data_layer(conninfo: str) -> Any:
    """Chainlit's SQLAlchemy data layer on the ``chat`` schema, with element files in the database."""
    from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
    from chainlit.data.storage_clients.base import BaseStorageClient

    class _Files(DatabaseFiles, BaseStorageClient):
        """Chainlit's storage-client type over our database-backed files (all methods from DatabaseFiles)."""

    class ChatHistory(SQLAlchemyDataLayer):  # type: ignore[misc]
        async def create_step(self, step_dict: Any) -> None:
            if isinstance(step_dict.get("modes"), dict):  # a JSON column: psycopg does not adapt a bare dict
                step_dict = {**step_dict, "modes": json.dumps(step_dict["modes"])}
            await super().create_step(step_dict)

    return ChatHistory(
        sqlalchemy_url(conninfo),
        connect_args={"options": f"-c search_path={SCHEMA}"},
        storage_provider=_Files(conninfo),
    )
