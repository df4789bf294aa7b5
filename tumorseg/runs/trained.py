"""Re-building a trained fold from its run folder, for inference and for anything else.

Both training (resume, fine-tuning) and inference need this, so it lives below both: the run
folder's ``plans.json``, ``dataset.json`` and the fold's ``train_config.json`` say which trainer
and settings to build, and the checkpoint holds the weights.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import bad_file
from tumorseg.planning.plans import ConfigurationPlan, Plans
from tumorseg.runs.checkpoint import checkpoint_path, load_checkpoint
from tumorseg.runs.train_config import read_train_config
from tumorseg.trainers import build_trainer
from tumorseg.trainers.base import Trainer, TrainerContext


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
    train_config = read_train_config(fold_folder)
    source = Path(plans_root) if plans_root is not None else fold_folder.parent
    plans = Plans.read(source / "plans.json")
    dataset_json = DatasetJson.read(source / "dataset.json")
    channels = dataset_json.channel_names
    plans.require_channels([channels[i] for i in sorted(channels)], source / "plans.json")
    config = plans.configuration(train_config["configuration"])
    context = TrainerContext(plans, config, dataset_json, tuple(train_config["channels"]))
    trainer = build_trainer(train_config["trainer"], context, train_config["trainer_settings"])
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
