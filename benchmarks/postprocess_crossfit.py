"""Each tool's own post-processing on the default-path comparison, decided without the test cases.

Issue 14, section 4 ("each tool's own post-processing where it has one"). Both tools decide
post-processing on cross-validation and want every fold validated for a run-level decision
(``tumorseg find-best``; ``nnUNetv2_find_best_configuration``), which a two-fold budget
comparison does not have. So the decision is cross-fitted: the post-processing applied to fold
F's held-out predictions is decided by each tool's own procedure on the held-out predictions of
the other folds (``tumorseg postprocess determine`` / ``nnUNetv2_determine_postprocessing``),
then applied with the tool's own command (``tumorseg postprocess apply`` /
``nnUNetv2_apply_postprocessing``). No case is post-processed by a decision it helped make.

Input: a work folder of ``cpu_defaults_vs_nnunet.py`` (its ``raw/``, ``nn_pre/`` and
``predictions/RUN/fold_F``), optionally tumorseg predictions of another run on the same data and
split (``--tumorseg``, e.g. a ``cpu_plan_sweep.py`` variant). Scores: ``tumorseg evaluate`` of
every run with and without post-processing (folds merged), ``tumorseg compare`` (paired
Wilcoxon) of tumorseg against nnU-Net, both post-processed, and of each tool against itself.

Usage::

    python benchmarks/postprocess_crossfit.py --work /tmp/cpudefaults --out /tmp/ppcross \\
        --nnunet-python /path/to/nnunet-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from cpu_defaults_vs_nnunet import (
    DATASET,
    DATASET_ID,
    _run,
    _tumorseg,
    score_runs,
    table,
)


def _link_folds(source: Path, target: Path, folds: list[int]) -> None:
    """``target/fold_F`` -> ``source/fold_F`` for every fold (the run's held-out predictions)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for fold in folds:
        if not (source / f"fold_{fold}").is_dir():
            raise SystemExit(f"missing {source / f'fold_{fold}'}: run the comparison first")
        os.symlink((source / f"fold_{fold}").resolve(), target / f"fold_{fold}")


def _decision_cases(run_folder: Path, others: list[int], into: Path) -> Path:
    """One folder holding the held-out predictions of folds ``others`` (what the decision sees)."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for fold in others:
        folder = run_folder / f"fold_{fold}"
        for path in folder.glob("*.nii.gz"):
            shutil.copyfile(path, into / path.name)
        if (folder / "labels.json").is_file():
            shutil.copyfile(folder / "labels.json", into / "labels.json")
    return into


def tumorseg_crossfit(out: Path, work: Path, folds: list[int], env: dict[str, str], log: Path
                      ) -> dict[str, Any]:  # fmt: skip
    decisions = {}
    for fold in folds:
        others = [f for f in folds if f != fold]
        source = _decision_cases(out / "predictions" / "tumorseg", others,
                                 out / "decide" / "tumorseg" / f"for_fold_{fold}")  # fmt: skip
        decision = source / "postprocessing.json"
        _run(_tumorseg("postprocess", "determine", str(source),
                       str(work / "raw" / DATASET / "labelsTr"), "-d", str(DATASET_ID), "-o",
                       str(decision), "--raw", str(work / "raw")), env, log)  # fmt: skip
        target = out / "predictions" / "tumorseg_pp" / f"fold_{fold}"
        shutil.rmtree(target, ignore_errors=True)
        _run(_tumorseg("postprocess", "apply", "-i", str(out / "predictions" / "tumorseg" /
                       f"fold_{fold}"), "-o", str(target), "--decision", str(decision)),
             env, log)  # fmt: skip
        decisions[fold] = json.loads(decision.read_text())
    return decisions


def nnunet_crossfit(out: Path, work: Path, folds: list[int], nnunet_python: str,
                    env: dict[str, str], log: Path) -> dict[str, Any]:  # fmt: skip
    bin_dir = Path(nnunet_python).parent
    pre = work / "nn_pre" / DATASET
    files = ["-plans_json", str(pre / "nnUNetPlans.json"), "-dataset_json",
             str(pre / "dataset.json")]  # fmt: skip
    decisions = {}
    for fold in folds:
        others = [f for f in folds if f != fold]
        source = _decision_cases(out / "predictions" / "nnunet", others,
                                 out / "decide" / "nnunet" / f"for_fold_{fold}")  # fmt: skip
        _run([str(bin_dir / "nnUNetv2_determine_postprocessing"), "-i", str(source), "-ref",
              str(pre / "gt_segmentations"), *files, "-np", "2", "--remove_postprocessed"],
             env, log)  # fmt: skip
        target = out / "predictions" / "nnunet_pp" / f"fold_{fold}"
        shutil.rmtree(target, ignore_errors=True)
        _run([str(bin_dir / "nnUNetv2_apply_postprocessing"), "-i",
              str(out / "predictions" / "nnunet" / f"fold_{fold}"), "-o", str(target),
              "-pp_pkl_file", str(source / "postprocessing.pkl"), "-np", "2", *files],
             env, log)  # fmt: skip
        decisions[fold] = json.loads((source / "postprocessing.json").read_text())
    return decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="cpu_defaults_vs_nnunet work.")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ppcross"))
    parser.add_argument("--tumorseg", type=Path, default=None,
                        help="tumorseg predictions (fold_F folders); default: WORK's tumorseg_2d")
    parser.add_argument("--nnunet", default="nnunet_3d_fullres", help="nnU-Net run in WORK.")
    parser.add_argument("--nnunet-python", required=True)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()  # fmt: skip
    work, out = args.work.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "raw").exists():
        os.symlink(work / "raw", out / "raw")
    from train_vs_nnunet import nnunet_env  # this script's folder is on sys.path

    env = nnunet_env(work)
    log = out / "benchmark.log"
    tumorseg = args.tumorseg or work / "predictions" / "tumorseg_2d"
    _link_folds(tumorseg.resolve(), out / "predictions" / "tumorseg", args.folds)
    _link_folds(work / "predictions" / args.nnunet, out / "predictions" / "nnunet", args.folds)
    decisions = {
        "tumorseg": tumorseg_crossfit(out, work, args.folds, env, log),
        "nnunet": nnunet_crossfit(out, work, args.folds, args.nnunet_python, env, log),
    }

    def no_steps(run: str, fold: int) -> dict[str, Any]:
        return {}

    results: dict[str, Any] = {"folds": args.folds, "tumorseg": str(tumorseg),
                               "nnunet": args.nnunet, "decisions": decisions,
                               "summaries": {}, "comparisons": []}  # fmt: skip
    # score_runs reports the first run minus each other one
    for runs in (["tumorseg_pp", "nnunet_pp"], ["tumorseg_pp", "tumorseg"],
                 ["nnunet_pp", "nnunet"]):  # fmt: skip
        scored = score_runs(out, runs, args.folds, no_steps, env, log)
        results["summaries"].update(scored["summaries"])
        results["comparisons"] += scored["comparisons"]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(decisions, indent=1)[:4000])
    print(table(results))


if __name__ == "__main__":
    main()
