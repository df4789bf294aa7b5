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
split (``--tumorseg``, e.g. a ``cpu_plan_sweep.py`` variant). tumorseg is post-processed twice:
with every rule (``tumorseg_pp``, the default) and without the distant-component rule
(``tumorseg_pp_no_distant``, the rule set before it), so the rule's effect is measured on the
same predictions. Without ``--nnunet-python`` only tumorseg's side runs; ``--stored`` then pairs
tumorseg_pp with the nnU-Net scores of an earlier run of this script on the same data. Scores:
``tumorseg evaluate`` of every run with and without post-processing (folds merged), ``tumorseg
compare`` (paired Wilcoxon) of tumorseg against nnU-Net, both post-processed, and of each tool
against itself.

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


#: tumorseg's post-processing variants: name -> rules left out of the decision. "tumorseg_pp" is
#: the current default; "tumorseg_pp_no_distant" the rule set before the distant-component rule.
TUMORSEG_VARIANTS: dict[str, list[str]] = {
    "tumorseg_pp": [],
    "tumorseg_pp_no_distant": ["remove_distant_components"],
}


def tumorseg_crossfit(out: Path, work: Path, folds: list[int], env: dict[str, str], log: Path,
                      name: str = "tumorseg_pp", without: list[str] | None = None
                      ) -> dict[str, Any]:  # fmt: skip
    """Cross-fitted ``tumorseg postprocess determine`` (leaving out ``without``) and ``apply``
    into ``out/predictions/NAME/fold_F``."""
    decisions = {}
    skip = [arg for rule in without or [] for arg in ("--without", rule)]
    for fold in folds:
        others = [f for f in folds if f != fold]
        source = _decision_cases(out / "predictions" / "tumorseg", others,
                                 out / "decide" / name / f"for_fold_{fold}")  # fmt: skip
        decision = source / "postprocessing.json"
        _run(_tumorseg("postprocess", "determine", str(source),
                       str(work / "raw" / DATASET / "labelsTr"), "-d", str(DATASET_ID), "-o",
                       str(decision), "--raw", str(work / "raw"), "-np", "2", *skip),
             env, log)  # fmt: skip
        target = out / "predictions" / name / f"fold_{fold}"
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


def compare_stored(out: Path, stored: Path, run: str, against: str, env: dict[str, str],
                   log: Path) -> dict[str, Any]:  # fmt: skip
    """``tumorseg compare`` of ``run`` (scored here) against the ``against`` summary kept in an
    earlier results file of this script (same data and split; the cases are paired by name)."""
    summary = json.loads(stored.read_text())["summaries"][against]
    path = out / "summaries" / f"{against}_stored.json"
    path.write_text(json.dumps(summary))
    result = out / "summaries" / f"compare_{run}_vs_{against}_stored.json"
    _run(_tumorseg("compare", str(path), str(out / "summaries" / f"{run}.json"), "-o",
                   str(result)), env, log)  # fmt: skip
    return {**json.loads(result.read_text()), "a": f"{against} (stored)", "b": run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="cpu_defaults_vs_nnunet work.")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ppcross"))
    parser.add_argument("--tumorseg", type=Path, default=None,
                        help="tumorseg predictions (fold_F folders); default: WORK's tumorseg_2d")
    parser.add_argument("--nnunet", default="nnunet_3d_fullres", help="nnU-Net run in WORK.")
    parser.add_argument("--nnunet-python", default=None,
                        help="nnU-Net's environment; without it, tumorseg's variants only")
    parser.add_argument("--stored", type=Path, default=None,
                        help="an earlier results.json of this script: compare tumorseg_pp with "
                             "its nnunet_pp per case (same data and split)")
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
    decisions = {
        name: tumorseg_crossfit(out, work, args.folds, env, log, name, without)
        for name, without in TUMORSEG_VARIANTS.items()
    }
    # score_runs reports the first run minus each other one
    groups = [[*TUMORSEG_VARIANTS, "tumorseg"]]  # tumorseg_pp first
    if args.nnunet_python:
        _link_folds(work / "predictions" / args.nnunet, out / "predictions" / "nnunet", args.folds)
        decisions["nnunet"] = nnunet_crossfit(out, work, args.folds, args.nnunet_python, env, log)
        groups = [["tumorseg_pp", "nnunet_pp"], *groups, ["nnunet_pp", "nnunet"]]

    def no_steps(run: str, fold: int) -> dict[str, Any]:
        return {}

    results: dict[str, Any] = {
        "folds": args.folds,
        "tumorseg": str(tumorseg),
        "nnunet": args.nnunet if args.nnunet_python else None,
        "decisions": decisions,
        "summaries": {},
        "comparisons": [],
    }
    for runs in groups:
        scored = score_runs(out, runs, args.folds, no_steps, env, log)
        results["summaries"].update(scored["summaries"])
        results["comparisons"] += scored["comparisons"]
    if args.stored:
        results["stored"] = str(args.stored)
        results["comparisons"].append(
            compare_stored(out, args.stored.resolve(), "tumorseg_pp", "nnunet_pp", env, log)
        )
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(decisions, indent=1)[:4000])
    print(table(results))


if __name__ == "__main__":
    main()
