"""Where numba keeps its on-disk cache of compiled kernels, and when that cache is stale.

Call :func:`ensure_numba_cache_dir` before numba is imported by engine code. It points ``NUMBA_CACHE_DIR`` at
``<state dir>/cache/numba`` unless the variable is already set, and drops the cached kernels of the engine's
own packages when their sources changed: numba invalidates a cached function only when *its own* file
changes, not when a kernel it calls (in another file) does, so without this check an upgraded callee could
silently run against a stale caller.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
from pathlib import Path

_ENV = "NUMBA_CACHE_DIR"
_STATE_ENV = "IQTS_STATE_DIR"
_DEFAULT_STATE_DIR = ".iqts"
_ENGINE_DIR = Path(__file__).resolve().parent.parent
# one stamp per checkout: two checkouts sharing a state dir keep their kernels apart (numba's subdirs are per
# source folder) instead of wiping each other's on every start
_FINGERPRINT_FILE = f"iqts-kernels-{hashlib.sha1(str(_ENGINE_DIR).encode()).hexdigest()[:12]}.sha256"  # noqa: S324
# packages whose modules hold cached numba kernels calling each other across files
_KERNEL_PACKAGES = (_ENGINE_DIR / "strategies", _ENGINE_DIR / "backtest")


def default_numba_cache_dir() -> Path:
    """``<state dir>/cache/numba``, the state dir being ``$IQTS_STATE_DIR`` or ``./.iqts``."""
    state_dir = Path(os.environ.get(_STATE_ENV, _DEFAULT_STATE_DIR)).expanduser().resolve()
    return state_dir / "cache" / "numba"


_KERNEL_MARKER = b"from engine.backtest._jit import njit"


def _kernel_sources() -> list[Path]:
    """The modules that define numba kernels (they import the decorator from ``_jit``), and ``_jit`` itself
    (its compile options apply to all of them)."""
    files = [_ENGINE_DIR / "backtest" / "_jit.py"]
    for package in _KERNEL_PACKAGES:
        files.extend(path for path in sorted(package.rglob("*.py")) if _KERNEL_MARKER in path.read_bytes())
    return files


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _numba_subdir(source_dir: Path) -> str:
    # the layout numba's _UserProvidedCacheLocator uses for a source folder
    return f"{source_dir.name}_{hashlib.sha1(str(source_dir).encode()).hexdigest()}"  # noqa: S324


def _drop_stale_kernels(cache_dir: Path) -> None:
    files = _kernel_sources()
    fingerprint = _fingerprint(files)
    stamp = cache_dir / _FINGERPRINT_FILE
    if stamp.is_file() and stamp.read_text().strip() == fingerprint:
        return
    for source_dir in sorted({path.parent for path in files}):
        shutil.rmtree(cache_dir / _numba_subdir(source_dir), ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")


def ensure_numba_cache_dir() -> Path:
    """Set ``NUMBA_CACHE_DIR`` (only if unset) and drop stale engine kernels; return the cache dir in use."""
    configured = os.environ.get(_ENV)
    if configured:
        cache_dir = Path(configured).expanduser().resolve()
    else:
        cache_dir = default_numba_cache_dir()
        os.environ[_ENV] = str(cache_dir)
    _prepare(cache_dir)
    return cache_dir


@functools.cache
def _prepare(cache_dir: Path) -> None:
    """Once per process and cache dir: drop stale kernels, make an already imported numba see the dir."""
    try:
        _drop_stale_kernels(cache_dir)
    except OSError as error:
        # a read-only state dir: numba then compiles in memory, which is only slower
        from engine.telemetry import get_logger

        get_logger(__name__).warning("numba_cache.unwritable", cache_dir=str(cache_dir), error=str(error))
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:
        # numba was imported before us: make it see the variable for the dispatchers created from now on
        numba_config.reload_config()
