"""Modality dropout: drop statistics against the scheme's formula, whole modalities zeroed, only
in the training data path, only the modalities the network reads."""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pytest

from tests.trainers.test_trainer_contract import tiny_context
from tests.training.tiny_preprocessed import tiny_configuration
from tumorseg.preprocessing.storage import write_case
from tumorseg.trainers import build_trainer
from tumorseg.trainers.sampling import ForegroundOversampling
from tumorseg.training.dataloading import PatchBatches
from tumorseg.training.modality_dropout import ModalityDropout, keep_masks, modality_dropout_for

SAMPLES = 200_000


def test_drop_statistics_match_the_scheme() -> None:
    p, n = 0.25, 4
    keep = keep_masks(np.random.default_rng(7), SAMPLES, n, p)
    assert keep.any(axis=1).all()  # never every modality dropped
    # Each modality: dropped with p, except when all four were, then kept with 1/4.
    assert (~keep).mean(axis=0) == pytest.approx([p - p**n / n] * n, abs=0.004)
    dropped = (~keep).sum(axis=1)
    counts = np.bincount(dropped, minlength=n) / SAMPLES
    expected = [comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n)]
    expected[n - 1] += p**n  # the all-dropped draws keep one back
    np.testing.assert_allclose(counts, expected, atol=0.004)
    assert counts.size == n


def test_no_dropout_keeps_everything_and_the_draws_repeat_with_the_seed() -> None:
    assert keep_masks(np.random.default_rng(0), 100, 4, 0.0).all()
    first = keep_masks(np.random.default_rng(3), 50, 4, 0.5)
    np.testing.assert_array_equal(first, keep_masks(np.random.default_rng(3), 50, 4, 0.5))


def test_whole_modality_blocks_are_zeroed_and_others_untouched() -> None:
    # 2.5d: 3 modalities x 3 slices; the network reads modalities 0 and 2 only.
    data = np.arange(1, 2 * 9 * 4 + 1, dtype=np.float32).reshape(2, 9, 2, 2)
    drop = ModalityDropout(0.6, positions=(0, 2), slices=3)
    rng = np.random.default_rng(1)
    keep = keep_masks(np.random.default_rng(1), 2, 2, 0.6)
    out = drop(data, rng)
    for sample in range(2):
        np.testing.assert_array_equal(out[sample, 3:6], data[sample, 3:6])  # not read: kept
        for position, modality in enumerate((0, 2)):
            block = slice(modality * 3, modality * 3 + 3)
            wanted = data[sample, block] if keep[sample, position] else 0
            np.testing.assert_array_equal(out[sample, block], wanted)
    assert not keep.all()  # the seed drops something, so the check has teeth


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_probability_outside_zero_one_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="modality_dropout"):
        ModalityDropout(bad, (0, 1))


@pytest.mark.parametrize("trainer", ["default", "pairing"])
def test_trainers_reading_every_channel_drop_among_all(trainer: str) -> None:
    context = tiny_context("3d_fullres")
    assert modality_dropout_for(build_trainer(trainer, context, {})) is None
    built = build_trainer(trainer, context, {"modality_dropout": "0.25"})  # as --set gives it
    drop = modality_dropout_for(built)
    assert drop == ModalityDropout(0.25, tuple(range(len(context.channels))), 1)


def test_msf_drops_only_the_modalities_it_reads() -> None:
    context = tiny_context("2.5d")
    msf = build_trainer("msf", context, {"modalities": "T1c,FLAIR", "modality_dropout": 0.25})
    drop = modality_dropout_for(msf)
    assert drop is not None
    names = [context.dataset.channel_names[context.channels[p]] for p in drop.positions]
    assert sorted(n.lower() for n in names) == ["flair", "t1c"]
    assert drop.slices == context.configuration.input_channels_per_modality


def test_a_bad_setting_is_refused_by_every_trainer() -> None:
    from tumorseg.errors import TumorsegError

    for trainer, configuration in (("default", "2d"), ("msf", "2d"), ("pairing", "3d_fullres")):
        with pytest.raises(TumorsegError, match=r"modality_dropout must be in \[0, 1\)"):
            build_trainer(trainer, tiny_context(configuration), {"modality_dropout": 1.5})


def test_the_loader_zeroes_modalities_after_augmentation_and_changes_nothing_else(
    tmp_path: Path,
) -> None:
    data = np.random.default_rng(0).normal(size=(4, 24, 24, 24)).astype(np.float32) + 3
    seg = np.zeros((1, 24, 24, 24), np.int8)
    seg[0, 10:14, 10:14, 10:14] = 1
    write_case(tmp_path, "c0", data, seg, {"class_locations": {"1": [[12, 12, 12]]}})
    config = tiny_configuration("3d_fullres", patch=8, batch_size=4)

    def batches(drop: ModalityDropout | None) -> PatchBatches:
        return PatchBatches(
            tmp_path, ["c0"], config, [0, 1, 2, 3], batch_size=4,
            sampling=ForegroundOversampling(0.5), modality_dropout=drop,
        )  # fmt: skip

    plain, dropped = batches(None), batches(ModalityDropout(0.5, (0, 1, 2, 3)))
    zeroed = 0
    for index in range(6):
        a, b = plain[index], dropped[index]
        np.testing.assert_array_equal(a["target"], b["target"])
        for sample in range(4):
            kept = [c for c in range(4) if b["data"][sample, c].any()]
            assert kept  # at least one modality always kept
            for c in range(4):
                wanted = a["data"][sample, c] if c in kept else 0
                np.testing.assert_array_equal(b["data"][sample, c], wanted)
            zeroed += 4 - len(kept)
    assert zeroed > 0
