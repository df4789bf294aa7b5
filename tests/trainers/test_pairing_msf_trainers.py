from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.trainers.test_trainer_contract import CHANNELS, tiny_batch, tiny_context
from tests.training.tiny_preprocessed import DATASET, write_tiny_preprocessed
from tumorseg.cli import main
from tumorseg.data.dataset_json import brats_dataset_json
from tumorseg.data.labels import LabelConvention
from tumorseg.errors import TumorsegError
from tumorseg.networks.msf import MultiScaleFusion
from tumorseg.networks.msf_unet import MSFUNet
from tumorseg.networks.pairing import ModalityPairingNet
from tumorseg.networks.unet import UNet
from tumorseg.paths import Roots
from tumorseg.postprocessing import preset_decision
from tumorseg.runs.trained import load_trained_model
from tumorseg.trainers import build_trainer
from tumorseg.trainers.base import TrainerContext
from tumorseg.trainers.pairing import modality_pairing_loss
from tumorseg.trainers.schedules import warmup_poly_lr


def _context(configuration: str, channel_names: list[str]) -> TrainerContext:
    """A tiny context on a dataset with ``channel_names``, using all of its channels."""
    dataset = brats_dataset_json(channel_names, 4, LabelConvention.BRATS2023)
    context = tiny_context(configuration, dataset)
    return dataclasses.replace(context, channels=tuple(range(len(channel_names))))


def _parameters(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


# ---- modality-pairing loss -------------------------------------------------------------------
def test_pairing_loss_is_minus_one_for_identical_outputs() -> None:
    a = torch.randn(3, 4, 6, 6, 6)
    assert modality_pairing_loss(a, a.clone()).item() == pytest.approx(-1.0, abs=1e-5)
    # Pearson ignores scale and offset: an affine copy is as consistent as an identical one.
    assert modality_pairing_loss(a, 3 * a + 2).item() == pytest.approx(-1.0, abs=1e-5)


def test_pairing_loss_is_plus_one_for_anti_correlated_outputs() -> None:
    a = torch.randn(2, 4, 6, 6, 6)
    assert modality_pairing_loss(a, -a).item() == pytest.approx(1.0, abs=1e-5)


def test_pairing_loss_is_about_zero_for_independent_outputs() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(2, 4, 16, 16, 16, generator=generator)
    b = torch.randn(2, 4, 16, 16, 16, generator=generator)
    assert abs(modality_pairing_loss(a, b).item()) < 0.03


def test_pairing_loss_is_per_sample() -> None:
    a = torch.randn(2, 1, 8, 8, 8)
    b = torch.stack([a[0], -a[1]])  # sample 0 identical, sample 1 anti-correlated
    assert modality_pairing_loss(a, b).item() == pytest.approx(0.0, abs=1e-5)


def test_pairing_loss_gradient_is_finite_for_constant_outputs() -> None:
    a = torch.ones(1, 2, 4, 4, 4, requires_grad=True)
    loss = modality_pairing_loss(a, torch.randn(1, 2, 4, 4, 4))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(a.grad).all()


# ---- pairing trainer ---------------------------------------------------------------------------
def test_pairing_loss_enters_the_total_with_its_weight() -> None:
    torch.manual_seed(0)
    context = tiny_context("3d_fullres")
    batch = tiny_batch(context, 4)
    trainer = build_trainer("pairing", context, {"pairing_loss_weight": 0.5})
    network = trainer.build_network().train()
    step = trainer.training_step(network, batch)
    loss, logs = step.loss, step.logs
    assert -1 <= logs["pairing_loss"] <= 1
    expected = logs["segmentation_loss"] + 0.5 * logs["pairing_loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_pairing_loss_weight_zero_disables_it() -> None:
    context = tiny_context("3d_fullres")
    trainer = build_trainer("pairing", context, {"pairing_loss_weight": "0"})
    step = trainer.training_step(trainer.build_network().train(), tiny_batch(context, 4))
    loss, logs = step.loss, step.logs
    assert "pairing_loss" not in logs
    assert loss.item() == pytest.approx(logs["segmentation_loss"], rel=1e-6)


def test_pairing_on_probabilities_uses_branch_heads() -> None:
    context = tiny_context("3d_fullres")
    trainer = build_trainer("pairing", context, {"pairing_on": "probabilities"})
    network = trainer.build_network()
    assert network.branch_heads is not None
    step = trainer.training_step(network.train(), tiny_batch(context, 4))
    loss, logs = step.loss, step.logs
    assert torch.isfinite(loss)
    assert -1 <= logs["pairing_loss"] <= 1


def test_pairing_branches_are_found_by_modality_name() -> None:
    # Channels T1, T1c, T2, FLAIR: branch A = (FLAIR, T2) = (3, 2), branch B = (T1, T1c).
    trainer = build_trainer("pairing", tiny_context("3d_fullres"))
    assert trainer.branch_channels == ((3, 2), (0, 1))


def test_pairing_cross_connections_switch_changes_the_network() -> None:
    context = tiny_context("3d_fullres")
    full = build_trainer("pairing", context).build_network()
    plain = build_trainer("pairing", context, {"cross_connections": "false"}).build_network()
    assert isinstance(plain, ModalityPairingNet)
    assert _parameters(full) > _parameters(plain)


def test_pairing_missing_modality_is_one_line_error() -> None:
    context = _context("3d_fullres", ["T1", "T1c", "FLAIR"])
    with pytest.raises(TumorsegError, match=r"no T2 channel.*'pairing'.*branch_a") as info:
        build_trainer("pairing", context)
    assert "\n" not in str(info.value)


def test_pairing_non_mri_channel_names_are_one_line_error() -> None:
    context = _context("3d_fullres", ["CT", "PET", "T2", "FLAIR"])
    with pytest.raises(TumorsegError, match=r"channel_names.*unknown modality name 'CT'"):
        build_trainer("pairing", context)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"branch_a": "FLAIR,T1", "branch_b": "T1,T1c"}, "share a modality"),
        ({"branch_a": "FLAIR,CT"}, "unknown modality name 'CT'"),
        ({"pairing_loss_weight": -1}, ">= 0"),
    ],
)
def test_pairing_bad_settings(settings: dict, match: str) -> None:
    with pytest.raises(TumorsegError, match=match):
        build_trainer("pairing", tiny_context("3d_fullres"), settings)


def test_pairing_warmup_and_postprocessing_preset() -> None:
    trainer = build_trainer("pairing", tiny_context("3d_fullres"), {"et_threshold": 50})
    fraction = type(trainer).loop_defaults["warmup_fraction"]
    assert fraction == pytest.approx(20 / 1000)  # the paper's 20 of 1000 epochs
    # 100 epochs: 2 warm-up epochs rising to the initial rate, then poly decay from it.
    lrs = [warmup_poly_lr(e, 100, 0.01, warmup_fraction=fraction) for e in range(4)]
    assert lrs[0] < lrs[1] == pytest.approx(0.01)
    assert lrs[3] < lrs[2] == pytest.approx(0.01)
    name, parameters = trainer.postprocessing_preset()
    steps = preset_decision(name, **parameters)["steps"]
    assert steps[0]["min_voxels"] == 10
    assert steps[1] == {**steps[1], "rule": "small_et_to_necrosis", "min_voxels": 50}


# ---- msf trainer -------------------------------------------------------------------------------
@pytest.mark.parametrize("configuration", ["2d", "2.5d"])
def test_msf_uses_a_modality_subset(configuration: str) -> None:
    context = tiny_context(configuration)
    trainer = build_trainer("msf", context, {"modalities": "t1ce,Flair"})
    slices = context.configuration.input_channels_per_modality
    # T1c is channel 1, FLAIR channel 3; 2.5d inputs are modality-major.
    assert trainer.input_indices == tuple(
        c * slices + j for c in (1, 3) for j in range(slices)
    )
    network = trainer.build_network()
    assert network.encoder[0][0].conv.in_channels == 2 * slices
    batch = tiny_batch(context, len(CHANNELS) * slices)
    loss = trainer.training_step(network.train(), batch).loss
    assert torch.isfinite(loss)
    network.eval()
    with torch.no_grad():
        assert trainer.predict_logits(network, batch["data"]).shape == (2, 3, 16, 16)


def test_msf_subset_ignores_other_channels() -> None:
    torch.manual_seed(0)
    context = tiny_context("2d")
    trainer = build_trainer("msf", context, {"modalities": "T1c,FLAIR"})
    network = trainer.build_network().eval()
    data = torch.randn(1, 4, 16, 16)
    changed = data.clone()
    changed[:, [0, 2]] = torch.randn(1, 2, 16, 16)  # T1 and T2 are not inputs
    with torch.no_grad():
        torch.testing.assert_close(
            trainer.predict_logits(network, data), trainer.predict_logits(network, changed)
        )


def test_msf_missing_modality_is_one_line_error() -> None:
    context = _context("2d", ["T1", "T2"])
    with pytest.raises(TumorsegError, match=r"no T1c / FLAIR channel.*'msf'"):
        build_trainer("msf", context, {"modalities": "T1c,FLAIR"})


def test_msf_without_modality_subset_accepts_any_channel_names() -> None:
    trainer = build_trainer("msf", _context("2d", ["CT", "PET"]))
    assert trainer.in_channels == 2


def test_msf_without_module_is_the_plain_unet() -> None:
    context = tiny_context("2d")
    with_msf = build_trainer("msf", context).build_network()
    without = build_trainer("msf", context, {"use_msf": "false"}).build_network()
    assert isinstance(with_msf, MSFUNet)
    assert isinstance(without, UNet)
    assert any(isinstance(m, MultiScaleFusion) for m in with_msf.modules())
    assert not any(isinstance(m, MultiScaleFusion) for m in without.modules())
    assert _parameters(with_msf) != _parameters(without)


def test_msf_settings_reach_the_module() -> None:
    trainer = build_trainer(
        "msf",
        tiny_context("2d"),
        {"msf_p3_init": "0.5", "msf_attention_input": "sum", "msf_reduction": "2"},
    )
    fusion = trainer.build_network().fusion[0]
    assert fusion.p3.item() == 0.5
    assert fusion.attention_input == "sum"
    assert fusion.channel_mlp[0].out_channels == 4  # max(C // 2, 4) hidden units


def test_msf_deep_supervision_setting() -> None:
    context = tiny_context("2d")
    trainer = build_trainer("msf", context, {"deep_supervision": True})
    outputs = trainer.build_network().train()(torch.randn(2, 4, 16, 16))
    assert [tuple(o.shape[2:]) for o in outputs] == [(16, 16), (8, 8)]


# ---- end to end through the CLI (slow: a training run, its final validation and a reload) -----
FAST = ["--epochs", "1", "--iterations-per-epoch", "2", "--val-iterations", "1", "-np", "0"]


@pytest.fixture
def tiny_roots(tmp_path: Path) -> Roots:
    roots = Roots.under(tmp_path / "tumorseg_data")
    for folder in (roots.raw, roots.preprocessed, roots.results):
        folder.mkdir(parents=True)
    write_tiny_preprocessed(roots, n_cases=4)
    return roots


def _train(roots: Roots, monkeypatch: pytest.MonkeyPatch, *args: str) -> Path:
    monkeypatch.setattr(
        sys,
        "argv",
        ["tumorseg", "train", DATASET, *args, *FAST, "--raw", str(roots.raw),
         "--preprocessed", str(roots.preprocessed), "--results", str(roots.results)],
    )
    with contextlib.suppress(SystemExit):
        main()
    (run,) = (roots.results / DATASET).iterdir()
    return run / "fold_0"


@pytest.mark.slow
def test_cli_trains_pairing(tiny_roots: Roots, monkeypatch: pytest.MonkeyPatch) -> None:
    fold = _train(
        tiny_roots, monkeypatch, "3d_fullres", "0", "--trainer", "pairing",
        "--set", "pairing_loss_weight=0.25", "--set", "cross_connections=true",
    )
    config = json.loads((fold / "train_config.json").read_text())
    assert config["trainer"] == "pairing"
    assert config["trainer_settings"]["pairing_loss_weight"] == 0.25
    assert config["loop"]["warmup_fraction"] == pytest.approx(0.02)
    assert (fold / "validation" / "summary.json").is_file()
    trainer, network, _, _ = load_trained_model(fold)
    assert isinstance(network, ModalityPairingNet)
    assert trainer.settings.pairing_loss_weight == 0.25


@pytest.mark.slow
def test_cli_trains_msf_on_a_modality_subset(
    tiny_roots: Roots, monkeypatch: pytest.MonkeyPatch
) -> None:
    fold = _train(
        tiny_roots, monkeypatch, "2.5d", "0", "--trainer", "msf", "--set", "modalities=T1c,FLAIR"
    )
    config = json.loads((fold / "train_config.json").read_text())
    assert config["trainer_settings"]["modalities"] == "T1c,FLAIR"
    assert (fold / "validation" / "summary.json").is_file()
    _, network, _, _ = load_trained_model(fold)
    assert isinstance(network, MSFUNet)
    assert network.encoder[0][0].conv.in_channels == 2 * 3  # two modalities x 3 slices


# ---- paper settings: pairing output and width, msf optimiser and sampling ---------------------
def test_pairing_softmax_output_is_the_papers_four_classes() -> None:
    context = tiny_context("3d_fullres")
    trainer = build_trainer("pairing", context, {"output": "softmax"})
    assert trainer.output_activation == "softmax"
    assert trainer.output_names == ("background", "necrosis", "edema", "enhancing")
    network = trainer.build_network().train()
    batch = tiny_batch(context, 4)
    step = trainer.training_step(network, batch)
    assert step.logits.shape[1] == 4
    # The segmentation term is softmax Dice (foreground labels) + CE of the fused outputs,
    # computed here by hand from the network's own outputs.
    torch.manual_seed(0)
    out = network(batch["data"])
    # Two stages: nnU-Net's weights give the coarsest output 0, so the full-resolution one counts.
    assert len(out.logits) == 2
    total = 0.0
    for w, logits in zip([1.0], out.logits[:1], strict=True):
        target = batch["target"].long()[:, 0]
        probs = torch.softmax(logits.float(), 1)
        one_hot = torch.nn.functional.one_hot(target, 4).movedim(-1, 1).float()
        axes = tuple(range(2, probs.ndim))
        dice = (2 * (probs * one_hot).sum(axes) + 1e-5) / (
            probs.sum(axes) + one_hot.sum(axes) + 1e-5
        )
        ce = torch.nn.functional.cross_entropy(logits.float(), target)
        total += w * ((1 - dice[:, 1:].mean()) + ce)
    expected = total
    assert trainer.loss(out.logits, batch["target"]).item() == pytest.approx(
        expected.item(), rel=1e-4
    )


def test_pairing_regions_default_is_the_sigmoid_regions() -> None:
    trainer = build_trainer("pairing", tiny_context("3d_fullres"))
    assert trainer.output_activation == "sigmoid"
    assert trainer.output_names == ("whole_tumor", "tumor_core", "enhancing_tumor")


def test_pairing_full_width_has_about_four_times_the_parameters() -> None:
    context = tiny_context("3d_fullres")
    half = _parameters(build_trainer("pairing", context).build_network())
    full = _parameters(build_trainer("pairing", context, {"feature_scale": 1.0}).build_network())
    # Convolution weights scale with in x out features: doubling both gives ~4x.
    assert 3.3 < full / half < 4.1


def test_msf_adam_setting_uses_adam_with_its_rate_and_schedule() -> None:
    from tumorseg.training.config import LoopSettings

    context = tiny_context("2d")
    loop = LoopSettings(warmup_fraction=0.1)
    assert build_trainer("msf", context).settings.optimizer == "adam"  # the measured default
    sgd = build_trainer("msf", context, {"optimizer": "sgd"})
    network = sgd.build_network()
    assert type(sgd.configure_optimization(network, loop).optimizer) is torch.optim.SGD
    adam = build_trainer("msf", context, {"optimizer": "adam", "adam_lr": 3e-4})
    optimization = adam.configure_optimization(network, loop)
    assert type(optimization.optimizer) is torch.optim.Adam
    assert optimization.optimizer.param_groups[0]["lr"] == 3e-4
    assert [optimization.schedule.lr(e, 10) for e in (0, 5, 9)] == [3e-4] * 3
    poly = build_trainer("msf", context, {"optimizer": "adam", "adam_schedule": "poly"})
    schedule = poly.configure_optimization(network, loop).schedule
    assert [schedule.lr(e, 10) for e in range(10)] == [
        warmup_poly_lr(e, 10, 1e-3, 0.9, 0.1) for e in range(10)
    ]
    with pytest.raises(TumorsegError, match="adam_lr"):
        build_trainer("msf", context, {"adam_lr": 0})


def test_msf_lesion_slices_setting_picks_the_policy() -> None:
    from tumorseg.trainers.sampling import ForegroundOversampling, LesionSlices
    from tumorseg.training.config import LoopSettings

    context = tiny_context("2d")
    loop = LoopSettings()
    assert build_trainer("msf", context).sampling_policy(loop) == ForegroundOversampling(0.33)
    lesion = build_trainer("msf", context, {"sampling": "lesion_slices"})
    assert isinstance(lesion.sampling_policy(loop), LesionSlices)


@pytest.mark.slow
def test_cli_trains_pairing_with_the_papers_softmax_and_scores_regions(
    tiny_roots: Roots, monkeypatch: pytest.MonkeyPatch
) -> None:
    fold = _train(
        tiny_roots, monkeypatch, "3d_fullres", "0", "--trainer", "pairing", "--set",
        "output=softmax",
    )  # fmt: skip
    config = json.loads((fold / "train_config.json").read_text())
    assert config["output_activation"] == "softmax"
    assert config["output_names"] == ["background", "necrosis", "edema", "enhancing"]
    # The 4-class network is validated on the BraTS regions aggregated from its labels.
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"whole_tumor", "tumor_core", "enhancing_tumor"}
    trainer, _, _, _ = load_trained_model(fold)
    assert trainer.output_activation == "softmax"
    assert trainer.settings.output == "softmax"


@pytest.mark.slow
def test_cli_trains_msf_with_the_papers_adam_and_lesion_slices(
    tiny_roots: Roots, monkeypatch: pytest.MonkeyPatch
) -> None:
    fold = _train(
        tiny_roots, monkeypatch, "2d", "0", "--trainer", "msf", "--set", "optimizer=adam",
        "--set", "adam_lr=0.0005", "--set", "sampling=lesion_slices",
    )  # fmt: skip
    loop = json.loads((fold / "train_config.json").read_text())["loop"]
    assert loop["optimization"]["optimizer"] == "Adam"
    assert loop["optimization"]["optimizer_settings"]["lr"] == 0.0005
    assert loop["optimization"]["schedule_settings"]["exponent"] == 0.0  # a constant rate
    assert loop["sampling"]["policy"] == "LesionSlices"
    assert (fold / "validation" / "summary.json").is_file()
