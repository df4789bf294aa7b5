"""Trainer registry: an explicit dict from :class:`TrainerName` to trainer class.

A registered trainer class follows the :class:`~tumorseg.trainers.base.Trainer`
protocol (the contract, documented in :mod:`tumorseg.trainers.base`) and additionally declares

- ``settings_class: ClassVar[type]``: a frozen dataclass, every field with a default;
- ``supported_configurations: ClassVar[tuple[str, ...]]``;
- ``loop_defaults: ClassVar[dict[str, Any]]`` (may be empty): loop settings it prefers;
- ``__init__(self, context: TrainerContext, settings)`` taking an instance of ``settings_class``;

and may define the optional hooks of :mod:`tumorseg.trainers.hooks` (declared batch inputs,
optimiser and schedule, patch sampling).

Adding a trainer = one file in this package + one line in :data:`TRAINERS`; the contract tests
(``tests/trainers/test_trainer_contract.py``) then cover it automatically, declared inputs and
hooks included.
"""

from __future__ import annotations

from typing import Any

from tumorseg.constants import TrainerName
from tumorseg.errors import TumorsegError
from tumorseg.trainers.base import Trainer, TrainerContext
from tumorseg.trainers.clfc import CLFCTrainer
from tumorseg.trainers.default import DefaultSettings, DefaultTrainer
from tumorseg.trainers.hooks import check_target_outputs, declared_inputs
from tumorseg.trainers.inputs import check_inputs
from tumorseg.trainers.msf import MSFTrainer
from tumorseg.trainers.pairing import PairingTrainer
from tumorseg.trainers.recurrence import RecurrenceTrainer
from tumorseg.trainers.settings import make_settings

TRAINERS: dict[TrainerName, type] = {
    TrainerName.DEFAULT: DefaultTrainer,
    TrainerName.PAIRING: PairingTrainer,
    TrainerName.MSF: MSFTrainer,
    TrainerName.CLFC: CLFCTrainer,
    TrainerName.RECURRENCE: RecurrenceTrainer,
}


def trainer_names() -> tuple[str, ...]:
    """Names of the registered trainers, sorted."""
    return tuple(sorted(name.value for name in TRAINERS))


def trainer_class(name: str | TrainerName) -> type[Any]:
    """The registered class for ``name``; an unknown name fails listing the valid ones."""
    key = name.value if isinstance(name, TrainerName) else str(name)
    for registered, cls in TRAINERS.items():
        if registered.value == key:
            return cls
    raise TumorsegError(f"unknown trainer {key!r}; valid: {', '.join(trainer_names())}")


def build_trainer(
    name: str | TrainerName, context: TrainerContext, settings: dict[str, Any] | None = None
) -> Trainer:
    """Build trainer ``name`` for ``context`` with ``settings`` (defaults for missing keys).

    Raises ``TumorsegError`` (one line) for an unknown trainer, unknown or invalid setting keys
    (listing the valid ones), a configuration the trainer does not support and a declared extra
    target the dataset does not have.
    """
    cls = trainer_class(name)
    config = context.configuration.name
    if config not in cls.supported_configurations:
        raise TumorsegError(
            f"trainer '{cls.name}' does not support configuration '{config}'; "
            f"use one of: {', '.join(cls.supported_configurations)}"
        )
    trainer: Trainer = cls(context, make_settings(cls.name, cls.settings_class, settings))
    check_inputs(declared_inputs(trainer), context, cls.name)
    check_target_outputs(trainer, context.dataset)
    return trainer


__all__ = [
    "TRAINERS",
    "DefaultSettings",
    "DefaultTrainer",
    "Trainer",
    "TrainerContext",
    "build_trainer",
    "trainer_class",
    "trainer_names",
]
