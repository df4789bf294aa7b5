"""A fold's network as ONNX, and a run's folds as an ONNX model zip (export-model --format onnx).

The graph is ``trainer.predict_logits(network, x)`` of the eval-mode network: input ``image``
``(batch, C_in, *patch)`` float32, output ``logits`` ``(batch, K, *patch)`` float32, the batch
dimension dynamic. It is captured with ``torch.export`` (``torch.onnx.export(dynamo=True)``, the
maintained exporter; TorchScript tracing is deprecated) at opset ``ONNX_OPSET``, and every export
is checked against PyTorch on a random batch before it is used or written.

The zip is the ``export-model`` zip of ``tumorseg.inference.model_sharing`` plus one
``fold_<k>/network_<checkpoint>.onnx`` per fold and checkpoint, with the manifest extended by
what a runtime outside tumorseg needs to reproduce the pipeline: the opset, the input and output
layout, the preprocessing parameters and the sliding-window settings.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tumorseg.errors import TumorsegError
from tumorseg.inference.backends import require
from tumorseg.inference.sliding_window import GAUSSIAN_FLOOR, GAUSSIAN_SIGMA_SCALE
from tumorseg.planning.plans import ConfigurationPlan, Plans

#: ONNX opset of exported graphs: 18 is the newest that ONNX Runtime (>= 1.14) and OpenVINO
#: (>= 2023.0) both run, and the exporter's default.
ONNX_OPSET = 18
#: Probabilities of the exported graph may differ from PyTorch by float reassociation only.
EXPORT_TOLERANCE = 1e-3
#: Name of a fold's ONNX file for a checkpoint name.
ONNX_NAME = "network_{checkpoint}.onnx"


class _Logits(nn.Module):
    """``trainer.predict_logits(network, x)`` as a module, so it is exported as one graph."""

    def __init__(self, trainer: Any, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.trainer = trainer

    def forward(self, x: Tensor) -> Tensor:
        return self.trainer.predict_logits(self.network, x)


def export_onnx(
    trainer: Any,
    network: nn.Module,
    input_shape: tuple[int, ...],
    opset: int = ONNX_OPSET,
    *,
    check: bool = True,
) -> bytes:
    """The serialised ONNX graph of one fold; ``input_shape`` is ``(C_in, *patch)``.

    Raises a one-line ``TumorsegError`` when the exporter packages are missing, when the network
    cannot be captured, or (``check``) when the graph disagrees with PyTorch by more than
    ``EXPORT_TOLERANCE`` in sigmoid / softmax probabilities (run with ONNX Runtime when
    installed). The check runs both on one full-size tile in float32, which for the plans' 1 mm
    network costs about as much as predicting ten tiles with OpenVINO.
    """
    require("onnx", "onnx", "ONNX export")
    require("onnxscript", "onnx", "ONNX export")
    module = _Logits(trainer, network.eval()).eval()
    example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=1024)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=["image"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "not exportable"
        raise TumorsegError(
            f"the network of trainer {type(trainer).__name__} could not be exported to ONNX "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "predict with --backend torch"
        ) from None
    assert program is not None  # dynamo=True always returns a program
    model = program.model_proto.SerializeToString()
    # One input is enough to catch a wrong graph and halves the cost (a float32 ONNX Runtime pass
    # of a 1 mm tile takes seconds); the export itself needs two, or the batch gets fixed at 1.
    if check:
        _check_against_torch(model, module, example[:1], trainer)
    return model


def _check_against_torch(model: bytes, module: nn.Module, example: Tensor, trainer: Any) -> None:
    try:
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"image": example.numpy()})[0])
    with torch.inference_mode():
        expected = module(example)
    activation = getattr(trainer, "output_activation", "sigmoid")
    dim = 1 if activation == "softmax" else None

    def probabilities(logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=1) if dim else torch.sigmoid(logits)

    error = float((probabilities(got) - probabilities(expected)).abs().max())
    if error > EXPORT_TOLERANCE:
        raise TumorsegError(
            f"the exported ONNX graph differs from the PyTorch network by {error:.2g} in "
            f"probabilities (tolerance {EXPORT_TOLERANCE}); predict with --backend torch"
        )


def onnx_manifest(
    plans: Plans,
    config: ConfigurationPlan,
    trainer: Any,
    input_shape: tuple[int, ...],
    opset: int,
) -> dict[str, Any]:
    """What a runtime needs besides the graphs: layout, preprocessing, sliding window."""
    n_spatial = len(config.patch_size)
    channels = [int(c) for c in getattr(trainer.context, "channels", ()) or ()]
    return {
        "onnx_opset": opset,
        "input": {
            "name": "image",
            "layout": "(batch, channels, *patch) float32",
            "shape": ["batch", *input_shape],
            "channels": channels,
            "channel_names": [plans.channel_names[c] for c in channels],
        },
        "output": {
            "name": "logits",
            "layout": "(batch, outputs, *patch) float32 logits",
            "names": list(trainer.output_names),
            "activation": trainer.output_activation,
        },
        "preprocessing": {
            "transpose_forward": list(plans.transpose_forward),
            "spacing": list(config.spacing),
            "normalization": list(plans.normalization),
            "crop": "to the bounding box of voxels non-zero in any channel",
            "resampling_order_image": config.resampling_order_image,
            "anisotropy_threshold": config.anisotropy_threshold,
            "context_slices": config.context_slices if n_spatial == 2 else 0,
        },
        "sliding_window": {
            "patch_size": list(config.patch_size),
            "step_size": 0.5,
            "gaussian_sigma_scale": GAUSSIAN_SIGMA_SCALE,
            "gaussian_floor": GAUSSIAN_FLOOR,
            "mirror_axes": list(range(n_spatial)),
            "fold_average": "mean of the folds' probabilities",
        },
    }


def fold_onnx(fold_folder: Path, checkpoint: str) -> Path:
    """Where ``export-model --format onnx`` puts a fold's graph (present once installed)."""
    return Path(fold_folder) / ONNX_NAME.format(checkpoint=checkpoint)


def export_onnx_model(
    run_folder: Path,
    folds: Sequence[Path],
    output: Path,
    checkpoints: Sequence[str] = ("final",),
    opset: int = ONNX_OPSET,
) -> Path:
    """The ``export-model`` zip of ``folds`` plus each fold's ONNX graph per checkpoint and the
    ONNX entries of the manifest (see the module docstring); returns ``output``."""
    from tumorseg.inference.model_sharing import export_model
    from tumorseg.runs.trained import load_trained_model

    extra: list[tuple[str, bytes]] = []
    manifest: dict[str, Any] = {}
    for fold in folds:
        for checkpoint in checkpoints:
            trainer, network, config, plans = load_trained_model(Path(fold), checkpoint)
            shape = input_shape_of(trainer, config)
            extra.append(
                (
                    f"{Path(fold).name}/{ONNX_NAME.format(checkpoint=checkpoint)}",
                    export_onnx(trainer, network, shape, opset),
                )
            )
            manifest = onnx_manifest(plans, config, trainer, shape, opset)
    manifest["onnx_files"] = [name for name, _ in extra]
    return export_model(
        run_folder, folds, output, checkpoints, extra_members=extra, manifest_extra=manifest
    )


def input_shape_of(trainer: Any, config: ConfigurationPlan) -> tuple[int, ...]:
    """``(C_in, *patch)`` of the network: channels times slices (2.5d), then the patch."""
    n_spatial = len(config.patch_size)
    slices = 2 * config.context_slices + 1 if n_spatial == 2 else 1
    return (len(trainer.context.channels) * slices, *config.patch_size)
