"""Turning user-given trainer settings into a trainer's frozen settings dataclass.

Settings arrive as a ``dict`` from the CLI (``--setting key=value``: values are strings) or from a
``train_config.json`` (JSON values). Keys must be fields of the trainer's ``settings_class``;
values are checked against the field's annotation (``bool``, ``int``, ``float``, ``str``,
``Literal[...]``, ``X | None`` and ``tuple[...]``), strings parsed where the field is not a
string. Every problem is one ``TumorsegError`` line listing the valid keys.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union

from tumorseg.errors import TumorsegError

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def valid_keys(settings_class: type) -> str:
    """``"key1, key2"`` for error messages."""
    return ", ".join(f.name for f in dataclasses.fields(settings_class))


def make_settings(trainer: str, settings_class: type, values: dict[str, Any] | None) -> Any:
    """Build ``settings_class(**values)`` with checked and coerced values.

    Raises ``TumorsegError`` for unknown keys, values of the wrong type and values the dataclass
    rejects (its ``__post_init__`` raising ``ValueError``).
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(settings_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TumorsegError(
            f"unknown setting(s) {', '.join(unknown)} for trainer '{trainer}'; "
            f"valid: {valid_keys(settings_class)}"
        )
    hints = typing.get_type_hints(settings_class)
    kwargs = {}
    for key, value in values.items():
        try:
            kwargs[key] = _coerce(value, hints[key])
        except (TypeError, ValueError):
            raise TumorsegError(
                f"invalid value {value!r} for setting '{key}' of trainer '{trainer}' "
                f"(expected {_describe(hints[key])}); valid keys: {valid_keys(settings_class)}"
            ) from None
    try:
        return settings_class(**kwargs)
    except ValueError as exc:
        raise TumorsegError(
            f"invalid settings for trainer '{trainer}': {exc}; valid keys: "
            f"{valid_keys(settings_class)}"
        ) from None


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` converted to ``hint``; ``TypeError``/``ValueError`` when impossible."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in options:
                return None
            raise ValueError("None is not allowed")
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{value!r} matches no option")
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value in allowed:
            return value
        raise ValueError(f"{value!r} not in {allowed}")
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise TypeError("expected a list")
        args = typing.get_args(hint)
        item_hint = args[0] if args else Any
        return tuple(_coerce(v, item_hint) for v in items)
    if hint is bool:
        return _to_bool(value)
    if hint is int:
        if isinstance(value, bool):
            raise TypeError("bool is not an int")
        if isinstance(value, str):
            return int(value.strip())
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError("expected an int")
    if hint is float:
        if isinstance(value, bool):
            raise TypeError("bool is not a float")
        if isinstance(value, str | int | float):
            number = float(value)
            # NaN or Inf would train to a NaN checkpoint (a NaN loss weight) or never end.
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            return number
        raise TypeError("expected a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError("expected a string")
    if hint is Any:
        return value
    raise TypeError(f"unsupported setting type {hint!r}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def _describe(hint: Any) -> str:
    if hint is float:
        return "a finite number"
    name = getattr(hint, "__name__", None)
    return name if name and typing.get_origin(hint) is None else str(hint).replace("typing.", "")


def check_loss_weights(dice_weight: float, ce_weight: float) -> None:
    """Validate the Dice and (B)CE weights shared by the segmentation trainers' settings."""
    if dice_weight < 0 or ce_weight < 0 or dice_weight + ce_weight == 0:
        raise ValueError("dice_weight and ce_weight must be >= 0 and not both 0")
