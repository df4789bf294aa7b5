"""The recurrence trainer: encoders from the dataset's modalities, its loss against an
independent computation, ablation switches, optimisation, sampling and the transfer mapping."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainers.test_trainer_contract import CHANNELS, TARGETS, tiny_batch, tiny_context
from tumorseg.data.dataset_json import DatasetJson, brats_dataset_json
from tumorseg.data.labels import LabelConvention
from tumorseg.errors import TumorsegError
from tumorseg.networks.recurrence import RecurrenceOutput
from tumorseg.planning.plans import NetworkTopology
from tumorseg.trainers import build_trainer
from tumorseg.trainers.correlation_loss import correlation_loss
from tumorseg.trainers.hooks import SourceWeights, declared_inputs, optimization_for
from tumorseg.trainers.schedules import PlateauSchedule, PolySchedule
from tumorseg.training.config import LoopSettings

NAMES = ("T1", "T1c", "T2", "FLAIR")


def _dataset(channels: list[str], labels: dict | None = None) -> DatasetJson:
    if labels is None:
        return brats_dataset_json(channels, 4, LabelConvention.BRATS2021, targets=TARGETS)
    return DatasetJson(dict(enumerate(channels)), labels, 4, targets=dict(TARGETS))


def _context(configuration: str = "2d", channels: list[str] | None = None, **kw: object):
    context = tiny_context(configuration, _dataset(channels or CHANNELS, **kw))  # type: ignore[arg-type]
    n = len(context.dataset.channel_names)
    return dataclasses.replace(context, channels=tuple(range(n)))


def _batch(trainer, context, seed: int = 0) -> dict:
    slices = context.configuration.input_channels_per_modality
    return tiny_batch(
        context, len(context.channels) * slices, seed=seed, inputs=declared_inputs(trainer)
    )


# ---- encoders and outputs ----------------------------------------------------------------------
def test_paper_encoders_and_outputs() -> None:
    trainer = build_trainer("recurrence", _context())
    assert trainer.output_names == ("whole_tumor", "tumor_core", "enhancing_tumor", "recurrence")
    assert trainer.output_activation == "sigmoid"
    assert trainer.details()["encoders"] == [["FLAIR"], ["T1c"]]
    assert trainer.details()["encoder_input_channels"] == [[3], [1]]
    assert trainer.details()["correlation"] == "nonlinear"


def test_a_t1c_only_dataset_trains_one_encoder_without_correlation() -> None:
    context = _context(channels=["T1c"], labels={"background": 0, "tumor": 1})
    trainer = build_trainer("recurrence", context)
    assert trainer.output_names == ("tumor", "recurrence")
    assert trainer.details()["encoders"] == [["T1c"]]
    assert trainer.details()["correlation"] == "none"
    network = trainer.build_network().train()
    step = trainer.training_step(network, _batch(trainer, context))
    assert "correlation_loss" not in step.logs
    assert step.logits.shape[1] == 2


def test_more_modalities_per_encoder_and_2_5d_slices() -> None:
    context = _context("2.5d")
    trainer = build_trainer("recurrence", context, {"encoders": "FLAIR,T2|T1c,T1"})
    # 2.5d: three slices per modality, modality-major (T1 0-2, T1c 3-5, T2 6-8, FLAIR 9-11).
    assert trainer.details()["encoder_input_channels"] == [[9, 10, 11, 6, 7, 8], [3, 4, 5, 0, 1, 2]]
    assert trainer.build_network().encoders[0][0][0].conv.in_channels == 6


@pytest.mark.parametrize(
    ("channels", "settings", "message"),
    [
        (["T1c"], {"encoders": "FLAIR|T1c"}, "no FLAIR channel"),
        (["T1", "T2"], {}, "neither FLAIR nor T1c.*--set encoders=T1"),
        (CHANNELS, {"encoders": "FLAIR|FLAIR"}, "names a modality twice"),
        (CHANNELS, {"encoders": "FLAIR||T1c"}, "empty group"),
        (CHANNELS, {"correlation_temperature": 0}, "correlation_temperature must be > 0"),
    ],
)
def test_encoder_and_setting_errors_are_one_line(channels, settings, message) -> None:
    with pytest.raises(TumorsegError, match=message) as info:
        build_trainer("recurrence", _context(channels=channels), settings)
    assert "\n" not in str(info.value)


def test_a_dataset_without_the_recurrence_target_is_refused() -> None:
    context = tiny_context("2d", brats_dataset_json(CHANNELS, 4, LabelConvention.BRATS2021))
    with pytest.raises(TumorsegError, match=r"declares no 'recurrence' target.*recurrenceTr"):
        build_trainer("recurrence", context)


# ---- the loss --------------------------------------------------------------------------------
def _soft_dice_loss(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """1 - mean over channels of the batch soft Dice (2d: the batch is pooled), by hand."""
    p = torch.sigmoid(logits.float())
    axes = (0, 2, 3)
    dice = (2 * (p * truth).sum(axes) + 1e-5) / (p.sum(axes) + truth.sum(axes) + 1e-5)
    return 1 - dice.mean()


@pytest.mark.parametrize("divergence", ["kl", "jeffreys", "hellinger"])
def test_loss_is_dice_plus_dice_plus_weighted_correlation(divergence: str) -> None:
    context = _context()
    trainer = build_trainer("recurrence", context, {"divergence": divergence})
    torch.manual_seed(0)
    network = trainer.build_network().train()
    batch = _batch(trainer, context)
    step = trainer.training_step(network, batch)
    with torch.no_grad():
        out = network(batch["data"])
    assert isinstance(out, RecurrenceOutput)
    labels = batch["target"][:, 0]
    regions = torch.stack(
        [torch.isin(labels, torch.tensor(r)) for r in ((1, 2, 3), (1, 3), (3,))], 1
    ).float()
    seg = _soft_dice_loss(out.segmentation[0], regions)
    rec = _soft_dice_loss(out.recurrence[0], batch["targets"]["recurrence"].float())
    corr = correlation_loss(out.features, out.correlated, kind=divergence)  # type: ignore[arg-type]
    assert float(step.loss.detach()) == pytest.approx(float(seg + rec + 0.1 * corr), rel=1e-5)
    assert step.logs["correlation_loss"] == pytest.approx(float(corr), rel=1e-5)
    assert step.logs["recurrence_loss"] == pytest.approx(float(rec), rel=1e-5)


def test_weights_and_bce_switches() -> None:
    context = _context()
    batch = None
    losses = {}
    for name, settings in {
        "default": {},
        "no_correlation_term": {"correlation_weight": 0},
        "recurrence_only": {"segmentation_weight": 0},
        "with_bce": {"ce_weight": 1.0},
    }.items():
        trainer = build_trainer("recurrence", context, settings)
        torch.manual_seed(0)
        network = trainer.build_network().train()
        batch = batch or _batch(trainer, context)
        step = trainer.training_step(network, batch)
        losses[name] = (float(step.loss.detach()), step.logs)
    base, logs = losses["default"]
    assert "correlation_loss" not in losses["no_correlation_term"][1]
    assert losses["no_correlation_term"][0] == pytest.approx(
        base - 0.1 * logs["correlation_loss"], rel=1e-5
    )
    assert losses["recurrence_only"][0] == pytest.approx(
        logs["recurrence_loss"] + 0.1 * logs["correlation_loss"], rel=1e-5
    )
    assert losses["with_bce"][0] > base


def test_ablation_settings_build_the_ablated_networks() -> None:
    context = _context()
    baseline = build_trainer("recurrence", context, {"mmff": False, "correlation": "none"})
    network = baseline.build_network()
    assert len(network.correlation) == 0
    assert not any(type(m).__name__ == "MMFF" for m in network.modules())
    linear = build_trainer("recurrence", context, {"correlation": "linear"}).build_network()
    assert {m.kind for m in linear.correlation} == {"linear"}


# ---- optimisation and sampling -----------------------------------------------------------------
def test_adam_with_plateau_halving_by_default_and_sgd_poly_as_a_setting() -> None:
    context = _context()
    trainer = build_trainer("recurrence", context)
    network = trainer.build_network()
    optimization = optimization_for(trainer, network, LoopSettings())
    assert isinstance(optimization.optimizer, torch.optim.Adam)
    assert optimization.optimizer.defaults["lr"] == 5e-4
    schedule = optimization.schedule
    assert isinstance(schedule, PlateauSchedule)
    assert (schedule.factor, schedule.patience, schedule.monitor) == (0.5, 10, "val_loss")
    sgd = build_trainer("recurrence", context, {"optimizer": "sgd"})
    optimization = optimization_for(sgd, sgd.build_network(), LoopSettings(initial_lr=0.02))
    assert isinstance(optimization.optimizer, torch.optim.SGD)
    assert isinstance(optimization.schedule, PolySchedule)
    assert optimization.schedule.initial_lr == 0.02


def test_frozen_encoders_need_pretrained_weights_and_stay_out_of_the_optimiser() -> None:
    trainer = build_trainer("recurrence", _context(), {"freeze_encoders": True})
    network = trainer.build_network()
    assert not any(p.requires_grad for p in network.encoders.parameters())
    with pytest.raises(TumorsegError, match="no --pretrained run was given"):
        optimization_for(trainer, network, LoopSettings())
    optimization = optimization_for(trainer, network, LoopSettings(pretrained="/x/ck.pt"))
    optimised = {id(p) for g in optimization.optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in network.encoders.parameters()}
    assert optimised == {id(p) for p in network.parameters() if p.requires_grad}


def test_oversampling_centres_on_labels_or_the_recurrence() -> None:
    trainer = build_trainer("recurrence", _context())
    policy = trainer.sampling_policy(LoopSettings(oversample_foreground=1.0))
    only_recurrence = {"class_locations": {}, "target_locations": {"recurrence": [[1, 2, 3]]}}
    rng = np.random.default_rng(0)
    assert policy.centre(rng, 0, 2, only_recurrence) == [1, 2, 3]
    both = {"class_locations": {"1": [[5, 5, 5]]}, "target_locations": {"recurrence": [[1, 2, 3]]}}
    centres = {tuple(policy.centre(rng, 1, 2, both)) for _ in range(40)}
    assert centres == {(5, 5, 5), (1, 2, 3)}
    random_first = trainer.sampling_policy(LoopSettings(oversample_foreground=0.5))
    assert random_first.centre(rng, 0, 2, both) is None


# ---- transfer mapping --------------------------------------------------------------------------
def _unet_state(configuration: str = "2d", features=(4, 8, 16), channels=CHANNELS) -> dict:
    context = _context(configuration, channels=list(channels))
    if features != (4, 8, 16):
        base = context.configuration.topology
        n = len(features)
        topology = dataclasses.replace(
            base,
            features_per_stage=features,
            kernel_sizes=(base.kernel_sizes[0],) * n,
            strides=(base.strides[0], *(base.strides[1],) * (n - 1)),
        )
        config = dataclasses.replace(context.configuration, topology=topology)
        context = dataclasses.replace(context, configuration=config)
    torch.manual_seed(7)
    return build_trainer("default", context).build_network().state_dict()


def _transfer(trainer, state: dict, names=NAMES, details=None) -> dict:
    config = {"trainer_details": details} if details else {}
    source = SourceWeights(state, Path("/runs/src/fold_all/checkpoint_final.pt"), config, names)
    return trainer.transfer_weights(source, trainer.build_network().state_dict())


def test_unet_encoder_maps_onto_both_encoders_with_sliced_first_convolution() -> None:
    trainer = build_trainer("recurrence", _context())
    state = _unet_state()
    copied = _transfer(trainer, state)
    encoder = {k: v for k, v in state.items() if k.startswith("encoder.")}
    assert len(copied) == 2 * len(encoder)
    assert all(k.startswith("encoders.") for k in copied)
    first = state["encoder.0.0.conv.weight"]  # (4 features, 4 channels T1 T1c T2 FLAIR, 3, 3)
    torch.testing.assert_close(copied["encoders.0.0.0.conv.weight"], first[:, [3]])  # FLAIR
    torch.testing.assert_close(copied["encoders.1.0.0.conv.weight"], first[:, [1]])  # T1c
    for key, tensor in encoder.items():
        if key != "encoder.0.0.conv.weight":
            for e in (0, 1):
                assert torch.equal(copied[f"encoders.{e}." + key[len("encoder.") :]], tensor)
    details = trainer.transfer_details()
    assert details["layout"] == "unet"
    assert details["mapping"]["encoders.0.0.0.conv.weight"] == "encoder.0.0.conv.weight[:, [3]]"
    assert details["mapping"]["encoders.1.2.1.norm.bias"] == "encoder.2.1.norm.bias"
    assert "FLAIR" in details["summary"][0]
    assert "input columns [1]" in details["summary"][1]


def test_2_5d_transfer_takes_every_slice_of_the_modality() -> None:
    trainer = build_trainer("recurrence", _context("2.5d"))
    state = _unet_state("2.5d")
    copied = _transfer(trainer, state)
    first = state["encoder.0.0.conv.weight"]
    torch.testing.assert_close(copied["encoders.0.0.0.conv.weight"], first[:, [9, 10, 11]])


def test_recurrence_run_encoders_transfer_by_modality() -> None:
    context = _context()
    source_trainer = build_trainer("recurrence", context, {"encoders": "T1c|FLAIR"})
    torch.manual_seed(3)
    state = source_trainer.build_network().state_dict()
    trainer = build_trainer("recurrence", context)  # FLAIR | T1c: the source's order reversed
    copied = _transfer(trainer, state, details=source_trainer.details())
    assert torch.equal(copied["encoders.0.1.0.conv.weight"], state["encoders.1.1.0.conv.weight"])
    assert torch.equal(copied["encoders.1.0.0.conv.weight"], state["encoders.0.0.0.conv.weight"])
    assert trainer.transfer_details()["layout"] == "recurrence"


@pytest.mark.parametrize(
    ("source", "names", "message"),
    [
        (
            lambda: _unet_state("3d_fullres"),
            NAMES,
            "the checkpoint's network is 3d, this run is 2d",
        ),
        (lambda: _unet_state(features=(8, 16, 32)), NAMES, "feature widths or kernels differ"),
        (lambda: _unet_state(features=(4, 8)), NAMES, "fewer stages"),
        (lambda: _unet_state(features=(4, 8, 16, 16)), NAMES, "more stages"),
        (lambda: {"branch_a.0.weight": torch.zeros(1)}, NAMES, "holds no U-Net encoder"),
        (_unet_state, ("T1", "T1c", "T2", "T2"), "no FLAIR channel"),
        (_unet_state, None, "cannot tell which input channel"),
        (_unet_state, ("T1", "T1c"), "takes 4 input channels, but its run has 2 channels"),
    ],
)
def test_incompatible_sources_are_one_line_errors(source, names, message) -> None:
    trainer = build_trainer("recurrence", _context())
    with pytest.raises(TumorsegError, match=message) as info:
        _transfer(trainer, source(), names=names)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("/runs/src/fold_all/checkpoint_final.pt: ")


def test_transfer_keeps_topology_checks_for_other_kernels() -> None:
    context = _context()
    topology = context.configuration.topology
    kernels = NetworkTopology(topology.network, topology.features_per_stage,
                              ((1, 3), (3, 3), (3, 3)), topology.strides)  # fmt: skip
    other = dataclasses.replace(
        context, configuration=dataclasses.replace(context.configuration, topology=kernels)
    )
    torch.manual_seed(0)
    state = build_trainer("default", other).build_network().state_dict()
    with pytest.raises(TumorsegError, match="feature widths or kernels differ"):
        _transfer(build_trainer("recurrence", context), state)
