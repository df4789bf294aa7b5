"""Finding a run's input channels by modality name, for trainers that treat modalities apart.

The loop feeds a trainer the dataset channels ``context.channels`` in that order (for 2.5d each
channel as ``2K + 1`` consecutive slices, modality-major). A trainer that needs particular
contrasts (pairing: FLAIR + T2 vs T1 + T1c; msf: any subset) looks them up here by
``Modality``, so datasets that spell them ``t1ce``, ``T1Gd``, ``t2f`` ... all work, and a
dataset without them fails with one line naming what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from tumorseg.constants import Modality
from tumorseg.errors import TumorsegError
from tumorseg.trainers.base import TrainerContext


def parse_modalities(text: str, trainer: str, setting: str) -> tuple[Modality, ...]:
    """``"T1c,FLAIR"`` -> ``(Modality.T1C, Modality.FLAIR)``; ``""`` -> ``()``.

    An unknown name is a one-line ``TumorsegError`` naming the setting.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        modalities = tuple(Modality.parse(name) for name in names)
    except ValueError as exc:
        raise TumorsegError(f"setting '{setting}' of trainer '{trainer}': {exc}") from None
    if len(set(modalities)) != len(modalities):
        raise TumorsegError(
            f"setting '{setting}' of trainer '{trainer}' names a modality twice ({text!r}); "
            "list each once"
        )
    return modalities


def used_modalities(context: TrainerContext, trainer: str) -> tuple[Modality, ...]:
    """The modality of each channel in ``context.channels``, in input order."""
    try:
        modalities = context.dataset.modalities
    except ValueError as exc:
        raise TumorsegError(
            f"dataset.json of {context.plans.dataset_name}: trainer '{trainer}' needs MRI "
            f"contrast names in 'channel_names' ({exc})"
        ) from None
    return tuple(modalities[c] for c in context.channels)


def modality_positions(
    context: TrainerContext, wanted: Sequence[Modality], trainer: str, purpose: str
) -> tuple[int, ...]:
    """Position in ``context.channels`` of each ``wanted`` modality, in ``wanted`` order.

    Raises a one-line ``TumorsegError`` listing the missing modalities and the channels the run
    has; ``purpose`` says what they are needed for (e.g. ``"branch A"``).
    """
    used = used_modalities(context, trainer)
    missing = [m.value for m in wanted if m not in used]
    if missing:
        have = ", ".join(m.value for m in used) or "none"
        raise TumorsegError(
            f"dataset.json of {context.plans.dataset_name}: no {' / '.join(missing)} channel "
            f"among the run's channels ({have}); trainer '{trainer}' needs it for {purpose}: "
            "add the modality to the dataset or change the trainer setting"
        )
    return tuple(used.index(m) for m in wanted)


def input_indices(positions: Sequence[int], slices_per_channel: int) -> tuple[int, ...]:
    """Network input indices of channel ``positions`` when each channel has ``n`` slices.

    2.5d inputs are modality-major: channel ``p`` occupies ``p * n ... p * n + n - 1``.
    """
    n = slices_per_channel
    return tuple(p * n + j for p in positions for j in range(n))
