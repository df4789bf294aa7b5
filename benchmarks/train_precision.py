"""CPU training in fp32 against bf16 autocast: seconds per optimiser step, and the learning curve.

``speed``: for each precision (and memory layout: ``--layouts contiguous channels_last``), a
single-threaded training of ``--epochs`` epochs of ``--steps`` steps (data loaded in the training
process, no final validation) of the default trainer on a preprocessed dataset; the seconds per step are the CPU time of the training
epochs after the first (oneDNN builds its kernels in the first; the time of one thread's
process, so other jobs on the machine do not count), divided by their steps; the wall time is
printed beside it.

``curve``: two trainings of the same seed, steps and data, one per precision, each with its
final validation (whole held-out volumes); prints the per-epoch training loss and pseudo-Dice
side by side and the held-out Dice of both.

Usage (a preprocessed dataset, e.g. the seed-trainer benchmark's)::

    python benchmarks/train_precision.py speed --raw RAW --preprocessed PRE \\
        --dataset Dataset910_Synth --configuration 3d_fullres
    python benchmarks/train_precision.py curve --raw RAW --preprocessed PRE --results RES \\
        --dataset Dataset910_Synth --configuration 2d --epochs 10 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PRECISIONS = ("fp32", "bf16")


def speed(args: argparse.Namespace) -> dict[str, object]:
    import torch

    from tumorseg.inference.precision import native_bf16
    from tumorseg.paths import Roots
    from tumorseg.training.loop import Loop
    from tumorseg.training.run import prepare_run

    torch.set_num_threads(args.threads)
    out: dict[str, object] = {"native_bf16": native_bf16(), "threads": args.threads}
    variants = [(p, layout) for _ in range(args.repeats) for p in args.precisions
                for layout in args.layouts]  # fmt: skip
    for precision, layout in variants:
        name = precision if args.layouts == ["contiguous"] else f"{precision}/{layout}"
        roots = Roots(Path(args.raw), Path(args.preprocessed), Path(args.scratch) / precision)
        loop_values = {"epochs": args.epochs, "iterations_per_epoch": args.steps,
                       "val_iterations": 1, "num_workers": 0, "device": "cpu",
                       "precision": precision, "seed": args.seed,
                       "channels_last": layout == "channels_last"}  # fmt: skip
        prepared = prepare_run(roots, args.dataset, args.configuration, 0, "default",
                               "tumorsegPlans", {}, loop_values)  # fmt: skip
        loop = Loop(prepared, echo=False)
        cpu: list[float] = []
        train_epoch = loop.train_epoch

        def timed(batches: object, _epoch=train_epoch, _cpu=cpu) -> object:
            started = time.process_time()
            result = _epoch(batches)
            _cpu.append(time.process_time() - started)
            return result

        loop.train_epoch = timed  # type: ignore[method-assign]
        started = time.perf_counter()
        loop.fit()
        history = loop.state.history[1:]
        wall = sum(h["train_time_s"] for h in history) / (len(history) * args.steps)
        record = {"cpu_s_per_step": round(sum(cpu[1:]) / (len(cpu[1:]) * args.steps), 3),
                  "wall_s_per_step": round(wall, 3),
                  "wall_s": round(time.perf_counter() - started, 1),
                  "train_loss": [round(h["train_loss"], 5)
                                 for h in loop.state.history]}  # fmt: skip
        print(name, record, flush=True)
        # With --repeats, every repeat's record is kept (the variants alternate).
        out.setdefault(name, []).append(record)  # type: ignore[union-attr]
    return out


def curve(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for precision in PRECISIONS:
        command = [
            str(Path(sys.executable).parent / "tumorseg"), "train", args.dataset,
            args.configuration, "0", "--epochs", str(args.epochs), "--iterations-per-epoch",
            str(args.steps), "--precision", precision, "--device", "cpu", "-np", "0",
            "--raw", args.raw, "--preprocessed", args.preprocessed, "--results", args.results,
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        wall = time.perf_counter() - started
        (config,) = [
            p for p in Path(args.results, args.dataset).glob("default*/fold_0/train_config.json")
            if json.loads(p.read_text())["loop"].get("precision", "fp32") == precision
        ]  # fmt: skip
        fold = config.parent
        import torch

        state = torch.load(fold / "checkpoint_final.pt", map_location="cpu", weights_only=False)
        history = state["loop_state"]["history"]
        summary = json.loads((fold / "validation" / "summary.json").read_text())
        out[precision] = {
            "wall_s": round(wall, 1),
            "train_loss": [round(h["train_loss"], 4) for h in history],
            "pseudo_dice": [[round(d, 4) for d in h["pseudo_dice"]] for h in history],
            "held_out_mean": summary.get("mean", summary.get("means")),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("speed", "curve"))
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--raw", default="")
    parser.add_argument("--preprocessed", required=True)
    parser.add_argument("--results", default="")
    parser.add_argument("--scratch", default="/tmp/train_precision")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--layouts", nargs="+", default=["contiguous"],
                        choices=["contiguous", "channels_last"])  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1, help="Alternating repeats of all.")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = speed(args) if args.mode == "speed" else curve(args)
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
