"""Contract suite run for EVERY registered trainer x every 2d / 2.5d / 3d_fullres it supports.

A trainer added to ``TRAINERS`` is picked up automatically: its step gets a tiny batch with
exactly the inputs it declares, its optional hooks (optimiser + schedule, sampling policy) are
built and exercised. The same checks run on the probe trainer of ``tests.trainers.probe``,
which declares one input of every kind. The tiny contexts built here (``tiny_context``) are
importable by other tests.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pytest
import torch

from tests.trainers.probe import build_probe
from tumorseg.constants import Configuration, TrainerName
from tumorseg.data.dataset_json import DatasetJson, brats_dataset_json
from tumorseg.data.labels import LabelConvention
from tumorseg.errors import TumorsegError
from tumorseg.planning.plans import PLANS_SCHEMA_VERSION, ConfigurationPlan, NetworkTopology, Plans
from tumorseg.trainers import TRAINERS, build_trainer, trainer_names
from tumorseg.trainers.base import StepResult, TrainerContext
from tumorseg.trainers.hooks import (
    declared_inputs,
    optimization_for,
    sampling_policy_for,
    target_outputs,
)
from tumorseg.trainers.inputs import (
    BATCH_KEYS,
    BatchInput,
    ExtraTarget,
    ReferenceImage,
    check_inputs,
)
from tumorseg.trainers.settings import make_settings
from tumorseg.training.config import LoopSettings

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


#: Every tiny dataset declares a recurrence target (additive: trainers that do not ask for it
#: never see it), so trainers that need one are covered too.
TARGETS = {"recurrence": "recurrenceTr"}


def softmax_dataset_json() -> DatasetJson:
    return DatasetJson(
        channel_names=dict(enumerate(CHANNELS)),
        labels={"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3},
        num_training=4,
        targets=dict(TARGETS),
    )


def tiny_context(configuration: str, dataset: DatasetJson | None = None) -> TrainerContext:
    """A hand-built context: BraTS regions (and a recurrence target) by default, all four
    channels."""
    dataset = dataset or brats_dataset_json(
        CHANNELS, 4, LabelConvention.BRATS2023, name="Tiny", targets=TARGETS
    )
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


def tiny_batch(
    context: TrainerContext, in_channels: int, seed: int = 0, inputs: Sequence[BatchInput] = ()
) -> dict:
    """``data (2, C_in, *patch)`` noise and a ``target (2, 1, *patch)`` with every label, plus
    exactly the declared ``inputs`` with the shapes and dtypes the loader delivers."""
    generator = torch.Generator().manual_seed(seed)
    patch = context.configuration.patch_size
    data = torch.randn((2, in_channels, *patch), generator=generator)
    target = torch.randint(0, 4, (2, 1, *patch), generator=generator)
    batch: dict = {"data": data, "target": target}
    slices = context.configuration.input_channels_per_modality
    for spec in inputs:
        key = BATCH_KEYS[type(spec)]
        if isinstance(spec, ExtraTarget):
            value = torch.randint(0, 2, (2, 1, *patch), generator=generator)
        elif isinstance(spec, ReferenceImage):
            value = torch.randn((2, spec.channels * slices, *patch), generator=generator)
        else:
            value = torch.rand((2, 1, *patch), generator=generator) > 0.5
        batch.setdefault(key, {})[spec.name] = value
    return batch


CASES = [
    pytest.param(name, config, id=f"{name.value}-{config}")
    for name, cls in TRAINERS.items()
    for config in CONTRACT_CONFIGURATIONS
    if config in cls.supported_configurations
]
DATASETS = {
    "regions": lambda: brats_dataset_json(CHANNELS, 4, LabelConvention.BRATS2023, targets=TARGETS),
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
    # Segmentation outputs follow the dataset; target outputs (one sigmoid channel per extra
    # target) need sigmoid channels throughout.
    expected = "sigmoid" if dataset.has_regions or target_outputs(trainer) else "softmax"
    assert trainer.output_activation == expected
    check_step_contract(trainer, context)


def check_step_contract(trainer: Any, context: TrainerContext) -> None:
    """Build, step on a batch with exactly the declared inputs, learn, predict."""
    network = trainer.build_network()
    inputs = declared_inputs(trainer)
    check_inputs(inputs, context, trainer.name)
    batch = tiny_batch(context, _in_channels(context), inputs=inputs)
    patch = context.configuration.patch_size
    k = len(trainer.output_names)

    network.train()
    step = trainer.training_step(network, batch)
    assert isinstance(step, StepResult)
    loss, logs = step.loss, step.logs
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    assert all(isinstance(v, float) for v in logs.values())
    assert logs["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    # The loop's pseudo-Dice reads these logits: full resolution, one channel per output.
    assert step.logits.shape == (2, k, *patch)

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
        validation = trainer.training_step(network, batch)  # the loop's validation batches
    assert logits.shape == (2, k, *patch)
    assert torch.isfinite(logits).all()
    assert validation.logits.shape == (2, k, *patch)
    assert torch.isfinite(validation.loss)


def check_hooks_contract(trainer: Any, context: TrainerContext) -> None:
    """The optimiser covers the trainable weights and steps; the schedule gives a positive rate
    and its state survives a ``weights_only`` round trip; the sampling policy is picklable and
    answers with a centre the loader can use."""
    network = trainer.build_network().train()
    loop = LoopSettings()
    optimization = optimization_for(trainer, network, loop)
    optimised = {id(p) for g in optimization.optimizer.param_groups for p in g["params"]}
    trainable = {id(p) for p in network.parameters() if p.requires_grad}
    assert trainable <= optimised
    schedule = optimization.schedule
    assert schedule.lr(0, 10) > 0
    schedule.end_epoch(0, {"train_loss": 1.0, "val_loss": 1.0, "mean_dice": 0.5, "ema_dice": 0.5})
    buffer = io.BytesIO()
    torch.save(schedule.state_dict(), buffer)
    buffer.seek(0)
    schedule.load_state_dict(torch.load(buffer, weights_only=True))
    batch = tiny_batch(context, _in_channels(context), inputs=declared_inputs(trainer))
    before = [p.detach().clone() for p in network.parameters()]
    trainer.training_step(network, batch).loss.backward()
    optimization.optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, network.parameters(), strict=True))
    describe = optimization.describe()
    assert describe["optimizer"] == type(optimization.optimizer).__name__
    json.dumps(describe)

    policy = pickle.loads(pickle.dumps(sampling_policy_for(trainer, loop)))
    properties = {"class_locations": {"1": [[3, 4, 5]]}, "target_locations": {}}
    rng = np.random.default_rng(0)
    for sample in range(2):
        centre = policy.centre(rng, sample, 2, properties)
        assert centre is None or len(centre) == 3


@pytest.mark.parametrize(("name", "configuration"), CASES)
def test_optimisation_and_sampling_hooks(name: TrainerName, configuration: str) -> None:
    context = tiny_context(configuration)
    check_hooks_contract(build_trainer(name.value, context), context)


@pytest.mark.parametrize("configuration", CONTRACT_CONFIGURATIONS)
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"optimizer": "adam_plateau", "sampling": "lesion_slices"},
        {"optimizer": "scaled_groups"},
    ],
)
def test_the_suite_covers_declared_inputs_and_hooks(configuration: str, settings: dict) -> None:
    # The probe declares an extra target, a reference image and a mask and uses each one, so
    # the suite's batch must carry them (a missing one fails with KeyError).
    dataset = brats_dataset_json(
        CHANNELS, 4, LabelConvention.BRATS2023, targets={"recurrence": "recurrenceTr"}
    )
    context = tiny_context(configuration, dataset)
    trainer = build_probe(context, settings)
    assert {type(spec) for spec in declared_inputs(trainer)} == set(BATCH_KEYS)
    check_step_contract(trainer, context)
    check_hooks_contract(trainer, context)


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
