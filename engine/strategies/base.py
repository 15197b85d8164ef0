"""What a strategy is: a typed parameter model whose bounds are its optimisation space, plus a signal kernel.

A strategy's signal is a *target position* per bar in {-1, 0, +1} (short, flat, long), computed at the close of
bar ``i`` from data up to and including bar ``i`` only. The strategy always states its long/short intent; the
backtest's ``direction`` (long only, short only, long/short) decides which legs are traded. How and when the
target is filled (next open or same close, fees, slippage, stops) is the backtest's business, not the
strategy's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import annotated_types
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from engine.errors import ValidationFailedError

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

# kernel ids: 0 means "targets given as an array" (custom strategies); built-ins number from 1
EXTERNAL_TARGETS_KERNEL = 0


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: unknown names are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpace(BaseModel):
    """One dimension of a strategy's optimisation space, read from the parameter model's bounds."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["int", "float"]
    low: float
    high: float
    step: float | None = Field(None, description="grid step for int parameters (and floats that declare one)")
    log: bool = False
    default: float


def greater_than(other: str) -> Callable[[Any, Any, ValidationInfo], Any]:
    """A field validator body: the field must be strictly greater than the (earlier-declared) field ``other``."""

    def check(cls: Any, value: Any, info: ValidationInfo) -> Any:
        bound = info.data.get(other)
        if bound is not None and not value > bound:
            raise ValueError(f"must be greater than {other} (got {info.field_name}={value}, {other}={bound})")
        return value

    return check


def not_greater_than(other: str) -> Callable[[Any, Any, ValidationInfo], Any]:
    """A field validator body: the field must be less than or equal to the (earlier-declared) field ``other``."""

    def check(cls: Any, value: Any, info: ValidationInfo) -> Any:
        bound = info.data.get(other)
        if bound is not None and value > bound:
            raise ValueError(f"must not exceed {other} (got {info.field_name}={value}, {other}={bound})")
        return value

    return check


def describe_param_error(strategy: str, error: ValidationError, known: tuple[str, ...]) -> str:
    """One line naming each offending parameter, e.g. ``sma_cross: parameter 'slow' must be greater than ...``."""
    parts = []
    for item in error.errors():
        name = ".".join(str(loc) for loc in item["loc"]) or "parameters"
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown parameter '{name}' (known: {', '.join(known) or 'none'})")
            continue
        message = item["msg"].removeprefix("Value error, ").removeprefix("Input ")
        if "(got " not in message:
            message += f" (got {item.get('input')!r})"
        parts.append(f"parameter '{name}' {message}")
    return f"{strategy}: " + "; ".join(parts)


TargetsFn = Callable[[F64, F64, F64, F64, F64, F64], I8]
"""``(open, high, low, close, volume, param_vector) -> targets``: a strategy's whole-array signal function."""


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy: its name, parameter model, and the numba kernel that computes its targets.

    ``kernel_id`` selects the strategy's streaming kernel inside the fused backtest kernels
    (:mod:`engine.strategies.kernels`); ``targets_fn`` is the same kernel run over whole arrays.
    """

    name: str
    summary: str
    params_model: type[StrategyParams]
    kernel_id: int
    targets_fn: TargetsFn = field(repr=False)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter names in kernel order (the order of the model's fields)."""
        return tuple(self.params_model.model_fields)

    def validate_params(self, params: Mapping[str, Any] | StrategyParams | None = None) -> StrategyParams:
        """Validate (and coerce, e.g. ``"10"`` to 10) a parameter mapping; defaults fill what is missing.

        Raises ValidationFailedError naming the parameter for an unknown name, a value out of bounds, or a
        broken cross-field rule (e.g. ``slow`` not greater than ``fast``).
        """
        if isinstance(params, self.params_model):
            return params
        if isinstance(params, StrategyParams):
            params = params.model_dump()
        try:
            return self.params_model.model_validate(dict(params or {}))
        except ValidationError as error:
            raise ValidationFailedError(describe_param_error(self.name, error, self.param_names)) from None

    def param_vector(self, params: StrategyParams) -> F64:
        """The parameters as the float64 vector the kernels take (field order)."""
        return np.array([float(getattr(params, name)) for name in self.param_names], dtype=np.float64)

    def search_space(self) -> list[ParamSpace]:
        """Bounds, types and steps of every parameter, for optimisers (Optuna, grids)."""
        space = []
        for name, info in self.params_model.model_fields.items():
            low = high = None
            for meta in info.metadata:
                if isinstance(meta, annotated_types.Ge):
                    low = float(meta.ge)  # type: ignore[arg-type]
                elif isinstance(meta, annotated_types.Le):
                    high = float(meta.le)  # type: ignore[arg-type]
            if low is None or high is None:
                raise TypeError(f"{self.name}.{name}: optimisable parameters need ge= and le= bounds")
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            kind: Literal["int", "float"] = "int" if info.annotation is int else "float"
            step = extra.get("step", 1 if kind == "int" else None)
            space.append(
                ParamSpace(
                    name=name,
                    kind=kind,
                    low=low,
                    high=high,
                    step=None if step is None else float(step),  # type: ignore[arg-type]
                    log=bool(extra.get("log", False)),
                    default=float(info.default),
                )
            )
        return space

    def signals(
        self,
        open_: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
        params: Mapping[str, Any] | StrategyParams | None = None,
    ) -> I8:
        """Target positions in {-1, 0, +1} per bar; bar ``i`` depends on bars ``0..i`` only.

        These are the strategy's raw long/short targets, before a backtest's ``direction`` filter and stops.
        """
        model = self.validate_params(params)
        arrays = [kernel_array(x) for x in (open_, high, low, close, volume)]
        n = len(arrays[3])
        if n == 0:
            raise ValidationFailedError(f"{self.name}: no bars (empty data range)")
        if any(len(a) != n for a in arrays):
            raise ValidationFailedError(f"{self.name}: open, high, low, close and volume differ in length")
        o, h, lo, c, v = arrays
        return self.targets_fn(o, h, lo, c, v, self.param_vector(model))


def kernel_array(values: npt.ArrayLike) -> F64:
    """A C-contiguous, writeable float64 copy-or-view: the one array type the kernels are compiled for."""
    array = np.ascontiguousarray(values, dtype=np.float64)
    if not array.flags.writeable:
        array = array.copy()
    return array
