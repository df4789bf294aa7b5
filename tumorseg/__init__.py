"""tumorseg: a self-configuring segmentation toolkit for multi-modal brain tumour MRI.

The folders are the architecture. Dependencies flow one way, from the top of this list down;
``[tool.importlinter]`` in ``pyproject.toml`` states it and the test suite checks it::

    cli             thin Typer app: parse, build settings, call one API function, print
    workflows       what combines several areas: plan-and-preprocess, find-best, the demo
    reporting       figures and reports of runs and predictions
    training        the one loop, data loading and augmentation, splits, run preparation
    inference       sliding window, predictor, ensembling, the one writer of predictions
    postprocessing  connected components, label rules, decided on cross-validation
    evaluation      metrics, lesion-wise metrics, summaries, statistics
    preprocessing   crop, normalise, resample, write; parallel and resumable
    runs            run folders: names, folds, train_config.json, checkpoints, loading a model
    trainers        what varies per method: the registry, networks built from plans, losses
    planning        fingerprint, pure planner, typed plans
    networks        building blocks, U-Net, one file per published network, the registry
    data            dataset.json, labels, image I/O, validation, converters, synthetic data
    paths, utils    the three roots; atomic writes, the process pool
    constants, errors

Training and inference both use a trained model, so what a trainer is (``trainers``) and how a
trained fold is re-built from its folder (``runs``) live below both: inference never imports
training.
"""

__version__ = "0.1.0"
