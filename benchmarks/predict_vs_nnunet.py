"""Sliding-window inference with the plans' full network: tumorseg's backends vs nnU-Net v2.

One process, one run. Both tools get the same preprocessed volume ``(C, Z, Y, X)`` (z-scored
inside the brain, cropped to the non-zero box as both pipelines crop), the same U-Net topology
as planned for the data (``derive_topology``: 32-320 features, 5 stages / 80 x 96 x 80 at 2 mm,
6 stages / 128^3 at 1 mm; tumorseg's ``UNet`` and nnU-Net's ``PlainConvUNet``, random weights:
speed does not depend on them), step 0.5, Gaussian weighting and, with TTA, all 8 mirrors.
Timed: ``sliding_window_predict`` with each backend vs
``nnUNetPredictor.predict_sliding_window_return_logits`` (nnU-Net's CPU path: float32, one tile
per forward pass). The tools run alternately (A B C, then C B A ...) and the tables quote medians.

Tools: ``tumorseg`` (what ``tumorseg predict`` runs by default: the optimised network copy,
precision ``auto``, tile batch chosen from memory and measured throughput), ``tumorseg-fp32``
(same, float32), ``openvino`` (``--backend openvino``, precision ``auto``), ``onnxruntime``
(``--backend onnxruntime``, float32), ``nnunet``.

Also reported, measured in the same run: the machine's peaks (float32 and bf16 matmul, conv3d in
both layouts), the convolution FLOPs executed (hooks on one forward pass x inputs forwarded),
their rate over the whole sliding window and over the forward passes alone, as a fraction of the
measured conv3d peak of the precision used, the peak RSS increase, and how far the bf16 and
ONNX outputs are from tumorseg's float32 output (max probability difference; Dice per region of
the thresholded outputs, i.e. label agreement).

Run (tumorseg with ``[onnx,openvino]`` and nnunetv2 in one environment)::

    python benchmarks/predict_vs_nnunet.py --json predict_bench.json

``--parts`` picks among 2mm, 2mm-tta, 1mm, 1mm-tta (default: all but 1mm-tta, about 20 minutes
on an idle 2-core CPU); ``--tools`` and ``--repeats`` narrow it further.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from bench_support import PeakRSS, conv_flops, cpu_name, measured_peaks, region_agreement
from torch import nn

from tumorseg.inference.backends import onnxruntime_logits, openvino_logits
from tumorseg.inference.onnx_export import export_onnx
from tumorseg.inference.optimize import predict_logits_function
from tumorseg.inference.precision import Precision, resolve_precision
from tumorseg.inference.sliding_window import sliding_window_predict, tile_starts
from tumorseg.inference.tile_batch import (
    MAX_BATCH_3D,
    available_memory_bytes,
    bytes_per_input,
    choose_tile_batch,
    memory_cap,
)
from tumorseg.networks.unet import UNet
from tumorseg.planning.topology import derive_topology

SHARED_BRATS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brats2023_gli_case"
PARTS = {
    # name: (volume, TTA, default tools)
    "2mm": ("2mm", False, "tumorseg,tumorseg-fp32,openvino,onnxruntime,nnunet"),
    "2mm-tta": ("2mm", True, "tumorseg,openvino,nnunet"),
    "1mm": ("1mm", False, "tumorseg,openvino,nnunet"),
    "1mm-tta": ("1mm", True, "tumorseg,openvino"),
}
PATCH = {"2mm": (80, 96, 80), "1mm": (128, 128, 128)}


class _PlainTrainer:
    """The trainer methods the inference code calls, for a bare network."""

    output_activation = "sigmoid"

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return network(images)


def nnunet_network(topology: Any, in_channels: int, out_channels: int) -> nn.Module:
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    n = topology.n_stages
    return PlainConvUNet(
        in_channels,
        n,
        list(topology.features_per_stage),
        nn.Conv3d,
        [list(k) for k in topology.kernel_sizes],
        [list(s) for s in topology.strides],
        [topology.n_conv_per_stage] * n,
        out_channels,
        [topology.n_conv_per_stage_decoder] * (n - 1),
        conv_bias=False,
        norm_op=nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU,
        nonlin_kwargs={"inplace": True},
        deep_supervision=False,
    ).eval()


def _zscore_cropped(images: list[np.ndarray]) -> torch.Tensor:
    mask = np.any(np.stack(images) != 0, axis=0)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    out = []
    for image in images:
        image = image.astype(np.float32)
        values = image[mask]
        out.append(np.where(mask, (image - values.mean()) / max(values.std(), 1e-8), 0)[box])
    return torch.from_numpy(np.stack(out).astype(np.float32))


def load_volume(name: str) -> tuple[torch.Tensor, str]:
    if name == "2mm":
        from tumorseg.data.synthetic.case import generate_case

        case = generate_case(0, 2.0, tumour=True)
        return _zscore_cropped(list(case.images)), "synthetic glioma case, 2 mm (tumorseg synth)"
    if not SHARED_BRATS.is_dir():
        raise SystemExit(f"{SHARED_BRATS} not found: run without the 1mm parts")
    from tumorseg.data.io import read_image

    images = [read_image(SHARED_BRATS / f"{m}.nii.gz")[0] for m in ("t1n", "t1c", "t2w", "t2f")]
    return _zscore_cropped(images), "BraTS 2023 case BraTS-GLI-00001-000, 1 mm, brain box"


class Tools:
    """The logits functions of every tool for one network, built (and warmed up) once, as
    ``tumorseg predict`` builds them once per fold; ``setup_seconds`` records that cost."""

    def __init__(self, net: nn.Module, patch: tuple[int, ...], channels: int, names: list[str]):
        self.net, self.patch, self.names = net, patch, names
        self.input_shape = (channels, *patch)
        self.functions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        self.batch: dict[str, int] = {}
        self.precision: dict[str, str] = {}
        self.setup_seconds: dict[str, float] = {}
        auto = resolve_precision(Precision.AUTO)
        graph = None
        threads = torch.get_num_threads()
        for name in names:
            start = time.perf_counter()
            if name in ("tumorseg", "tumorseg-fp32"):
                precision = auto if name == "tumorseg" else Precision.FP32
                function = predict_logits_function(
                    _PlainTrainer(), net, self.input_shape, precision=precision, batch_size=1
                )
            elif name in ("openvino", "onnxruntime"):
                graph = graph or export_onnx(_PlainTrainer(), net, self.input_shape)
                precision = auto if name == "openvino" else Precision.FP32
                function = (
                    openvino_logits(graph, threads, precision)
                    if name == "openvino"
                    else onnxruntime_logits(graph, threads)
                )
            else:
                continue
            cap = memory_cap(
                bytes_per_input(patch, net.topology, channels, 3),
                available_memory_bytes(),
                MAX_BATCH_3D,
            )
            self.batch[name] = choose_tile_batch(function, self.input_shape, cap)
            self.functions[name] = function
            self.precision[name] = precision.value
            self.setup_seconds[name] = round(time.perf_counter() - start, 1)
        self.precision["nnunet"] = "fp32"
        self.batch["nnunet"] = 1


def run_nnunet(net: nn.Module, image: torch.Tensor, patch: tuple[int, ...], tta: bool) -> Any:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=tta,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        verbose=False,
        verbose_preprocessing=False,
        allow_tqdm=False,
    )
    # Only what predict_sliding_window_return_logits reads (it needs no trained-model folder).
    predictor.network = net
    predictor.configuration_manager = SimpleNamespace(patch_size=list(patch))
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=3)
    predictor.allowed_mirroring_axes = (0, 1, 2)
    return predictor.predict_sliding_window_return_logits(image)


def forward_rates(tools: Tools, theirs: nn.Module, flops: int, repeats: int) -> dict[str, float]:
    """GFLOP/s of the forward passes alone at each tool's batch size (median of ``repeats``
    alternating timings)."""
    times: dict[str, list[float]] = {n: [] for n in tools.names}
    generator = torch.Generator().manual_seed(1)
    for repeat in range(repeats):
        order = tools.names if repeat % 2 == 0 else tools.names[::-1]
        for name in order:
            batch = tools.batch[name]
            x = torch.randn(batch, *tools.input_shape, generator=generator)
            function = tools.functions.get(name, theirs)
            with torch.inference_mode():
                start = time.perf_counter()
                function(x)
                times[name].append((time.perf_counter() - start) / batch)
    return {n: round(flops / statistics.median(t) / 1e9, 1) for n, t in times.items()}


def part_tools(part: str, args: argparse.Namespace) -> list[str]:
    return (args.tools or PARTS[part][2]).split(",")


def prepare_volume(volume_name: str, names: list[str], args: argparse.Namespace) -> dict:
    """The volume, both networks, every tool's function and the forward-pass rates."""
    image, label = load_volume(volume_name)
    patch = PATCH[volume_name]
    spacing = 2.0 if volume_name == "2mm" else 1.0
    topology, _ = derive_topology((spacing,) * 3, patch, max_features=320, max_pools=6)
    torch.manual_seed(0)
    ours = UNet(image.shape[0], 3, topology, 3, deep_supervision=False).eval()
    theirs = nnunet_network(topology, image.shape[0], 3)
    tools = Tools(ours, patch, image.shape[0], names)
    flops = conv_flops(ours, patch, image.shape[0])
    rates = forward_rates(tools, theirs, flops, args.forward_repeats)
    starts = [
        len(tile_starts(max(s, p), p, 0.5)) for s, p in zip(image.shape[1:], patch, strict=True)
    ]
    return {
        "image": image,
        "label": label,
        "patch": patch,
        "topology": topology,
        "tools": tools,
        "theirs": theirs,
        "flops": flops,
        "rates": rates,
        "tiles": int(np.prod(starts)),
    }


def bench_part(part: str, prepared: dict, args: argparse.Namespace) -> list[dict]:
    volume_name, tta, _ = PARTS[part]
    names = part_tools(part, args)
    image, label, patch = prepared["image"], prepared["label"], prepared["patch"]
    tools, theirs, flops, rates = (prepared[k] for k in ("tools", "theirs", "flops", "rates"))
    topology, n_tiles = prepared["topology"], prepared["tiles"]
    mirrors = 8 if tta else 1
    repeats = args.tta_repeats if tta else args.repeats
    if volume_name == "1mm":
        repeats = min(repeats, args.repeats_1mm)
    rows, outputs = [], {}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            with PeakRSS() as memory:
                start = time.perf_counter()
                if name == "nnunet":
                    out = torch.sigmoid(run_nnunet(theirs, image, patch, tta).float())
                else:
                    out = sliding_window_predict(
                        tools.functions[name],
                        image,
                        patch,
                        tile_batch_size=tools.batch[name],
                        mirror_axes=(0, 1, 2) if tta else (),
                    )
                seconds = time.perf_counter() - start
            outputs.setdefault(name, out)
            precision = tools.precision[name]
            executed = flops * n_tiles * mirrors
            row = {
                "part": part,
                "volume": label,
                "shape": list(image.shape),
                "patch": list(patch),
                "features": list(topology.features_per_stage),
                "tta": tta,
                "tool": name,
                "precision": precision,
                "tile_batch": tools.batch[name],
                "repeat": repeat,
                "seconds": round(seconds, 2),
                "tiles": n_tiles,
                "gflop_per_tile_forward": round(flops / 1e9, 1),
                "achieved_gflops": round(executed / seconds / 1e9, 1),
                "forward_gflops": rates[name],
                "setup_seconds": tools.setup_seconds.get(name, 0.0),
                "peak_rss_increase_mb": round((memory.peak - memory.start) / 2**20),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    reference = outputs.get("tumorseg-fp32")
    agreement = {}
    for name, out in outputs.items():
        # nnU-Net's network has its own random weights: its output is not comparable.
        if reference is not None and name not in ("tumorseg-fp32", "nnunet"):
            agreement[name] = {
                "max_probability_difference": round(float((out - reference).abs().max()), 5),
                "label_dice_vs_tumorseg_fp32": region_agreement(out.numpy(), reference.numpy()),
            }
    return [*rows, {"part": part, "agreement": agreement}] if agreement else rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", default="2mm,2mm-tta,1mm", help=f"comma list of {', '.join(PARTS)}"
    )
    parser.add_argument("--tools", default=None, help="comma list (default: per part)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool without TTA")
    parser.add_argument("--tta-repeats", type=int, default=2, help="runs per tool with TTA")
    parser.add_argument(
        "--repeats-1mm", type=int, default=2, help="at most this many runs per tool at 1 mm"
    )
    parser.add_argument("--forward-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    machine = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "precision_auto": resolve_precision(Precision.AUTO).value,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    machine["measured_peak_gflops"] = measured_peaks()
    print(json.dumps(machine), flush=True)
    rows: list[dict] = []
    parts = args.parts.split(",")
    prepared: dict[str, dict] = {}
    for part in parts:
        volume = PARTS[part][0]
        if volume not in prepared:
            names = list(
                dict.fromkeys(
                    n for p in parts if PARTS[p][0] == volume for n in part_tools(p, args)
                )
            )
            prepared[volume] = prepare_volume(volume, names, args)
        rows += bench_part(part, prepared[volume], args)
    peaks = machine["measured_peak_gflops"]
    for row in rows:
        if "tool" in row:
            peak = peaks["conv3d_bf16"] if row["precision"] == "bf16" else peaks["conv3d_fp32"]
            row["fraction_of_conv_peak"] = round(row["achieved_gflops"] / peak, 3)
            row["forward_fraction_of_conv_peak"] = round(row["forward_gflops"] / peak, 3)
    machine["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["total_seconds"] = round(time.perf_counter() - started)
    print_table(rows, peaks)
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


def print_table(rows: list[dict], peaks: dict[str, float]) -> None:
    print(f"\nmeasured peaks GFLOP/s: {peaks}\n")
    print(
        "| part | tool | precision | tile batch | s / case (median) | ratio to nnU-Net | "
        "GFLOP/s sliding window | forward GFLOP/s (of conv peak) | RSS increase MB |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for part in dict.fromkeys(r["part"] for r in rows):
        timed = [r for r in rows if r["part"] == part and "tool" in r]
        theirs = [r["seconds"] for r in timed if r["tool"] == "nnunet"]
        for tool in dict.fromkeys(r["tool"] for r in timed):
            sel = [r for r in timed if r["tool"] == tool]
            median = statistics.median(r["seconds"] for r in sel)
            ratio = f"{median / statistics.median(theirs):.2f}" if theirs else "-"
            first = sel[0]
            print(
                f"| {part} | {tool} | {first['precision']} | {first['tile_batch']} | {median:.1f} "
                f"({len(sel)} runs) | {ratio} | "
                f"{statistics.median(r['achieved_gflops'] for r in sel):.0f} | "
                f"{first['forward_gflops']:.0f} ({first['forward_fraction_of_conv_peak']:.0%}) | "
                f"{max(r['peak_rss_increase_mb'] for r in sel)} |"
            )
    for row in rows:
        if "agreement" in row:
            print(f"\n{row['part']} agreement with tumorseg-fp32: {json.dumps(row['agreement'])}")


if __name__ == "__main__":
    main()
