"""The normal-appearance model as an artifact: its settings, its run folder, loading it.

``tumorseg train-normal`` writes one run folder per set of settings under the dataset's results
folder, beside the trainers' runs, and any number of ``clfc`` runs share it::

    RESULTS/DatasetNNN_Name/normal_appearance[-<hash8>]/
        normal_config.json           settings, healthy subjects used, what the loop did
        checkpoint_latest.pt         weights + optimisers + loop state (resuming)
        checkpoint_final.pt          the finished model (``weights_only``-loadable)
        log.txt, progress.png        as for ``tumorseg train``
        samples.png                  healthy slices, their reconstructions, random samples

A model is identified by its name and the SHA-256 of ``checkpoint_final.pt``; the clfc trainer
records both and recomputes its cached pseudo-healthy images when the digest changes. This module
sits below the training and inference layers so that the clfc trainer (building its network),
``train-normal`` (writing) and ``normal-appearance`` (reading) share one definition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tumorseg.errors import TumorsegError, bad_file

#: Folder name of a normal-appearance run with default settings (others get ``-<hash8>``).
NORMAL_RUN_PREFIX = "normal_appearance"
NORMAL_CONFIG_FILE = "normal_config.json"
FINAL_CHECKPOINT = "checkpoint_final.pt"
LATEST_CHECKPOINT = "checkpoint_latest.pt"


@dataclass(frozen=True)
class NormalModelSettings:
    """Settings of the IntroVAE normal-appearance model (``--set key=value`` of train-normal).

    Liu et al. train the IntroVAE on 256 x 256 slices with batch 120 and learning rates 1e-4
    (encoder) / 5e-3 (decoder); the defaults here are scaled to a CPU: 64 x 64 frames, widths
    16-32-64, a 128-dimensional latent, batch 32, and a decoder rate of 5e-4, because 5e-3
    diverged in our runs (reconstruction error rising from the first epochs). alpha, beta and
    the margin are Huang et al.'s kind of values for the per-sample sums used here.
    """

    # Canonical frame side in pixels (the IntroVAE input size); a multiple of 2**len(channels).
    image_size: int = 64
    # Field of view of the frame in mm: a whole adult brain (about 170 mm across) fits.
    fov_mm: float = 192.0
    # Dimensions of the vector latent ("a point on the healthy manifold").
    latent_dim: int = 128
    # Widths of the encoder stages (each halves the resolution); the decoder mirrors them.
    channels: tuple[int, ...] = (16, 32, 64)
    # IntroVAE's alpha: weight of the adversarial (introspective) KL terms.
    alpha: float = 0.25
    # IntroVAE's beta: weight of the reconstruction term 1/2 ||x - x_r||^2 (summed over pixels).
    beta: float = 0.5
    # IntroVAE's margin m: the encoder pushes the KL of generated images up to m, no further.
    margin: float = 100.0
    # Adam learning rates of encoder and decoder, trained in alternation (Liu et al.: 1e-4 and
    # 5e-3; the decoder's 5e-3 diverged on our CPU-sized model).
    lr_encoder: float = 1e-4
    lr_decoder: float = 5e-4
    # Slices per step (Liu et al.: 120).
    batch_size: int = 32
    # Epochs of ``iterations_per_epoch`` alternating encoder/decoder steps.
    epochs: int = 100
    iterations_per_epoch: int = 50
    # Leading share of the epochs trained as a plain VAE (both parts on KL + beta * L_AE) before
    # the introspective game starts, so the encoder judges meaningful reconstructions from the
    # start; IntroVAE's code has such a phase, the papers give no length.
    vae_warmup_fraction: float = 0.1
    # Slices whose brain covers less of the frame are skipped (skull caps, empty slices).
    min_brain_fraction: float = 0.05
    # Seed of weights, slice sampling and augmentation.
    seed: int = 12345

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError("channels must be positive widths, e.g. 32,64,128")
        factor = 2 ** len(self.channels)
        if self.image_size < factor or self.image_size % factor:
            raise ValueError(f"image_size must be a multiple of 2**len(channels) = {factor}")
        positive = {
            "fov_mm": self.fov_mm,
            "latent_dim": self.latent_dim,
            "lr_encoder": self.lr_encoder,
            "lr_decoder": self.lr_decoder,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "iterations_per_epoch": self.iterations_per_epoch,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.alpha < 0 or self.beta <= 0 or self.margin < 0:
            raise ValueError("alpha and margin must be >= 0 and beta > 0")
        if not 0 <= self.vae_warmup_fraction <= 1 or not 0 <= self.min_brain_fraction < 1:
            raise ValueError("vae_warmup_fraction must be in [0, 1], min_brain_fraction in [0, 1)")

    def architecture(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~tumorseg.networks.normal_appearance.
        NormalAppearanceModel`."""
        return {
            "image_size": self.image_size,
            "fov_mm": self.fov_mm,
            "latent_dim": self.latent_dim,
            "channels": tuple(self.channels),
        }


@dataclass(frozen=True)
class NormalModelRecord:
    """Which normal-appearance model a clfc run used (written into its fold folder)."""

    name: str
    sha256: str
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def normal_run_name(digest: str | None) -> str:
    return NORMAL_RUN_PREFIX if digest is None else f"{NORMAL_RUN_PREFIX}-{digest}"


def trained_normal_models(results_dataset: Path) -> list[Path]:
    """Finished normal-appearance runs (with a final checkpoint) of a results dataset folder."""
    if not results_dataset.is_dir():
        return []
    return sorted(
        p
        for p in results_dataset.glob(f"{NORMAL_RUN_PREFIX}*")
        if p.is_dir() and (p / FINAL_CHECKPOINT).is_file()
    )


def resolve_normal_model(results_dataset: Path, name: str) -> Path:
    """The normal-appearance run ``name`` of a dataset, or its only one when ``name`` is "".

    A missing model is a one-line error saying which ``tumorseg train-normal`` to run.
    """
    dataset = results_dataset.name
    found = trained_normal_models(results_dataset)
    if name:
        folder = results_dataset / name
        if (folder / FINAL_CHECKPOINT).is_file():
            return folder
        present = ", ".join(p.name for p in found) or "none"
        raise bad_file(
            folder / FINAL_CHECKPOINT,
            f"normal-appearance model {name!r} not found (trained: {present})",
            f"run `tumorseg train-normal {dataset}` first, or set normal_model to a trained one",
        )
    if not found:
        raise TumorsegError(
            f"{results_dataset}: no trained normal-appearance model; run "
            f"`tumorseg train-normal {dataset}` first (clfc compares every case with it)"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise TumorsegError(
            f"{results_dataset}: several normal-appearance models ({names}); choose one with "
            "--set normal_model=NAME"
        )
    return found[0]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_normal_settings(folder: Path) -> NormalModelSettings:
    """The settings of a normal-appearance run folder (one-line errors for a bad file)."""
    from tumorseg.trainers.settings import make_settings

    path = folder / NORMAL_CONFIG_FILE
    try:
        config = json.loads(path.read_text())
        values = dict(config["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        raise bad_file(
            path,
            "missing or not a normal-appearance settings file",
            f"train the model again with `tumorseg train-normal {folder.parent.name}`",
        ) from None
    settings: NormalModelSettings = make_settings("train-normal", NormalModelSettings, values)
    return settings


def load_normal_model(folder: Path, device: str = "cpu") -> tuple[Any, NormalModelRecord]:
    """``(NormalAppearanceModel in eval mode, record)`` of a finished normal-appearance run.

    The checkpoint is read with ``torch.load(weights_only=True)``; a corrupt or foreign file is a
    one-line error naming it.
    """
    import torch

    from tumorseg.networks.normal_appearance import NormalAppearanceModel

    settings = read_normal_settings(folder)
    path = folder / FINAL_CHECKPOINT
    fix = f"train it again with `tumorseg train-normal {folder.parent.name}`"
    if not path.is_file():
        raise bad_file(path, "normal-appearance checkpoint not found", fix)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model = NormalAppearanceModel(**settings.architecture())
        model.load_state_dict(state["network"])
    except Exception as exc:  # truncated zip, foreign pickle, wrong tensors: all one message
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        problem = f"is not a readable normal-appearance checkpoint ({reason})"
        raise bad_file(path, problem, fix) from None
    model.to(device).eval()
    model.requires_grad_(False)
    record = NormalModelRecord(folder.name, file_sha256(path), dataclasses.asdict(settings))
    return model, record
