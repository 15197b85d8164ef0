"""The audit chain's anchor outside the table it protects.

The hash chain alone shows an edited row or a gap, but someone who can write the table can also delete its newest
rows and rewrite the stored head, or edit a row and recompute every later hash: the chain is then consistent again.
So the head is checkpointed, now and then, into an append-only file outside the database, each line signed with
an HMAC whose key the database never holds (``IQTS_AUDIT_KEY``, or a key file made on first use in the state dir
with owner-only permissions). ``verify`` then compares the table with every checkpoint:

* a checkpoint beyond the last row: rows were removed from the end (``truncated``);
* a row whose hash differs from its checkpoint: the chain was recomputed after an edit (``recomputed``);
* a line whose HMAC does not hold: the anchor file itself was forged (``anchor_forged``).

Rows written after the last checkpoint are protected by the chain only until the next one (every
``audit_checkpoint_s`` seconds, and after every ``iqts audit checkpoint``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from engine.settings import Settings

if TYPE_CHECKING:
    from engine.audit.log import AuditVerification
from engine.store.database import Database
from engine.telemetry import get_logger

log = get_logger(__name__)

KEY_FILE = "audit/anchor.key"
CHECKPOINT_DIR = "audit"


class Checkpoint(BaseModel):
    """One line of the anchor file: the chain's head at a moment, signed."""

    seq: int
    hash: str
    at: str
    mac: str


class ForgedAnchorError(Exception):
    """A line of the anchor file does not carry a valid HMAC."""


def _owner_only_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


@dataclass(frozen=True)
class AuditAnchor:
    """Signs and keeps checkpoints of the chain's head in an append-only file."""

    key: bytes
    path: Path

    def _mac(self, seq: int, digest: str, at: str) -> str:
        return hmac.new(self.key, f"{seq}\x1f{digest}\x1f{at}".encode(), hashlib.sha256).hexdigest()

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first; raises ``ForgedAnchorError`` naming the first line that is not ours."""
        if not self.path.exists():
            return []
        found: list[Checkpoint] = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                point = Checkpoint.model_validate_json(line)
            except ValidationError:
                raise ForgedAnchorError(f"line {number} of {self.path} is not a checkpoint") from None
            if not hmac.compare_digest(point.mac, self._mac(point.seq, point.hash, point.at)):
                raise ForgedAnchorError(f"line {number} of {self.path} has a bad signature")
            found.append(point)
        return found

    def checkpoint(self, db: Database) -> Checkpoint | None:
        """Append the current head if it moved since the last checkpoint; return what was written."""
        with db.connection() as conn:
            row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        seq, digest = int(row[0]), str(row[1])
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # processes sharing the state dir take turns
            last = _last_seq(self.path)
            if last is not None and last >= seq:
                return None
            at = datetime.now(UTC).isoformat()
            point = Checkpoint(seq=seq, hash=digest, at=at, mac=self._mac(seq, digest, at))
            handle.write(point.model_dump_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        log.debug("audit.checkpointed", seq=seq)
        return point


def _last_seq(path: Path) -> int | None:
    """The newest checkpoint's seq, from the file's tail only (the file grows for the deployment's lifetime)."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - _TAIL_BYTES))
        lines = [line for line in handle.read().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return int(json.loads(lines[-1])["seq"])
    except (ValueError, KeyError, TypeError):
        return None  # a damaged last line: verify reports it; a new checkpoint still goes after it


_TAIL_BYTES = 4096  # a checkpoint line is about 200 bytes


def _database_name(settings: Settings) -> str:
    if settings.database_url is None:
        return settings.db_name
    import psycopg

    return str(psycopg.conninfo.conninfo_to_dict(settings.database_url.get_secret_value()).get("dbname") or "postgres")


def anchor_for(settings: Settings) -> AuditAnchor:
    """The deployment's anchor: ``IQTS_AUDIT_KEY`` if set, else a key file made once in the state dir.

    The checkpoints of each database go to a file of its own (``audit/<database>.checkpoints.jsonl``).
    """
    path = settings.state_dir / CHECKPOINT_DIR / f"{_database_name(settings)}.checkpoints.jsonl"
    if settings.audit_key is not None:
        return AuditAnchor(settings.audit_key.get_secret_value().encode(), path)
    key_path = settings.state_dir / KEY_FILE
    if not key_path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            _owner_only_file(key_path, secrets.token_hex(32).encode())
    return AuditAnchor(key_path.read_bytes().strip(), path)


def checkpoint(db: Database, settings: Settings) -> Checkpoint | None:
    """Checkpoint the head into the deployment's anchor (the periodic duty and ``iqts audit checkpoint``)."""
    return anchor_for(settings).checkpoint(db)


async def run_anchor(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """The anchor duty: checkpoint the head every ``audit_checkpoint_s`` until stopped (and once more at the end)."""
    anchor = anchor_for(settings)
    while True:
        try:
            await asyncio.to_thread(anchor.checkpoint, db)
        except Exception as error:  # the database is away: the next round catches up
            log.warning("audit.checkpoint_failed", error=str(error)[:200])
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.audit_checkpoint_s)


def verify_anchored(db: Database, settings: Settings) -> AuditVerification:
    """The chain held against the deployment's anchor (``iqts audit verify``)."""
    from engine.audit.log import verify

    return verify(db, anchor_for(settings))
