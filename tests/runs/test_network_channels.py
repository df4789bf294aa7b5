"""Which dataset channels a trained run reads (what ``predict`` requires of a case)."""

from __future__ import annotations

from types import SimpleNamespace

from tumorseg.runs.trained import network_channels


def _trainer(
    channels: tuple[int, ...], per_channel: int, indices: tuple[int, ...] | None
) -> object:
    configuration = SimpleNamespace(input_channels_per_modality=per_channel)
    context = SimpleNamespace(channels=channels, configuration=configuration)
    return SimpleNamespace(context=context, input_indices=indices)


def test_a_trainer_feeding_its_whole_batch_reads_every_run_channel() -> None:
    assert network_channels(_trainer((0, 1, 2, 3), 1, None)) == (0, 1, 2, 3)
    assert network_channels(SimpleNamespace(context=SimpleNamespace(channels=(3, 1)))) == (1, 3)


def test_input_indices_name_the_channels_also_with_stacked_slices() -> None:
    # 2.5d with K=1: each channel brings 3 consecutive inputs; T1c (1) and FLAIR (3) chosen.
    assert network_channels(_trainer((0, 1, 2, 3), 3, (3, 4, 5, 9, 10, 11))) == (1, 3)
    # A run whose loader feeds channels (2, 3) only; its network reads the second of them.
    assert network_channels(_trainer((2, 3), 1, (1,))) == (3,)
