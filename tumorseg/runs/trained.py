"""Re-building a trained fold from its run folder, for inference and for anything else.

Both training (resume, fine-tuning) and inference need this, so it lives below both: the run
folder's ``plans.json``, ``dataset.json`` and the fold's ``train_config.json`` say which trainer
and settings to build, and the checkpoint holds the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import bad_file
from tumorseg.planning.plans import ConfigurationPlan, Plans
from tumorseg.runs.checkpoint import checkpoint_path, load_checkpoint
from tumorseg.runs.train_config import read_train_config
from tumorseg.trainers import build_trainer
from tumorseg.trainers.base import Trainer, TrainerContext


def trained_trainer(
    fold_folder: Path, plans_root: Path | None = None
) -> tuple[Trainer, ConfigurationPlan, Plans]:
    """The trainer of a trained fold as ``train_config.json`` describes it, without its network
    or weights: ``(trainer, config, plans)``; ``plans_root`` as in ``load_trained_model``."""
    fold_folder = Path(fold_folder)
    train_config = read_train_config(fold_folder)
    source = Path(plans_root) if plans_root is not None else fold_folder.parent
    plans = Plans.read(source / "plans.json")
    dataset_json = DatasetJson.read(source / "dataset.json")
    channels = dataset_json.channel_names
    plans.require_channels([channels[i] for i in sorted(channels)], source / "plans.json")
    config = plans.configuration(train_config["configuration"])
    context = TrainerContext(plans, config, dataset_json, tuple(train_config["channels"]))
    trainer = build_trainer(train_config["trainer"], context, train_config["trainer_settings"])
    return trainer, config, plans


def network_channels(trainer: Trainer) -> tuple[int, ...]:
    """The dataset channels whose images ``trainer``'s network reads, in dataset order.

    The loader feeds a trainer the channels ``context.channels`` (``train_config.json``'s
    ``channels``); a trainer that passes only some of them on to its network (msf with
    ``modalities=t1c,flair``) names them in ``input_indices``: network input indices within
    the batch, each channel bringing ``input_channels_per_modality`` consecutive inputs
    (``None``: the whole batch).
    """
    channels = tuple(trainer.context.channels)
    indices = getattr(trainer, "input_indices", None)
    if indices is None:
        return tuple(sorted(channels))
    per_channel = trainer.context.configuration.input_channels_per_modality
    return tuple(sorted({channels[i // per_channel] for i in indices}))


def run_channels(fold_folders: Sequence[Path]) -> tuple[int, ...]:
    """The dataset channels any of ``fold_folders`` reads (folds of one run read the same)."""
    found: set[int] = set()
    for folder in fold_folders:
        found.update(network_channels(trained_trainer(folder)[0]))
    return tuple(sorted(found))


def load_trained_model(
    fold_folder: Path,
    checkpoint: str = "final",
    device: str = "cpu",
    plans_root: Path | None = None,
) -> tuple[Trainer, nn.Module, ConfigurationPlan, Plans]:
    """Re-build a trained fold for inference: ``(trainer, network in eval mode, config, plans)``.

    Reads ``train_config.json`` of ``fold_folder`` and ``plans.json`` + ``dataset.json`` from
    ``plans_root`` (default: the run folder, ``fold_folder.parent``). ``checkpoint`` is
    ``final``, ``best``, ``latest`` or a path to a ``.pt`` file.
    """
    fold_folder = Path(fold_folder)
    trainer, config, plans = trained_trainer(fold_folder, plans_root)
    network = trainer.build_network()
    state = load_checkpoint(checkpoint_path(fold_folder, checkpoint), map_location=device)
    try:
        network.load_state_dict(state["network"])
    except RuntimeError as exc:
        raise bad_file(
            checkpoint_path(fold_folder, checkpoint),
            f"weights do not fit the network of train_config.json ({str(exc).splitlines()[0]})",
            "use the checkpoint of this run folder",
        ) from None
    network.to(device)
    network.eval()
    return trainer, network, config, plans
