"""Sliding-window inference: tumorseg vs nnU-Net v2, same volumes, network, machine and run.

Both sides get the same preprocessed volume (C, Z, Y, X), the same U-Net topology (tumorseg's
``UNet`` and nnU-Net's ``PlainConvUNet`` built from one ``NetworkTopology``, random weights: speed
does not depend on them), the same patch, step 0.5, Gaussian weighting and, when on, mirroring
over all three axes. Timed: ``sliding_window_predict`` vs
``nnUNetPredictor.predict_sliding_window_return_logits`` (CPU, float32 on both sides).

Volumes: a 2 mm synthetic subject (``tumorseg synth`` anatomy) and a 1 mm BraTS grid (the real
BraTS 2023 sample case of ``../shared/data`` when present, else a synthetic 1 mm subject padded to
240 x 240 x 155), each z-scored inside the non-zero region.

Also reported: the convolution FLOPs actually executed (counted with hooks on one forward pass,
times the forwarded tiles and mirrors), the achieved FLOP rate, and that rate as a fraction of the
machine's measured peak (best of a large float32 matmul and a large conv3d on this CPU).

Run (an environment with nnunetv2 and tumorseg, e.g. /work/nnunet-venv)::

    python benchmarks/predict_vs_nnunet.py --json predict_bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from tumorseg.inference.optimize import predict_logits_function
from tumorseg.inference.sliding_window import sliding_window_predict, tile_starts
from tumorseg.networks.topology import NetworkTopology
from tumorseg.networks.unet import UNet

SHARED_BRATS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brats2023_gli_case"


class _PlainTrainer:
    """The one trainer method the predictor calls, for a bare network."""

    def predict_logits(self, network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return network(images)


def topology_for(patch: int, base: int, cap: int) -> NetworkTopology:
    """Isotropic plan-style topology: stride 2 until the feature map is 4 voxels."""
    stages = 1
    while patch // 2**stages >= 4:
        stages += 1
    features = tuple(min(base * 2**i, cap) for i in range(stages))
    return NetworkTopology(
        "unet", features, ((3, 3, 3),) * stages, ((1, 1, 1),) + ((2, 2, 2),) * (stages - 1)
    )


def nnunet_network(topology: NetworkTopology, in_channels: int, out_channels: int) -> nn.Module:
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


def zscore(images: list[np.ndarray]) -> torch.Tensor:
    mask = np.any(np.stack(images) != 0, axis=0)
    out = []
    for image in images:
        image = image.astype(np.float32)
        values = image[mask]
        out.append(np.where(mask, (image - values.mean()) / max(values.std(), 1e-8), 0))
    return torch.from_numpy(np.stack(out).astype(np.float32))


def volume_2mm() -> tuple[torch.Tensor, str]:
    from tumorseg.data.synthetic.case import generate_case

    case = generate_case(0, 2.0, tumour=False, difficulty="realistic")
    return zscore(list(case.images)), "synthetic subject, 2 mm (tumorseg synth anatomy)"


def volume_1mm() -> tuple[torch.Tensor, str]:
    if SHARED_BRATS.is_dir():
        from tumorseg.data.io import read_image

        images = [read_image(SHARED_BRATS / f"{m}.nii.gz")[0] for m in ("t1n", "t1c", "t2w", "t2f")]
        return zscore(images), "BraTS 2023 sample case BraTS-GLI-00001-000, 1 mm, full grid"
    from tumorseg.data.synthetic.case import generate_case

    case = generate_case(0, 1.0, tumour=False, difficulty="realistic")
    grid = np.zeros((4, 155, 240, 240), np.float32)
    data = zscore(list(case.images)).numpy()
    box = tuple(slice(0, min(s, g)) for s, g in zip(data.shape[1:], grid.shape[1:], strict=True))
    grid[(slice(None), *box)] = data[(slice(None), *box)]
    return torch.from_numpy(grid), "synthetic subject, 1 mm, padded to 240 x 240 x 155"


def conv_flops(network: nn.Module, patch: tuple[int, ...], in_channels: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of all (transposed) convolutions in one forward pass."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kernel = int(np.prod(module.kernel_size))
        if isinstance(module, nn.ConvTranspose3d):
            total += 2 * inputs[0].numel() * module.out_channels * kernel // module.groups
        else:
            total += 2 * output.numel() * (module.in_channels // module.groups) * kernel

    handles = [
        m.register_forward_hook(hook)
        for m in network.modules()
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d)
    ]
    with torch.inference_mode():
        network(torch.zeros(1, in_channels, *patch))
    for h in handles:
        h.remove()
    return total


def measured_peak_gflops() -> dict[str, float]:
    """Best-of-3 float32 throughput of a 2048^2 matmul and a 32->32 channel 3^3 conv3d on 48^3."""
    results = {}
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(3))
    results["matmul_2048"] = 2 * 2048**3 / best / 1e9
    conv = nn.Conv3d(32, 32, 3, padding=1, bias=False).eval()
    x = torch.randn(1, 32, 48, 48, 48)
    with torch.inference_mode():
        conv(x)
        best = min(_timed(lambda: conv(x)) for _ in range(3))
    results["conv3d_32ch_48^3"] = 2 * 32 * 32 * 27 * 48**3 / best / 1e9
    return results


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class PeakRSS:
    """Peak resident memory of this process during a block (Linux; sampled every 5 ms and the
    kernel's high-water mark reset through /proc/self/clear_refs where permitted)."""

    def __enter__(self) -> PeakRSS:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_tumorseg(
    net: nn.Module, image: torch.Tensor, patch: tuple[int, ...], tta: bool, tile_batch_size: int
) -> torch.Tensor:
    return sliding_window_predict(
        net,
        image,
        patch,
        step_size=0.5,
        tile_batch_size=tile_batch_size,
        mirror_axes=(0, 1, 2) if tta else (),
        activation="sigmoid",
    )


def run_nnunet(
    net: nn.Module, image: torch.Tensor, patch: tuple[int, ...], tta: bool
) -> torch.Tensor:
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


def bench_volume(
    name: str, image: torch.Tensor, patch: int, base: int, cap: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    topology = topology_for(patch, base, cap)
    torch.manual_seed(0)
    ours = UNet(image.shape[0], 3, topology, 3, deep_supervision=False).eval()
    theirs = nnunet_network(topology, image.shape[0], 3)
    patch3 = (patch,) * 3
    flops = conv_flops(ours, patch3, image.shape[0])
    padded = [max(s, patch) for s in image.shape[1:]]
    n_tiles = int(np.prod([len(tile_starts(s, patch, 0.5)) for s in padded]))
    calls: list[int] = []
    start = time.perf_counter()
    # `tumorseg predict --traced`: the traced, frozen, verified graph (built once per fold when
    # the model is loaded, so not part of the per-case time). The default is the eager network.
    traced = predict_logits_function(
        _PlainTrainer(), ours, (image.shape[0], *patch3), batch_size=args.tile_batch_size
    )
    build_seconds = time.perf_counter() - start
    functions = {"tumorseg": ours, "tumorseg-traced": traced}

    def counting(tool: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            calls.append(x.shape[0])
            return functions[tool](x)

        return forward

    with torch.inference_mode():  # warm-up: oneDNN builds its kernels on the first call
        ours(torch.zeros(1, image.shape[0], *patch3))
        theirs(torch.zeros(1, image.shape[0], *patch3))
    rows = []
    for tta in (False, True):
        mirrors = 8 if tta else 1
        if tta not in args.tta:
            continue
        tools = [t for t in ("tumorseg", "nnunet", "tumorseg-traced") if t in args.tools]
        for repeat in range(args.repeats):
            for tool in tools if repeat % 2 == 0 else tools[::-1]:
                calls.clear()
                with PeakRSS() as memory:
                    start = time.perf_counter()
                    if tool.startswith("tumorseg"):
                        run_tumorseg(counting(tool), image, patch3, tta, args.tile_batch_size)
                    else:
                        run_nnunet(theirs, image, patch3, tta)
                    seconds = time.perf_counter() - start
                forwarded = sum(calls) if tool.startswith("tumorseg") else n_tiles * mirrors
                row = {
                    "volume": name,
                    "shape": list(image.shape),
                    "patch": patch,
                    "features": list(topology.features_per_stage),
                    "tta": tta,
                    "tool": tool,
                    "repeat": repeat,
                    "seconds": round(seconds, 2),
                    "tiles": n_tiles,
                    "tile_forwards": forwarded,
                    "peak_rss_mb": round(memory.peak / 2**20),
                    "rss_increase_mb": round((memory.peak - memory.start) / 2**20),
                    "gflop_per_tile_forward": round(flops / 1e9, 2),
                    "achieved_gflops": round(flops * forwarded / seconds / 1e9, 2),
                    "load_avg_1min": round(os.getloadavg()[0], 2),
                    "graph_build_seconds": round(build_seconds, 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch-2mm", type=int, default=64)
    parser.add_argument("--base-2mm", type=int, default=8, help="first-stage features, 2 mm")
    parser.add_argument("--cap-2mm", type=int, default=64, help="feature cap, 2 mm")
    parser.add_argument("--patch-1mm", type=int, default=128)
    parser.add_argument("--base-1mm", type=int, default=4, help="first-stage features, 1 mm")
    parser.add_argument("--cap-1mm", type=int, default=32, help="feature cap, 1 mm")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tile-batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-1mm", action="store_true")
    parser.add_argument("--skip-2mm", action="store_true")
    parser.add_argument(
        "--tools",
        default="tumorseg,nnunet,tumorseg-traced",
        help="comma list of tumorseg, nnunet, tumorseg-traced",
    )
    parser.add_argument("--tta", default="off,on", help="comma list of off, on")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.tools = args.tools.split(",")
    args.tta = [t == "on" for t in args.tta.split(",")]
    torch.set_num_threads(args.threads)
    peak = measured_peak_gflops()
    machine = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "measured_peak_gflops": {k: round(v, 1) for k, v in peak.items()},
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(machine), flush=True)
    rows = []
    if not args.skip_2mm:
        image, label = volume_2mm()
        rows += bench_volume(label, image, args.patch_2mm, args.base_2mm, args.cap_2mm, args)
    if not args.skip_1mm:
        image, label = volume_1mm()
        rows += bench_volume(label, image, args.patch_1mm, args.base_1mm, args.cap_1mm, args)
    best = max(peak.values())
    for row in rows:
        row["fraction_of_peak"] = round(row["achieved_gflops"] / best, 3)
    machine["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(rows)
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| volume | shape | patch / features | TTA | tumorseg s | tumorseg --traced s | "
        "nnU-Net s | ratio | "
        "tumorseg GFLOP/s (peak frac.) | RSS increase MB tumorseg / nnU-Net |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    keys = sorted({(r["volume"], r["tta"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for volume, tta in keys:
        sel = [r for r in rows if r["volume"] == volume and r["tta"] == tta]
        ours = [r for r in sel if r["tool"] == "tumorseg"]
        traced = [r["seconds"] for r in sel if r["tool"] == "tumorseg-traced"]
        theirs = [r for r in sel if r["tool"] == "nnunet"]
        t_ours = min(r["seconds"] for r in ours)
        t_theirs = min(r["seconds"] for r in theirs) if theirs else float("nan")
        best = min(ours, key=lambda r: r["seconds"])
        print(
            f"| {volume} | {'x'.join(map(str, best['shape'][1:]))} | {best['patch']}^3 / "
            f"{best['features']} | {'on' if tta else 'off'} | {t_ours:.1f} | "
            f"{f'{min(traced):.1f}' if traced else '-'} | {t_theirs:.1f} | "
            f"{t_ours / t_theirs:.2f} | {best['achieved_gflops']:.1f} "
            f"({best['fraction_of_peak']:.0%}) | {max(r['rss_increase_mb'] for r in ours)} / "
            f"{max((r['rss_increase_mb'] for r in theirs), default=0)} |"
        )


if __name__ == "__main__":
    main()
