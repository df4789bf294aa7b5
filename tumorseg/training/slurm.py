"""SLURM job-array scripts: one array task per (configuration, fold).

Every task runs ``tumorseg train`` with the same roots; folds write to their own
``fold_<k>`` folders and shared files (splits, plans copies) are written atomically with
identical content, so tasks never clobber each other.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots

_TIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")


@dataclass(frozen=True)
class SlurmJob:
    """Parameters of the job array (``extra_args`` are passed through to ``tumorseg train``)."""

    dataset: str
    configurations: tuple[str, ...]
    folds: tuple[str, ...]
    roots: Roots
    trainer: str = "default"
    partition: str | None = None
    gpus: int = 1
    time: str = "24:00:00"
    cpus_per_task: int = 8
    job_name: str = "tumorseg"
    extra_args: tuple[str, ...] = field(default_factory=tuple)


def job_script(job: SlurmJob) -> str:
    """The text of an ``sbatch`` script with one array task per (configuration, fold)."""
    if not _TIME.match(job.time):
        raise TumorsegError(
            f"--time {job.time!r} is not HH:MM:SS (or D-HH:MM:SS); use e.g. 24:00:00"
        )
    tasks = [(c, f) for c in job.configurations for f in job.folds]
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job.job_name}",
        f"#SBATCH --array=0-{len(tasks) - 1}",
        f"#SBATCH --time={job.time}",
        f"#SBATCH --cpus-per-task={job.cpus_per_task}",
        f"#SBATCH --output={job.job_name}_%A_%a.out",
    ]
    if job.gpus > 0:
        lines.append(f"#SBATCH --gres=gpu:{job.gpus}")
    if job.partition:
        lines.append(f"#SBATCH --partition={job.partition}")
    device = "cuda" if job.gpus > 0 else "cpu"
    lines += [
        "set -euo pipefail",
        f"export TUMORSEG_RAW={shlex.quote(str(job.roots.raw))}",
        f"export TUMORSEG_PREPROCESSED={shlex.quote(str(job.roots.preprocessed))}",
        f"export TUMORSEG_RESULTS={shlex.quote(str(job.roots.results))}",
        "CONFIGURATIONS=(" + " ".join(shlex.quote(c) for c, _ in tasks) + ")",
        "FOLDS=(" + " ".join(f for _, f in tasks) + ")",
        'CONFIGURATION="${CONFIGURATIONS[$SLURM_ARRAY_TASK_ID]}"',
        'FOLD="${FOLDS[$SLURM_ARRAY_TASK_ID]}"',
        f"NP=$(( ${{SLURM_CPUS_PER_TASK:-{job.cpus_per_task}}} > 2 ? "
        f"${{SLURM_CPUS_PER_TASK:-{job.cpus_per_task}}} - 1 : 1 ))",
    ]
    args = [
        "tumorseg",
        "train",
        shlex.quote(job.dataset),
        '"$CONFIGURATION"',
        '"$FOLD"',
        "--trainer",
        shlex.quote(job.trainer),
        "--device",
        device,
        "-np",
        '"$NP"',
        "--resume",
        *(shlex.quote(a) for a in job.extra_args),
    ]
    if job.gpus > 1:
        args = ["torchrun", "--standalone", f"--nproc_per_node={job.gpus}", "-m", *args]
    lines.append(" ".join(args))
    return "\n".join(lines) + "\n"


def write_job_script(job: SlurmJob, output: Path) -> Path:
    from tumorseg.utils.atomic import write_text

    write_text(output, job_script(job))
    output.chmod(0o755)
    return output
