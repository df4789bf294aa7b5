"""Run folders on disk: their names, folds, ``train_config.json``, checkpoints, and re-building a
trained model from them.

Training writes run folders and inference reads them; this room sits below both, so that
inference never imports the training package.
"""
