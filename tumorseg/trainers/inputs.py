"""Batch inputs a trainer declares beyond the image and the label map.

A trainer lists what its training step needs in ``inputs`` (a tuple of the specs below); the data
loader then delivers exactly those, cropped and augmented with the same spatial transform as the
image and the label (rotation, scaling, mirroring), while the intensity transforms touch the
image channels only. Nothing undeclared is read or sent to the device.

=================  ==================================  =========================================
spec               batch entry                         where it comes from
=================  ==================================  =========================================
``ExtraTarget``    ``batch["targets"][name]``          a seg channel of the preprocessed case
                   ``(B, 1, *patch)`` long             (``properties["targets"]``, declared in
                                                       dataset.json ``"targets"``), nearest
``ReferenceImage`` ``batch["references"][name]``       ``<data folder>/references/<name>/CASE.npy``
                   ``(B, C_ref * S, *patch)`` float    float32 ``(C_ref, Z, Y, X)`` on the case's
                                                       preprocessed grid, linear; ``S`` slices per
                                                       channel as for the image (``2K + 1`` for
                                                       2.5d, modality-major), no intensity
                                                       augmentation
``RegionMask``     ``batch["masks"][name]``            computed from the un-augmented crop:
                   ``(B, 1, *patch)`` bool             ``brain`` (any image channel nonzero),
                                                       ``lesion`` (label > 0), ``normal`` (brain
                                                       and label 0); nearest
=================  ==================================  =========================================

For 2d and 2.5d, targets and masks are the centre slice only (as the label map is). Reference
images are written once per case with ``tumorseg.preprocessing.storage.write_reference``; the
loader checks before the first step that every case has each declared target and reference
(one-line error naming the file and ``missing_hint``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tumorseg.errors import TumorsegError

if TYPE_CHECKING:
    from tumorseg.trainers.base import TrainerContext

MaskRule = Literal["brain", "lesion", "normal"]
MASK_RULES: tuple[str, ...] = ("brain", "lesion", "normal")


@dataclass(frozen=True)
class ExtraTarget:
    """An extra label map of the case, e.g. ``"recurrence"`` (see the module docstring)."""

    name: str


@dataclass(frozen=True)
class ReferenceImage:
    """A float image stored next to the preprocessed case, e.g. a pseudo-healthy T1."""

    name: str
    # Channels of the stored array (C_ref); the batch has C_ref * S of them.
    channels: int = 1
    # What to run when a case has no such image (the one-line error names it), e.g.
    # "run `tumorseg normal-appearance ...` first".
    missing_hint: str = "compute the reference images of the dataset first"


@dataclass(frozen=True)
class ReferenceProducer:
    """How to compute reference image ``name`` of a case from its preprocessed images.

    Returned by a trainer's ``prepare_training`` hook; the training layer caches the results
    (``tumorseg.training.references``) and recomputes them all when ``version`` changes.
    """

    name: str
    # Identifies what makes the images (e.g. the SHA-256 of a model checkpoint).
    version: str
    # (C_all, Z, Y, X) preprocessed case -> (C_ref, Z, Y, X) float32 on the same grid.
    compute: Callable[[Any], Any]
    # Written into the cache's stamp for a person (e.g. the model's name).
    about: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionMask:
    """A binary mask derived from the case's image and label (see the module docstring)."""

    name: str
    rule: MaskRule = "normal"


BatchInput = ExtraTarget | ReferenceImage | RegionMask

#: Batch key of each kind of declared input.
BATCH_KEYS: dict[type, str] = {
    ExtraTarget: "targets",
    ReferenceImage: "references",
    RegionMask: "masks",
}


def of_kind(inputs: Sequence[BatchInput], kind: type) -> tuple[BatchInput, ...]:
    """The declared inputs of one kind, in declaration order."""
    return tuple(spec for spec in inputs if type(spec) is kind)


def check_inputs(inputs: Sequence[BatchInput], context: TrainerContext, trainer: str) -> None:
    """Validate a trainer's declared inputs against the dataset (one-line errors).

    Names must be unique per kind; every extra target must be declared in dataset.json; mask
    rules and reference channel counts must be valid.
    """
    for spec in inputs:
        if type(spec) not in BATCH_KEYS:
            raise TypeError(f"trainer '{trainer}' declares an unknown input {spec!r}")
    for kind, key in BATCH_KEYS.items():
        names = [spec.name for spec in of_kind(inputs, kind)]
        if len(set(names)) != len(names):
            raise ValueError(f"trainer '{trainer}' declares {key} {names} with a repeated name")
    for spec in inputs:
        if isinstance(spec, ExtraTarget) and spec.name not in context.dataset.targets:
            declared = ", ".join(sorted(context.dataset.targets)) or "none"
            raise TumorsegError(
                f"dataset.json of {context.plans.dataset_name} declares no {spec.name!r} target "
                f"(declared: {declared}); trainer '{trainer}' needs it: add "
                f'"targets": {{"{spec.name}": "{spec.name}Tr"}} with its masks and preprocess again'
            )
        if isinstance(spec, RegionMask) and spec.rule not in MASK_RULES:
            raise ValueError(f"mask rule {spec.rule!r} is not one of {', '.join(MASK_RULES)}")
        if isinstance(spec, ReferenceImage) and spec.channels < 1:
            raise ValueError(f"reference {spec.name!r} must have at least one channel")
