"""Whole-case prediction with one or more trained folds.

``predict_preprocessed`` turns a preprocessed volume into probabilities (used by the predictor and
by training's final validation); ``Predictor`` goes from raw images in their own geometry to
probabilities in that same geometry, averaging the folds of a run. Probabilities become label
maps in ``tumorseg.data.labels`` (``LabelManager.probabilities_to_labels``) and are written by
``tumorseg.inference.export``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry
from tumorseg.errors import TumorsegError
from tumorseg.inference.sliding_window import sliding_window_predict
from tumorseg.planning.plans import ConfigurationPlan
from tumorseg.trainers.hooks import target_outputs

#: Tiles per forward pass. Batching amortises per-call overhead on every device; 4 tiles of a
#: typical 3D patch stay well inside a GPU's memory next to the network's activations.
DEFAULT_TILE_BATCH_SIZE = 4
#: ``tile_batch_size`` value asking ``Predictor`` to choose it (``tumorseg.inference.tile_batch``).
AUTO_TILE_BATCH = 0


def _input_channels(trainer: Any, data: np.ndarray) -> np.ndarray:
    """The channels ``trainer`` was trained on. ``data`` may hold every dataset channel (as
    ``preprocess_case`` writes them) or already only the run's channels."""
    channels = tuple(getattr(trainer.context, "channels", ()) or ())
    n_dataset = trainer.context.dataset.num_channels
    if channels and len(channels) < n_dataset and data.shape[0] == n_dataset:
        return data[list(channels)]
    return data


def predict_preprocessed(
    trainer: Any,
    network: nn.Module,
    data: np.ndarray,
    config: ConfigurationPlan,
    *,
    tta: bool = True,
    step_size: float = 0.5,
    device: str = "cpu",
    tile_batch_size: int = DEFAULT_TILE_BATCH_SIZE,
    logits_function: Callable[[torch.Tensor], torch.Tensor] | None = None,
    region_matrix: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities ``(K, Z, Y, X)`` float32 of one preprocessed case ``data (C, Z, Y, X)``.

    Runs ``trainer.predict_logits`` over a Gaussian-weighted sliding window of
    ``config.patch_size`` (2D / 2.5D configurations slice along axis 0), with mirroring over
    every spatial patch axis when ``tta``. ``K == len(trainer.output_names)``; the activation is
    ``trainer.output_activation``. The network is put in eval mode on ``device``.
    ``logits_function`` replaces ``trainer.predict_logits(network, .)`` (e.g. the optimised
    graph of ``tumorseg.inference.optimize``, built once per network by ``Predictor``).
    ``region_matrix (R, K)``: also return the region probabilities' second moments, as ``R``
    more channels (``sliding_window_predict``), from the same network passes.
    """
    network.eval()
    network.to(device)
    inputs = _input_channels(trainer, np.asarray(data))
    n_spatial = len(config.patch_size)
    probabilities = sliding_window_predict(
        logits_function or (lambda x: trainer.predict_logits(network, x)),
        torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)),
        config.patch_size,
        context_slices=config.context_slices if n_spatial == 2 else 0,
        step_size=step_size,
        tile_batch_size=tile_batch_size,
        mirror_axes=tuple(range(n_spatial)) if tta else (),
        activation=trainer.output_activation,
        device=device,
        region_matrix=torch.from_numpy(region_matrix) if region_matrix is not None else None,
    )
    return probabilities.numpy()


class Predictor:
    """The folds of one trained run, ready to predict raw cases.

    Every fold must share the configuration, activation and outputs (folds of one run do).
    Probabilities are averaged over folds in the preprocessed space, then reverted once to the
    input geometry.
    """

    def __init__(
        self,
        fold_folders: Sequence[Path],
        *,
        checkpoint: str = "final",
        device: str = "cpu",
        tta: bool = True,
        step_size: float = 0.5,
        tile_batch_size: int = DEFAULT_TILE_BATCH_SIZE,
        optimize: bool = True,
        backend: str = "torch",
        precision: str = "fp32",
    ) -> None:
        """``optimize``: on the CPU, run a channels-last copy of each network with instance norms
        computed as group norms (same function, faster kernels; ``tumorseg.inference.optimize``).
        ``backend``: ``torch``, ``onnxruntime`` or ``openvino`` (the last two run each fold's
        ``network_<checkpoint>.onnx`` when ``export-model --format onnx`` installed one, else a
        graph exported now, which takes seconds to minutes per fold: export once for repeated
        use). ``precision``: ``fp32``, ``bf16`` or ``auto`` (bf16 where the CPU
        has it natively and it measures faster; see ``tumorseg.inference.precision``; ONNX
        Runtime is always fp32). ``tile_batch_size`` ``AUTO_TILE_BATCH`` (0): chosen from free
        memory and measured throughput (``tumorseg.inference.tile_batch``)."""
        from tumorseg.inference.backends import Backend, require_backend
        from tumorseg.inference.precision import Precision, resolve_precision
        from tumorseg.runs.trained import load_trained_model

        if not fold_folders:
            raise TumorsegError("no folds to predict with; pass -f with at least one fold")
        self.backend = Backend(backend)
        require_backend(self.backend)
        self.device = device if self.backend is Backend.TORCH else "cpu"
        self.tta = tta
        self.step_size = step_size
        self.precision = (
            Precision.FP32
            if self.backend is Backend.ONNXRUNTIME
            else resolve_precision(precision, self.device)
        )
        self.models = []
        for folder in fold_folders:
            name = f"checkpoint_{checkpoint}.pt"
            if not (Path(folder) / name).is_file():
                raise TumorsegError(
                    f"{Path(folder) / name}: checkpoint not found; train this fold first, or "
                    "choose another with --checkpoint / -f"
                )
            self.models.append(load_trained_model(Path(folder), checkpoint, self.device))
        first_trainer, _, self.config, self.plans = self.models[0]
        self.trainer = first_trainer
        for folder, (trainer, _, config, _) in zip(fold_folders, self.models, strict=True):
            if (config.name, trainer.output_activation, tuple(trainer.output_names)) != (
                self.config.name,
                first_trainer.output_activation,
                tuple(first_trainer.output_names),
            ):
                raise TumorsegError(
                    f"{folder}: this fold's configuration or outputs differ from "
                    f"{fold_folders[0]}; ensemble only folds of one run"
                )
        from tumorseg.inference.onnx_export import input_shape_of

        self.input_shape = input_shape_of(self.trainer, self.config)
        warm_batch = tile_batch_size or 1
        self.logits_functions = [
            self._logits_function(Path(folder), checkpoint, model, optimize, warm_batch)
            for folder, model in zip(fold_folders, self.models, strict=True)
        ]
        self.tile_batch_size = tile_batch_size or self._choose_tile_batch()

    def _logits_function(
        self, folder: Path, checkpoint: str, model: tuple, optimize: bool, warm_batch: int
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        from tumorseg.inference.backends import Backend, onnxruntime_logits, openvino_logits
        from tumorseg.inference.optimize import predict_logits_function

        trainer, network, _, _ = model
        if self.backend is Backend.TORCH:
            return predict_logits_function(
                trainer,
                network,
                self.input_shape,
                self.device,
                optimize,
                batch_size=warm_batch,
                precision=self.precision,
            )
        from tumorseg.inference.onnx_export import export_onnx, fold_onnx

        path = fold_onnx(folder, checkpoint)
        # `export-model --format onnx` checked its graphs against PyTorch when it wrote them; a
        # graph exported here for this run only skips that check (it costs about ten tiles of
        # prediction at 1 mm); the exporter is tested on every trainer's network.
        graph = (
            path.read_bytes()
            if path.is_file()
            else export_onnx(trainer, network, self.input_shape, check=False)
        )
        threads = torch.get_num_threads()
        if self.backend is Backend.ONNXRUNTIME:
            return onnxruntime_logits(graph, threads)
        return openvino_logits(graph, threads, self.precision)

    def _choose_tile_batch(self) -> int:
        """The tile batch size for this machine now (free memory, then measured throughput)."""
        from tumorseg.inference.tile_batch import (
            MAX_BATCH_2D,
            MAX_BATCH_3D,
            available_memory_bytes,
            bytes_per_input,
            choose_tile_batch,
            memory_cap,
        )

        per_input = bytes_per_input(
            self.config.patch_size,
            self.config.topology,
            self.input_shape[0],
            len(self.trainer.output_names),
        )
        largest = MAX_BATCH_3D if len(self.config.patch_size) == 3 else MAX_BATCH_2D
        cap = memory_cap(per_input, available_memory_bytes(), largest)
        return choose_tile_batch(self.logits_functions[0], self.input_shape, cap)

    @property
    def dataset_json(self) -> DatasetJson:
        return self.trainer.context.dataset

    @property
    def activation(self) -> str:
        return str(self.trainer.output_activation)

    @property
    def target_outputs(self) -> tuple[str, ...]:
        """Extra targets the last probability channels predict (e.g. ``("recurrence",)``)."""
        return target_outputs(self.trainer)

    @property
    def n_outputs(self) -> int:
        return len(self.trainer.output_names)

    @property
    def spread_members(self) -> int:
        """Folds x mirrored versions: the predictions of a voxel that differ beyond the tile."""
        mirrors = 2 ** len(self.config.patch_size) if self.tta else 1
        return len(self.models) * mirrors

    def predict_preprocessed(
        self, data: np.ndarray, region_matrix: np.ndarray | None = None
    ) -> np.ndarray:
        """Fold-averaged probabilities ``(K, z, y, x)`` of a preprocessed case; with
        ``region_matrix (R, K)`` followed by the ``R`` region second moments (``(K + R, ...)``,
        see ``tumorseg.inference.uncertainty``)."""
        total: np.ndarray | None = None
        for (trainer, network, config, _), function in zip(
            self.models, self.logits_functions, strict=True
        ):
            probs = predict_preprocessed(
                trainer,
                network,
                data,
                config,
                tta=self.tta,
                step_size=self.step_size,
                device=self.device,
                tile_batch_size=self.tile_batch_size,
                logits_function=function,
                region_matrix=region_matrix,
            )
            total = probs if total is None else total + probs
        assert total is not None
        return total / len(self.models)

    def predict_case(
        self,
        images: list[np.ndarray],
        geometry: Geometry,
        region_matrix: np.ndarray | None = None,
    ) -> np.ndarray:
        """Probabilities ``(K, Z, Y, X)`` float32 in the grid of ``geometry`` for one raw case
        given as one ``(Z, Y, X)`` array per dataset channel; with ``region_matrix`` followed by
        the region second moments, reverted the same way (linear resampling keeps
        ``E[q^2] >= E[q]^2``; outside the brain crop both are 0)."""
        from tumorseg.preprocessing.pipeline import preprocess_case, revert_to_original

        data, _, properties = preprocess_case(images, geometry, self.plans, self.config, label=None)
        probabilities = self.predict_preprocessed(data, region_matrix)
        reverted = revert_to_original(
            probabilities, properties, self.plans, self.config, activation=self.activation
        )
        return np.asarray(reverted, dtype=np.float32)
