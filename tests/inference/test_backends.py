"""ONNX export and the ONNX Runtime / OpenVINO backends against the PyTorch backend."""

from __future__ import annotations

import builtins
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.inference.tiny_run import DATASET, GEOMETRY, RUN, write_raw_case, write_tiny_run
from tumorseg.data.io import read_image
from tumorseg.errors import TumorsegError
from tumorseg.inference.predictor import Predictor

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")


def _images(folder: Path, case: str = "case") -> list[np.ndarray]:
    return [read_image(folder / f"{case}_{c:04d}.nii.gz")[0] for c in range(4)]


@pytest.fixture
def run_and_case(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    run = write_tiny_run(tmp_path / "results", folds=(0, 1))
    write_raw_case(tmp_path / "in", "case", seed=7)
    return run, _images(tmp_path / "in")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_onnx_backends_match_torch_probabilities(run_and_case, backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    run, images = run_and_case
    folds = [run / "fold_0", run / "fold_1"]
    expected = Predictor(folds, tta=True, optimize=False).predict_case(images, GEOMETRY)
    predictor = Predictor(folds, tta=True, backend=backend, precision="fp32")
    got = predictor.predict_case(images, GEOMETRY)
    assert got.shape == expected.shape == (3, *GEOMETRY.shape)
    assert float(np.abs(got - expected).max()) <= 1e-3
    # The tiny random network's probabilities are spread, so this is not a constant output.
    assert float(expected.std()) > 1e-3


def test_export_model_onnx_zip_installs_and_predicts(tmp_path: Path, monkeypatch) -> None:
    from tumorseg.cli import app

    results = tmp_path / "results"
    write_tiny_run(results, folds=(0, 1))
    archive = tmp_path / "model.zip"
    result = CliRunner().invoke(
        app,
        [
            "export-model",
            "1",
            "-c",
            "3d_fullres",
            "-o",
            str(archive),
            "--format",
            "onnx",
            "--results",
            str(results),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "opset 18" in result.output
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("tumorseg_model.json"))
    for fold in ("fold_0", "fold_1"):
        assert f"{DATASET}/{RUN}/{fold}/network_final.onnx" in names
        assert f"{DATASET}/{RUN}/{fold}/checkpoint_final.pt" in names
    assert manifest["onnx_opset"] == 18
    assert manifest["folds"] == ["fold_0", "fold_1"]
    assert manifest["sliding_window"]["patch_size"] == [8, 8, 8]
    assert manifest["sliding_window"]["step_size"] == 0.5
    assert manifest["preprocessing"]["spacing"] == [2.0, 2.0, 2.0]
    assert manifest["preprocessing"]["normalization"] == ["zscore_brain"] * 4
    train_config = json.loads(
        (results / DATASET / RUN / "fold_0" / "train_config.json").read_text()
    )
    assert manifest["output"]["names"] == train_config["output_names"]
    assert manifest["output"]["activation"] == "sigmoid"
    assert manifest["input"]["shape"] == ["batch", 4, 8, 8, 8]

    installed = tmp_path / "installed"
    result = CliRunner().invoke(app, ["install-model", str(archive), "--results", str(installed)])
    assert result.exit_code == 0, result.output
    run = installed / DATASET / RUN
    assert (run / "fold_0" / "network_final.onnx").is_file()

    # The installed graphs are used as they are: exporting again would fail here.
    import tumorseg.inference.onnx_export as onnx_export

    def no_export(*args, **kwargs):
        raise AssertionError("the installed ONNX graph must be used")

    monkeypatch.setattr(onnx_export, "export_onnx", no_export)
    write_raw_case(tmp_path / "in", "case", seed=3)
    images = _images(tmp_path / "in")
    folds = [run / "fold_0", run / "fold_1"]
    got = Predictor(folds, tta=False, backend="onnxruntime").predict_case(images, GEOMETRY)
    expected = Predictor(folds, tta=False, optimize=False).predict_case(images, GEOMETRY)
    assert float(np.abs(got - expected).max()) <= 1e-3


def test_missing_runtime_is_one_line(run_and_case, monkeypatch) -> None:
    run, _ = run_and_case
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    monkeypatch.delitem(__import__("sys").modules, "openvino", raising=False)
    with pytest.raises(TumorsegError) as caught:
        Predictor([run / "fold_0"], backend="openvino")
    message = str(caught.value)
    assert "\n" not in message
    assert "pip install 'tumorseg[openvino]'" in message


def test_cli_predict_with_onnxruntime_writes_labels(tmp_path: Path) -> None:
    from tumorseg.cli import app

    results = tmp_path / "results"
    write_tiny_run(results)
    write_raw_case(tmp_path / "in", "case", seed=1)
    base = [
        "predict",
        "-i",
        str(tmp_path / "in"),
        "-d",
        "1",
        "-c",
        "3d_fullres",
        "-f",
        "0",
        "--no-tta",
        "--results",
        str(results),
        "-q",
    ]
    result = CliRunner().invoke(
        app, [*base, "-o", str(tmp_path / "ort"), "--backend", "onnxruntime"]
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "torch"), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    ort_labels = read_image(tmp_path / "ort" / "case.nii.gz")[0]
    torch_labels = read_image(tmp_path / "torch" / "case.nii.gz")[0]
    # Probabilities agree to 1e-3; a label may differ only where one sits within that of 0.5.
    assert float(np.mean(ort_labels == torch_labels)) > 0.99


@pytest.mark.parametrize(
    ("trainer_name", "configuration"),
    [("pairing", "3d_fullres"), ("msf", "2d"), ("clfc", "2.5d")],
)
def test_published_trainers_export_to_onnx(trainer_name: str, configuration: str) -> None:
    """The predictor exports graphs without re-checking them, so every trainer's network is
    checked here, on a batch size other than the export's."""
    import onnxruntime
    import torch

    from tests.trainers.test_trainer_contract import tiny_context
    from tumorseg.inference.onnx_export import export_onnx
    from tumorseg.trainers import build_trainer

    context = tiny_context(configuration)
    trainer = build_trainer(trainer_name, context)
    torch.manual_seed(0)
    network = trainer.build_network().eval()
    channels = len(context.channels) * context.configuration.input_channels_per_modality
    shape = (channels, *context.configuration.patch_size)
    graph = export_onnx(trainer, network, shape, check=False)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(5))
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    got = torch.sigmoid(torch.from_numpy(session.run(None, {"image": x.numpy()})[0]))
    with torch.inference_mode():
        expected = torch.sigmoid(trainer.predict_logits(network, x))
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= 1e-3
