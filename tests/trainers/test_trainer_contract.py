"""Contract suite run for EVERY registered trainer x every 2d / 2.5d / 3d_fullres it supports.

A trainer added to ``TRAINERS`` is picked up automatically. The tiny contexts built here
(``tiny_context``) are importable by other tests.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import pytest
import torch

from tumorseg.constants import Configuration, LabelConvention, TrainerName
from tumorseg.data.dataset_json import DatasetJson, brats_dataset_json
from tumorseg.errors import TumorsegError
from tumorseg.planning.plans import PLANS_SCHEMA_VERSION, ConfigurationPlan, NetworkTopology, Plans
from tumorseg.trainers import TRAINERS, build_trainer, trainer_names
from tumorseg.trainers.base import TrainerContext
from tumorseg.trainers.settings import make_settings

CHANNELS = ["T1", "T1c", "T2", "FLAIR"]
CONTRACT_CONFIGURATIONS = ("2d", "2.5d", "3d_fullres")


def tiny_configuration(name: str) -> ConfigurationPlan:
    """A 3-stage plan (features 4, 8, 16) with 16x16 or 16x16x16 patches."""
    dims = Configuration(name).spatial_dims
    ones, twos, threes = (1,) * dims, (2,) * dims, (3,) * dims
    topology = NetworkTopology(
        network="unet",
        features_per_stage=(4, 8, 16),
        kernel_sizes=(threes, threes, threes),
        strides=(ones, twos, twos),
    )
    return ConfigurationPlan(
        name=name,
        data_identifier=f"tiny_{name}",
        spatial_dims=dims,
        context_slices=1 if name == "2.5d" else 0,
        spacing=(1.0, 1.0, 1.0),
        median_shape=(16, 16, 16),
        patch_size=(16,) * dims,
        batch_size=2,
        topology=topology,
    )


def softmax_dataset_json() -> DatasetJson:
    return DatasetJson(
        channel_names=dict(enumerate(CHANNELS)),
        labels={"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3},
        num_training=4,
    )


def tiny_context(configuration: str, dataset: DatasetJson | None = None) -> TrainerContext:
    """A hand-built context: BraTS regions by default, all four channels."""
    dataset = dataset or brats_dataset_json(CHANNELS, 4, LabelConvention.BRATS2023, name="Tiny")
    config = tiny_configuration(configuration)
    plans = Plans(
        schema_version=PLANS_SCHEMA_VERSION,
        plans_name="tumorsegPlans",
        dataset_name="Dataset001_Tiny",
        channel_names=tuple(CHANNELS),
        normalization=("zscore_brain",) * len(CHANNELS),
        transpose_forward=(0, 1, 2),
        original_median_spacing=(1.0, 1.0, 1.0),
        original_median_shape=(16, 16, 16),
        memory_budget_gb=1.0,
        device="cpu",
        configurations={configuration: config},
    )
    return TrainerContext(plans, config, dataset, tuple(range(len(CHANNELS))))


def tiny_batch(context: TrainerContext, in_channels: int, seed: int = 0) -> dict:
    """``data (2, C_in, *patch)`` noise and a ``target (2, 1, *patch)`` with every label."""
    generator = torch.Generator().manual_seed(seed)
    patch = context.configuration.patch_size
    data = torch.randn((2, in_channels, *patch), generator=generator)
    target = torch.randint(0, 4, (2, 1, *patch), generator=generator)
    return {"data": data, "target": target}


CASES = [
    pytest.param(name, config, id=f"{name.value}-{config}")
    for name, cls in TRAINERS.items()
    for config in CONTRACT_CONFIGURATIONS
    if config in cls.supported_configurations
]
DATASETS = {
    "regions": lambda: brats_dataset_json(CHANNELS, 4, LabelConvention.BRATS2023),
    "labels": softmax_dataset_json,
}


@pytest.fixture(params=sorted(DATASETS))
def dataset(request: pytest.FixtureRequest) -> DatasetJson:
    return DATASETS[request.param]()


def _in_channels(context: TrainerContext) -> int:
    return len(context.channels) * context.configuration.input_channels_per_modality


@pytest.mark.parametrize(("name", "configuration"), CASES)
def test_builds_forwards_and_learns(
    name: TrainerName, configuration: str, dataset: DatasetJson
) -> None:
    torch.manual_seed(0)
    context = tiny_context(configuration, dataset)
    trainer = build_trainer(name.value, context)
    assert trainer.name == name.value
    assert trainer.output_activation == ("sigmoid" if dataset.has_regions else "softmax")
    network = trainer.build_network()
    batch = tiny_batch(context, _in_channels(context))
    patch = context.configuration.patch_size
    k = len(trainer.output_names)

    network.train()
    step = trainer.training_step(network, batch)
    loss, logs = step.loss, step.logs
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    assert all(isinstance(v, float) for v in logs.values())
    assert logs["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)

    before = [p.detach().clone() for p in network.parameters()]
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.0)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    changed = sum(not torch.equal(a, p) for a, p in zip(before, network.parameters(), strict=True))
    assert changed > len(before) // 2

    network.eval()
    with torch.no_grad():
        logits = trainer.predict_logits(network, batch["data"])
    assert logits.shape == (2, k, *patch)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(("name", "configuration"), CASES)
def test_settings_are_frozen_json_and_validated(name: TrainerName, configuration: str) -> None:
    context = tiny_context(configuration)
    trainer = build_trainer(name.value, context)
    settings = dataclasses.asdict(trainer.settings)
    first = next(iter(settings))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(trainer.settings, first, settings[first])
    # Settings survive train_config.json: rebuilding from the JSON gives the same settings.
    recorded = json.loads(json.dumps(settings))
    assert build_trainer(name.value, context, recorded).settings == trainer.settings
    with pytest.raises(TumorsegError, match=f"valid: .*{first}"):
        build_trainer(name.value, context, {"no_such_setting": 1})
    assert isinstance(type(trainer).loop_defaults, dict)


@pytest.mark.parametrize(("name", "configuration"), CASES)
def test_predict_logits_handles_training_mode(name: TrainerName, configuration: str) -> None:
    context = tiny_context(configuration)
    trainer = build_trainer(name.value, context)
    network = trainer.build_network().train()
    with torch.no_grad():
        logits = trainer.predict_logits(network, tiny_batch(context, _in_channels(context))["data"])
    assert logits.shape == (2, len(trainer.output_names), *context.configuration.patch_size)


def test_unknown_trainer_lists_registered_names() -> None:
    with pytest.raises(TumorsegError, match=r"unknown trainer 'nope'; valid: .*default") as info:
        build_trainer("nope", tiny_context("2d"))
    assert "\n" not in str(info.value)
    assert set(trainer_names()) == {n.value for n in TRAINERS}


def test_invalid_setting_value_is_one_line_error() -> None:
    context = tiny_context("3d_fullres")
    with pytest.raises(TumorsegError, match=r"dice_weight.*valid keys"):
        build_trainer("default", context, {"dice_weight": "heavy"})
    with pytest.raises(TumorsegError, match="deep_supervision"):
        build_trainer("default", context, {"deep_supervision": 3})
    with pytest.raises(TumorsegError, match="must be >= 0"):
        build_trainer("default", context, {"dice_weight": -1})
    # Strings from the command line are parsed.
    trainer = build_trainer("default", context, {"deep_supervision": "false", "ce_weight": "2"})
    assert trainer.settings.deep_supervision is False
    assert trainer.settings.ce_weight == 2.0


def test_unsupported_configuration_is_an_error() -> None:
    context = tiny_context("2d")
    for name, cls in TRAINERS.items():
        if "2d" not in cls.supported_configurations:
            with pytest.raises(TumorsegError, match="does not support configuration '2d'"):
                build_trainer(name.value, context)


# ---- the default trainer's own choices ---------------------------------------------------------
def test_default_outputs_follow_the_dataset() -> None:
    regions = build_trainer("default", tiny_context("2d"))
    assert regions.output_activation == "sigmoid"
    assert regions.output_names == ("whole_tumor", "tumor_core", "enhancing_tumor")
    labels = build_trainer("default", tiny_context("2d", softmax_dataset_json()))
    assert labels.output_names == ("background", "necrosis", "edema", "enhancing")
    gaps = DatasetJson(
        channel_names={0: "T1"}, labels={"background": 0, "tumor": 2}, num_training=1
    )
    with pytest.raises(TumorsegError, match="not consecutive"):
        build_trainer("default", tiny_context("2d", gaps))


def test_default_input_channels_and_batch_dice_per_configuration() -> None:
    two_half = build_trainer("default", tiny_context("2.5d"))
    assert two_half.build_network().encoder[0][0].conv.in_channels == 4 * 3
    assert two_half.batch_dice is True
    assert build_trainer("default", tiny_context("3d_fullres")).batch_dice is False
    forced = build_trainer("default", tiny_context("3d_fullres"), {"batch_dice": True})
    assert forced.batch_dice is True


def test_default_loss_is_fp32_under_autocast() -> None:
    context = tiny_context("2d")
    trainer = build_trainer("default", context)
    network = trainer.build_network().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        step = trainer.training_step(network, tiny_batch(context, 4))
        loss, logs = step.loss, step.logs
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert set(logs) == {"loss", "dice"}


def test_registry_entries_are_consistent() -> None:
    valid = {c.value for c in Configuration}
    for name, cls in TRAINERS.items():
        assert cls.name == name.value
        assert cls.supported_configurations
        assert set(cls.supported_configurations) <= valid
        assert dataclasses.is_dataclass(cls.settings_class)
        cls.settings_class()  # every field has a default


@dataclasses.dataclass(frozen=True)
class _Example:
    mode: Literal["a", "b"] = "a"
    ratio: float | None = None
    steps: int = 1
    names: tuple[str, ...] = ()


def test_make_settings_coerces_command_line_strings() -> None:
    made = make_settings("x", _Example, {"mode": "b", "ratio": "0.5", "steps": "3", "names": "p,q"})
    assert made == _Example("b", 0.5, 3, ("p", "q"))
    assert make_settings("x", _Example, {"ratio": "none", "names": ["r"]}).names == ("r",)
    with pytest.raises(TumorsegError, match="mode"):
        make_settings("x", _Example, {"mode": "c"})
    with pytest.raises(TumorsegError, match="steps"):
        make_settings("x", _Example, {"steps": 1.5})
