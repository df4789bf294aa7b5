"""Checks of plans read from JSON: every field typed and in range, so a bad edit fails on load.

Plans are an artifact people edit, and a wrong value otherwise surfaces deep inside training (a
``ZeroDivisionError`` for spacing 0, a tensor-size error for a patch the strides do not divide)
or, worse, trains a model that ``predict`` cannot use (an unknown normalisation, another channel
count). ``parse_fields`` turns a JSON object into dataclass keyword arguments by the fields'
annotations (lists become tuples; a string where a number belongs, or ``true`` for an integer,
is an error); ``check_configuration`` and ``check_plans`` check the values training and
prediction rely on. Each problem is a ``PlansFieldError`` naming the field by its dotted path;
``Plans.from_dict`` adds the file and the fix.

This module knows the plans' classes only through the arguments it is given, so that
``plans.py`` can import it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Sequence
from typing import Any

from tumorseg.constants import Configuration
from tumorseg.planning.normalization import SCHEME_NAMES
from tumorseg.planning.topology import divisors_of

FIX = "fix the edit or re-run `tumorseg plan`"
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # one folder, never '..' or a path
_MAX_SPLINE_ORDER = 5  # scipy's spline interpolation orders are 0-5


class PlansFieldError(ValueError):
    """One wrong field: ``message`` starts with the field's dotted path; ``fix`` says what to do."""

    def __init__(self, message: str, fix: str = FIX) -> None:
        super().__init__(message)
        self.fix = fix


def _show(value: Any) -> str:
    """A value as the user wrote it in JSON terms: tuples as lists; long values shortened."""

    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v

    text = repr(plain(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _bad(where: str, expected: str, value: Any) -> PlansFieldError:
    return PlansFieldError(f"{where} must be {expected} (found {_show(value)})")


# ---- types ---------------------------------------------------------------------------------
def _describe(hint: Any) -> str:
    """``tuple[float, float, float]`` -> 'a list of 3 numbers', ``int`` -> 'an integer' ..."""
    names = {int: ("an integer", "integers"), float: ("a number", "numbers")}
    names |= {str: ("a string", "strings")}
    if hint in names:
        return names[hint][0]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        variable = len(args) == 2 and args[1] is Ellipsis
        element = _describe(args[0])
        plural = names[args[0]][1] if args[0] in names else element.replace("a list", "lists", 1)
        return f"a list of {plural}" if variable else f"a list of {len(args)} {plural}"
    return "an object"


def _parse(value: Any, hint: Any, where: str) -> Any:
    """``value`` (from JSON) as the type ``hint`` describes, or a ``PlansFieldError``."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint(**parse_fields(hint, value, where))
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(where, "an integer", value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(where, "a number", value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _bad(where, "a string", value)
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise PlansFieldError(f"{where} must be an object")
        return {key: _parse(item, args[1], f"{where}.{key}") for key, item in value.items()}
    if origin is tuple:
        variable = len(args) == 2 and args[1] is Ellipsis
        if not isinstance(value, list) or (not variable and len(value) != len(args)):
            raise _bad(where, _describe(hint), value)
        elements = [args[0]] * len(value) if variable else list(args)
        try:
            return tuple(_parse(v, h, where) for v, h in zip(value, elements, strict=True))
        except PlansFieldError:
            raise _bad(where, _describe(hint), value) from None
    raise TypeError(f"plans field type {hint!r} has no parser")  # a programming error


def parse_fields(cls: type, data: Any, where: str = "") -> dict[str, Any]:
    """Keyword arguments for dataclass ``cls`` from the JSON object ``data`` found at ``where``
    (a dotted path; empty for the top level).

    Unknown keys, missing keys without a default and values of the wrong type raise
    ``PlansFieldError``.
    """
    if not isinstance(data, dict):
        raise PlansFieldError(f"{where or 'the plans'} must be an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise PlansFieldError(
            f"unknown key(s) {sorted(unknown)} in {where or 'the plans'}",
            "remove them or fix the spelling",
        )
    missing = [
        name
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise PlansFieldError(
            f"missing key(s) {missing} in {where or 'the plans'}", "re-run `tumorseg plan`"
        )
    hints = typing.get_type_hints(cls)
    return {
        name: _parse(value, hints[name], f"{where}.{name}" if where else name)
        for name, value in data.items()
    }


# ---- values --------------------------------------------------------------------------------
def _positive_numbers(values: Sequence[float], where: str, what: str) -> None:
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise _bad(where, what, values)


def _positive_ints(values: Sequence[int], count: int | None, where: str, what: str) -> None:
    if (count is not None and len(values) != count) or not all(v >= 1 for v in values):
        raise _bad(where, what, values)


def _at_least(value: float, minimum: float, where: str) -> None:
    if not (math.isfinite(value) and value >= minimum):
        raise _bad(where, f"at least {minimum:g}", value)


def _check_topology(topology: Any, dims: int, where: str) -> None:
    """Check a ``NetworkTopology`` for ``dims`` axes."""
    if not topology.network:
        raise _bad(f"{where}.network", "a registered network name", topology.network)
    stages = len(topology.features_per_stage)
    _positive_ints(
        topology.features_per_stage, None, f"{where}.features_per_stage", "positive integers"
    )
    if stages == 0:
        raise _bad(f"{where}.features_per_stage", "at least one stage", [])
    for name in ("kernel_sizes", "strides"):
        entries = getattr(topology, name)
        if len(entries) != stages:
            raise PlansFieldError(
                f"{where}.{name} must have one entry per stage ({stages}, as "
                f"features_per_stage), found {len(entries)}"
            )
        # Kernels must be odd: 'same' padding of k // 2 keeps the size only for odd k.
        odd = name == "kernel_sizes"
        for i, entry in enumerate(entries):
            what = f"{dims} odd positive integers" if odd else f"{dims} positive integers"
            _positive_ints(entry, dims, f"{where}.{name}[{i}]", what)
            if odd and not all(k % 2 == 1 for k in entry):
                raise _bad(f"{where}.{name}[{i}]", what, entry)
    for name in ("n_conv_per_stage", "n_conv_per_stage_decoder"):
        _at_least(getattr(topology, name), 1, f"{where}.{name}")


def check_configuration(key: str, config: Any, where: str) -> None:
    """Check one ``ConfigurationPlan`` listed under ``configurations[key]``."""
    valid = [c.value for c in Configuration]
    if key not in valid:
        raise PlansFieldError(f"configurations has {key!r}, not one of {', '.join(valid)}")
    if config.name != key:
        raise PlansFieldError(
            f"{where}.name is {config.name!r} but the configuration is listed as {key!r}"
        )
    dims = Configuration(key).spatial_dims
    if config.spatial_dims != dims:
        raise _bad(f"{where}.spatial_dims", f"{dims} for {key}", config.spatial_dims)
    if key != Configuration.TWO_HALF_D.value and config.context_slices != 0:
        raise _bad(f"{where}.context_slices", f"0 for {key}", config.context_slices)
    _at_least(config.context_slices, 0, f"{where}.context_slices")
    if not _FOLDER_NAME.match(config.data_identifier):
        raise _bad(f"{where}.data_identifier", "a plain folder name", config.data_identifier)
    _positive_numbers(config.spacing, f"{where}.spacing", "3 positive numbers in mm")
    _positive_ints(config.median_shape, 3, f"{where}.median_shape", "3 positive integers")
    _positive_ints(config.patch_size, dims, f"{where}.patch_size", f"{dims} positive integers")
    _at_least(config.batch_size, 1, f"{where}.batch_size")
    _check_topology(config.topology, dims, f"{where}.topology")
    total = divisors_of(config.topology)
    if any(p % s for p, s in zip(config.patch_size, total, strict=True)):
        raise PlansFieldError(
            f"{where}.patch_size {_show(config.patch_size)} is not divisible by the total "
            f"stride {_show(total)} of the topology"
        )
    for name in ("resampling_order_image", "resampling_order_label"):
        order = getattr(config, name)
        if not 0 <= order <= _MAX_SPLINE_ORDER:
            raise _bad(f"{where}.{name}", "an interpolation order 0-5", order)
    _at_least(config.anisotropy_threshold, 1, f"{where}.anisotropy_threshold")
    _at_least(config.estimated_memory_bytes, 0, f"{where}.estimated_memory_bytes")


def check_plans(plans: Any) -> None:
    """Check the dataset-level fields of ``Plans`` and every configuration."""
    channels, schemes = plans.channel_names, plans.normalization
    if not channels:
        raise PlansFieldError("channel_names must list at least one channel")
    if len(schemes) != len(channels):
        raise PlansFieldError(
            f"normalization has {len(schemes)} entries for {len(channels)} channels "
            "(channel_names), one scheme per channel is needed"
        )
    for i, scheme in enumerate(schemes):
        if scheme not in SCHEME_NAMES:
            raise PlansFieldError(
                f"normalization[{i}] is {scheme!r}, not a known scheme "
                f"(known: {', '.join(SCHEME_NAMES)})"
            )
    if sorted(plans.transpose_forward) != [0, 1, 2]:
        raise _bad("transpose_forward", "a permutation of 0, 1, 2", plans.transpose_forward)
    _positive_numbers(
        plans.original_median_spacing, "original_median_spacing", "3 positive numbers in mm"
    )
    _positive_ints(plans.original_median_shape, 3, "original_median_shape", "3 positive integers")
    if not (math.isfinite(plans.memory_budget_gb) and plans.memory_budget_gb > 0):
        raise _bad("memory_budget_gb", "a positive number", plans.memory_budget_gb)
    for key, config in plans.configurations.items():
        check_configuration(key, config, f"configurations.{key}")
