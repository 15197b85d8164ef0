"""The ``Embedder`` protocol: text in, unit-length float32 vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Vectors = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Contract: ``embed(texts)`` returns a ``(len(texts), dim)`` float32 array of L2-normalised rows, in input order;
    no texts give a ``(0, dim)`` array. ``name`` identifies the model: vectors of different names are not comparable.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def l2_normalise(vectors: NDArray[np.floating]) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    scaled: Vectors = (matrix / np.maximum(norms, np.finfo(np.float32).tiny)).astype(np.float32, copy=False)
    return scaled
