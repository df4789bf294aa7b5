from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.tiny_preprocessed import DATASET, write_tiny_preprocessed
from tumorseg.paths import Roots
from tumorseg.runs.folds import parse_folds
from tumorseg.training.distributed import DistInfo, init_distributed
from tumorseg.training.slurm import SlurmJob, job_script


def test_single_process_is_not_distributed() -> None:
    info, device = init_distributed("cpu", environ={})
    assert info == DistInfo()
    assert info.is_main
    assert not info.enabled
    assert device == "cpu"


@pytest.mark.slow
def test_two_process_ddp_on_cpu(roots: Roots) -> None:
    write_tiny_preprocessed(roots, with_raw=False)
    env = {
        **os.environ,
        "TUMORSEG_RAW": str(roots.raw),
        "TUMORSEG_PREPROCESSED": str(roots.preprocessed),
        "TUMORSEG_RESULTS": str(roots.results),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "tumorseg",
        "train",
        "1",
        "3d_fullres",
        "0",
        "--epochs",
        "2",
        "--iterations-per-epoch",
        "2",
        "--val-iterations",
        "1",
        "-np",
        "0",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    folds = list((roots.results / DATASET).glob("*/fold_0"))
    assert len(folds) == 1
    log = (folds[0] / "log.txt").read_text()
    assert "world size 2" in log
    assert log.count("epoch 1:") == 1  # only rank 0 writes
    assert (folds[0] / "checkpoint_final.pt").is_file()
    assert (folds[0] / "validation" / "summary.json").is_file()


def test_slurm_script(tmp_path: Path) -> None:
    roots = Roots.under(tmp_path)
    job = SlurmJob(
        "501",
        ("2d", "3d_fullres"),
        tuple(parse_folds("0-4")),
        roots,
        gpus=2,
        partition="gpu",
        time="12:00:00",
    )
    text = job_script(job)
    assert "#SBATCH --array=0-9" in text
    assert "#SBATCH --partition=gpu" in text
    assert "#SBATCH --gres=gpu:2" in text
    assert f"export TUMORSEG_RESULTS={roots.results}" in text
    assert (
        "CONFIGURATIONS=(2d 2d 2d 2d 2d 3d_fullres 3d_fullres 3d_fullres 3d_fullres 3d_fullres)"
        in text
    )
    assert "FOLDS=(0 1 2 3 4 0 1 2 3 4)" in text
    assert "torchrun --standalone --nproc_per_node=2 -m tumorseg train 501" in text
    assert parse_folds("0,2,all") == ["0", "2", "all"]
    with pytest.raises(Exception, match="outside 0-4"):
        parse_folds("3-7")


def test_slurm_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tumorseg.cli import main

    script = tmp_path / "job.sh"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "tumorseg",
            "slurm",
            "1",
            "3d_fullres",
            "--folds",
            "0-1",
            "--gpus",
            "1",
            "-o",
            str(script),
            "--results",
            str(tmp_path),
        ],
    )
    with contextlib.suppress(SystemExit):  # success may exit with code 0
        main()
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text
    assert "--device cuda" in text
    assert os.access(script, os.X_OK)
