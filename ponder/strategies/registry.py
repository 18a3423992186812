"""The strategy registry and the parsing of a request's `strategy` object.

A strategy registers itself with `@strategy(name, Params)`; `Params` is a
frozen dataclass whose `__post_init__` raises `ParamError` (or ValueError) for
bad values. `parse_strategy` turns `"best_of_n"` or `{"name": "best_of_n",
"n": 8}` into (spec, params, budget), raising `ParamError` naming the exact
parameter (`strategy.n`) for anything wrong, so the server can answer 400.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import types
import typing
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from ponder.registry import Registry
from ponder.strategies.base import Event, StrategyContext

BUILTIN = ("direct", "long_cot", "majority_vote", "best_of_n", "mcts")
COMMON_KEYS = ("name", "budget")


class ParamError(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


RunFn = Callable[[StrategyContext, Any], AsyncGenerator[Event, None]]


@dataclass(frozen=True)
class StrategySpec:
    name: str
    params: type
    run: RunFn
    description: str


STRATEGIES: Registry[StrategySpec] = Registry("strategy")


def strategy(name: str, params: type) -> Callable[[RunFn], RunFn]:
    def deco(fn: RunFn) -> RunFn:
        doc = (fn.__doc__ or "").strip().splitlines()
        STRATEGIES.register(name)(StrategySpec(name, params, fn, doc[0] if doc else ""))
        return fn

    return deco


def load_builtin() -> Registry[StrategySpec]:
    """Import the built-in strategies (each registers itself); returns the registry.

    With `PONDER_FAULTS=1` the fault-injection strategy `fault` is loaded too (tests only).
    """
    names = (*BUILTIN, "fault") if os.environ.get("PONDER_FAULTS") == "1" else BUILTIN
    for name in names:
        try:
            importlib.import_module(f"ponder.strategies.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"ponder.strategies.{name}":
                raise
    return STRATEGIES


def _coerce(param: str, value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(param, value, option)
            except ParamError as e:
                errors.append(str(e))
        raise ParamError(param, errors[0] if errors else f"{param} has the wrong type")
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ParamError(param, f"{param} must be one of {choices}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamError(param, f"{param} must be a boolean, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ParamError(param, f"{param} must be an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(param, f"{param} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamError(param, f"{param} must be a string, got {value!r}")
        return value
    raise ParamError(param, f"{param} has an unsupported type")


def build_params(params_type: type, raw: dict[str, Any], prefix: str = "strategy") -> Any:
    """Validate `raw` into the frozen dataclass `params_type`."""
    hints = typing.get_type_hints(params_type)
    fields = {f.name for f in dataclasses.fields(params_type)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ParamError(f"{prefix}.{key}", f"unknown parameter {prefix}.{key} (known: {known})")
        kwargs[key] = _coerce(f"{prefix}.{key}", value, hints[key])
    try:
        return params_type(**kwargs)
    except ParamError as e:
        raise ParamError(f"{prefix}.{e.param}", str(e)) from None
    except ValueError as e:
        message = str(e)
        field = next((f for f in sorted(fields, key=len, reverse=True) if message.startswith(f)), None)
        raise ParamError(f"{prefix}.{field}" if field else prefix, f"{prefix}: {message}") from None


def parse_strategy(raw: str | dict[str, Any] | None, default: str = "direct") -> tuple[StrategySpec, Any, int | None]:
    """(spec, params, budget) from a request's `strategy` field."""
    if raw is None:
        raw = default
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ParamError("strategy", "strategy must be a name or an object with a 'name'")
    name = raw.get("name")
    if not isinstance(name, str):
        raise ParamError("strategy.name", "strategy.name must be a string")
    if name not in STRATEGIES:
        known = ", ".join(STRATEGIES)
        raise ParamError("strategy.name", f"unknown strategy {name!r}; available: {known}")
    budget = raw.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ParamError("strategy.budget", "strategy.budget must be a positive integer (tokens)")
    spec = STRATEGIES.get(name)
    rest = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
    return spec, build_params(spec.params, rest), budget
