"""How a run's weights are optimised: an optimiser plus a learning-rate schedule.

The loop asks the trainer's optional ``configure_optimization(network, loop)`` hook (see
:mod:`tumorseg.trainers.hooks`) for an :class:`Optimization`; without the hook it uses
:func:`default_optimization`, nnU-Net's SGD with Nesterov momentum 0.99 and poly decay. The
loop owns everything around it: gradient scaling and clipping, setting the rate before each
epoch (``schedule.lr(...)`` times a parameter group's optional ``"lr_scale"``, e.g. a smaller
rate for transferred encoders), feeding the validation metrics back (``schedule.end_epoch``),
and checkpointing both the optimiser's and the schedule's state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Protocol

import torch
from torch import nn

from tumorseg.trainers.schedules import LRSchedule, PolySchedule

ParameterGroups = Iterable[nn.Parameter] | Iterable[dict[str, Any]]


class LoopHyperparameters(Protocol):
    """The loop settings an optimisation factory may read (``LoopSettings`` provides them)."""

    @property
    def initial_lr(self) -> float: ...

    @property
    def momentum(self) -> float: ...

    @property
    def weight_decay(self) -> float: ...

    @property
    def poly_exponent(self) -> float: ...

    @property
    def warmup_fraction(self) -> float: ...


@dataclass(frozen=True)
class Optimization:
    """The optimiser over the network's parameters and the schedule driving its rate."""

    optimizer: torch.optim.Optimizer
    schedule: LRSchedule

    def describe(self) -> dict[str, Any]:
        """What was used, for ``train_config.json`` (class names and their settings)."""
        defaults = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in self.optimizer.defaults.items()
            if isinstance(v, int | float | str | bool | tuple) and v is not None
        }
        schedule: dict[str, Any] = (
            {f.name: getattr(self.schedule, f.name) for f in fields(self.schedule) if f.init}
            if is_dataclass(self.schedule)
            else {}
        )
        return {
            "optimizer": type(self.optimizer).__name__,
            "optimizer_settings": defaults,
            "parameter_groups": len(self.optimizer.param_groups),
            "schedule": type(self.schedule).__name__,
            "schedule_settings": schedule,
        }


def sgd_nesterov(
    parameters: ParameterGroups, lr: float, momentum: float = 0.99, weight_decay: float = 3e-5
) -> torch.optim.SGD:
    """SGD with Nesterov momentum (nnU-Net: momentum 0.99, weight decay 3e-5)."""
    return torch.optim.SGD(
        parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True
    )


def adam(
    parameters: ParameterGroups,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Adam:
    """Adam (the optimiser several of the published methods train with)."""
    return torch.optim.Adam(parameters, lr=lr, betas=betas, weight_decay=weight_decay)


def default_optimization(network: nn.Module, loop: LoopHyperparameters) -> Optimization:
    """SGD Nesterov over all parameters + poly decay with optional linear warm-up."""
    return Optimization(
        sgd_nesterov(network.parameters(), loop.initial_lr, loop.momentum, loop.weight_decay),
        PolySchedule(loop.initial_lr, loop.poly_exponent, loop.warmup_fraction),
    )
