"""Transfer learning for the recurrence trainer: which pretrained tensors initialise which of the
recurrence encoders (``seeds/recurrence_zhou.txt``, section 3.1: the encoder of a segmentation
network trained on a larger dataset is transferred).

Two source layouts are recognised in a checkpoint's state dict:

- a U-Net-like segmentation network (the default and msf trainers):
  ``encoder.<stage>.<conv>.{conv.weight, norm.weight, norm.bias}``. Every recurrence encoder
  ``e`` (modalities ``M_e``) gets, for every stage and convolution, ``encoders.<e>.<stage>.<conv>.*
  <- encoder.<stage>.<conv>.*`` (shapes must be equal), except the first convolution's weight
  ``(F_0, C_src, *k)``: only its input columns of the source's channels of ``M_e`` are taken
  (found by modality name in the source run's ``dataset.json``; for 2.5d every slice of each
  modality), giving ``(F_0, |M_e| * S, *k)``. The following instance norm re-standardises the
  response, so the dropped columns need no rescaling.
- a recurrence run: ``encoders.<e'>.*``; the source encoder with the same modalities as ``e``
  (from its ``train_config.json``) is copied whole.

Nothing else is transferred (decoders, MMFF, correlation, fusion and heads start from their
initialisation). A source in neither layout, with other encoder shapes (features, kernels,
stages, 2d against 3d) or without a modality an encoder needs is a one-line ``TumorsegError``
naming the checkpoint and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tumorseg.constants import Modality
from tumorseg.errors import TumorsegError

_UNET = re.compile(r"^encoder\.(\d+)\.(\d+)\.(.+)$")
_RECURRENCE = re.compile(r"^encoders\.(\d+)\.(\d+)\.(\d+)\.(.+)$")
_FIRST_CONV = "0.0.conv.weight"


@dataclass(frozen=True)
class TransferPlan:
    """What a transfer copies: ``tensors`` (own name -> tensor) and, per own name, where it came
    from (``mapping``, e.g. ``"encoder.0.0.conv.weight[:, [3]]"``)."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    mapping: dict[str, str] = field(default_factory=dict)
    layout: str = ""
    summary: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"layout": self.layout, "summary": list(self.summary), "mapping": dict(self.mapping)}


def _fail(path: Path | None, problem: str, fix: str) -> TumorsegError:
    where = str(path) if path is not None else "the --pretrained checkpoint"
    return TumorsegError(f"{where}: {problem}; {fix}")


def _source_modalities(names: Sequence[str] | None, path: Path | None) -> list[Modality]:
    if names is None:
        raise _fail(
            path,
            "cannot tell which input channel of the checkpoint is which modality",
            "pass the run folder (or a checkpoint inside it, beside its dataset.json)",
        )
    try:
        return [Modality.parse(n) for n in names]
    except ValueError as exc:
        raise _fail(
            path, f"its run's channels are not MRI contrasts ({exc})", "pick another run"
        ) from None


def _check_shape(
    own: torch.Tensor, source: torch.Tensor, own_name: str, src_name: str, path: Path | None
) -> None:
    if own.shape != source.shape:
        kind = "2d" if own.ndim == 4 else "3d"
        other = "2d" if source.ndim == 4 else "3d"
        why = (
            f"the checkpoint's network is {other}, this run is {kind}"
            if own.ndim != source.ndim
            else "feature widths or kernels differ"
        )
        raise _fail(
            path,
            f"{src_name} has shape {tuple(source.shape)}, {own_name} needs {tuple(own.shape)} "
            f"({why})",
            "pretrain the same configuration with plans of the same topology, and keep "
            "feature_scale=1",
        )


def unet_transfer(
    source: Mapping[str, torch.Tensor],
    own: Mapping[str, torch.Tensor],
    encoders: Sequence[Sequence[Modality]],
    source_channels: Sequence[str] | None,
    slices: int,
    path: Path | None = None,
) -> TransferPlan:
    """The mapping from a U-Net encoder (module docstring) for encoders of ``encoders``."""
    stages = {f"{m.group(1)}.{m.group(2)}.{m.group(3)}" for k in source if (m := _UNET.match(k))}
    names = _source_modalities(source_channels, path)
    first = source[f"encoder.{_FIRST_CONV}"]
    if first.shape[1] != len(names) * slices:
        raise _fail(
            path,
            f"its first convolution takes {first.shape[1]} input channels, but its run has "
            f"{len(names)} channels x {slices} slice(s)",
            "pretrain the same configuration (2d, 2.5d or 3d) as this run",
        )
    plan = TransferPlan(layout="unet")
    for e, modalities in enumerate(encoders):
        missing = [m.value for m in modalities if m not in names]
        if missing:
            raise _fail(
                path,
                f"the source run has no {' / '.join(missing)} channel (it has "
                f"{', '.join(m.value for m in names)})",
                "pretrain on data with that modality, or change the 'encoders' setting",
            )
        columns = [names.index(m) * slices + j for m in modalities for j in range(slices)]
        count = 0
        for suffix in sorted(stages):
            own_name, src_name = f"encoders.{e}.{suffix}", f"encoder.{suffix}"
            if own_name not in own:
                raise _fail(
                    path,
                    f"the checkpoint's encoder has {src_name}, which this network lacks (more "
                    "stages or convolutions per stage)",
                    "pretrain with plans of the same topology",
                )
            tensor, described = source[src_name], src_name
            if suffix == _FIRST_CONV:
                tensor = tensor[:, columns].clone()
                described = f"{src_name}[:, {columns}]"
            _check_shape(own[own_name], tensor, own_name, described, path)
            plan.tensors[own_name] = tensor
            plan.mapping[own_name] = described
            count += 1
        expected = [k for k in own if k.startswith(f"encoders.{e}.")]
        if count != len(expected):
            raise _fail(
                path,
                f"the checkpoint's encoder has {count} tensors, encoder {e} here {len(expected)} "
                "(fewer stages or convolutions per stage)",
                "pretrain with plans of the same topology",
            )
        plan.summary.append(
            f"encoders.{e} ({', '.join(m.value for m in modalities)}) <- encoder.* "
            f"(input columns {columns} of {', '.join(m.value for m in names)}): {count} tensors"
        )
    return plan


def recurrence_transfer(
    source: Mapping[str, torch.Tensor],
    own: Mapping[str, torch.Tensor],
    encoders: Sequence[Sequence[Modality]],
    source_encoders: Sequence[Sequence[str]] | None,
    path: Path | None = None,
) -> TransferPlan:
    """The mapping from another recurrence run's encoders (module docstring)."""
    if source_encoders is None:
        raise _fail(
            path,
            "the recurrence run does not record its encoders' modalities",
            "pass its run folder (with train_config.json)",
        )
    groups = [tuple(Modality.parse(n) for n in group) for group in source_encoders]
    plan = TransferPlan(layout="recurrence")
    for e, modalities in enumerate(encoders):
        if tuple(modalities) not in groups:
            raise _fail(
                path,
                f"no encoder of the source run takes {', '.join(m.value for m in modalities)} "
                f"(its encoders: {source_encoders})",
                "use the same 'encoders' setting as the source run",
            )
        s = groups.index(tuple(modalities))
        prefix = f"encoders.{s}."
        count = 0
        for key in sorted(k for k in source if k.startswith(prefix)):
            own_name = f"encoders.{e}." + key[len(prefix) :]
            if own_name not in own:
                raise _fail(path, f"{key} has no counterpart here", "pretrain the same topology")
            _check_shape(own[own_name], source[key], own_name, key, path)
            plan.tensors[own_name], plan.mapping[own_name] = source[key], key
            count += 1
        plan.summary.append(f"encoders.{e} <- encoders.{s}.* of the source run: {count} tensors")
    return plan


def plan_transfer(
    source: Mapping[str, torch.Tensor],
    own: Mapping[str, torch.Tensor],
    encoders: Sequence[Sequence[Modality]],
    *,
    source_channels: Sequence[str] | None,
    source_encoders: Sequence[Sequence[str]] | None,
    slices: int,
    path: Path | None = None,
) -> TransferPlan:
    """The transfer of ``source`` into ``own`` for the recurrence encoders ``encoders``."""
    if any(_RECURRENCE.match(k) for k in source):
        return recurrence_transfer(source, own, encoders, source_encoders, path)
    if f"encoder.{_FIRST_CONV}" in source:
        return unet_transfer(source, own, encoders, source_channels, slices, path)
    raise _fail(
        path,
        "holds no U-Net encoder ('encoder.<stage>.<conv>' tensors) and no recurrence encoders, "
        "so nothing maps onto the recurrence encoders",
        "pretrain a segmentation run with the default trainer (e.g. `tumorseg train DATASET 2d "
        "all`) and pass its run folder",
    )
