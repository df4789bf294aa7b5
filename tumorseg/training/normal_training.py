"""``tumorseg train-normal``: the IntroVAE normal-appearance model trained on healthy T1 slices.

The introspective objective of Huang et al. (2018), with ``z = mu + sigma * eps`` from the
encoder ``E``, the reconstruction ``x_r = G(z)``, a sample ``x_p = G(z_p)``, ``z_p ~ N(0, I)``,
``L_REG = KL(E(.) || N(0, I))`` and ``L_AE = 1/2 ||x - x_r||^2``::

    L_E = L_REG(x) + alpha * ([m - L_REG(ng(x_r))]^+ + [m - L_REG(ng(x_p))]^+) + beta * L_AE
    L_G = alpha * (L_REG(x_r) + L_REG(x_p)) + beta * L_AE

``ng`` stops the gradient: the encoder, as discriminator, pushes the KL of generated images up
to the margin ``m`` and that of real images down; the decoder, as generator, pulls the KL of its
images down. Encoder and decoder are updated in alternation with their own Adam optimisers
(learning rates as in Liu et al.); terms are per-sample sums averaged over the batch. The first
``vae_warmup_fraction`` of the epochs train both parts as a plain VAE (``L_REG + beta * L_AE``).

Loop: ``epochs`` x ``iterations_per_epoch`` steps, an optional wall-clock budget that fits the
epochs to the measured speed (as ``tumorseg train``), a log line per epoch (``log.txt``), curves
(``progress.png``), ``checkpoint_latest.pt`` after every epoch (``--resume`` continues from it,
batches being a function of seed and step), ``checkpoint_final.pt`` and ``samples.png`` at the
end. Run folder: :mod:`tumorseg.trainers.normal_model`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional

from tumorseg import __version__
from tumorseg.data.healthy import HealthyImage, healthy_t1_images
from tumorseg.errors import TumorsegError
from tumorseg.networks.introvae import kl_divergence, reconstruction_error, reparameterize
from tumorseg.networks.normal_appearance import NormalAppearanceModel
from tumorseg.paths import Roots, find_dataset
from tumorseg.runs.checkpoint import load_checkpoint, save_checkpoint
from tumorseg.runs.naming import non_default, settings_hash
from tumorseg.trainers.normal_model import (
    FINAL_CHECKPOINT,
    LATEST_CHECKPOINT,
    NORMAL_CONFIG_FILE,
    NormalModelSettings,
    normal_run_name,
)
from tumorseg.trainers.settings import make_settings
from tumorseg.training.budget import fit_epochs_to_budget
from tumorseg.training.checkpoint import capture_rng_state, restore_rng_state
from tumorseg.training.normal_data import HealthySlices, augment, batch_indices, load_healthy_slices
from tumorseg.training.normal_plots import plot_progress, plot_samples
from tumorseg.training.progress import ProgressLog
from tumorseg.utils.atomic import write_json


@dataclass(frozen=True)
class NormalTrainingJob:
    """What ``train_normal`` trains: resolved before anything is written."""

    dataset_name: str
    run_folder: Path
    settings: NormalModelSettings
    healthy: tuple[HealthyImage, ...]
    healthy_source: str
    device: str = "cpu"
    time_budget_s: float | None = None


@dataclass
class NormalLoopState:
    epoch: int = 0
    total_epochs: int = 0
    elapsed_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def introvae_losses(
    model: NormalAppearanceModel, images: torch.Tensor, settings: NormalModelSettings
) -> dict[str, torch.Tensor]:
    """IntroVAE's encoder loss ``L_E`` on ``images`` ``(N, 1, S, S)``.

    Returns ``encoder`` (L_E, a mean over the batch, to be stepped on the encoder only), the
    ``latent`` and ``prior`` codes the decoder step reuses, and the KLs and the reconstruction
    error for the log.
    """
    encoder, decoder = model.vae.encoder, model.vae.decoder
    s = settings
    mu, logvar = encoder(images)
    latent = reparameterize(mu, logvar)
    reconstruction = decoder(latent)
    prior = torch.randn_like(latent)
    sample = decoder(prior)
    kl_real = kl_divergence(mu, logvar)
    rec_error = reconstruction_error(images, reconstruction)
    kl_rec_d = kl_divergence(*encoder(reconstruction.detach()))
    kl_sample_d = kl_divergence(*encoder(sample.detach()))
    loss_e = (
        kl_real
        + s.alpha * (functional.relu(s.margin - kl_rec_d) + functional.relu(s.margin - kl_sample_d))
        + s.beta * rec_error
    ).mean()
    return {
        "encoder": loss_e,
        "latent": latent.detach(),
        "prior": prior,
        "kl_real": kl_real.detach().mean(),
        "kl_reconstruction": kl_rec_d.detach().mean(),
        "kl_sample": kl_sample_d.detach().mean(),
        "mse": (images - reconstruction.detach()).square().mean(),
    }


def decoder_loss(
    model: NormalAppearanceModel,
    images: torch.Tensor,
    latent: torch.Tensor,
    prior: torch.Tensor,
    settings: NormalModelSettings,
) -> torch.Tensor:
    """IntroVAE's generator loss ``L_G`` for the latents of the encoder step."""
    encoder, decoder = model.vae.encoder, model.vae.decoder
    reconstruction = decoder(latent)
    sample = decoder(prior)
    kl_rec = kl_divergence(*encoder(reconstruction))
    kl_sample = kl_divergence(*encoder(sample))
    return (
        settings.alpha * (kl_rec + kl_sample)
        + settings.beta * reconstruction_error(images, reconstruction)
    ).mean()


class NormalTrainer:
    """State and steps of one train-normal session (see the module docstring)."""

    def __init__(self, job: NormalTrainingJob, echo: bool = True) -> None:
        self.job = job
        s = job.settings
        torch.manual_seed(s.seed)
        self.model = NormalAppearanceModel(**s.architecture()).to(job.device)
        vae = self.model.vae
        self.opt_e = torch.optim.Adam(vae.encoder.parameters(), lr=s.lr_encoder)
        self.opt_g = torch.optim.Adam(vae.decoder.parameters(), lr=s.lr_decoder)
        self.state = NormalLoopState(total_epochs=s.epochs)
        job.run_folder.mkdir(parents=True, exist_ok=True)
        self.log = ProgressLog(job.run_folder, echo=echo)

    def warmup_epochs(self) -> int:
        return math.floor(self.job.settings.vae_warmup_fraction * self.state.total_epochs)

    def step(self, images: torch.Tensor, introspective: bool) -> dict[str, float]:
        """One optimisation step on ``images`` ``(N, 1, S, S)``; returns the step's logs."""
        s = self.job.settings
        if not introspective:
            return self.vae_step(images)
        parts = introvae_losses(self.model, images, s)
        self.opt_e.zero_grad(set_to_none=True)
        parts["encoder"].backward()
        self.opt_e.step()
        # The decoder step rebuilds its graph: L_E's backward also left gradients on the
        # decoder, which are discarded here.
        self.opt_g.zero_grad(set_to_none=True)
        loss_g = decoder_loss(self.model, images, parts["latent"], parts["prior"], s)
        self.opt_e.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {
            **_floats(parts),
            "encoder_loss": float(parts["encoder"].detach()),
            "decoder_loss": float(loss_g.detach()),
        }

    def vae_step(self, images: torch.Tensor) -> dict[str, float]:
        """Warm-up: encoder and decoder descend the plain VAE loss ``L_REG + beta * L_AE``."""
        s = self.job.settings
        mu, logvar = self.model.vae.encoder(images)
        reconstruction = self.model.vae.decoder(reparameterize(mu, logvar))
        kl = kl_divergence(mu, logvar)
        loss = (kl + s.beta * reconstruction_error(images, reconstruction)).mean()
        self.opt_e.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_e.step()
        self.opt_g.step()
        mse = float((images - reconstruction.detach()).square().mean())
        nan = float("nan")
        return {
            "kl_real": float(kl.detach().mean()),
            "kl_reconstruction": nan,
            "kl_sample": nan,
            "mse": mse,
            "encoder_loss": float(loss.detach()),
            "decoder_loss": float(loss.detach()),
        }

    def epoch(self, slices: HealthySlices) -> dict[str, Any]:
        s, epoch = self.job.settings, self.state.epoch
        introspective = epoch >= self.warmup_epochs()
        self.model.train()
        started, sums = time.perf_counter(), dict[str, float]()
        for i in range(s.iterations_per_epoch):
            step = epoch * s.iterations_per_epoch + i
            index = batch_indices(len(slices), s.batch_size, s.seed, step)
            images = augment(slices.frames[index], s.seed, step).to(self.job.device)
            for key, value in self.step(images, introspective).items():
                sums[key] = sums.get(key, 0.0) + value
        means = {k: v / s.iterations_per_epoch for k, v in sums.items()}
        return {
            "epoch": epoch,
            "phase": "introvae" if introspective else "vae",
            "epoch_time_s": time.perf_counter() - started,
            **means,
        }

    # ---- checkpoints -----------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {
            "network": self.model.state_dict(),
            "optimizer_encoder": self.opt_e.state_dict(),
            "optimizer_decoder": self.opt_g.state_dict(),
            "loop_state": dataclasses.asdict(self.state),
            "rng": capture_rng_state(),
            "settings": dataclasses.asdict(self.job.settings),
        }

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.job.device)
        self.model.load_state_dict(state["network"])
        self.opt_e.load_state_dict(state["optimizer_encoder"])
        self.opt_g.load_state_dict(state["optimizer_decoder"])
        self.state = NormalLoopState(**state["loop_state"])
        self.log.history = list(self.state.history)
        restore_rng_state(state["rng"])
        self.log.log(f"resumed from {path.name} at epoch {self.state.epoch}")

    def config(self, slices: HealthySlices | None) -> dict[str, Any]:
        job = self.job
        return {
            "dataset_name": job.dataset_name,
            "settings": dataclasses.asdict(job.settings),
            "healthy": {
                "source": job.healthy_source,
                "subjects": [image.subject for image in job.healthy],
                "slices": None if slices is None else len(slices),
            },
            "loop": {
                "epochs": self.state.total_epochs,
                "epochs_done": self.state.epoch,
                "requested_epochs": job.settings.epochs,
                "time_budget_s": job.time_budget_s,
                "device": job.device,
                "warmup_epochs": self.warmup_epochs(),
            },
            "tumorseg_version": __version__,
        }


def _floats(parts: dict[str, torch.Tensor]) -> dict[str, float]:
    keys = ("kl_real", "kl_reconstruction", "kl_sample", "mse")
    return {k: float(parts[k]) for k in keys}


def _log_line(entry: dict[str, Any], planned: int) -> str:
    return (
        f"epoch {entry['epoch']} ({entry['phase']}): encoder loss {entry['encoder_loss']:.2f}, "
        f"decoder loss {entry['decoder_loss']:.2f}, KL real {entry['kl_real']:.2f} / "
        f"reconstruction {entry['kl_reconstruction']:.2f} / sample {entry['kl_sample']:.2f}, "
        f"reconstruction MSE {entry['mse']:.4f}, {entry['epoch_time_s']:.1f} s, "
        f"{planned} epochs planned"
    )


def train_normal(
    job: NormalTrainingJob, *, resume: bool = False, echo: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train (or with ``resume`` continue) the normal-appearance model of ``job``; returns the
    run folder. ``checkpoint_final.pt`` appears only once training has ended."""
    trainer = NormalTrainer(job, echo=echo)
    folder = job.run_folder
    latest, final = folder / LATEST_CHECKPOINT, folder / FINAL_CHECKPOINT
    if resume and latest.is_file():
        trainer.restore(latest)
    elif resume:
        trainer.log.log("no checkpoint to resume from; starting a new run")
    slices = load_healthy_slices(job.healthy, job.settings, log=log or trainer.log.log)
    write_json(folder / NORMAL_CONFIG_FILE, trainer.config(slices))
    trainer.log.log(
        f"training the normal-appearance model of {job.dataset_name}: {len(slices)} healthy "
        f"slices of {len(job.healthy)} subjects, frame {job.settings.image_size} px over "
        f"{job.settings.fov_mm:g} mm, batch {job.settings.batch_size}, device {job.device}"
    )
    state = trainer.state
    while trainer.state.epoch < trainer.state.total_epochs:
        entry = trainer.epoch(slices)
        state = trainer.state
        state.history.append(entry)
        state.elapsed_s += entry["epoch_time_s"]
        state.epoch += 1
        if job.time_budget_s is not None:
            state.total_epochs = fit_epochs_to_budget(
                state.history, job.time_budget_s, job.settings.epochs
            )
        trainer.log.history = list(state.history)
        trainer.log.log(_log_line(entry, state.total_epochs))
        save_checkpoint(latest, trainer.checkpoint())
    trainer.model.eval()
    plot_progress(folder, trainer.state.history, job.settings.margin)
    plot_samples(folder / "samples.png", trainer.model, slices, job.settings.seed)
    save_checkpoint(final, trainer.checkpoint())
    write_json(folder / NORMAL_CONFIG_FILE, trainer.config(slices))
    trainer.log.log(f"normal-appearance model written: {final}")
    return folder


def prepare_normal_training(
    roots: Roots,
    dataset: str,
    *,
    healthy: Path | None = None,
    settings: dict[str, Any] | None = None,
    device: str = "cpu",
    time_budget_s: float | None = None,
) -> NormalTrainingJob:
    """Resolve the dataset, its healthy T1 images and the settings; nothing is written.

    The run folder is ``RESULTS/<dataset>/normal_appearance[-<hash8>]``, the hash naming
    non-default settings, a time budget and a ``healthy`` path given on the command line.
    """
    try:
        raw = find_dataset(dataset, roots.raw)
        name = raw.name
    except TumorsegError:
        if healthy is None:
            raise
        raw, name = None, find_dataset(dataset, roots.preprocessed, "preprocessed").name
    resolved: NormalModelSettings = make_settings("train-normal", NormalModelSettings, settings)
    images = healthy_t1_images(raw, healthy)
    changes = non_default(dataclasses.asdict(resolved), dataclasses.asdict(NormalModelSettings()))
    identity: dict[str, Any] = {}
    if time_budget_s is not None:
        identity["time_budget_s"] = time_budget_s
    if healthy is not None:
        identity["healthy"] = str(Path(healthy).resolve())
    run = normal_run_name(settings_hash(changes, identity))
    source = f"{name}: dataset.json healthy" if healthy is None else str(Path(healthy).resolve())
    return NormalTrainingJob(
        name, roots.results / name / run, resolved, tuple(images), source, device, time_budget_s
    )
