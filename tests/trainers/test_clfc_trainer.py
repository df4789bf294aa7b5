"""The clfc trainer: regions, ablation switches, preparation from a normal-appearance model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainers.normal_fixtures import TINY_NORMAL, write_normal_run
from tests.trainers.test_trainer_contract import softmax_dataset_json, tiny_batch, tiny_context
from tumorseg.errors import TumorsegError
from tumorseg.trainers import build_trainer
from tumorseg.trainers.clfc import ABSENT_LOGIT
from tumorseg.trainers.hooks import TrainingPreparation, declared_inputs
from tumorseg.trainers.inputs import ReferenceImage, RegionMask
from tumorseg.trainers.normal_model import file_sha256, load_normal_model


def _preparation(tmp_path: Path) -> TrainingPreparation:
    fold = tmp_path / "results" / "Dataset001_Tiny" / "clfc__tumorsegPlans__2.5d" / "fold_0"
    fold.mkdir(parents=True)
    return TrainingPreparation(fold.parent.parent, fold, "cpu", lambda _: None)


def test_declared_inputs_follow_the_ablation_switches() -> None:
    context = tiny_context("2.5d")
    full = declared_inputs(build_trainer("clfc", context))
    assert full == (
        ReferenceImage("pseudo_healthy_t1", 1, full[0].missing_hint),
        RegionMask("normal", "normal"),
    )
    baseline2 = declared_inputs(build_trainer("clfc", context, {"simsiam": False}))
    assert [type(i) for i in baseline2] == [ReferenceImage]
    assert declared_inputs(build_trainer("clfc", context, {"reference": False})) == ()
    t1c = declared_inputs(build_trainer("clfc", context, {"reference_modality": "t1ce"}))
    assert t1c[0].name == "pseudo_healthy_t1c"


def test_reference_slices_are_the_t1_slices() -> None:
    context = tiny_context("2.5d")  # channels T1, T1c, T2, FLAIR; 3 slices each
    assert build_trainer("clfc", context).reference_slices == (0, 1, 2)
    trainer = build_trainer("clfc", context, {"reference_modality": "T2"})
    assert trainer.reference_slices == (6, 7, 8)


def test_whole_tumour_setting_trains_one_output_and_reports_the_others_empty() -> None:
    torch.manual_seed(0)
    context = tiny_context("2.5d")
    trainer = build_trainer("clfc", context, {"regions": "whole_tumor"})
    network = trainer.build_network()
    assert network.head.out_channels == 1
    batch = tiny_batch(context, 12, inputs=declared_inputs(trainer))
    step = trainer.training_step(network.train(), batch)
    assert step.logits.shape == (2, 3, 16, 16)
    assert trainer.output_names[0] == "whole_tumor"
    assert (step.logits[:, 1:] == ABSENT_LOGIT).all()
    assert torch.isfinite(step.logits[:, 0]).all()
    labels = tiny_context("2.5d", softmax_dataset_json())
    with pytest.raises(TumorsegError, match="regions=whole_tumor needs a dataset with regions"):
        build_trainer("clfc", labels, {"regions": "whole_tumor"})


def test_loss_adds_the_weighted_simsiam_term() -> None:
    torch.manual_seed(0)
    context = tiny_context("2.5d")
    batch = tiny_batch(context, 12, inputs=declared_inputs(build_trainer("clfc", context)))
    results = {}
    for weight in (0.0, 2.0):
        trainer = build_trainer("clfc", context, {"simsiam_weight": weight})
        torch.manual_seed(1)
        network = trainer.build_network().train()
        torch.manual_seed(2)  # the same SimSiam pixel sample
        results[weight] = trainer.training_step(network, batch)
    a, b = results[0.0], results[2.0]
    assert a.logs["segmentation_loss"] == pytest.approx(b.logs["segmentation_loss"], rel=1e-5)
    expected = b.logs["segmentation_loss"] + 2.0 * b.logs["simsiam_loss"]
    assert float(b.loss.detach()) == pytest.approx(expected, rel=1e-5)
    baseline2 = build_trainer("clfc", context, {"simsiam": False})
    step = baseline2.training_step(baseline2.build_network().train(), batch)
    assert "simsiam_loss" not in step.logs


def test_deep_supervision_is_refused() -> None:
    with pytest.raises(TumorsegError, match="deep_supervision must be false"):
        build_trainer("clfc", tiny_context("2.5d"), {"deep_supervision": True})


def test_prepare_loads_the_normal_model_and_adopts_its_architecture(tmp_path: Path) -> None:
    preparation = _preparation(tmp_path)
    folder = write_normal_run(preparation.results_dataset, latent_dim=6)
    trainer = build_trainer("clfc", tiny_context("2.5d"))
    (producer,) = trainer.prepare_training(preparation)
    assert trainer.settings.normal_latent_dim == 6
    assert trainer.settings.normal_channels == TINY_NORMAL["channels"]
    assert producer.name == "pseudo_healthy_t1"
    assert producer.version == file_sha256(folder / "checkpoint_final.pt")
    assert (preparation.fold_folder / "normal_model.json").is_file()
    # The network carries the model's weights, so inference needs no normal-model folder.
    network = trainer.build_network()
    model, _ = load_normal_model(folder)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(network.normal_model.state_dict()[key], value)
    # The producer is the model applied to the T1 channel (channel 0) of a case.
    data = np.random.default_rng(0).normal(size=(4, 3, 16, 16)).astype(np.float32)
    image = producer.compute(data)
    assert image.shape == (1, 3, 16, 16)
    with torch.no_grad():
        expected = model(torch.from_numpy(data[0][:, None]), (1.0, 1.0))[:, 0].numpy()
    np.testing.assert_allclose(image[0], expected, rtol=1e-5, atol=1e-6)


def test_missing_normal_model_says_which_train_normal_to_run(tmp_path: Path) -> None:
    preparation = _preparation(tmp_path)
    trainer = build_trainer("clfc", tiny_context("2.5d"))
    with pytest.raises(TumorsegError, match=r"run `tumorseg train-normal Dataset001_Tiny` first"):
        trainer.prepare_training(preparation)
    named = build_trainer("clfc", tiny_context("2.5d"), {"normal_model": "normal_appearance-x"})
    with pytest.raises(TumorsegError, match="normal-appearance model 'normal_appearance-x' not"):
        named.prepare_training(preparation)
    # Baseline-1 needs none.
    assert build_trainer("clfc", tiny_context("2.5d"), {"reference": False}).prepare_training(
        preparation
    ) == []


def test_several_normal_models_need_a_choice(tmp_path: Path) -> None:
    preparation = _preparation(tmp_path)
    write_normal_run(preparation.results_dataset, seed=1)
    write_normal_run(preparation.results_dataset, seed=2)
    with pytest.raises(TumorsegError, match="several normal-appearance models"):
        build_trainer("clfc", tiny_context("2.5d")).prepare_training(preparation)


def test_corrupt_normal_checkpoint_is_one_line(tmp_path: Path) -> None:
    preparation = _preparation(tmp_path)
    folder = write_normal_run(preparation.results_dataset)
    (folder / "checkpoint_final.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(TumorsegError) as info:
        build_trainer("clfc", tiny_context("2.5d")).prepare_training(preparation)
    message = str(info.value)
    assert "is not a readable normal-appearance checkpoint" in message
    assert "\n" not in message
    assert not (preparation.fold_folder / "normal_model.json").exists()


def test_save_attention_needs_clfc_with_its_reference() -> None:
    from tumorseg.reporting.attention import check_attention_trainer

    context = tiny_context("2.5d")
    check_attention_trainer(build_trainer("clfc", context))
    for trainer in (
        build_trainer("default", context),
        build_trainer("clfc", context, {"reference": False}),
    ):
        with pytest.raises(TumorsegError, match="--save-attention shows the attention maps"):
            check_attention_trainer(trainer)
